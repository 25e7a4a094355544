/* queue.c — the controller's work queue, with client-go's semantics: a key waits at most
 * once; a key being processed that is added again is handed out again once it is done,
 * never to two workers at a time; delayed adds (refreshes, backoff) wait in a heap
 * ordered by due time; each key's failures double its backoff until forgotten.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "common/clock.h"

/* Buckets of the key table (power of two; chains grow past it). */
#define QUEUE_BUCKETS 4096
/* Most doublings of a key's backoff counted. */
#define QUEUE_FAILURES_MAX 20

struct item {
	struct item *hnext;         /* hash chain */
	struct item *qnext;         /* FIFO of waiting keys */
	char *key;
	bool waiting;               /* in the FIFO */
	bool processing;
	bool dirty;                 /* added while processing: back in the FIFO when done */
	unsigned failures;
	int64_t due_ms;             /* a delayed add is pending when heap_index >= 0 */
	ssize_t heap_index;
};

struct sync_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* CLOCK_MONOTONIC */
	struct item *table[QUEUE_BUCKETS];
	struct item *head, *tail;
	size_t len;
	struct item **heap;         /* min-heap by due_ms */
	size_t nheap, capheap;
	bool shutdown;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct sync_queue *
sync_queue_new(void)
{
	struct sync_queue *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	if (lk_cond_init_monotonic(&q->cond) != 0) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		return NULL;
	}
	return q;
}

void
sync_queue_free(struct sync_queue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < QUEUE_BUCKETS; i++) {
		struct item *it = q->table[i], *next;

		for (; it != NULL; it = next) {
			next = it->hnext;
			free(it->key);
			free(it);
		}
	}
	free(q->heap);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* The item of key, made when missing (NULL only when out of memory). */
static struct item *
item_of(struct sync_queue *q, const char *key)
{
	struct item **p = &q->table[hash_str(key) & (QUEUE_BUCKETS - 1)], *it;

	for (it = *p; it != NULL; it = it->hnext)
		if (strcmp(it->key, key) == 0)
			return it;
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	if ((it->key = strdup(key)) == NULL) {
		free(it);
		return NULL;
	}
	it->heap_index = -1;
	it->hnext = *p;
	*p = it;
	return it;
}

static void
push_fifo(struct sync_queue *q, struct item *it)
{
	it->waiting = true;
	it->qnext = NULL;
	if (q->tail != NULL)
		q->tail->qnext = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
	pthread_cond_signal(&q->cond);
}

/* Adds now; q->lock held. */
static void
add_locked(struct sync_queue *q, struct item *it)
{
	if (q->shutdown || it->waiting)
		return;
	if (it->processing) {
		it->dirty = true;
		return;
	}
	push_fifo(q, it);
}

void
sync_queue_add(struct sync_queue *q, const char *key)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	if ((it = item_of(q, key)) != NULL)
		add_locked(q, it);
	pthread_mutex_unlock(&q->lock);
}

/* ---- the heap of delayed adds ------------------------------------------------------- */

static void
heap_swap(struct sync_queue *q, size_t a, size_t b)
{
	struct item *t = q->heap[a];

	q->heap[a] = q->heap[b];
	q->heap[b] = t;
	q->heap[a]->heap_index = (ssize_t)a;
	q->heap[b]->heap_index = (ssize_t)b;
}

static void
heap_up(struct sync_queue *q, size_t i)
{
	while (i > 0 && q->heap[(i - 1) / 2]->due_ms > q->heap[i]->due_ms) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct sync_queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < q->nheap && q->heap[l]->due_ms < q->heap[m]->due_ms)
			m = l;
		if (r < q->nheap && q->heap[r]->due_ms < q->heap[m]->due_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(q, i, m);
		i = m;
	}
}

static void
heap_remove(struct sync_queue *q, struct item *it)
{
	size_t i = (size_t)it->heap_index, last = q->nheap - 1;

	if (i != last)
		heap_swap(q, i, last);
	q->nheap--;
	it->heap_index = -1;
	if (i < q->nheap) {
		heap_up(q, i);
		heap_down(q, i);
	}
}

/* Moves the keys that are due into the FIFO; returns the next due time (0: none). */
static int64_t
heap_release(struct sync_queue *q, int64_t now)
{
	while (q->nheap > 0 && q->heap[0]->due_ms <= now) {
		struct item *it = q->heap[0];

		heap_remove(q, it);
		add_locked(q, it);
	}
	return q->nheap > 0 ? q->heap[0]->due_ms : 0;
}

static void
add_after_locked(struct sync_queue *q, struct item *it, int64_t delay_ms)
{
	int64_t due = lk_now_mono_ms() + (delay_ms > 0 ? delay_ms : 0);

	if (q->shutdown)
		return;
	if (delay_ms <= 0) {
		add_locked(q, it);
		return;
	}
	if (it->heap_index >= 0) {
		/* The earlier of the two wins. */
		if (due < it->due_ms) {
			it->due_ms = due;
			heap_up(q, (size_t)it->heap_index);
		}
		return;
	}
	if (q->nheap == q->capheap) {
		size_t cap = q->capheap ? q->capheap * 2 : 1024;
		struct item **h = realloc(q->heap, cap * sizeof(*h));

		if (h == NULL) {
			/* No room to wait: do it now rather than never. */
			add_locked(q, it);
			return;
		}
		q->heap = h;
		q->capheap = cap;
	}
	it->due_ms = due;
	it->heap_index = (ssize_t)q->nheap;
	q->heap[q->nheap++] = it;
	heap_up(q, (size_t)it->heap_index);
	pthread_cond_broadcast(&q->cond);
}

void
sync_queue_add_after(struct sync_queue *q, const char *key, int64_t delay_ms)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	if ((it = item_of(q, key)) != NULL)
		add_after_locked(q, it, delay_ms);
	pthread_mutex_unlock(&q->lock);
}

void
sync_queue_add_backoff(struct sync_queue *q, const char *key)
{
	struct item *it;
	int64_t delay;

	pthread_mutex_lock(&q->lock);
	if ((it = item_of(q, key)) != NULL) {
		delay = SYNC_BACKOFF_BASE_MS << (it->failures < QUEUE_FAILURES_MAX ? it->failures :
						 QUEUE_FAILURES_MAX);
		if (delay > SYNC_BACKOFF_CAP_MS || delay <= 0)
			delay = SYNC_BACKOFF_CAP_MS;
		if (it->failures < QUEUE_FAILURES_MAX)
			it->failures++;
		add_after_locked(q, it, delay);
	}
	pthread_mutex_unlock(&q->lock);
}

void
sync_queue_forget(struct sync_queue *q, const char *key)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	if ((it = item_of(q, key)) != NULL)
		it->failures = 0;
	pthread_mutex_unlock(&q->lock);
}

bool
sync_queue_get(struct sync_queue *q, char *out, size_t outlen)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		int64_t next;

		if (q->shutdown) {
			pthread_mutex_unlock(&q->lock);
			return false;
		}
		next = heap_release(q, lk_now_mono_ms());
		if (q->head != NULL)
			break;
		if (next == 0) {
			pthread_cond_wait(&q->cond, &q->lock);
		} else {
			struct timespec ts = lk_timespec_in_ms(CLOCK_MONOTONIC, next - lk_now_mono_ms());

			pthread_cond_timedwait(&q->cond, &q->lock, &ts);
		}
	}
	it = q->head;
	q->head = it->qnext;
	if (q->head == NULL)
		q->tail = NULL;
	q->len--;
	it->waiting = false;
	it->processing = true;
	it->dirty = false;
	snprintf(out, outlen, "%s", it->key);
	pthread_mutex_unlock(&q->lock);
	return true;
}

void
sync_queue_done(struct sync_queue *q, const char *key)
{
	struct item *it;

	pthread_mutex_lock(&q->lock);
	if ((it = item_of(q, key)) != NULL) {
		it->processing = false;
		if (it->dirty) {
			it->dirty = false;
			add_locked(q, it);
		}
	}
	pthread_mutex_unlock(&q->lock);
}

void
sync_queue_shutdown(struct sync_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->shutdown = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

size_t
sync_queue_len(struct sync_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}
