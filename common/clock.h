/* clock.h — time sources, RFC 3339 timestamps and durations.
 */
#ifndef LK_CLOCK_H
#define LK_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and intervals. */
int64_t lk_now_mono_ms(void);

/* Nanoseconds on CLOCK_MONOTONIC: for spans shorter than a millisecond. */
int64_t lk_now_mono_ns(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for timestamps shown to people. */
int64_t lk_now_real_ms(void);

/* The absolute time ms milliseconds from now on clock (CLOCK_MONOTONIC or CLOCK_REALTIME),
 * for pthread_cond_timedwait on a condition variable of that clock; ms <= 0 is now. */
struct timespec lk_timespec_in_ms(clockid_t clock, int64_t ms);

/* Sleeps ms milliseconds (again after a signal interrupts it); ms <= 0 returns at once. */
void lk_sleep_ms(int64_t ms);

/* Initialises a condition variable whose timed waits use CLOCK_MONOTONIC (so that a
 * change of the wall clock neither shortens nor stretches them). Returns 0 or an errno. */
int lk_cond_init_monotonic(pthread_cond_t *cond);

/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds, "2026-11-26T07:00:00.123Z".
 * out must hold at least LK_RFC3339_LEN bytes. Returns out. */
#define LK_RFC3339_LEN 32
char *lk_rfc3339_ms(int64_t epoch_ms, char *out);

/* Formats epoch seconds plus nanoseconds as RFC 3339 UTC with nanoseconds, as Vault does
 * ("2026-11-26T07:00:00.123456789Z"). out must hold LK_RFC3339_LEN bytes. */
char *lk_rfc3339_ns(const struct timespec *ts, char *out);

/* Parses an RFC 3339 timestamp ("Z" or "+hh:mm" offset, optional fraction of any length)
 * into epoch milliseconds. Returns 0 or -EINVAL. */
int lk_rfc3339_parse(const char *s, int64_t *ret_epoch_ms);

/* Parses a duration: a plain non-negative integer (seconds), or Go-style units
 * "1h30m", "45s", "500ms", "2h", "1d" is not accepted (Go has no days). Returns 0 with
 * *ret_ms set, or -EINVAL (bad syntax) / -ERANGE (overflow). */
int lk_duration_parse(const char *s, int64_t *ret_ms);

/* Formats a duration in Go's style, as Vault prints them: "1h2m3s", "45s", "0s".
 * Sub-second parts are dropped. out must hold 32 bytes. Returns out. */
char *lk_duration_format(int64_t ms, char *out, size_t outlen);

#endif
