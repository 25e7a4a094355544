#include "common/backoff.h"

#include <sys/random.h>
#include <time.h>

static uint64_t
next_u64(struct lk_backoff *b)
{
	/* xorshift64*: plenty for jitter, and no lock shared with anyone. */
	uint64_t x = b->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	b->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

void
lk_backoff_init(struct lk_backoff *b, int64_t base_ms, int64_t cap_ms)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
	b->attempt = 0;
	if (getrandom(&b->rng, sizeof(b->rng), GRND_NONBLOCK) != (ssize_t)sizeof(b->rng)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		b->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)b;
	}
	if (b->rng == 0)
		b->rng = 0x9E3779B97F4A7C15ULL;
}

uint64_t
lk_backoff_random(struct lk_backoff *b, uint64_t n)
{
	if (n == UINT64_MAX)
		return next_u64(b);
	return next_u64(b) % (n + 1);
}

int64_t
lk_backoff_next(struct lk_backoff *b)
{
	int64_t ceiling = b->base_ms;

	/* base * 2^attempt, stopping at the cap before it can overflow. */
	for (unsigned i = 0; i < b->attempt && ceiling < b->cap_ms; i++)
		ceiling *= 2;
	if (ceiling > b->cap_ms)
		ceiling = b->cap_ms;
	if (b->attempt < 64)
		b->attempt++;
	return (int64_t)lk_backoff_random(b, (uint64_t)ceiling);
}

void
lk_backoff_reset(struct lk_backoff *b)
{
	b->attempt = 0;
}
