/*
 * Test crasher for symbolication: crashes at the end of a known call chain
 *
 *   main -> parse_config -> load_section -> crash_now
 *
 * so that a stack walk with the binary's Breakpad .sym file names every frame.
 * Built with -O2 -fomit-frame-pointer, so callers can only be found through
 * CFI. Each function is `noipa` (no inlining, cloning or interprocedural
 * shortcuts) and uses what its callee returns, so no call becomes a tail jump.
 *
 * Usage: symcrasher HANDLER_PATH [HANDLER_ARGS...]
 *
 * The crash itself is handled as in crasher.c: the SIGSEGV handler forks and
 * execs HANDLER_PATH HANDLER_ARGS... --trace-parent-with-exception=<address>,
 * waits for it and exits with its status (125 if it did not exit normally,
 * 127 if exec failed).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHAIN __attribute__((noipa))

/* Layout of Crashpad's ExceptionInformation on Linux. */
static struct {
    uint64_t siginfo_ptr;
    uint64_t ucontext_ptr;
    pid_t tid;
} exception_info;

static char **handler_argv;

static void on_crash(int signo, siginfo_t *info, void *ucontext)
{
    (void)signo;
    exception_info.siginfo_ptr = (uint64_t)(uintptr_t)info;
    exception_info.ucontext_ptr = (uint64_t)(uintptr_t)ucontext;
    exception_info.tid = (pid_t)syscall(SYS_gettid);

    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);

    pid_t child = fork();
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(handler_argv[0], handler_argv);
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0)
        _exit(125);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
}

/* The callee cannot see that `slot` is NULL, so this stays a plain store. */
CHAIN int crash_now(int *slot, int value)
{
    *slot = value;
    return value + 1;
}

CHAIN int load_section(const char *name, int depth)
{
    int *slot = depth > 100 ? (int *)&exception_info.tid : NULL;
    int written = crash_now(slot, (int)strlen(name) + depth);
    return written * 3 + depth;
}

CHAIN int parse_config(int argc, char **argv)
{
    int total = load_section(argv[0], argc);
    return total ^ argc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s HANDLER_PATH [HANDLER_ARGS...]\n", argv[0]);
        return 2;
    }

    /* Build the handler's argv now: nothing needs allocating in the handler. */
    static char trace_arg[64];
    snprintf(trace_arg, sizeof trace_arg, "--trace-parent-with-exception=%p",
             (void *)&exception_info);
    handler_argv = calloc((size_t)argc + 1, sizeof *handler_argv);
    if (!handler_argv)
        return 2;
    for (int i = 1; i < argc; i++)
        handler_argv[i - 1] = argv[i];
    handler_argv[argc - 1] = trace_arg;
    handler_argv[argc] = NULL;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);

    int result = parse_config(argc, argv);
    printf("not reached: %d\n", result);
    return 1;
}
