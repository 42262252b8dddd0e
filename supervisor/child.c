/*  child - start and signal the supervisor's child processes
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "child.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vz_common.h"

//  A line to the child's log from between fork and exec (write(2) only).
static void s_say(const char *a, const char *b)
{
    ssize_t n = write(2, a, strlen(a));
    n = write(2, b, strlen(b));
    (void)n;
}

//  Runs between fork and exec: only async-signal-safe calls, no return.
static void s_child_exec(const sup_child_spec_t *spec, pid_t parent, int log_fd, int notify_w)
{
    setpgid(0, 0);
    //  The ids first: a change of uid clears the parent-death signal.
    bool ids_ok = !spec->set_ids ||
                  (setgroups(0, NULL) == 0 && setresgid(spec->gid, spec->gid, spec->gid) == 0 &&
                   setresuid(spec->uid, spec->uid, spec->uid) == 0);
    //  Die with the supervisor; if it died before prctl took effect, the
    //  reparenting already happened and getppid() tells us.
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(111);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    //  Every fd the child keeps goes above 4 first, so that moving one to
    //  its number never closes another (stdin may have been closed).
    int keep[3] = {log_fd, notify_w, spec->secret ? spec->secret_fd : -1};
    for (int i = 0; i < 3; i++)
        if (keep[i] >= 0 && (keep[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 10)) < 0)
            _exit(111);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(keep[0], 1) < 0 || dup2(keep[0], 2) < 0)
        _exit(111);
    if (!ids_ok) {
        s_say("vz-supervisor: unable to switch to the service's uid and gid (isolation = uid)",
              "\n");
        _exit(100);
    }
    int first_closed = 3;
    if (keep[1] >= 0) {
        if (dup2(keep[1], SUP_CHILD_NOTIFY_FD) < 0)
            _exit(111);
        first_closed = SUP_CHILD_NOTIFY_FD + 1;
    }
    if (keep[2] >= 0) {
        if (dup2(keep[2], SUP_CHILD_SECRET_FD) < 0)
            _exit(111);
        first_closed = SUP_CHILD_SECRET_FD + 1;
    }
    //  No supervisor fd (control socket, other pipes, logs) leaks into children.
    if (syscall(SYS_close_range, first_closed, ~0U, 0) < 0)
        for (int fd = first_closed; fd < 65536; fd++)
            close(fd);
    execve(spec->path, spec->argv, spec->envp);
    s_say("vz-supervisor: unable to execute ", spec->path);
    s_say(errno == EACCES   ? ": permission denied (as the service's uid, every directory on the "
                              "path must be searchable: docs/operations/isolation.md)\n"
          : errno == ENOENT ? ": no such file\n"
                            : ": exec failed\n",
          "");
    _exit(127);
}

int sup_child_spawn(const sup_child_spec_t *spec, int *notify_fd)
{
    assert(spec && spec->path && spec->argv && spec->envp && spec->log_path);
    assert(!spec->secret || (spec->notify && spec->secret_fd >= 0));
    int log_fd = open(spec->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0)
        return -errno;
    int pipefd[2] = {-1, -1};
    if (spec->notify && pipe2(pipefd, O_CLOEXEC) < 0) {
        int rc = -errno;
        close(log_fd);
        return rc;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_child_exec(spec, parent, log_fd, pipefd[1]);
    int rc = pid < 0 ? -errno : 0;
    close(log_fd);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (rc < 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        return rc;
    }
    //  Also set here so a signal sent before the child's own setpgid finds the group.
    setpgid(pid, pid);
    if (spec->notify) {
        fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
        *notify_fd = pipefd[0];
    }
    return pid;
}

int sup_child_signal(pid_t pid, int sig)
{
    assert(pid > 0);
    if (kill(-pid, sig) == 0)
        return 0;
    return kill(pid, sig) == 0 ? 0 : -errno;
}

int sup_child_resolve(const char *name, const char *bin_dir, char *out, size_t n)
{
    if (strchr(name, '/'))
        return vz_strlcpy(out, name, n) < 0 ? -ENOENT : 0;
    int len = snprintf(out, n, "%s/%s", bin_dir, name);
    if (len > 0 && (size_t)len < n && access(out, X_OK) == 0)
        return 0;
    const char *path = getenv("PATH");
    char buf[4096];
    if (!path || vz_strlcpy(buf, path, sizeof buf) < 0)
        return -ENOENT;
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        len = snprintf(out, n, "%s/%s", *dir ? dir : ".", name);
        if (len > 0 && (size_t)len < n && access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}
