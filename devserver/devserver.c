/* devserver.c — `latchkey dev`: options, start-up banner, signals. */
#include "devserver/devserver.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/exit.h"
#include "common/httpd.h"
#include "common/log.h"
#include "devserver/internal.h"

/* The answers the HTTP server gives by itself (413, 431, ...) in Vault's shape,
 * {"errors":["error: reason"]}; bytes that are not UTF-8 (a reason may quote a decoded
 * path) become '?'. */
static json_t *
vault_error_body(unsigned status, const char *error, const char *reason)
{
	char text[512];
	json_t *msg;

	(void)status;
	snprintf(text, sizeof(text), "%s%s%s", error, reason != NULL ? ": " : "",
		 reason != NULL ? reason : "");
	if ((msg = json_string(text)) == NULL) {
		for (char *p = text; *p != '\0'; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		msg = json_string(text);
	}
	return json_pack("{s:[o]}", "errors", msg);
}

#define DEFAULT_LISTEN "127.0.0.1:8200"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: latchkey dev [OPTIONS]\n"
	    "\n"
	    "An in-memory Vault-compatible backend for development and tests. Everything is\n"
	    "lost when it stops. See docs/dev-server.md.\n"
	    "\n"
	    "  --listen ADDR        address to listen on (default " DEFAULT_LISTEN "; port 0 picks one)\n"
	    "  --root-token T       the root token (default $VAULT_DEV_ROOT_TOKEN_ID, else random)\n"
	    "  --log-level L        debug, info, warn or error (default info)\n"
	    "  --latency MS         delay every answer by MS milliseconds\n"
	    "  --error-rate R       answer a fraction R (0..1) of requests with --error-status\n"
	    "  --error-status N     the status of injected errors (default 500)\n"
	    "  --drop-rate R        close a fraction R (0..1) of connections without an answer\n"
	    "  --cut-rate R         cut a fraction R (0..1) of answers mid-body (then close)\n"
	    "  --retry-after S      the Retry-After of injected 429s, in seconds (default 1)\n"
	    "  --fault-paths P      inject faults only under /v1/P (default: everywhere)\n"
	    "  --sealed             start sealed (503 \"Vault is sealed\")\n"
	    "  -h, --help           this text\n");
}

static int
parse_rate(const char *s, double *ret)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d >= 0.0 && d <= 1.0))
		return -EINVAL;
	*ret = d;
	return 0;
}

static int
parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "127.0.0.1:8200" -> "127.0.0.1"; "[::1]:0" -> "[::1]". */
static void
listen_host(const char *listen, char *out, size_t outlen)
{
	const char *colon = strrchr(listen, ':');

	if (colon == NULL)
		snprintf(out, outlen, "%s", listen);
	else
		snprintf(out, outlen, "%.*s", (int)(colon - listen), listen);
}

int
devserver_main(int argc, char **argv)
{
	enum { OPT_LISTEN = 256, OPT_ROOT, OPT_LEVEL, OPT_LATENCY, OPT_ERATE, OPT_ESTATUS,
	       OPT_DROP, OPT_CUT, OPT_RETRY, OPT_SEALED, OPT_PATHS };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "root-token", required_argument, NULL, OPT_ROOT },
		{ "log-level", required_argument, NULL, OPT_LEVEL },
		{ "latency", required_argument, NULL, OPT_LATENCY },
		{ "error-rate", required_argument, NULL, OPT_ERATE },
		{ "error-status", required_argument, NULL, OPT_ESTATUS },
		{ "drop-rate", required_argument, NULL, OPT_DROP },
		{ "cut-rate", required_argument, NULL, OPT_CUT },
		{ "retry-after", required_argument, NULL, OPT_RETRY },
		{ "fault-paths", required_argument, NULL, OPT_PATHS },
		{ "sealed", no_argument, NULL, OPT_SEALED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct dev_server srv;
	struct dev_faults faults = { .error_status = 500, .retry_after_s = 1 };
	struct lk_httpd_config cfg = { 0 };
	struct lk_httpd *httpd = NULL;
	struct lk_error err = { 0 };
	enum lk_log_level level = LK_INFO;
	const char *listen = DEFAULT_LISTEN, *root = NULL;
	char host[256], addr[300], token[DEV_ID_LEN];
	sigset_t sigs;
	long n;
	int opt, sig, rc = LK_EXIT_FAILURE;
	bool inited = false;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			listen = optarg;
			break;
		case OPT_ROOT:
			root = optarg;
			break;
		case OPT_LEVEL:
			if (lk_log_level_parse(optarg, &level) < 0) {
				fprintf(stderr, "latchkey dev: --log-level: expected debug, info, warn or error\n");
				return LK_EXIT_USAGE;
			}
			break;
		case OPT_LATENCY:
			if (parse_long(optarg, 0, DEV_LATENCY_MAX_MS, &n) < 0) {
				fprintf(stderr, "latchkey dev: --latency: expected 0..%d milliseconds\n",
				    DEV_LATENCY_MAX_MS);
				return LK_EXIT_USAGE;
			}
			faults.latency_ms = n;
			break;
		case OPT_ERATE:
		case OPT_DROP:
		case OPT_CUT:
			if (parse_rate(optarg, opt == OPT_ERATE ? &faults.error_rate :
			    opt == OPT_DROP ? &faults.drop_rate : &faults.cut_rate) < 0) {
				fprintf(stderr, "latchkey dev: --%s: expected a number from 0 to 1\n",
				    opt == OPT_ERATE ? "error-rate" : opt == OPT_DROP ? "drop-rate" : "cut-rate");
				return LK_EXIT_USAGE;
			}
			break;
		case OPT_RETRY:
			if (parse_long(optarg, 0, DEV_RETRY_AFTER_MAX_S, &n) < 0) {
				fprintf(stderr, "latchkey dev: --retry-after: expected 0..%d seconds\n",
				    DEV_RETRY_AFTER_MAX_S);
				return LK_EXIT_USAGE;
			}
			faults.retry_after_s = n;
			break;
		case OPT_ESTATUS:
			if (parse_long(optarg, 400, 599, &n) < 0) {
				fprintf(stderr, "latchkey dev: --error-status: expected 400..599\n");
				return LK_EXIT_USAGE;
			}
			faults.error_status = (unsigned)n;
			break;
		case OPT_PATHS:
			snprintf(faults.paths, sizeof(faults.paths), "%s",
			    strncmp(optarg, "/v1/", 4) == 0 ? optarg + 4 : optarg);
			break;
		case OPT_SEALED:
			faults.sealed = true;
			break;
		case 'h':
			usage(stdout);
			return LK_EXIT_OK;
		case ':':
			fprintf(stderr, "latchkey dev: option '%s' needs a value (see 'latchkey dev --help')\n",
			    argv[optind - 1]);
			return LK_EXIT_USAGE;
		default:
			fprintf(stderr, "latchkey dev: unknown option '%s' (see 'latchkey dev --help')\n",
			    argv[optind - 1]);
			return LK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "latchkey dev: unexpected argument '%s' (see 'latchkey dev --help')\n",
		    argv[optind]);
		return LK_EXIT_USAGE;
	}
	if (root == NULL || *root == '\0')
		root = getenv("VAULT_DEV_ROOT_TOKEN_ID");
	if (root != NULL && (*root == '\0' || strlen(root) >= DEV_ID_LEN)) {
		fprintf(stderr, "latchkey dev: the root token must be 1 to %d characters\n", DEV_ID_LEN - 1);
		return LK_EXIT_USAGE;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "latchkey dev: libsodium failed to initialise\n");
		return LK_EXIT_FAILURE;
	}
	if (root == NULL) {
		char rnd[32];

		dev_random_alnum(rnd, 24);
		snprintf(token, sizeof(token), "s.%s", rnd);
		root = token;
	}
	lk_log_setup(2, level);
	if (dev_server_init(&srv, root) < 0) {
		fprintf(stderr, "latchkey dev: out of memory\n");
		goto out;
	}
	inited = true;
	srv.faults = faults;

	/* Handle SIGINT/SIGTERM with sigwait: block them before any thread starts. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	cfg.tcp_addr = listen;
	cfg.threads = 0;      /* a thread per connection: injected latency blocks only its own */
	cfg.max_body = DEV_BODY_MAX;
	cfg.error_body = vault_error_body;
	cfg.handler = dev_handle_request;
	cfg.ctx = &srv;
	if (dev_sweeper_start(&srv) < 0) {
		fprintf(stderr, "latchkey dev: cannot start the lease sweeper\n");
		goto out;
	}
	if (lk_httpd_start(&cfg, &httpd, &err) < 0) {
		fprintf(stderr, "latchkey dev: %s\n", err.msg);
		goto out;
	}
	listen_host(listen, host, sizeof(host));
	snprintf(addr, sizeof(addr), "%s:%d", host, lk_httpd_port(httpd));
	lk_log(LK_INFO, "listening", LK_STR("addr", addr), LK_BOOL("sealed", faults.sealed));
	fprintf(stderr,
	    "WARNING! dev mode is enabled! In this mode, latchkey dev runs entirely in-memory\n"
	    "and starts unsealed with a single unseal key. The root token is already\n"
	    "authenticated to the CLI, so you can immediately begin using it.\n"
	    "\n"
	    "You may need to set the following environment variables:\n"
	    "\n"
	    "    $ export VAULT_ADDR='http://%s'\n"
	    "\n"
	    "The unseal key and root token are displayed below in case you want to\n"
	    "seal/unseal the server or re-authenticate.\n"
	    "\n"
	    "Unseal Key: %s\n"
	    "Root Token: %s\n"
	    "\n"
	    "Development mode should NOT be used in production installations!\n\n",
	    addr, srv.unseal_key, srv.root_token);
	do {
		if (sigwait(&sigs, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGINT && sig != SIGTERM);
	lk_log(LK_INFO, "stopping", LK_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
	lk_httpd_stop(httpd);
	rc = LK_EXIT_OK;
out:
	dev_sweeper_stop(&srv);
	if (inited)
		dev_server_clear(&srv);
	return rc;
}
