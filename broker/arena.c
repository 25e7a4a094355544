/* arena.c — small secret blocks carved from guarded, locked regions.
 *
 * sodium_malloc spends whole pages (plus guard pages) on each allocation, so one per
 * snapshot would cost ~10 KiB of RSS and locked memory per secret. Instead, blocks come in
 * power-of-two size classes, each class carved from BROKER_REGION_SIZE regions that are
 * themselves sodium_malloc'd: the regions keep guard pages, mlock and MADV_DONTDUMP, and a
 * thousand small secrets fit in a few of them. Blocks larger than the biggest class get
 * their own sodium_malloc. Released blocks are zeroed and kept on a per-class free list;
 * regions are zeroed and returned to the system when the arena is freed.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "broker/internal.h"
#include "crypto/secret.h"

/* Bytes per region carved into blocks of one class (less under a small memory lock
 * limit, down to the largest class). */
#define BROKER_REGION_SIZE (64u << 10)
#define BROKER_REGION_SIZE_MIN (16u << 10)
/* Smallest block (header included). */
#define BROKER_CLASS_MIN_SHIFT 6
/* Largest carved block: 16 KiB; anything bigger gets its own allocation. */
#define BROKER_CLASS_MAX_SHIFT 14
#define BROKER_CLASSES (BROKER_CLASS_MAX_SHIFT - BROKER_CLASS_MIN_SHIFT + 1)
/* Marks a block header, to catch a release of something the arena never gave. */
#define BROKER_BLOCK_MAGIC 0x6c6b6172656e6131ULL
#define BROKER_CLASS_LARGE 0xffu
#define BROKER_CLASS_LARGE_UNLOCKED 0xfeu

/* 16 bytes, so blocks stay 16-byte aligned. */
struct block_header {
	uint64_t magic;
	uint32_t cls;
	uint32_t large_len;         /* payload bytes of a large block */
};

struct free_block {
	struct free_block *next;
};

struct region {
	struct region *next;
	void *mem;                  /* sodium_malloc'd */
};

struct broker_arena {
	pthread_mutex_t lock;
	struct free_block *free[BROKER_CLASSES];
	struct region *regions;
	size_t bytes;
	size_t region_size;
	bool require;
	size_t locked, unlocked;
	unsigned long long refused;
};

/* CAP_IPC_LOCK in the effective set (capability 14: /proc/self/status CapEff bit 14). */
static bool
can_lock_unlimited(void)
{
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found && (eff & (1ULL << 14)) != 0;
}

void
broker_memlock_probe(struct broker_memlock *ret)
{
	struct rlimit rl;

	memset(ret, 0, sizeof(*ret));
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    can_lock_unlimited())
		return;
	ret->limited = true;
	ret->limit = rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur;
}

size_t
broker_arena_region_size(const struct broker_memlock *ml)
{
	size_t size = BROKER_REGION_SIZE;

	/* A quarter of the limit at most: the token and other guarded allocations lock
	 * pages too, and a region is locked whole or not at all. */
	while (ml != NULL && ml->limited && size > BROKER_REGION_SIZE_MIN && size > ml->limit / 4)
		size /= 2;
	return size;
}

bool
broker_memlock_can_lock(const struct broker_memlock *ml)
{
	size_t size = broker_arena_region_size(ml);
	void *p = sodium_malloc(size);
	bool ok;

	if (p == NULL)
		return false;
	ok = (int)syscall(SYS_mlock, p, size) == 0;
	sodium_free(p);
	return ok;
}

struct broker_arena *
broker_arena_new_with(const struct broker_memlock *ml)
{
	struct broker_arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		return NULL;
	}
	a->region_size = broker_arena_region_size(ml);
	a->require = ml != NULL && ml->require;
	return a;
}

struct broker_arena *
broker_arena_new(void)
{
	return broker_arena_new_with(NULL);
}

enum lock_outcome { LOCKED, UNLOCKED, REFUSED };

/* mlock(2) itself: AddressSanitizer replaces the libc function with one that does nothing
 * and succeeds, which would make every region look locked. */
static int
mlock_call(const void *p, size_t n)
{
	return (int)syscall(SYS_mlock, p, n);
}

/* sodium_malloc locks what it allocates but says nothing when mlock fails (the limit is
 * reached): lock again, which succeeds at once on pages already locked, to know. With
 * require set, memory that stays unlocked is to be given back and the allocation refused.
 * a->lock held. */
static enum lock_outcome
account_lock(struct broker_arena *a, void *p, size_t n)
{
	if (mlock_call(p, n) == 0) {
		a->locked += n;
		return LOCKED;
	}
	if (a->require) {
		a->refused++;
		return REFUSED;
	}
	a->unlocked += n;
	return UNLOCKED;
}

void
broker_arena_stats(struct broker_arena *a, struct broker_arena_stats *ret)
{
	pthread_mutex_lock(&a->lock);
	ret->region_size = a->region_size;
	ret->locked = a->locked;
	ret->unlocked = a->unlocked;
	ret->refused = a->refused;
	pthread_mutex_unlock(&a->lock);
}

void
broker_arena_free(struct broker_arena *a)
{
	struct region *r, *next;

	if (a == NULL)
		return;
	for (r = a->regions; r != NULL; r = next) {
		next = r->next;
		sodium_free(r->mem);
		free(r);
	}
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static int
grow(struct broker_arena *a, unsigned cls)
{
	size_t bsize = (size_t)1 << (cls + BROKER_CLASS_MIN_SHIFT);
	struct region *r;
	char *p;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->mem = sodium_malloc(a->region_size);
	if (r->mem == NULL) {
		free(r);
		return -ENOMEM;
	}
	if (account_lock(a, r->mem, a->region_size) == REFUSED) {
		sodium_free(r->mem);
		free(r);
		return -ENOLCK;
	}
	/* sodium_malloc fills with garbage bytes; blocks are handed out zeroed. */
	sodium_memzero(r->mem, a->region_size);
	r->next = a->regions;
	a->regions = r;
	a->bytes += a->region_size;
	/* Pushed in reverse so the first block of the region is handed out first. */
	for (size_t off = a->region_size; off >= bsize; off -= bsize) {
		struct free_block *fb;

		p = (char *)r->mem + off - bsize;
		fb = (struct free_block *)p;
		fb->next = a->free[cls];
		a->free[cls] = fb;
	}
	return 0;
}

void *
broker_arena_alloc(struct broker_arena *a, size_t n)
{
	struct block_header *h = NULL;
	size_t need;
	unsigned cls;
	int rc;

	if (n == 0 || n > BROKER_SNAPSHOT_BLOCK_MAX) {
		errno = EINVAL;
		return NULL;
	}
	need = n + sizeof(struct block_header);
	if (need > ((size_t)1 << BROKER_CLASS_MAX_SHIFT)) {
		enum lock_outcome lo;

		/* sodium_malloc puts the block's end against a guard page: a size that is a
		 * multiple of 16 keeps the header and the payload aligned. */
		need = (need + 15) & ~(size_t)15;
		h = sodium_malloc(need);
		if (h == NULL) {
			errno = ENOMEM;
			return NULL;
		}
		pthread_mutex_lock(&a->lock);
		lo = account_lock(a, h, need);
		pthread_mutex_unlock(&a->lock);
		if (lo == REFUSED) {
			sodium_free(h);
			errno = ENOLCK;
			return NULL;
		}
		sodium_memzero(h, need);
		h->magic = BROKER_BLOCK_MAGIC;
		h->cls = lo == LOCKED ? BROKER_CLASS_LARGE : BROKER_CLASS_LARGE_UNLOCKED;
		h->large_len = (uint32_t)n;
		return h + 1;
	}
	for (cls = 0; ((size_t)1 << (cls + BROKER_CLASS_MIN_SHIFT)) < need; cls++)
		;
	pthread_mutex_lock(&a->lock);
	if (a->free[cls] == NULL && (rc = grow(a, cls)) < 0) {
		pthread_mutex_unlock(&a->lock);
		errno = -rc;
		return NULL;
	}
	h = (struct block_header *)a->free[cls];
	a->free[cls] = a->free[cls]->next;
	pthread_mutex_unlock(&a->lock);
	memset(h, 0, sizeof(*h));
	h->magic = BROKER_BLOCK_MAGIC;
	h->cls = cls;
	return h + 1;
}

void
broker_arena_release(struct broker_arena *a, void *p)
{
	struct block_header *h;
	struct free_block *fb;
	unsigned cls;
	size_t bsize;

	if (p == NULL)
		return;
	h = (struct block_header *)p - 1;
	if (h->magic != BROKER_BLOCK_MAGIC)
		abort();
	if (h->cls == BROKER_CLASS_LARGE || h->cls == BROKER_CLASS_LARGE_UNLOCKED) {
		size_t need = (h->large_len + sizeof(*h) + 15) & ~(size_t)15;

		pthread_mutex_lock(&a->lock);
		if (h->cls == BROKER_CLASS_LARGE)
			a->locked -= need;
		else
			a->unlocked -= need;
		pthread_mutex_unlock(&a->lock);
		sodium_free(h);
		return;
	}
	if (h->cls >= BROKER_CLASSES)
		abort();
	cls = h->cls;
	bsize = (size_t)1 << (cls + BROKER_CLASS_MIN_SHIFT);
	sodium_memzero(h, bsize);
	fb = (struct free_block *)h;
	pthread_mutex_lock(&a->lock);
	fb->next = a->free[cls];
	a->free[cls] = fb;
	pthread_mutex_unlock(&a->lock);
}

size_t
broker_arena_bytes(struct broker_arena *a)
{
	size_t n;

	pthread_mutex_lock(&a->lock);
	n = a->bytes;
	pthread_mutex_unlock(&a->lock);
	return n;
}
