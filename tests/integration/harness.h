/*  harness - start real daemons for integration tests and wait on readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every helper waits on an event (readiness fd, process exit, socket
 *  reply) with a bounded timeout; none sleeps for a fixed time, and the
 *  conditions a test must poll go through vzt_wait_until.
 *  Binaries are found in $VZ_BIN_DIR, sources in $VZ_SOURCE_DIR.
 *
 *  A test's mesh in one call (see vzt_mesh_opts_t):
 *
 *      char *const env[] = {"gateway:VZ_GATEWAY_TIMEOUT_MS=1500", NULL};
 *      vzt_mesh_t *m = vzt_mesh_start(&(vzt_mesh_opts_t){
 *          .daemons = "echo,ratelimit,gateway", .identities = "tester", .env = env});
 *      ... vzt_request("GET", url, headers, NULL, 0, 5000, &resp) against
 *          vzt_mesh_url(m), vzt_mesh_stop(m, "echo"), vzt_mesh_restart(m, "echo") ...
 *      return vzt_mesh_destroy(&m);  //  and main returns vzt_result(...)
 *
 *  Not thread-safe, except vzt_request, vzt_http and vzt_metric.
 */
#ifndef VZ_HARNESS_H
#define VZ_HARNESS_H

#include <czmq.h>
#include <stdbool.h>

#include "vz_broker_contract.h"
#include "vz_client.h"

typedef struct vzt_proc_t vzt_proc_t;

//  A fresh directory under $TMPDIR (or /tmp); caller frees the string.
char *vzt_tempdir(const char *tag);
//  rm -rf dir.
void vzt_rmrf(const char *dir);
//  A currently free TCP port on 127.0.0.1 (vz_ports_free: outside the
//  kernel's ephemeral range, so no client socket takes it first).
int vzt_free_port(void);
//  A formatted heap string (caller frees); aborts when out of memory.
char *vzt_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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

//  One HTTP exchange as the test saw it. body and headers are heap,
//  NUL-terminated (the body may also hold NULs: use body_len); free with
//  vzt_resp_free.
typedef struct {
    long status;        //  HTTP status, 0 when no response came
    char *body;         //  response body
    size_t body_len;    //  its length in bytes
    char *headers;      //  raw "Name: value\r\n" block (all of it, status line included)
    size_t headers_len; //  its length
    double seconds;     //  total time of the exchange
} vzt_resp_t;

//  Send any method with the NULL-terminated "Name: value" headers (may be
//  NULL) and body (body_len bytes; NULL = no body) to url; fills *resp
//  (always: free it even on failure). 0, or -1 on transport failure or
//  timeout. Safe to call from several threads.
int vzt_request(const char *method, const char *url, const char *const *headers, const void *body,
                size_t body_len, int timeout_ms, vzt_resp_t *resp);
void vzt_resp_free(vzt_resp_t *resp);

//  The one sanctioned polling loop of the tests: call pred(arg) until it
//  returns true or timeout_ms passes, waiting 1 ms after the first miss and
//  doubling up to 50 ms. Returns the last answer of pred (which is asked
//  once more at the deadline).
typedef bool(vzt_pred_fn)(void *arg);
bool vzt_wait_until(vzt_pred_fn *pred, void *arg, int timeout_ms);

//  Wait until the series on port reaches at least min; false at timeout_ms.
bool vzt_wait_metric(int port, const char *series, double min, int timeout_ms);

//  Whether the file at path contains needle (false when it cannot be read).
bool vzt_file_has(const char *path, const char *needle);

//  0 when the log at path holds no sanitizer report (AddressSanitizer,
//  LeakSanitizer, UndefinedBehaviorSanitizer "runtime error:",
//  ThreadSanitizer); -1 otherwise, with the first offending line in why.
//  A missing log is clean.
int vzt_log_clean(const char *path, char *why, size_t n);

//  SIGTERM, wait up to 10 s (then SIGKILL), free; 0 when the process
//  exited with want_exit and its log (may be NULL) is clean, -1 otherwise
//  (the reason and the log's tail on stderr). *self_p NULL: 0.
int vzt_proc_stop(vzt_proc_t **self_p, const char *log, int want_exit);

//  Value of one series in the Prometheus text at http://127.0.0.1:port/metrics.
//  series is the name with its labels exactly as rendered, e.g.
//  vz_broker_workers{service="echo"}. 0 and *value, -ENOENT when the series
//  is absent (*value = 0), -1 when the page cannot be fetched.
int vzt_metric(int port, const char *series, double *value);
//  The /metrics page on port (heap, caller frees) into *page_p; 0, or -1
//  when it cannot be fetched or the status is not 200 (*page_p NULL).
int vzt_metrics_page(int port, char **page_p);
//  The first of the NULL-terminated names that page does not contain, or
//  NULL when it has them all.
const char *vzt_metrics_lack(const char *page, const char *const names[]);

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

//  --------------------------------------------------------------------------
//  A mesh in one call: keys, call policy, Redis (unless no_redis),
//  the broker and the named daemons, each started like the supervisor
//  would (vzt_daemon) and awaited on readiness.

typedef struct vzt_mesh_t vzt_mesh_t;

typedef struct {
    //  Comma-separated daemons to start after the broker, in order
    //  ("echo,ratelimit*2,gateway"); "name*N" starts N replicas tagged
    //  name.0 .. name.N-1, otherwise the tag is the name. "" = broker only.
    const char *daemons;
    //  More comma-separated identities to make keys for (in-test clients
    //  and workers: "tester,billing").
    const char *identities;
    //  Call policy text (ZPL); NULL: every identity but the broker and the
    //  gateway serves its own name, and every identity may call every
    //  served name and the broker.
    const char *policy;
    //  Settings as "K=V" (NULL-terminated, may be NULL): for every daemon,
    //  or only for one with a "name:" prefix ("gateway:VZ_GATEWAY_MAX_URL=1024").
    //  "{dir}" in a value stands for the mesh directory.
    char *const *env;
    //  Files written into the mesh directory before anything starts, as
    //  NULL-terminated name, text pairs. routes.cfg becomes the gateway's
    //  VZ_GATEWAY_ROUTES and ratelimit.cfg the limiter's VZ_RATELIMIT_POLICY.
    const char *const *files;
    const char *tag; //  temp dir tag (NULL = "mesh")
    bool no_redis;   //  do not start Redis (started by default; its port is still reserved)
} vzt_mesh_opts_t;

//  Start it all; NULL on failure (with the reason and the failing log's
//  tail on stderr; nothing is left running). The broker gets
//  VZ_BROKER_BIND and VZ_BROKER_POLICY, the gateway VZ_GATEWAY_PORT.
vzt_mesh_t *vzt_mesh_start(const vzt_mesh_opts_t *opts);
//  Stop everything (SIGTERM, in reverse order) and remove the directory
//  (kept when VZ_KEEP_TMP is set). Returns 0 when every daemon stopped
//  during the run or now exited as expected and no log holds a sanitizer
//  report, -1 otherwise: return it from the group teardown.
int vzt_mesh_destroy(vzt_mesh_t **self_p);
//  The test program's exit code: rc (cmocka's result) or, when that is 0,
//  1 if any mesh destroyed so far was unclean. cmocka reports a failed
//  group teardown but still returns 0, so main ends with
//  `return vzt_result(cmocka_run_group_tests(...));`.
int vzt_result(int rc);

const char *vzt_mesh_dir(const vzt_mesh_t *self);
//  dir/rel; the caller frees.
char *vzt_mesh_path(const vzt_mesh_t *self, const char *rel);
//  Write text to dir/name atomically (rename), e.g. a new routes.cfg.
int vzt_mesh_write(const vzt_mesh_t *self, const char *name, const char *text);
int vzt_mesh_broker_port(const vzt_mesh_t *self);
const char *vzt_mesh_endpoint(const vzt_mesh_t *self);   //  tcp://127.0.0.1:<broker port>
const char *vzt_mesh_broker_key(const vzt_mesh_t *self); //  Z85 public key
int vzt_mesh_redis_port(const vzt_mesh_t *self);
int vzt_mesh_http_port(const vzt_mesh_t *self);   //  the gateway's public port
const char *vzt_mesh_url(const vzt_mesh_t *self); //  http://127.0.0.1:<http port>
//  The admin port of the instance tagged tag (-1 when unknown).
int vzt_mesh_admin_port(const vzt_mesh_t *self, const char *tag);
//  The running process of tag ("redis" for Redis), NULL when stopped or unknown.
vzt_proc_t *vzt_mesh_proc(const vzt_mesh_t *self, const char *tag);
int vzt_mesh_pid(const vzt_mesh_t *self, const char *tag);
//  Path of tag's log (the caller frees).
char *vzt_mesh_log(const vzt_mesh_t *self, const char *tag);
//  The certificate of an identity (borrowed: the mesh owns it).
zcert_t *vzt_mesh_cert(vzt_mesh_t *self, const char *identity);
//  A new vz_client to the mesh's broker as identity (the caller destroys
//  it), or NULL when the identity has no key or the client cannot start.
vz_client_t *vzt_mesh_client(vzt_mesh_t *self, const char *identity);

//  broker.directory for service, asked through client (docs/protocol.md,
//  "Direct calls"): 1 when callers may call its workers directly, 0 when
//  not (weights, or an error answer, whose code is copied to code; "" for
//  a reply), -1 when no answer came or it did not decode. The listed
//  workers go to list (at most max, *n_p of them).
int vzt_directory(vz_client_t *client, const char *service, vz_broker_direct_t *list,
                  size_t max, size_t *n_p, char *code, size_t code_n);

//  SIGTERM tag and wait: 0 when it exited 0 and its log is clean, else -1
//  (the mesh also remembers the failure for vzt_mesh_destroy).
int vzt_mesh_stop(vzt_mesh_t *self, const char *tag);
//  Send sig (SIGKILL, SIGABRT...) and wait for the exit: 0 when it died of
//  that signal and its log holds no sanitizer report, else -1.
int vzt_mesh_kill(vzt_mesh_t *self, const char *tag, int sig);
//  Wait up to timeout_ms for tag to exit on its own and return its exit
//  code (or -ETIMEDOUT) for the test to judge; its log must still be free
//  of sanitizer reports (-1 otherwise).
int vzt_mesh_wait(vzt_mesh_t *self, const char *tag, int timeout_ms);
//  Start tag again (after stop or kill) with the same ports and settings,
//  awaiting readiness. 0 or -1.
int vzt_mesh_restart(vzt_mesh_t *self, const char *tag);
//  One more instance of daemon under a new tag, with the mesh's settings
//  for that daemon plus more ("K=V", NULL-terminated; may be NULL); it is
//  stopped and checked like the others. wait: await readiness. The
//  process (borrowed), or NULL.
vzt_proc_t *vzt_mesh_add(vzt_mesh_t *self, const char *daemon, const char *tag, char *const *more,
                         bool wait);

//  A mesh of keys for tests: dir/public, dir/secret with certificates for
//  each name in the NULL-terminated list (vz_curve_keygen).
int vzt_keys(const char *dir, const char *const names[]);

#endif
