/*  harness - start real daemons for integration tests and wait on readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every helper waits on an event (readiness fd, process exit, socket
 *  reply) with a bounded timeout; none sleeps for a fixed time.
 *  Binaries are found in $VZ_BIN_DIR, sources in $VZ_SOURCE_DIR.
 */
#ifndef VZ_HARNESS_H
#define VZ_HARNESS_H

#include <czmq.h>
#include <stdbool.h>

typedef struct vzt_proc_t vzt_proc_t;

//  A fresh directory under $TMPDIR (or /tmp); caller frees the string.
char *vzt_tempdir(const char *tag);
//  rm -rf dir.
void vzt_rmrf(const char *dir);
//  A currently free TCP port on 127.0.0.1.
int vzt_free_port(void);
//  Path of a binary in $VZ_BIN_DIR (static buffer per call site is not
//  used: caller frees).
char *vzt_bin(const char *name);

//  Start bin with argv (argv[0] included, NULL-terminated) and the current
//  environment plus env_extra ("K=V", NULL-terminated; may be NULL), with
//  VZ_NOTIFY_FD set; stdout/stderr go to log_path (may be NULL = inherit).
//  Waits up to ready_ms for the readiness line; returns NULL if the process
//  exits or stays silent (it is then killed).
vzt_proc_t *vzt_spawn(const char *bin, char *const argv[], char *const env_extra[],
                      const char *log_path, int ready_ms);
//  Start without waiting for readiness (for processes expected to fail).
vzt_proc_t *vzt_spawn_nowait(const char *bin, char *const argv[], char *const env_extra[],
                             const char *log_path);
int vzt_proc_pid(const vzt_proc_t *self);
//  Wait up to timeout_ms for exit; returns the exit code (128+sig when
//  killed by a signal) or -ETIMEDOUT.
int vzt_proc_wait(vzt_proc_t *self, int timeout_ms);
//  SIGTERM, wait up to 5 s, SIGKILL; frees. Idempotent.
void vzt_proc_destroy(vzt_proc_t **self_p);

//  GET url with libcurl (timeout_ms). Fills *status and, if body_p, a heap
//  body the caller frees. 0 or -1 on transport failure.
int vzt_http(const char *method, const char *url, const char *body, long *status, char **body_p,
             int timeout_ms);

//  Value of one series in the Prometheus text at http://127.0.0.1:port/metrics.
//  series is the name with its labels exactly as rendered, e.g.
//  vz_broker_workers{service="echo"}. 0 and *value, -ENOENT when the series
//  is absent (*value = 0), -1 when the page cannot be fetched.
int vzt_metric(int port, const char *series, double *value);

//  A throwaway redis-server on 127.0.0.1:port (no persistence, files in
//  dir, log in dir/redis.log), returned once it answers PING; NULL if it
//  exits or stays silent for ready_ms.
vzt_proc_t *vzt_redis(const char *dir, int port, int ready_ms);

//  Start vz-<name> the way the supervisor would, with keys under dir/keys
//  (dir/keys/secret/<name>.key, allow dir dir/keys/public, the broker's
//  public key), the broker on broker_port, Redis on redis_port, the admin
//  HTTP port admin_port (0 = a free one), then the NULL-terminated "K=V"
//  entries of more (may be NULL). Output goes to dir/<log_name>.log
//  (log_name NULL = name). wait: wait for readiness; on failure the log's
//  tail is shown on stderr, since the directory goes away with the test.
vzt_proc_t *vzt_daemon(const char *dir, const char *name, const char *log_name, int broker_port,
                       int redis_port, int admin_port, char *const *more, bool wait);

//  Value of header `name` (case-insensitive) in a raw "Name: value\r\n"
//  block, copied into out (truncated to n-1); NULL when absent.
const char *vzt_header(const char *headers, const char *name, char *out, size_t n);

//  A mesh of keys for tests: dir/public, dir/secret with certificates for
//  each name in the NULL-terminated list (vz_curve_keygen).
int vzt_keys(const char *dir, const char *const names[]);

#endif
