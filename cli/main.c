/* main.c — `latchkey SUBCOMMAND [ARGS]`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "common/json.h"
#include "broker/broker.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/seal.h"
#include "devserver/devserver.h"
#include "cli/push.h"
#include "sync/sync.h"
#include "vault/vault.h"

#ifndef LK_VERSION
#define LK_VERSION "0.1.0"
#endif

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct lk_command commands[] = {
	{ "broker",  "run the secrets broker sidecar (serves secrets over a Unix socket)", broker_main },
	{ "sync",    "run the controller: ExternalSecrets into Kubernetes Secrets", sync_main },
	{ "get",     "read a secret from the broker: NAME or NAME/KEY", cmd_get },
	{ "status",  "show the broker's secrets, versions, TTLs and next actions", cmd_status },
	{ "seal",    "seal a Secret manifest into a SealedSecret", cmd_seal },
	{ "unseal",  "open a SealedSecret with the private keys (admins, recovery)", cmd_unseal },
	{ "reseal",  "re-encrypt SealedSecrets (files, directories) with the newest key", cmd_reseal },
	{ "keygen",  "create or rotate sealing keys (--lk1: a recipient key pair)", cmd_keygen },
	{ "keys",    "list a cluster's sealing keys and the SealedSecrets that use each", cmd_keys },
	{ "push",    "write values to the backend's KV v2 and print the ExternalSecret to commit", cmd_push },
	{ "scan",    "find plaintext secrets in files or staged Git changes", cmd_scan },
	{ "dev",     "run an in-memory Vault-compatible backend for development and tests", devserver_main },
	{ "version", "print the version", cmd_version },
	{ "help",    "list the subcommands", cmd_help },
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: latchkey SUBCOMMAND [OPTIONS]\n\nsubcommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n`latchkey SUBCOMMAND --help` describes one.\n");
}

static int
cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return LK_EXIT_OK;
}

static int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("latchkey %s\n", LK_VERSION);
	return LK_EXIT_OK;
}

int
main(int argc, char **argv)
{
	/* Every subcommand holds secrets at some point (values to seal or push, private keys,
	 * tokens): no core dumps, and no ptrace by other processes of the same user. */
	const struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Before any json_t exists: jansson zeroes what it frees (secret values pass through it). */
	lk_json_wipe_on_free();
	if (argc < 2) {
		usage(stderr);
		return LK_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "latchkey: unknown subcommand '%s' (see 'latchkey help')\n", argv[1]);
	return LK_EXIT_USAGE;
}
