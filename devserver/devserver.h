/* devserver.h — `latchkey dev`: an in-memory Vault-compatible backend for development,
 * demos and tests, in the manner of `vault server -dev`. See docs/dev-server.md. */
#ifndef LK_DEVSERVER_H
#define LK_DEVSERVER_H

/* The subcommand: argv[0] is "dev". Returns the exit status. */
int devserver_main(int argc, char **argv);

#endif
