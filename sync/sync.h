/* sync.h — `latchkey sync`, the controller: reconciles ExternalSecrets (latchkey.io/v1,
 * or with --compat external-secrets the external-secrets.io resources themselves) into
 * Kubernetes Secrets from a Vault-compatible backend, on a refresh interval, writing only
 * when the content changed. docs/sync.md is the user guide, docs/internals/sync.md the
 * design.
 */
#ifndef LK_SYNC_H
#define LK_SYNC_H

/* The subcommand: argv[0] is "sync". Returns the process exit status (common/exit.h). */
int sync_main(int argc, char **argv);

#endif
