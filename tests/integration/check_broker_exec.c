/* check_broker_exec.c — exec mode against `latchkey dev`: `latchkey broker --config F --
 * CHILD ...` with a real child (a shell script) that writes, for each run, its pid, the
 * SHA-256 of each argument and of each environment variable's value, and appends the
 * signals it receives to a file. The test also reads the environment the child was
 * started with from /proc/PID/environ, and compares hashes or looks for a value's
 * presence: no value is ever printed. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brokerutil.h"
#include "common/clock.h"

/* The child: DIR MODE [ARG...]. MODE "wait" runs until signalled; "exit3" exits 3 once
 * DIR/go.PID exists; "stubborn" records a TERM and goes on (and exits 3 once DIR/go.PID
 * exists). Each run writes DIR/run.PID (atomically) and appends "start PID" to
 * DIR/runs; a HUP appends "HUP PID" to DIR/signals, a TERM "TERM PID" and exits 7, an
 * INT "INT PID" and exits 8.
 * Hashes are of printenv's output (the value and a newline) and of printf '%s\n' ARG. */
static const char child_script[] =
	"#!/bin/sh\n"
	"dir=$1; mode=$2; shift 2\n"
	"h() { sha256sum | cut -c1-64; }\n"
	"sp=\n"
	"trap 'echo \"HUP $$\" >> \"$dir/signals\"' HUP\n"
	"trap 'echo \"TERM $$\" >> \"$dir/signals\"; if [ \"$mode\" != stubborn ]; then"
	" [ -n \"$sp\" ] && kill $sp 2>/dev/null; exit 7; fi' TERM\n"
	"trap 'echo \"INT $$\" >> \"$dir/signals\"; [ -n \"$sp\" ] && kill $sp 2>/dev/null;"
	" exit 8' INT\n"
	"{\n"
	"  echo \"pid $$\"\n"
	"  for a in \"$@\"; do echo \"arg $(printf '%s\\n' \"$a\" | h)\"; done\n"
	"  for n in $(awk 'BEGIN { for (k in ENVIRON) print k }'); do\n"
	"    echo \"env $n $(printenv \"$n\" | h)\"\n"
	"  done\n"
	"} > \"$dir/run.$$.tmp\"\n"
	"mv \"$dir/run.$$.tmp\" \"$dir/run.$$\"\n"
	"echo \"start $$\" >> \"$dir/runs\"\n"
	"echo \"exec-child: hello from the child\"\n"
	"while :; do\n"
	"  if [ \"$mode\" != wait ] && [ -e \"$dir/go.$$\" ]; then exit 3; fi\n"
	"  sleep 0.1 & sp=$!; wait $sp; sp=\n"
	"done\n";

#define OTHER_VALUE "other-value-9c3e51"
#define PASSWORD1 "bf-password-4a1f0c"
#define PASSWORD2 "rotated-password-77d2b8"

struct xf {
	struct bf f;
	char child[700];
};

/* sha256 of n bytes in hex into out[65]. */
static void
hash_bytes(const void *data, size_t n, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, n);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

/* sha256(text) in hex into out[65]. */
static void
hash_hex(const char *text, char out[65])
{
	hash_bytes(text, strlen(text), out);
}

/* The hash of a value as the child writes it (printenv adds a newline). */
static void
value_hash(const char *value, char out[65])
{
	char *t;

	ck_assert(asprintf(&t, "%s\n", value) > 0);
	hash_hex(t, out);
	free(t);
}

static void
xf_setup(struct xf *x, const char *secrets, const char *exec)
{
	char extra[2048];

	ck_assert(sodium_init() >= 0);
	bf_dev(&x->f, "1h", "2h");
	ck_assert_int_eq(bf_dev_call(&x->f, "POST", "/v1/secret/data/app/other",
				     "{\"data\":{\"value\":\"" OTHER_VALUE "\"}}", NULL), 200);
	snprintf(x->child, sizeof(x->child), "%s/child.sh", x->f.dir);
	ck_assert_int_eq(t_write_file(x->child, child_script, 0755), 0);
	snprintf(extra, sizeof(extra), "\"exec\": %s", exec);
	bf_config(&x->f, secrets, extra);
}

/* The broker with "-- CMD..." (cmd: at most 8 words, NULL-terminated), VAULT_TOKEN and a
 * LATCHKEY_ variable in its environment (the child must see neither). */
static void
xf_start_command(struct xf *x, const char *const cmd[])
{
	char token_env[256];
	const char *argv[16] = { t_latchkey_bin(), "broker", "--config", x->f.cfg, "--" };
	const char *env[] = { token_env, "LATCHKEY_SOCKET=/nonexistent", NULL };
	size_t n = 5;

	for (size_t i = 0; cmd[i] != NULL; i++) {
		ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = cmd[i];
	}
	argv[n] = NULL;
	snprintf(token_env, sizeof(token_env), "VAULT_TOKEN=%s", x->f.dev.token);
	ck_assert_int_eq(t_spawn(&x->f.broker, argv, env, x->f.log), 0);
	ck_assert(t_wait_log(&x->f.broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0));
}

/* The broker with "-- sh CHILD DIR MODE ARGS". */
static void
xf_start(struct xf *x, const char *mode)
{
	const char *cmd[] = { "/bin/sh", x->child, x->f.dir, mode, "first arg", "second", NULL };

	xf_start_command(x, cmd);
}

/* The environment process pid was started with, as the kernel keeps it
 * (/proc/PID/environ: NAME=value entries, each ended by a NUL byte); malloc'd, its length
 * in *ret_len; NULL (errno set) when it cannot be read. */
static char *
proc_environ(long pid, size_t *ret_len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
	return t_read_bytes(path, ret_len);
}

/* True when text occurs anywhere in the len bytes of block, across entries or not. */
static bool
block_holds(const char *block, size_t len, const char *text)
{
	return memmem(block, len, text, strlen(text)) != NULL;
}

/* The SHA-256 of the exact bytes of variable name's value in an environ block into
 * out[65]; false when the block has no such variable. */
static bool
environ_value_hash(const char *block, size_t len, const char *name, char out[65])
{
	size_t nl = strlen(name);

	for (const char *p = block, *end = block + len; p < end;) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t n = z != NULL ? (size_t)(z - p) : (size_t)(end - p);

		if (n > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
			hash_bytes(p + nl + 1, n - nl - 1, out);
			return true;
		}
		p += n + 1;
	}
	return false;
}

/* The parent pid of process pid (the launcher, for the command). */
static long
parent_pid(long pid)
{
	char path[64], *text, *p;
	long ppid = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	text = t_read_file(path);
	if (text != NULL && (p = strstr(text, "\nPPid:")) != NULL)
		ppid = strtol(p + 7, NULL, 10);
	free(text);
	return ppid;
}

static int
count_lines(const char *path, const char *prefix)
{
	char *text = t_read_file(path), *p;
	int n = 0;

	if (text == NULL)
		return 0;
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : p)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	free(text);
	return n;
}

struct runs_wait {
	struct xf *x;
	int n;
};

static bool
runs_at_least(void *arg)
{
	struct runs_wait *w = arg;

	return count_lines(t_path(w->x->f.dir, "runs"), "start ") >= w->n;
}

static bool
wait_runs(struct xf *x, int n)
{
	struct runs_wait w = { x, n };

	return t_wait_until(runs_at_least, &w, T_DEADLINE_MS);
}

/* The pid of run number i (1-based), from DIR/runs. */
static long
run_pid(struct xf *x, int i)
{
	char *text = t_read_file(t_path(x->f.dir, "runs")), *p = text;
	long pid = -1;

	for (int k = 1; p != NULL && *p != '\0'; k++) {
		if (k == i && sscanf(p, "start %ld", &pid) == 1)
			break;
		p = strchr(p, '\n');
		p = p != NULL ? p + 1 : NULL;
	}
	free(text);
	return pid;
}

/* The record of run pid: its text (malloc'd). */
static char *
run_record(struct xf *x, long pid)
{
	char name[64];

	snprintf(name, sizeof(name), "run.%ld", pid);
	return t_read_file(t_path(x->f.dir, name));
}

/* The hash the run recorded for variable name into out[65]; false when it had none. */
static bool
run_env_hash(const char *record, const char *name, char out[65])
{
	char needle[256];
	const char *p;

	snprintf(needle, sizeof(needle), "\nenv %s ", name);
	if ((p = strstr(record, needle)) == NULL)
		return false;
	p += strlen(needle);
	memcpy(out, p, 64);
	out[64] = '\0';
	return true;
}

/* DIR/go.PID: makes run pid exit 3. */
static const char *
go_path(struct xf *x, long pid)
{
	char name[64];

	snprintf(name, sizeof(name), "go.%ld", pid);
	return t_path(x->f.dir, name);
}

struct sig_wait {
	struct xf *x;
	char line[64];
};

static bool
signal_seen(void *arg)
{
	struct sig_wait *w = arg;

	return count_lines(t_path(w->x->f.dir, "signals"), w->line) > 0;
}

static bool
wait_signal(struct xf *x, const char *sig, long pid)
{
	struct sig_wait w;

	w.x = x;
	snprintf(w.line, sizeof(w.line), "%s %ld\n", sig, pid);
	w.line[strlen(w.line) - 1] = '\0';
	return t_wait_until(signal_seen, &w, T_DEADLINE_MS);
}

struct exit_wait {
	struct t_proc *p;
};

static bool
exited(void *arg)
{
	return !t_alive(arg);
}

/* Waits for the broker to exit by itself; its wait status, or -1 if it did not. */
static int
wait_broker_exit(struct xf *x)
{
	if (!t_wait_until(exited, &x->f.broker, T_DEADLINE_MS))
		return -1;
	return bf_stop_broker(&x->f, SIGKILL, 0);
}

static int
metric_value(struct xf *x, const char *name)
{
	char *body = NULL, needle[128];
	const char *p;
	int v = -1;

	if (bf_get(&x->f, "/metrics", &body) == 200) {
		snprintf(needle, sizeof(needle), "\n%s ", name);
		if ((p = strstr(body, needle)) != NULL)
			v = atoi(p + strlen(needle));
	}
	free(body);
	return v;
}

static void
rotate_password(struct xf *x, const char *password)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"data\":{\"user\":\"bf-user\",\"password\":\"%s\"}}",
		 password);
	ck_assert_int_eq(bf_dev_call(&x->f, "POST", "/v1/secret/data/app/api", body, NULL), 200);
}

#define SECRETS_API_OTHER \
	"{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"required\": true, " \
	"\"refresh\": \"1s\"}, {\"name\": \"other\", \"path\": \"secret/data/app/other\", " \
	"\"required\": true}"

/* The child starts only once a required secret that is missing at first is loaded; its
 * environment holds exactly the chosen values, and neither the backend token nor another
 * secret's value; its arguments arrive whole; its stdout is the broker's; the socket
 * serves while it runs. */
START_TEST(test_exec_env_and_start_order)
{
	struct xf x;
	char want[65], got[65], tok[65], other[65], late[65], arg[65];
	char *record, *log;
	long pid;

	xf_setup(&x, SECRETS_API_OTHER ", {\"name\": \"late\", \"path\": \"secret/data/app/late\", "
		 "\"required\": true}",
		 "{\"env\": {\"API_USER\": \"api.user\", \"API_PW\": \"api.password\", "
		 "\"LATE\": \"late.value\"}}");
	xf_start(&x, "wait");
	/* Not ready: "late" does not exist yet, so nothing may have started. */
	ck_assert_int_eq(bf_get(&x.f, "/v1/ready", NULL), 503);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"command started\""), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 0);
	ck_assert_int_eq(bf_dev_call(&x.f, "POST", "/v1/secret/data/app/late",
				     "{\"data\":{\"value\":\"late-value-1b2c\"}}", NULL), 200);
	ck_assert(wait_runs(&x, 1));
	/* The log says the last secret was loaded before the command started. */
	log = t_read_file(x.f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"secret loaded\",\"secret\":\"late\""));
	ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"command started\""));
	ck_assert(strstr(log, "\"msg\":\"secret loaded\",\"secret\":\"late\"") <
		  strstr(log, "\"msg\":\"command started\""));
	free(log);

	pid = run_pid(&x, 1);
	ck_assert_int_gt(pid, 1);
	record = run_record(&x, pid);
	ck_assert_ptr_nonnull(record);
	value_hash("bf-user", want);
	ck_assert(run_env_hash(record, "API_USER", got));
	ck_assert_str_eq(got, want);
	value_hash(PASSWORD1, want);
	ck_assert(run_env_hash(record, "API_PW", got));
	ck_assert_str_eq(got, want);
	value_hash("late-value-1b2c", late);
	ck_assert(run_env_hash(record, "LATE", got));
	ck_assert_str_eq(got, late);
	/* Inherited from the broker: PATH; withheld: VAULT_*, LATCHKEY_*. */
	ck_assert(run_env_hash(record, "PATH", got));
	ck_assert(!run_env_hash(record, "VAULT_TOKEN", got));
	ck_assert(!run_env_hash(record, "LATCHKEY_SOCKET", got));
	/* No variable at all carries the token or the other secret's value. */
	value_hash(x.f.dev.token, tok);
	value_hash(OTHER_VALUE, other);
	ck_assert_ptr_null(strstr(record, tok));
	ck_assert_ptr_null(strstr(record, other));
	/* Nor anywhere in the environment the command was started with, byte for byte, not
	 * even inside another variable's value; nor in the launcher's (the command's parent,
	 * which the command's user may be able to read). */
	{
		char *block, *comm, comm_path[64];
		size_t len;
		long launcher = parent_pid(pid);

		block = proc_environ(pid, &len);
		ck_assert_ptr_nonnull(block);
		/* The scan sees the block: the chosen variables are in it. */
		ck_assert(environ_value_hash(block, len, "API_PW", got));
		ck_assert(environ_value_hash(block, len, "PATH", got));
		ck_assert(!block_holds(block, len, x.f.dev.token));
		ck_assert(!block_holds(block, len, OTHER_VALUE));
		ck_assert(!environ_value_hash(block, len, "VAULT_TOKEN", got));
		ck_assert(!environ_value_hash(block, len, "LATCHKEY_SOCKET", got));
		free(block);
		snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", launcher);
		comm = t_read_file(comm_path);
		ck_assert_ptr_nonnull(comm);
		ck_assert_str_eq(comm, "latchkey-exec\n");
		free(comm);
		block = proc_environ(launcher, &len);
		if (block == NULL) {
			/* Not dumpable: unreadable to the command's user, which is the point. */
			ck_assert_msg(errno == EACCES || errno == EPERM, "launcher environ: %s",
				      strerror(errno));
		} else {
			ck_assert(!block_holds(block, len, x.f.dev.token));
			free(block);
		}
	}
	/* The arguments after "--" arrive whole and in order. */
	{
		char args[200], second[65];

		value_hash("first arg", arg);
		value_hash("second", second);
		snprintf(args, sizeof(args), "\narg %s\narg %s\n", arg, second);
		ck_assert_ptr_nonnull(strstr(record, args));
	}
	free(record);
	/* stdio is the broker's: the child's line is in the broker's log. */
	ck_assert(t_wait_log(&x.f.broker, "exec-child: hello from the child", T_DEADLINE_MS,
			     NULL, 0));
	/* The socket serves while the command runs. */
	ck_assert_int_eq(bf_get(&x.f, "/v1/secrets/api", NULL), 200);
	ck_assert_int_eq(bf_get(&x.f, "/v1/ready", NULL), 200);
	ck_assert_int_eq(kill((pid_t)pid, 0), 0);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_child_up"), 1);
	bf_stop(&x.f);
}
END_TEST

/* restart_on_change always: a new version of a secret it uses restarts the command
 * (SIGTERM to the old one) with the new value; the restart is counted. */
START_TEST(test_exec_restart_always)
{
	struct xf x;
	char want[65], got[65];
	char *record;
	long pid1, pid2;
	int64_t t0;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}, "
		 "\"restart_on_change\": \"always\", \"kill_timeout\": \"5s\"}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_restarts_total"), 0);
	t0 = lk_now_mono_ms();
	rotate_password(&x, PASSWORD2);
	ck_assert(wait_runs(&x, 2));
	printf("FIGURE: a new KV version to the restarted child's first line: %lld ms (refresh 1s)\n",
	       (long long)(lk_now_mono_ms() - t0));
	pid2 = run_pid(&x, 2);
	ck_assert_int_ne(pid1, pid2);
	ck_assert(wait_signal(&x, "TERM", pid1));
	ck_assert_int_ne(kill((pid_t)pid1, 0), 0);
	record = run_record(&x, pid2);
	ck_assert_ptr_nonnull(record);
	value_hash(PASSWORD2, want);
	ck_assert(run_env_hash(record, "API_PW", got));
	ck_assert_str_eq(got, want);
	free(record);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_restarts_total"), 1);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_child_up"), 1);
	bf_stop(&x.f);
}
END_TEST

/* restart_signal: the command gets the signal instead, and keeps its pid. */
START_TEST(test_exec_restart_signal)
{
	struct xf x;
	long pid1;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}, "
		 "\"restart_signal\": \"HUP\"}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	rotate_password(&x, PASSWORD2);
	ck_assert(wait_signal(&x, "HUP", pid1));
	ck_assert(t_wait_log(&x.f.broker, "a secret of the command changed: signalling it",
			     T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(kill((pid_t)pid1, 0), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 1);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "signals"), "TERM "), 0);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_restarts_total"), 0);
	bf_stop(&x.f);
}
END_TEST

/* restart_on_change never: the change is seen and the command left alone. */
START_TEST(test_exec_restart_never)
{
	struct xf x;
	long pid1;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}, "
		 "\"restart_on_change\": \"never\"}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	rotate_password(&x, PASSWORD2);
	ck_assert(t_wait_log(&x.f.broker, "restart_on_change is never: left running",
			     T_DEADLINE_MS, NULL, 0));
	/* A SIGHUP to the broker reaches the same child, which was not terminated. */
	kill(x.f.broker.pid, SIGHUP);
	ck_assert(wait_signal(&x, "HUP", pid1));
	ck_assert_int_eq(kill((pid_t)pid1, 0), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 1);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "signals"), "TERM "), 0);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_restarts_total"), 0);
	bf_stop(&x.f);
}
END_TEST

/* SIGTERM to the broker reaches the child (which exits 7 on it); the broker exits 7. */
START_TEST(test_exec_sigterm_forwarded)
{
	struct xf x;
	long pid1;
	int status;
	int64_t t0;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	t0 = lk_now_mono_ms();
	kill(x.f.broker.pid, SIGTERM);
	ck_assert(wait_signal(&x, "TERM", pid1));
	status = wait_broker_exit(&x);
	printf("FIGURE: SIGTERM to the broker until it exited with the child's status: %lld ms\n",
	       (long long)(lk_now_mono_ms() - t0));
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 7,
		      "status %#x", status);
	bf_stop(&x.f);
}
END_TEST

/* A command that ignores SIGTERM gets SIGKILL once kill_timeout has passed, and the broker
 * exits with 128 + 9, as a shell reports it. */
START_TEST(test_exec_kill_timeout)
{
	struct xf x;
	long pid1;
	int status;
	int64_t t0, elapsed;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}, "
		 "\"kill_timeout\": \"800ms\"}");
	xf_start(&x, "stubborn");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	t0 = lk_now_mono_ms();
	kill(x.f.broker.pid, SIGTERM);
	ck_assert(wait_signal(&x, "TERM", pid1));
	status = wait_broker_exit(&x);
	elapsed = lk_now_mono_ms() - t0;
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL,
		      "status %#x", status);
	ck_assert_int_ge(elapsed, 800);
	ck_assert_int_eq(bf_log_count(&x.f, "the command outlived kill_timeout: SIGKILL"), 1);
	printf("FIGURE: SIGTERM to a child that ignores it, kill_timeout 800ms, until the broker "
	       "exited 137: %lld ms\n", (long long)elapsed);
	bf_stop(&x.f);
}
END_TEST

static bool
serves_version_3(void *arg)
{
	char *body = NULL;
	bool yes = bf_get(arg, "/v1/secrets/api", &body) == 200 &&
		   strstr(body, "\"version\":3") != NULL;

	free(body);
	return yes;
}

/* Rotations that arrive while the command is being restarted fold into that restart: the
 * next run starts with the latest value, and there is one restart, not two. */
START_TEST(test_exec_restart_coalesced)
{
	struct xf x;
	char want[65], got[65];
	char *record;
	long pid1;
	int status;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}, "
		 "\"kill_timeout\": \"60s\"}");
	xf_start(&x, "stubborn");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	rotate_password(&x, PASSWORD2);
	/* The restart has begun: the child got SIGTERM and ignores it. */
	ck_assert(wait_signal(&x, "TERM", pid1));
	rotate_password(&x, "third-password-0e4a");
	ck_assert(t_wait_until(serves_version_3, &x.f, T_DEADLINE_MS));
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 1);
	/* Now the old one goes. */
	ck_assert_int_eq(t_write_file(go_path(&x, pid1), "", 0600), 0);
	ck_assert(wait_runs(&x, 2));
	record = run_record(&x, run_pid(&x, 2));
	ck_assert_ptr_nonnull(record);
	value_hash("third-password-0e4a", want);
	ck_assert(run_env_hash(record, "API_PW", got));
	ck_assert_str_eq(got, want);
	free(record);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_exec_restarts_total"), 1);
	/* This one ignores SIGTERM too: let it go, and the broker with it. */
	ck_assert_int_eq(t_write_file(go_path(&x, run_pid(&x, 2)), "", 0600), 0);
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 3,
		      "status %#x", status);
	bf_stop(&x.f);
}
END_TEST

/* A child exiting 3 by itself makes the broker exit 3, revoking its leases as at a normal
 * shutdown. */
START_TEST(test_exec_child_exit_revokes)
{
	struct xf x;
	char id[256], state[32];
	int status;

	xf_setup(&x, "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true}",
		 "{\"env\": {\"DB_USER\": \"db.username\", \"DB_PASSWORD\": \"db.password\"}}");
	xf_start(&x, "exit3");
	ck_assert(wait_runs(&x, 1));
	ck_assert(bf_current_lease(&x.f, "db", id, sizeof(id)));
	ck_assert_int_eq(bf_lease_state(&x.f, id, state, sizeof(state)), 0);
	ck_assert_str_eq(state, "active");
	ck_assert_int_eq(t_write_file(go_path(&x, run_pid(&x, 1)), "", 0600), 0);
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 3,
		      "status %#x", status);
	ck_assert_int_eq(bf_lease_state(&x.f, id, state, sizeof(state)), 0);
	ck_assert_str_eq(state, "revoked");
	ck_assert_int_eq(bf_log_count(&x.f, "the command exited: stopping the broker"), 1);
	bf_stop(&x.f);
}
END_TEST

static bool
pid_gone(void *arg)
{
	return kill((pid_t)(long)(intptr_t)arg, 0) != 0;
}

/* The broker killed outright (no chance to forward anything): the launcher sees its pair
 * close and stops the command, which does not outlive the broker. */
START_TEST(test_exec_broker_killed)
{
	struct xf x;
	long pid1;
	int status;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	status = bf_stop_broker(&x.f, SIGKILL, T_DEADLINE_MS);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert(wait_signal(&x, "TERM", pid1));
	ck_assert(t_wait_until(pid_gone, (void *)(intptr_t)pid1, T_DEADLINE_MS));
	bf_stop(&x.f);
}
END_TEST

/* SIGINT to the broker reaches the command as SIGINT (not as a SIGTERM); the command exits
 * 8 on it and the broker exits 8. */
START_TEST(test_exec_sigint_forwarded)
{
	struct xf x;
	long pid1;
	int status;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	kill(x.f.broker.pid, SIGINT);
	ck_assert(wait_signal(&x, "INT", pid1));
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 8,
		      "status %#x", status);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "signals"), "TERM "), 0);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"stopping the command\",\"signal\":\"INT\""),
			 1);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"shutting down\",\"exit_code\":8"), 1);
	bf_stop(&x.f);
}
END_TEST

/* A command that does not handle SIGINT, or SIGHUP, dies of it when the broker passes it
 * on: the broker exits 128 + the signal. */
START_TEST(test_exec_unhandled_signal_kills)
{
	const char *cmd[] = { "/bin/sleep", "600", NULL };
	const int sigs[] = { SIGINT, SIGHUP };
	struct xf x;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		int status;

		snprintf(x.f.log, sizeof(x.f.log), "%s/broker.%zu.log", x.f.dir, i);
		xf_start_command(&x, cmd);
		/* Logged once the launcher saw execve succeed: sleep runs, with the default
		 * actions. */
		ck_assert(t_wait_log(&x.f.broker, "\"msg\":\"command started\"", T_DEADLINE_MS,
				     NULL, 0));
		kill(x.f.broker.pid, sigs[i]);
		status = wait_broker_exit(&x);
		ck_assert_msg(status != -1 && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 128 + sigs[i], "signal %d: status %#x",
			      sigs[i], status);
	}
	bf_stop(&x.f);
}
END_TEST

/* SIGHUP in exec mode is the command's: it gets it and keeps running, and the broker does
 * not reload its configuration, though the file changed (a reload would serve "extra"
 * and count in latchkey_broker_reloads_total). */
START_TEST(test_exec_sighup_not_reloaded)
{
	static const char exec[] = "\"exec\": {\"env\": {\"API_PW\": \"api.password\"}}";
	struct xf x;
	long pid1;
	int status;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	ck_assert_int_eq(bf_get(&x.f, "/v1/secrets/extra", NULL), 404);
	bf_config(&x.f, SECRETS_API_OTHER ", {\"name\": \"extra\", \"path\": "
		  "\"secret/data/app/other\", \"required\": true}", exec);
	kill(x.f.broker.pid, SIGHUP);
	ck_assert(wait_signal(&x, "HUP", pid1));
	ck_assert(bf_wait_log_count(&x.f, "in exec mode the broker's configuration is not "
				    "reloaded", 1));
	ck_assert_int_eq(kill((pid_t)pid1, 0), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 1);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "signals"), "TERM "), 0);
	ck_assert_int_eq(bf_get(&x.f, "/v1/secrets/extra", NULL), 404);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_reloads_total{result=\"ok\"}"), 0);
	ck_assert_int_eq(metric_value(&x, "latchkey_broker_reloads_total{result=\"error\"}"), 0);
	/* The broker handles one signal after another: once it is gone, a reload on the
	 * SIGHUP would have been logged. */
	kill(x.f.broker.pid, SIGTERM);
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 7,
		      "status %#x", status);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"configuration reload"), 0);
	bf_stop(&x.f);
}
END_TEST

/* A command that cannot be started: the broker logs the command and why, starts nothing
 * and exits 127 when it is not found (by path, on PATH, or its #! interpreter), 126 when
 * it is found but cannot be run (no execute permission; a directory), as sh, bash and env
 * do. */
START_TEST(test_exec_cannot_start)
{
	struct xf x;
	char notexec[700], badinterp[700];

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	snprintf(notexec, sizeof(notexec), "%s/notexec.sh", x.f.dir);
	ck_assert_int_eq(t_write_file(notexec, "#!/bin/sh\nexit 0\n", 0644), 0);
	snprintf(badinterp, sizeof(badinterp), "%s/badinterp.sh", x.f.dir);
	ck_assert_int_eq(t_write_file(badinterp, "#!/nonexistent-latchkey-dir/sh\nexit 0\n", 0755),
			 0);
	{
		const struct {
			const char *command;
			int code;
			const char *error;
		} cases[] = {
			{ "/nonexistent-latchkey-dir/app", 127, "No such file or directory" },
			{ "latchkey-no-such-command-5d0c", 127, "No such file or directory" },
			{ badinterp, 127, "No such file or directory" },
			{ notexec, 126, "Permission denied" },
			{ x.f.dir, 126, "Permission denied" },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			const char *cmd[] = { cases[i].command, "an arg", NULL };
			char needle[1200];
			int status;

			/* A log of its own: each case counts its own lines. */
			snprintf(x.f.log, sizeof(x.f.log), "%s/broker.%zu.log", x.f.dir, i);
			xf_start_command(&x, cmd);
			status = wait_broker_exit(&x);
			ck_assert_msg(status != -1 && WIFEXITED(status) &&
				      WEXITSTATUS(status) == cases[i].code,
				      "case %zu: status %#x", i, status);
			snprintf(needle, sizeof(needle), "\"msg\":\"cannot start the command\","
				 "\"command\":\"%s\",\"error\":\"%s\"", cases[i].command,
				 cases[i].error);
			ck_assert_msg(bf_log_count(&x.f, needle) == 1, "case %zu: no %s", i, needle);
			ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"command started\""), 0);
		}
	}
	bf_stop(&x.f);
}
END_TEST

/* A command killed by a signal it did not handle (here SIGUSR1, not from the broker):
 * the broker exits 128 + the signal, as a shell reports it. */
START_TEST(test_exec_child_killed_by_signal)
{
	struct xf x;
	long pid1;
	int status;

	xf_setup(&x, SECRETS_API_OTHER, "{\"env\": {\"API_PW\": \"api.password\"}}");
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	ck_assert_int_eq(kill((pid_t)pid1, SIGUSR1), 0);
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGUSR1,
		      "status %#x", status);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"the command exited: stopping the "
				      "broker\",\"exit_code\":138"), 1);
	bf_stop(&x.f);
}
END_TEST

/* Values that a shell or a parser could bend arrive byte for byte: the child's hash of
 * printenv's output and the hash of the entry in /proc/PID/environ both match the hash
 * of what the backend holds. A key env does not name stays out. */
START_TEST(test_exec_values_byte_exact)
{
	static const struct {
		const char *var, *key, *value;
	} vals[] = {
		{ "ODD_NEWLINES", "nl", "\nline one\nline two\n\n" },
		{ "ODD_EQUALS", "eq", "=a=b==c=" },
		{ "ODD_QUOTES", "quotes", "it's \"double\", 'single' and `back`" },
		{ "ODD_SPACES", "spaces", "  two leading,\ttab, two trailing  " },
		{ "ODD_UTF8", "utf8", "p\xc3\xa4ssw\xc3\xb6rd-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80" },
		{ "ODD_SHELL", "shell", "$HOME ${PATH} $(id) \\ back\\slash; *?[a] #" },
		{ "ODD_EMPTY", "empty", "" },
	};
	struct xf x;
	char env[2048], want[65], got[65];
	char *record, *block, *body;
	json_t *data = json_object(), *doc;
	size_t n = 0, len;
	long pid;

	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		ck_assert_int_eq(json_object_set_new(data, vals[i].key, json_string(vals[i].value)),
				 0);
		n += (size_t)snprintf(env + n, sizeof(env) - n, "%s\"%s\": \"odd.%s\"",
				      i > 0 ? ", " : "", vals[i].var, vals[i].key);
		ck_assert_uint_lt(n, sizeof(env));
	}
	/* A key of the same secret that env does not name. */
	ck_assert_int_eq(json_object_set_new(data, "unused", json_string("odd-unused-3b9e")), 0);
	doc = json_pack("{s:o}", "data", data);
	body = json_dumps(doc, 0);
	ck_assert_ptr_nonnull(body);
	json_decref(doc);
	{
		char exec[2200];

		snprintf(exec, sizeof(exec), "{\"env\": {%s}}", env);
		xf_setup(&x, SECRETS_API_OTHER ", {\"name\": \"odd\", \"path\": "
			 "\"secret/data/app/odd\", \"required\": true}", exec);
	}
	ck_assert_int_eq(bf_dev_call(&x.f, "POST", "/v1/secret/data/app/odd", body, NULL), 200);
	free(body);
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid = run_pid(&x, 1);
	record = run_record(&x, pid);
	ck_assert_ptr_nonnull(record);
	block = proc_environ(pid, &len);
	ck_assert_ptr_nonnull(block);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		value_hash(vals[i].value, want);
		ck_assert_msg(run_env_hash(record, vals[i].var, got), "%s: not seen", vals[i].var);
		ck_assert_msg(strcmp(got, want) == 0, "%s: the child saw other bytes", vals[i].var);
		hash_hex(vals[i].value, want);
		ck_assert_msg(environ_value_hash(block, len, vals[i].var, got), "%s: not in environ",
			      vals[i].var);
		ck_assert_msg(strcmp(got, want) == 0, "%s: other bytes in environ", vals[i].var);
	}
	/* Nothing env does not name: not another key of this secret, not a secret env does
	 * not use, not the token. */
	ck_assert(!block_holds(block, len, "odd-unused-3b9e"));
	ck_assert(!block_holds(block, len, PASSWORD1));
	ck_assert(!block_holds(block, len, OTHER_VALUE));
	ck_assert(!block_holds(block, len, x.f.dev.token));
	free(block);
	free(record);
	bf_stop(&x.f);
}
END_TEST

/* Writes n bytes to path through a rename, so that the file source never reads half. */
static void
write_bytes(const char *path, const void *data, size_t n)
{
	char tmp[800];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

/* A value with a NUL byte: from a file source (the backend's JSON cannot carry one). */
#define NUL_LEFT "nul-left-5e1d"
#define NUL_RIGHT "nul-right-8a2f"
static const char nul_value[] = NUL_LEFT "\0" NUL_RIGHT;

/* The secrets, with "blob" read from DIR/src/blob. */
static void
xf_setup_blob(struct xf *x, const void *first, size_t n)
{
	char secrets[1400], dir[700];

	ck_assert(sodium_init() >= 0);
	bf_dev(&x->f, "1h", "2h");
	snprintf(dir, sizeof(dir), "%s/src", x->f.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_bytes(t_path(dir, "blob"), first, n);
	snprintf(secrets, sizeof(secrets), SECRETS_API_OTHER ", {\"name\": \"blob\", "
		 "\"from_file\": \"%s/blob\", \"key\": \"value\", \"required\": true}", dir);
	ck_assert_int_eq(bf_dev_call(&x->f, "POST", "/v1/secret/data/app/other",
				     "{\"data\":{\"value\":\"" OTHER_VALUE "\"}}", NULL), 200);
	snprintf(x->child, sizeof(x->child), "%s/child.sh", x->f.dir);
	ck_assert_int_eq(t_write_file(x->child, child_script, 0755), 0);
	bf_config(&x->f, secrets, "\"exec\": {\"env\": {\"API_PW\": \"api.password\", "
		  "\"BLOB\": \"blob.value\"}}");
}

/* No part of the value is in the log. */
static void
assert_log_clean(struct xf *x)
{
	ck_assert_int_eq(bf_log_count(&x->f, NUL_LEFT), 0);
	ck_assert_int_eq(bf_log_count(&x->f, NUL_RIGHT), 0);
}

/* A value holding a NUL byte cannot be an environment variable: at start the command is
 * not started (rather than with the value cut at the NUL), the error names the variable,
 * the secret and the key but not the value, and the broker exits 1. */
START_TEST(test_exec_nul_value_at_start)
{
	struct xf x;
	int status;

	xf_setup_blob(&x, nul_value, sizeof(nul_value) - 1);
	xf_start(&x, "wait");
	status = wait_broker_exit(&x);
	ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
		      "status %#x", status);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"cannot start the command\""), 1);
	ck_assert_int_eq(bf_log_count(&x.f, "exec.env.BLOB: the value of blob.value (version "), 1);
	ck_assert_int_eq(bf_log_count(&x.f, ") holds a NUL byte, which an environment variable "
				      "cannot carry"), 1);
	ck_assert_int_eq(bf_log_count(&x.f, "\"msg\":\"command started\""), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 0);
	assert_log_clean(&x);
	bf_stop(&x.f);
}
END_TEST

/* A new version holding a NUL byte while the command runs: it is not restarted into a
 * cut value; it keeps running with the values it had, and the next clean version
 * restarts it. */
START_TEST(test_exec_nul_value_at_restart)
{
	static const char clean1[] = "clean-blob-1c0d", clean2[] = "clean-blob-2e7f";
	struct xf x;
	char want[65], got[65], *record;
	long pid1;

	xf_setup_blob(&x, clean1, strlen(clean1));
	xf_start(&x, "wait");
	ck_assert(wait_runs(&x, 1));
	pid1 = run_pid(&x, 1);
	record = run_record(&x, pid1);
	ck_assert_ptr_nonnull(record);
	value_hash(clean1, want);
	ck_assert(run_env_hash(record, "BLOB", got));
	ck_assert_str_eq(got, want);
	free(record);
	write_bytes(t_path(x.f.dir, "src/blob"), nul_value, sizeof(nul_value) - 1);
	ck_assert(bf_wait_log_count(&x.f, "the new environment cannot be built: the command "
				    "keeps running", 1));
	ck_assert_int_eq(bf_log_count(&x.f, "exec.env.BLOB: the value of blob.value (version "), 1);
	ck_assert_int_eq(kill((pid_t)pid1, 0), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "signals"), "TERM "), 0);
	ck_assert_int_eq(count_lines(t_path(x.f.dir, "runs"), "start "), 1);
	write_bytes(t_path(x.f.dir, "src/blob"), clean2, strlen(clean2));
	ck_assert(wait_runs(&x, 2));
	ck_assert(wait_signal(&x, "TERM", pid1));
	record = run_record(&x, run_pid(&x, 2));
	ck_assert_ptr_nonnull(record);
	value_hash(clean2, want);
	ck_assert(run_env_hash(record, "BLOB", got));
	ck_assert_str_eq(got, want);
	free(record);
	assert_log_clean(&x);
	bf_stop(&x.f);
}
END_TEST

/* Configuration errors name the file, the key and what was expected. */
START_TEST(test_exec_config_errors)
{
	static const struct {
		const char *exec, *message;
	} cases[] = {
		{ "{\"env\": {\"X\": \"nosuch.key\"}, \"command\": [\"/bin/true\"]}",
		  "exec.env.X: expected \"SECRET.KEY\" naming one of the secrets configured" },
		{ "{\"env\": {\"1X\": \"api.user\"}, \"command\": [\"/bin/true\"]}",
		  "exec.env.1X: expected a variable name" },
		{ "{\"env\": {\"X\": \"api.user\"}}",
		  "exec.command: missing (give it in the file, or after \"--\"" },
		{ "{\"command\": []}", "exec.command: expected between 1 and 256 strings" },
		{ "{\"command\": [\"/bin/true\"], \"restart_on_change\": \"sometimes\"}",
		  "exec.restart_on_change: expected \"always\" or \"never\"" },
		{ "{\"command\": [\"/bin/true\"], \"restart_signal\": \"HUP\", "
		  "\"restart_on_change\": \"never\"}",
		  "exec.restart_signal: a signal on change contradicts restart_on_change" },
		{ "{\"command\": [\"/bin/true\"], \"restart_signal\": \"KILL\"}",
		  "exec.restart_signal: expected one of HUP" },
		{ "{\"command\": [\"/bin/true\"], \"restart_signal\": \"TERM\"}",
		  "exec.restart_signal: expected one of HUP, USR1, USR2 (a signal the command keeps "
		  "running through" },
		{ "{\"command\": [\"/bin/true\"], \"restart_signal\": \"SIGQUIT\"}",
		  "exec.restart_signal: expected one of HUP, USR1, USR2" },
		{ "{\"command\": [\"/bin/true\"], \"kill_timeout\": \"2h\"}",
		  "exec.kill_timeout: expected a duration between 100ms and 1h" },
		{ "{\"command\": [\"/bin/true\"], \"comand\": 1}", "exec.comand: unknown key" },
	};
	struct xf x;

	xf_setup(&x, SECRETS_API_OTHER, "{\"command\": [\"/bin/true\"]}");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char extra[1024], *err;
		const char *argv[] = { t_latchkey_bin(), "broker", "--check-config", x.f.cfg, NULL };
		int rc;

		snprintf(extra, sizeof(extra), "\"exec\": %s", cases[i].exec);
		bf_config(&x.f, SECRETS_API_OTHER, extra);
		rc = t_run(argv, NULL, NULL, NULL, t_path(x.f.dir, "err"));
		err = t_read_file(t_path(x.f.dir, "err"));
		ck_assert_ptr_nonnull(err);
		ck_assert_msg(rc == 2, "case %zu: exit %d", i, rc);
		ck_assert_msg(strstr(err, x.f.cfg) != NULL && strstr(err, cases[i].message) != NULL,
			      "case %zu: %s", i, err);
		free(err);
	}
	{
		/* "--" supplies the command the file lacks. */
		const char *argv[] = { t_latchkey_bin(), "broker", "--check-config", x.f.cfg, "--",
				       "/bin/true", NULL };

		bf_config(&x.f, SECRETS_API_OTHER, "\"exec\": {\"env\": {\"X\": \"api.user\"}}");
		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, NULL), 0);
	}
	bf_stop(&x.f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("broker-exec");
	TCase *tc = tcase_create("exec");
	SRunner *sr;
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_exec_env_and_start_order);
	tcase_add_test(tc, test_exec_restart_always);
	tcase_add_test(tc, test_exec_restart_signal);
	tcase_add_test(tc, test_exec_restart_never);
	tcase_add_test(tc, test_exec_sigterm_forwarded);
	tcase_add_test(tc, test_exec_restart_coalesced);
	tcase_add_test(tc, test_exec_kill_timeout);
	tcase_add_test(tc, test_exec_child_exit_revokes);
	tcase_add_test(tc, test_exec_broker_killed);
	tcase_add_test(tc, test_exec_sigint_forwarded);
	tcase_add_test(tc, test_exec_unhandled_signal_kills);
	tcase_add_test(tc, test_exec_sighup_not_reloaded);
	tcase_add_test(tc, test_exec_cannot_start);
	tcase_add_test(tc, test_exec_child_killed_by_signal);
	tcase_add_test(tc, test_exec_values_byte_exact);
	tcase_add_test(tc, test_exec_nul_value_at_start);
	tcase_add_test(tc, test_exec_nul_value_at_restart);
	tcase_add_test(tc, test_exec_config_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
