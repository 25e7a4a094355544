/* push.h — `latchkey push`: values into the backend's KV v2, a reference into Git.
 *
 *   latchkey push --path secret/data/APP [--merge] KEY=VALUE | KEY=@FILE | KEY=- ...
 *
 * writes the values to the backend (VAULT_ADDR, VAULT_TOKEN or ~/.vault-token) and prints
 * an ExternalSecret manifest that references each key: the thing to commit. Values never
 * appear in the output or in messages. docs/sealing.md describes it. */
#ifndef LK_PUSH_H
#define LK_PUSH_H

int cmd_push(int argc, char **argv);

#endif
