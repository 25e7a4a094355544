/* cpuidle.c — what an idle CPU of this machine does (cpuidle.h). */
#include "common/cpuidle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The whole of a small file under root into buf (n > 0, NUL-terminated); false if it
 * cannot be opened or read. Longer files are cut at n - 1 bytes: the files read here are a
 * line each. */
static bool
read_small(const char *root, const char *rel, char *buf, size_t n)
{
	char path[4096];
	size_t got = 0;
	ssize_t r = 0;
	int fd;

	if (n == 0 || snprintf(path, sizeof(path), "%s%s", root, rel) >= (int)sizeof(path))
		return false;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return false;
	while (got < n - 1) {
		r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return r >= 0;
}

/* True if the space-separated words of text include word exactly. */
static bool
has_word(const char *text, const char *word)
{
	size_t wn = strlen(word);
	const char *p = text;

	while (*p != '\0') {
		size_t len;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		if (len == wn && memcmp(p, word, wn) == 0)
			return true;
		p += len;
	}
	return false;
}

void
lk_cpuidle_parse(const char *cmdline, const char *driver, const char *halt_poll_ns,
		 struct lk_cpuidle *m)
{
	m->idle_poll = cmdline != NULL && has_word(cmdline, "idle=poll");
	m->cpuidle_seen = driver != NULL;
	m->driver[0] = '\0';
	if (driver != NULL) {
		size_t len = strcspn(driver, " \t\n");

		if (len < sizeof(m->driver)) {
			memcpy(m->driver, driver, len);
			m->driver[len] = '\0';
		}
	}
	m->halt_poll_ns = 0;
	m->halt_poll_seen = false;
	if (halt_poll_ns != NULL) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(halt_poll_ns, &end, 10);
		if (errno == 0 && end != halt_poll_ns && halt_poll_ns[0] >= '0' &&
		    halt_poll_ns[0] <= '9' && (*end == '\0' || *end == '\n')) {
			m->halt_poll_ns = v;
			m->halt_poll_seen = true;
		}
	}
}

void
lk_cpuidle_probe(const char *root, struct lk_cpuidle *m)
{
	char cmdline[4096], driver[64], ns[64], type[64];
	bool have_cmdline, have_driver, have_ns;

	memset(m, 0, sizeof(*m));
#if defined(__x86_64__) || defined(__i386__)
	{
		unsigned a, b, c, d;

		if (__get_cpuid(1, &a, &b, &c, &d))
			m->cpuid_hypervisor = (c & (1u << 31)) != 0;
	}
#endif
	m->sys_hypervisor = read_small(root, "/sys/hypervisor/type", type, sizeof(type)) &&
			    type[strspn(type, " \t\n")] != '\0';
	have_cmdline = read_small(root, "/proc/cmdline", cmdline, sizeof(cmdline));
	have_driver = read_small(root, "/sys/devices/system/cpu/cpuidle/current_driver", driver,
				 sizeof(driver));
	have_ns = read_small(root, "/sys/module/haltpoll/parameters/guest_halt_poll_ns", ns,
			     sizeof(ns));
	lk_cpuidle_parse(have_cmdline ? cmdline : NULL, have_driver ? driver : NULL,
			 have_ns ? ns : NULL, m);
}

bool
lk_cpuidle_poll_pays(const struct lk_cpuidle *m, const char **why)
{
	if (m->idle_poll) {
		*why = "idle CPUs poll already (idle=poll)";
		return false;
	}
	if (!m->cpuid_hypervisor && !m->sys_hypervisor) {
		*why = "not a virtual machine";
		return false;
	}
	if (strcmp(m->driver, "haltpoll") == 0 && m->halt_poll_ns > 0) {
		*why = "a virtual machine whose idle CPUs poll before halting (cpuidle haltpoll)";
		return false;
	}
	/* The kernel's own guest_halt_poll_ns is 200000: a haltpoll driver whose setting
	 * cannot be read most likely polls. */
	if (strcmp(m->driver, "haltpoll") == 0 && !m->halt_poll_seen) {
		*why = "a virtual machine whose idle CPUs are taken to poll before halting (cpuidle "
		       "haltpoll, guest_halt_poll_ns unreadable)";
		return false;
	}
	if (!m->cpuidle_seen) {
		*why = "a virtual machine whose idle CPUs are taken to halt without polling (no "
		       "/sys/devices/system/cpu/cpuidle to say otherwise)";
		return true;
	}
	*why = "a virtual machine whose idle CPUs halt without polling";
	return true;
}
