/* backoff.h — capped exponential backoff with full jitter.
 *
 * The n-th retry waits a uniformly random time in [0, min(cap, base * 2^n)] (the "full
 * jitter" of the AWS architecture blog), so that many clients that failed together do not
 * retry together.
 */
#ifndef LK_BACKOFF_H
#define LK_BACKOFF_H

#include <stdint.h>

struct lk_backoff {
	int64_t base_ms;
	int64_t cap_ms;
	unsigned attempt;   /* retries so far */
	uint64_t rng;       /* xorshift state, seeded from getrandom() */
};

/* Prepares a backoff; base_ms > 0, cap_ms >= base_ms. */
void lk_backoff_init(struct lk_backoff *b, int64_t base_ms, int64_t cap_ms);

/* Returns how long to wait before the next retry and counts the attempt. */
int64_t lk_backoff_next(struct lk_backoff *b);

/* After a success: the next failure starts again from base. */
void lk_backoff_reset(struct lk_backoff *b);

/* A random integer in [0, n], from the same generator. */
uint64_t lk_backoff_random(struct lk_backoff *b, uint64_t n);

#endif
