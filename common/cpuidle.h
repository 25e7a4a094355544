/* cpuidle.h — what an idle CPU of this machine does, and whether a server's polling before
 * sleeping pays here.
 *
 * Waking a CPU that has gone idle is cheap where the CPU polls before it halts (bare metal
 * in a shallow idle state, a guest with cpuidle's haltpoll driver, idle=poll) and dear in a
 * virtual machine whose idle CPUs halt at once: there every wake-up is an inter-processor
 * interrupt through the hypervisor. Polling before sleeping (docs/internals/httpd.md) pays
 * only in the second case, and in the first it costs CPU and tail latency (measured in
 * docs/benchmarks.md, "Where polling pays").
 */
#ifndef LK_CPUIDLE_H
#define LK_CPUIDLE_H

#include <stdbool.h>
#include <stddef.h>

struct lk_cpuidle {
	bool cpuid_hypervisor;      /* x86 CPUID: the hypervisor-present bit */
	bool sys_hypervisor;        /* /sys/hypervisor/type names one (Xen and others) */
	bool idle_poll;             /* idle=poll on the kernel command line */
	bool cpuidle_seen;          /* current_driver below could be read */
	char driver[32];            /* /sys/devices/system/cpu/cpuidle/current_driver; "" */
	bool halt_poll_seen;        /* guest_halt_poll_ns below could be read and parsed */
	unsigned long long halt_poll_ns; /* haltpoll's guest_halt_poll_ns; 0 if absent */
};

/* Fills m from the files under root ("" for the machine's own /proc and /sys) and, for
 * cpuid_hypervisor, from the CPU itself. A file that is missing or unreadable leaves its
 * field at its default (false, "", 0). */
void lk_cpuidle_probe(const char *root, struct lk_cpuidle *m);

/* The text of those files, parsed into m (cmdline, driver, halt_poll_ns may each be NULL
 * for a missing file). Exposed for the tests and the fuzz target. */
void lk_cpuidle_parse(const char *cmdline, const char *driver, const char *halt_poll_ns,
		      struct lk_cpuidle *m);

/* True where polling before sleeping pays: a virtual machine whose idle CPUs halt without
 * polling first. Not on bare metal, with idle=poll, or with the haltpoll driver whose
 * guest_halt_poll_ns is above 0 or cannot be read (the kernel's default polls); a virtual
 * machine whose cpuidle driver cannot be read is taken to halt without polling. A virtual
 * machine is told by x86's CPUID or /sys/hypervisor/type; elsewhere (an arm64 KVM guest)
 * it is taken for bare metal. *why (static text) says what decided, either way. */
bool lk_cpuidle_poll_pays(const struct lk_cpuidle *m, const char **why);

#endif
