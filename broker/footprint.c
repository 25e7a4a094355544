/* footprint.c — hands back the resident pages of code the broker ran only to start.
 *
 * A broker's resident set is mostly shared-library code: libcurl links OpenSSL, GnuTLS,
 * Kerberos, LDAP and more, and their constructors, the TLS set-up of the first login and
 * the first reads fault in megabytes of text (and the kernel maps up to 16 pages around
 * each fault). Once everything is loaded, little of it runs again: serving a read runs
 * libc, libsodium and the broker's own code. broker_footprint_drop_text() walks
 * /proc/self/smaps and drops the page-table entries of every file-backed executable
 * mapping (MADV_DONTNEED): the code that runs again faults back in from the page cache
 * (a minor fault, no disk read while the file stays cached), the rest stops counting
 * against the process and can be reclaimed like any unmapped file page.
 *
 * Only mappings that are executable, not writable, backed by a file and hold no private
 * (copy-on-write) page are dropped: for those the file is the page's only contents, so
 * dropping them loses nothing. Writable data, relocated read-only data (RELRO, which has
 * private pages), the heap, stacks, the locked secret arena and the vDSO are never
 * touched. */
#include <errno.h>
#include <inttypes.h>
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
	long long rss_kb, anon_kb, locked_kb;
	bool candidate;             /* r-x, private, file-backed */
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

int
broker_footprint_drop_text(struct broker_footprint_stats *ret)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	struct text_map *maps, cur = { 0 };
	size_t n = 0, i;
	char line[4096];
	bool in_map = false;
	int rc = 0;

	memset(ret, 0, sizeof(*ret));
	if (f == NULL)
		return -errno;
	maps = calloc(FOOTPRINT_MAX_MAPPINGS, sizeof(*maps));
	if (maps == NULL) {
		fclose(f);
		return -ENOMEM;
	}
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
			if (in_map && cur.candidate && n < FOOTPRINT_MAX_MAPPINGS)
				maps[n++] = cur;
			cur = m;
			in_map = true;
		} else if (in_map && sscanf(line, "Rss: %lld kB", &kb) == 1) {
			cur.rss_kb = kb;
		} else if (in_map && sscanf(line, "Anonymous: %lld kB", &kb) == 1) {
			cur.anon_kb = kb;
		} else if (in_map && sscanf(line, "Locked: %lld kB", &kb) == 1) {
			cur.locked_kb = kb;
		}
	}
	if (in_map && cur.candidate && n < FOOTPRINT_MAX_MAPPINGS)
		maps[n++] = cur;
	if (ferror(f))
		rc = -EIO;
	fclose(f);
	for (i = 0; rc == 0 && i < n; i++) {
		struct text_map *m = &maps[i];

		/* A private page is the only copy of what it holds; a locked one was locked on
		 * purpose. */
		if (m->rss_kb == 0 || m->anon_kb != 0 || m->locked_kb != 0)
			continue;
		if (madvise((void *)m->start, m->end - m->start, MADV_DONTNEED) < 0)
			continue;
		ret->mappings++;
		ret->dropped_kb += m->rss_kb;
	}
	free(maps);
	return rc;
}
