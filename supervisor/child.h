/*  child - start and signal the supervisor's child processes
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A child runs in its own process group (so a terminal's Ctrl-C reaches
 *  only the supervisor, which then stops children in order), dies with the
 *  supervisor (PR_SET_PDEATHSIG, checked against a race with getppid),
 *  gets /dev/null as stdin, its log file as stdout and stderr, the write
 *  end of its readiness pipe as fd 3 (VZ_NOTIFY_FD=3), the read end of
 *  its secret pipe as fd 4 (VZ_CURVE_SECRET_FD=4, isolation fd) and no
 *  other fd. With set_ids it drops to its own uid and gid, and no
 *  supplementary groups, before anything else (isolation uid).
 *  Called from the supervisor's single thread only.
 */
#ifndef SUP_CHILD_H
#define SUP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

//  The fd numbers a child finds its readiness pipe and its secret on.
#define SUP_CHILD_NOTIFY_FD 3
#define SUP_CHILD_SECRET_FD 4

typedef struct {
    const char *path;     //  executable, absolute or relative to the cwd
    char *const *argv;    //  NULL-terminated, argv[0] included
    char *const *envp;    //  complete environment, NULL-terminated
    const char *log_path; //  appended to; created 0644
    bool notify;          //  give the child a readiness pipe on fd 3
    bool secret;          //  give the child secret_fd as fd 4 (needs notify)
    int secret_fd;        //  with secret: a read end the caller still owns and closes
    bool set_ids;         //  run as uid:gid instead of the supervisor's ids
    uid_t uid;            //  with set_ids
    gid_t gid;            //  with set_ids
} sup_child_spec_t;

//  Fork and exec. Returns the pid, and in *notify_fd (when spec->notify)
//  the non-blocking, close-on-exec read end of the readiness pipe; or
//  -errno when the log file, the pipe or fork failed. A failed exec shows
//  up as exit code 127, a failed switch to uid:gid as 100; either writes
//  a line saying why to the log.
int sup_child_spawn(const sup_child_spec_t *spec, int *notify_fd);

//  Send sig to the child's process group, or to pid alone if the group is
//  gone. 0 or -errno.
int sup_child_signal(pid_t pid, int sig);

//  Find name (no slash) in bin_dir, then in $PATH; a name with a slash is
//  taken as is. Writes the path to out. 0 or -ENOENT.
int sup_child_resolve(const char *name, const char *bin_dir, char *out, size_t n);

#endif
