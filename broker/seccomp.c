/* seccomp.c — the broker's system-call allow-list, for the rest of its life once it has
 * started (config "seccomp", or LATCHKEY_SECCOMP=1 in the environment; the container image
 * sets it).
 *
 * After start-up the broker only reads and writes sockets and a few files, takes memory,
 * starts threads (libcurl's resolver; the file watcher, when a reload adds the first file
 * source) and signals a pidfile's process. A classic BPF program over the system-call
 * number allows exactly those, on every thread (SECCOMP_FILTER_FLAG_TSYNC), with the
 * arguments of the broad ones narrowed: clone only for threads, socket only for Unix,
 * IPv4, IPv6 and netlink, ioctl only for the few requests libc and libcurl make, prctl
 * only to name a thread. Anything else kills the process (SIGSYS): a compromised broker
 * cannot exec, ptrace, mount, or open a raw socket.
 * clone3 answers ENOSYS, so that glibc falls back to clone, whose flags can be checked.
 *
 * Sanitizer builds log what is outside the list instead of killing (their runtimes make
 * calls of their own, ptrace among them for the leak checker at exit); the calls that are
 * never allowed (execve, mount, setuid, ...) are killed in every build.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "broker/internal.h"

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SECCOMP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SECCOMP_SANITIZER 1
#endif
#endif

#ifdef SECCOMP_SANITIZER
#define SECCOMP_OTHERS SECCOMP_RET_LOG
#else
#define SECCOMP_OTHERS SECCOMP_RET_KILL_PROCESS
#endif

/* Allowed whatever their arguments. */
static const int allowed[] = {
	/* memory */
	__NR_brk, __NR_mmap, __NR_munmap, __NR_mprotect, __NR_madvise, __NR_mremap,
	__NR_mlock, __NR_munlock,
	/* threads, time, signals */
	__NR_futex, __NR_set_robust_list, __NR_get_robust_list, __NR_rseq, __NR_exit,
	__NR_exit_group, __NR_sched_yield, __NR_sched_getaffinity, __NR_gettid, __NR_getpid,
	__NR_tgkill, __NR_rt_sigprocmask, __NR_rt_sigaction, __NR_rt_sigreturn,
	__NR_rt_sigtimedwait, __NR_sigaltstack, __NR_restart_syscall, __NR_nanosleep,
	__NR_clock_nanosleep, __NR_clock_gettime, __NR_clock_getres, __NR_gettimeofday,
	/* files: the journal, rendered files, credential files, /proc for pidfile checks */
	__NR_openat, __NR_close, __NR_read, __NR_write, __NR_pread64, __NR_readv, __NR_writev,
	__NR_lseek, __NR_fstat, __NR_newfstatat, __NR_statx, __NR_fsync, __NR_fdatasync,
	__NR_renameat, __NR_unlinkat, __NR_fchmod, __NR_fchown, __NR_getdents64,
	__NR_readlinkat, __NR_faccessat, __NR_fcntl, __NR_dup,
	/* file sources: their directories are watched (the inotify instance is made before) */
	__NR_inotify_add_watch, __NR_inotify_rm_watch,
	/* sockets */
	__NR_connect, __NR_accept4, __NR_getsockname, __NR_getpeername, __NR_getsockopt,
	__NR_setsockopt, __NR_sendto, __NR_recvfrom, __NR_sendmsg, __NR_recvmsg,
	__NR_sendmmsg, __NR_recvmmsg, __NR_shutdown, __NR_socketpair, __NR_bind,
	__NR_pipe2, __NR_eventfd2, __NR_epoll_create1, __NR_epoll_ctl, __NR_epoll_pwait,
	__NR_ppoll, __NR_pselect6,
	/* the pidfile's process */
	__NR_kill,
	/* identity and limits */
	__NR_getuid, __NR_geteuid, __NR_getgid, __NR_getegid, __NR_getrandom, __NR_uname,
	__NR_sysinfo, __NR_prlimit64, __NR_getrusage,
#ifdef __NR_pidfd_open
	__NR_pidfd_open, __NR_pidfd_send_signal,
#endif
#ifdef __NR_faccessat2
	__NR_faccessat2,
#endif
#ifdef __NR_renameat2
	__NR_renameat2,
#endif
#ifdef __NR_epoll_pwait2
	__NR_epoll_pwait2,
#endif
	/* calls x86-64 still has beside their *at forms */
#ifdef __NR_open
	__NR_open, __NR_stat, __NR_lstat, __NR_rename, __NR_unlink, __NR_readlink,
	__NR_access, __NR_poll, __NR_select, __NR_epoll_wait, __NR_epoll_create, __NR_pipe,
	__NR_dup2, __NR_time, __NR_arch_prctl,
#endif
};

/* Never allowed, in any build: killed at once. */
static const int never[] = {
	__NR_execve, __NR_execveat, __NR_process_vm_readv, __NR_process_vm_writev,
#ifndef SECCOMP_SANITIZER
	/* The leak checker's tracer uses it at exit. */
	__NR_ptrace,
#endif
	__NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_setns, __NR_unshare,
	__NR_init_module, __NR_finit_module, __NR_delete_module, __NR_kexec_load,
	__NR_bpf, __NR_perf_event_open, __NR_keyctl, __NR_add_key, __NR_request_key,
	__NR_setuid, __NR_setgid, __NR_setreuid, __NR_setregid, __NR_setresuid,
	__NR_setresgid, __NR_setgroups, __NR_capset,
#ifdef __NR_fork
	__NR_fork, __NR_vfork,
#endif
};

#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define KILL BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define OTHERS BPF_STMT(BPF_RET | BPF_K, SECCOMP_OTHERS)
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]))
#define LOAD_ARG1 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]))

/* Room for the program: a test and a return per call, and the narrowed ones. */
#define PROGRAM_MAX 512

struct program {
	struct sock_filter f[PROGRAM_MAX];
	unsigned short n;
};

static void
put(struct program *p, struct sock_filter s)
{
	if (p->n < PROGRAM_MAX)
		p->f[p->n] = s;
	p->n++;
}

/* if nr == call: ret; else go on. */
static void
put_call(struct program *p, int call, struct sock_filter ret)
{
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)call, 0, 1));
	put(p, ret);
}

/* if nr == call: allow when (arg & mask) == want, else others. Every way out of the block
 * returns once the argument is loaded, so a call that is not this one skips it with the
 * number still in the accumulator. */
static void
put_call_arg_masked(struct program *p, int call, struct sock_filter load, unsigned mask,
		    unsigned want)
{
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)call, 0, 5));
	put(p, load);
	put(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, mask));
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, want, 0, 1));
	put(p, (struct sock_filter)ALLOW);
	put(p, (struct sock_filter)OTHERS);
}

/* if nr == call: allow when arg is one of values (at most 8), else others; as above. */
static void
put_call_arg_in(struct program *p, int call, struct sock_filter load, const unsigned *values,
		unsigned nvalues)
{
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)call, 0,
					    (unsigned char)(nvalues + 3)));
	put(p, load);
	for (unsigned i = 0; i < nvalues; i++)
		put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, values[i],
						    (unsigned char)(nvalues - i), 0));
	put(p, (struct sock_filter)OTHERS);
	put(p, (struct sock_filter)ALLOW);
}

static int
build(struct program *p)
{
	static const unsigned domains[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };
	static const unsigned ioctls[] = { FIONREAD, FIONBIO, TCGETS };
	static const unsigned prctls[] = { PR_SET_NAME, PR_GET_NAME };

	p->n = 0;
#ifdef SECCOMP_ARCH
	put(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					    offsetof(struct seccomp_data, arch)));
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0));
	put(p, (struct sock_filter)KILL);
#else
	return -ENOTSUP;
#endif
	put(p, (struct sock_filter)LOAD_NR);
#if defined(__x86_64__)
	/* The x32 ABI shares the architecture number: refuse it whole. */
	put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
	put(p, (struct sock_filter)KILL);
#endif
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		put_call(p, never[i], (struct sock_filter)KILL);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		put_call(p, allowed[i], (struct sock_filter)ALLOW);
	put_call(p, __NR_clone3, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
				  SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
	put_call_arg_in(p, __NR_socket, (struct sock_filter)LOAD_ARG0, domains, 4);
	put_call_arg_in(p, __NR_ioctl, (struct sock_filter)LOAD_ARG1, ioctls, 3);
	put_call_arg_in(p, __NR_prctl, (struct sock_filter)LOAD_ARG0, prctls, 2);
	put_call_arg_masked(p, __NR_clone, (struct sock_filter)LOAD_ARG0, CLONE_THREAD,
			    CLONE_THREAD);
	put(p, (struct sock_filter)OTHERS);
	return p->n <= PROGRAM_MAX ? 0 : -E2BIG;
}

int
broker_seccomp_install(struct lk_error *err)
{
	struct program p;
	struct sock_fprog prog;
	int rc;

	if ((rc = build(&p)) < 0)
		return lk_error_set(err, rc, "seccomp: %s", rc == -ENOTSUP ?
				    "not supported on this architecture" : "allow-list too long");
	prog.len = p.n;
	prog.filter = p.f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return lk_error_set(err, -errno, "seccomp: no_new_privs: %s", strerror(errno));
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return lk_error_set(err, -errno, "seccomp: installing the filter: %s",
				    strerror(errno));
	return 0;
}

bool
broker_seccomp_enforcing(void)
{
#ifdef SECCOMP_SANITIZER
	return false;
#else
	return true;
#endif
}
