/* footprint.c — hands back the resident pages of code the broker ran only to start.
 *
 * A broker's resident set is mostly shared-library code: libcurl links OpenSSL, GnuTLS,
 * Kerberos, LDAP and more, and their constructors, the TLS set-up of the first login and
 * the first reads fault in megabytes of text (and the kernel maps up to 16 pages around
 * each fault). Once everything is loaded, little of it runs again: serving a read runs
 * libc, libsodium and the broker's own code. broker_footprint_drop_text() drops the
 * page-table entries (MADV_DONTNEED) of the loaded objects' code: what runs again faults
 * back in from the page cache (a minor fault), the rest leaves the process's resident set.
 * The pages themselves stay in the page cache until the kernel reclaims them, as it does
 * first with file pages no process maps: this lowers what the broker holds mapped, not
 * what the machine has cached.
 *
 * MADV_DONTNEED discards whatever a range holds, so the ranges must be exactly code that
 * the file alone backs:
 * - only the executable, non-writable PT_LOAD segments of the objects the dynamic loader
 *   lists (dl_iterate_phdr), and only while it lists them: the loader holds its lock
 *   through the callback, so no object can be unloaded and its addresses reused for other
 *   memory meanwhile, and a load or unload since /proc/self/smaps was read (dlpi_adds,
 *   dlpi_subs) cancels the pass;
 * - of those, only mappings that /proc/self/smaps shows as r-xp, backed by a file, with no
 *   private page, resident or swapped (a text relocation or a breakpoint makes one: it is
 *   then the only copy) and nothing locked.
 * Writable data, relocated read-only data (RELRO), the heap, stacks, the locked secret
 * arena, the vDSO and anything mapped other than by the loader are never touched. */
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/internal.h"

/* Mappings examined at most; a broker has about 250. */
#define FOOTPRINT_MAX_MAPPINGS 4096

struct text_map {
	uintptr_t start, end;
	long long rss_kb, anon_kb, swap_kb, locked_kb;
	bool candidate;             /* r-x, private, file-backed */
	bool dropped;
};

/* What a pass over the loader's objects works with. */
struct drop_pass {
	struct text_map *maps;
	size_t n;
	unsigned long long adds, subs;  /* the loader's counts when smaps was read */
	bool counted;               /* adds and subs hold the counts */
	bool changed;               /* an object was loaded or unloaded since */
	struct broker_footprint_stats *stats;
};

/* Parses a mapping's first line of smaps: "start-end perms offset dev inode [path]".
 * Returns 1 for a mapping line, 0 for another line. */
static int
parse_head(const char *line, struct text_map *m)
{
	unsigned long long start, end, inode;
	char perms[5], dev[16];
	int path_at = -1;

	if (sscanf(line, "%llx-%llx %4s %*s %15s %llu %n", &start, &end, perms, dev, &inode,
		   &path_at) < 5)
		return 0;
	memset(m, 0, sizeof(*m));
	m->start = (uintptr_t)start;
	m->end = (uintptr_t)end;
	m->candidate = strcmp(perms, "r-xp") == 0 && inode != 0 && path_at > 0 &&
		       line[path_at] == '/';
	return 1;
}

/* Adds m to the candidates when dropping its pages loses nothing. */
static void
keep_candidate(struct drop_pass *p, const struct text_map *m)
{
	if (!m->candidate || m->rss_kb == 0 || m->anon_kb != 0 || m->swap_kb != 0 ||
	    m->locked_kb != 0 || p->n >= FOOTPRINT_MAX_MAPPINGS)
		return;
	p->maps[p->n++] = *m;
}

/* The loader's counts of loads and unloads, from its first object. */
static int
count_objects(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct drop_pass *p = arg;

	if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		return 1;
	p->adds = info->dlpi_adds;
	p->subs = info->dlpi_subs;
	p->counted = true;
	return 1;
}

/* For each object, under the loader's lock: drops the candidates its code segments hold. */
static int
drop_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct drop_pass *p = arg;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	if (info->dlpi_adds != p->adds || info->dlpi_subs != p->subs) {
		p->changed = true;
		return 1;
	}
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo, hi;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || (ph->p_flags & PF_W))
			continue;
		lo = (uintptr_t)(info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
		hi = ((uintptr_t)(info->dlpi_addr + ph->p_vaddr + ph->p_memsz) + page - 1) &
		     ~(page - 1);
		for (size_t i = 0; i < p->n; i++) {
			struct text_map *m = &p->maps[i];

			if (m->dropped || m->start < lo || m->end > hi)
				continue;
			if (madvise((void *)m->start, m->end - m->start, MADV_DONTNEED) < 0)
				continue;
			m->dropped = true;
			p->stats->mappings++;
			p->stats->dropped_kb += m->rss_kb;
		}
	}
	return 0;
}

/* Reads /proc/self/smaps: the r-xp file mappings with resident pages and none private or
 * locked. Returns 0 or -errno. */
static int
read_candidates(struct drop_pass *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	struct text_map cur = { 0 };
	char line[4096];
	bool in_map = false;
	int rc = 0;

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct text_map m;
		long long kb;

		if (strchr(line, '\n') == NULL && !feof(f)) {
			/* A path longer than the buffer: skip the rest of the line. */
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (parse_head(line, &m)) {
			if (in_map)
				keep_candidate(p, &cur);
			cur = m;
			in_map = true;
		} else if (in_map && sscanf(line, "Rss: %lld kB", &kb) == 1) {
			cur.rss_kb = kb;
		} else if (in_map && sscanf(line, "Anonymous: %lld kB", &kb) == 1) {
			cur.anon_kb = kb;
		} else if (in_map && sscanf(line, "Swap: %lld kB", &kb) == 1) {
			cur.swap_kb = kb;
		} else if (in_map && sscanf(line, "Locked: %lld kB", &kb) == 1) {
			cur.locked_kb = kb;
		}
	}
	if (in_map)
		keep_candidate(p, &cur);
	if (ferror(f))
		rc = -EIO;
	fclose(f);
	return rc;
}

int
broker_footprint_drop_text(struct broker_footprint_stats *ret)
{
	struct drop_pass p = { .stats = ret };
	int rc;

	memset(ret, 0, sizeof(*ret));
	p.maps = calloc(FOOTPRINT_MAX_MAPPINGS, sizeof(*p.maps));
	if (p.maps == NULL)
		return -ENOMEM;
	dl_iterate_phdr(count_objects, &p);
	if (!p.counted) {
		free(p.maps);
		return -ENOTSUP;
	}
	rc = read_candidates(&p);
	if (rc == 0 && p.n > 0) {
		dl_iterate_phdr(drop_object, &p);
		if (p.changed && ret->mappings == 0)
			rc = -EAGAIN;
	}
	free(p.maps);
	return rc;
}
