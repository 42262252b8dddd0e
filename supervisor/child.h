/*  child - start and signal the supervisor's child processes
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A child runs in its own process group (so a terminal's Ctrl-C reaches
 *  only the supervisor, which then stops children in order), dies with the
 *  supervisor (PR_SET_PDEATHSIG, checked against a race with getppid),
 *  gets /dev/null as stdin, its log file as stdout and stderr, the write
 *  end of its readiness pipe as fd 3 (VZ_NOTIFY_FD=3) and no other fd.
 *  Called from the supervisor's single thread only.
 */
#ifndef SUP_CHILD_H
#define SUP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

//  The fd number a child finds its readiness pipe on.
#define SUP_CHILD_NOTIFY_FD 3

typedef struct {
    const char *path;     //  executable, absolute or relative to the cwd
    char *const *argv;    //  NULL-terminated, argv[0] included
    char *const *envp;    //  complete environment, NULL-terminated
    const char *log_path; //  appended to; created 0644
    bool notify;          //  give the child a readiness pipe on fd 3
} sup_child_spec_t;

//  Fork and exec. Returns the pid, and in *notify_fd (when spec->notify)
//  the non-blocking, close-on-exec read end of the readiness pipe; or
//  -errno when the log file, the pipe or fork failed. A failed exec shows
//  up as exit code 127.
int sup_child_spawn(const sup_child_spec_t *spec, int *notify_fd);

//  Send sig to the child's process group, or to pid alone if the group is
//  gone. 0 or -errno.
int sup_child_signal(pid_t pid, int sig);

//  Find name (no slash) in bin_dir, then in $PATH; a name with a slash is
//  taken as is. Writes the path to out. 0 or -ENOENT.
int sup_child_resolve(const char *name, const char *bin_dir, char *out, size_t n);

#endif
