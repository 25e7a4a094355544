/* testutil.h — helpers for tests that run real processes.
 *
 * Processes started here die with the test process (PR_SET_PDEATHSIG), so a failing
 * test in a forked Check child leaves nothing behind; tests still stop them explicitly.
 * Waits poll a condition against a generous deadline instead of sleeping a fixed time.
 */
#ifndef LK_TESTUTIL_H
#define LK_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A generous deadline for things that take milliseconds on an idle machine. */
#define T_DEADLINE_MS 20000

struct t_proc {
	pid_t pid;
	char log_path[512];   /* stdout and stderr of the process */
};

/* The latchkey binary under test: $LATCHKEY_BIN, else build/latchkey. */
const char *t_latchkey_bin(void);

/* A fresh temporary directory (mode 0700), removed with everything in it by t_rmrf.
 * Returns a static-lifetime malloc'd path. */
char *t_tmpdir(void);
void t_rmrf(const char *path);

/* "dir/name" in one of T_PATH_SLOTS rotating static buffers: valid until that many more
 * calls, enough for the arguments of one command. Paths longer than 1 KiB are cut. */
#define T_PATH_SLOTS 64
const char *t_path(const char *dir, const char *name);

/* Starts argv[0] with argv, with stdout+stderr to log_path. env_extra: NULL-terminated
 * "KEY=VALUE" strings added to the environment (may be NULL). Returns 0 or -errno. */
int t_spawn(struct t_proc *p, const char *const argv[], const char *const env_extra[],
	    const char *log_path);

/* Runs argv (argv[0] a program path) to completion: stdin from in_path, stdout to
 * out_path, stderr to err_path (each NULL: /dev/null), env_extra as for t_spawn. The child
 * dies with the test. Returns the exit status, or -1 when it did not exit normally. */
int t_run(const char *const argv[], const char *const env_extra[], const char *in_path,
	  const char *out_path, const char *err_path);

/* Sends sig, waits up to timeout_ms, then SIGKILL. Returns the wait status, or -1 when
 * the process was not running. Safe to call twice. */
int t_stop(struct t_proc *p, int sig, int timeout_ms);

/* True while the process has not exited (reaps it when it has). */
bool t_alive(struct t_proc *p);

/* Waits until the process log contains needle; returns true if it did in time.
 * If ret_line is not NULL, copies the first matching line (NUL-terminated) there. */
bool t_wait_log(struct t_proc *p, const char *needle, int timeout_ms, char *ret_line, size_t linelen);

/* Polls cond(arg) every few milliseconds until it is true or timeout_ms passes. */
bool t_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Records that a test could not run its check here and why ("kubectl not found"): one
 * line "SKIP: <why>" on stderr, which tests/run.sh counts and repeats in its summary. The
 * caller then returns from the test; a skip is never a silent pass. */
void t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when an executable named prog is found on PATH (or prog is an executable path). */
bool t_have_program(const char *prog);

/* Reads a whole file into a malloc'd NUL-terminated string (NULL on error: one that cannot
 * be opened or read, a directory too). */
char *t_read_file(const char *path);
/* The same, binary: NUL bytes kept, *ret_len bytes (a NUL follows them). */
char *t_read_bytes(const char *path, size_t *ret_len);
int t_write_file(const char *path, const char *text, mode_t mode);

/* One HTTP request with libcurl, independent of latchkey's own client code.
 * url: "http://127.0.0.1:PORT/v1/..."; unix_socket: NULL or a socket path; token: sent as
 * X-Vault-Token when not NULL; body: NULL for none. Returns the status (0 when the
 * request failed at the transport) and sets *ret_body (malloc'd; may be NULL). */
long t_http(const char *method, const char *url, const char *unix_socket, const char *token,
	    const char *body, char **ret_body);

/* `latchkey dev` on a free port. */
struct t_dev {
	struct t_proc proc;
	int port;
	char addr[64];      /* "http://127.0.0.1:PORT" */
	char token[128];    /* the root token */
	char *dir;          /* temporary directory holding the log */
};

/* Starts `latchkey dev --listen 127.0.0.1:0 --root-token TOKEN` plus extra_args
 * (NULL-terminated, may be NULL) and waits until it says where it listens. TOKEN is a
 * long random one ("hvs.test-" and 32 hex digits) unless extra_args names one with
 * "--root-token" "T". */
int t_dev_start(struct t_dev *d, const char *const extra_args[]);
void t_dev_stop(struct t_dev *d);

#endif
