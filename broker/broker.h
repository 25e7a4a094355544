/* broker.h — `latchkey broker`, the sidecar that caches secrets from the backend in locked
 * memory, renews and rotates them, and serves them over a Unix socket to the processes
 * allowed to read each one. See docs/broker.md and docs/internals/broker.md. */
#ifndef LK_BROKER_H
#define LK_BROKER_H

/* The subcommand: argv[0] is "broker". Flags: --config FILE, --check-config FILE,
 * --log-level LEVEL, --help. Returns the exit status: 0 after a clean shutdown or a valid
 * --check-config, 1 on a runtime failure, 2 on a usage or configuration error. */
int broker_main(int argc, char **argv);

#endif
