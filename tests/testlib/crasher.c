/*
 * Test crasher: makes a real Crashpad handler dump this process.
 *
 * Usage: crasher HANDLER_PATH [HANDLER_ARGS...]
 *
 * On SIGSEGV the signal handler records where the siginfo and ucontext are,
 * lets any process ptrace us, forks and execs
 *   HANDLER_PATH HANDLER_ARGS... --trace-parent-with-exception=<address>
 * in the child, waits for it and exits with the handler's exit status
 * (125 if it did not exit normally, 127 if exec failed).
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

    volatile int *volatile null_ptr = NULL;
    *null_ptr = 42;
    return 1; /* not reached */
}
