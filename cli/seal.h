/* seal.h — the sealing subcommands and the output helpers they share.
 *
 * Commands (see cli/commands.h for the calling convention and exit codes):
 *   keygen  new RSA + X25519 sealing keys as files and/or a key Secret manifest
 *   seal    Secret → SealedSecret (Bitnami format, or lk1 with --envelope lk1)
 *   unseal  SealedSecret → Secret with private keys (recovery, admins)
 *   reseal  re-encrypt SealedSecrets with the newest key, in memory (files, directories)
 *   keys    a cluster's sealing keys and the SealedSecrets that still use each
 *   scan    look for plaintext secrets in files or in what Git would commit
 * The conversions themselves are sealing/'s; these parse arguments and do the file and
 * terminal I/O. docs/sealing.md is the user guide.
 */
#ifndef LK_SEAL_H
#define LK_SEAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"
#include "manifest/manifest.h"
#include "sealing/sealing.h"

int cmd_keygen(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_reseal(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_scan(int argc, char **argv);

/* ---- output (cli/seal_output.c) ------------------------------------------------- */

/* Writes len bytes to path (NULL or "-" = stdout). With exclusive, an existing file is an
 * error (-EEXIST); otherwise the file is replaced atomically (temporary + rename). The
 * file gets exactly mode. */
int seal_write_output(const char *path, const char *data, size_t len, mode_t mode,
		      bool exclusive, struct lk_error *err) __attribute__((warn_unused_result));

/* Serializes root and writes it (see seal_write_output); the text is wiped after. */
int seal_write_manifest(const char *path, const json_t *root, enum lk_manifest_format format,
			mode_t mode, bool exclusive, struct lk_error *err)
	__attribute__((warn_unused_result));

/* unseal (reseal false) or reseal (true): the common body of both commands. */
int seal_unseal_main(int argc, char **argv, bool reseal);

#endif
