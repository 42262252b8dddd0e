/*  supervisor - run the mesh: start in dependency order, restart, stop in reverse
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "supervisor.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "control.h"
#include "isolation.h"
#include "probe.h"
#include "redis_acl.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_log.h"
#include "vz_ports.h"

#define S_BACKOFF_MIN_MS 100    //  first restart delay
#define S_BACKOFF_MAX_MS 10000  //  delay cap
#define S_STABLE_MS 10000       //  uptime after which the backoff resets
#define S_DEATH_LIMIT 5         //  more deaths than this ...
#define S_DEATH_WINDOW_MS 30000 //  ... within this window: failed
#define S_MAX_CLIENTS 16        //  concurrent vzctl connections
#define S_PING_MS 100           //  bound of one Redis PING while it starts
#define S_PING_EVERY_MS 50      //  Redis PING interval while it starts
#define S_PROBE_MAX_MS 500      //  bound of one live readiness probe
#define S_PROBE_MIN_MS 100      //  ... which is the poll interval but at least this
#define S_PROBE_ERRORS 3        //  unanswered probes in a row before "not ready"
#define S_TICK_BUSY_MS 50       //  poll timeout while something is in transition
#define S_TICK_IDLE_MS 500      //  poll timeout otherwise
#define S_MAX_ARGS 16           //  words in a command line or a request
#define S_ROTATE_EVERY_MS 1000  //  how often log sizes are checked

typedef enum {
    ST_STOPPED,
    ST_WAITING,
    ST_STARTING,
    ST_READY,
    ST_BACKOFF,
    ST_STOPPING,
    ST_FAILED,
    ST_COUNT
} s_state_t;

typedef enum { EV_START, EV_STOP, EV_TICK, EV_NOTIFIED, EV_PROBED, EV_EXIT, EV_COUNT } s_event_t;

static const char *const s_state_names[ST_COUNT] = {
    "stopped", "waiting", "starting", "ready", "backoff", "stopping", "failed",
};

typedef struct {
    int service;                       //  index into cfg->services
    int index;                         //  replica number
    bool present;                      //  slot exists (below the desired count, or still draining)
    bool wanted;                       //  should be running
    s_state_t state;                   //  current state
    pid_t pid;                         //  0 when no process
    pid_t last_pid;                    //  the process that exited last (for logs)
    int notify_fd;                     //  read end of the readiness pipe, -1 when none
    int admin_port;                    //  VZ_ADMIN_PORT handed to this replica
    int64_t started_ms;                //  monotonic time of the last spawn
    int64_t due_ms;                    //  backoff end or stop deadline
    bool killed;                       //  SIGKILL already sent while stopping
    int status;                        //  last waitpid status
    int spawns;                        //  processes started (restarts = spawns - 1)
    int streak;                        //  consecutive deaths before S_STABLE_MS (backoff exponent)
    bool became_ready;                 //  the current process reached ST_READY
    int failed_starts;                 //  deaths in a row of processes that never became ready
    int64_t deaths[S_DEATH_LIMIT + 1]; //  ring of recent death times
    size_t death_count;                //  deaths recorded in the ring (saturates)
    size_t death_pos;                  //  next slot in the ring
    char reason[128];                  //  why it is failed
    bool start_timed_out;              //  being stopped because it never notified
    sup_probe_t *probe;                //  readiness probe in flight, NULL when none
    sup_probe_result_t probed;         //  result of the probe that just finished
    int64_t next_probe_ms;             //  when the next probe is due
    bool live_ready;                   //  latest probes say ready (meaningful in ST_READY)
    int probe_errors;                  //  unanswered probes in a row
    char not_ready[SUP_PROBE_REASON_MAX]; //  why the latest probes say not ready
} s_replica_t;

#define S_CANARY_ENV 8 //  settings a canary may override

typedef struct {
    s_replica_t replicas[SUP_MESH_MAX_REPLICAS]; //  slots by replica index
    int desired;                                 //  replicas that should exist
    int roll_next;    //  rolling restart: next index to restart, -1 when idle
    int roll_current; //  replica being restarted, -1 when none
    bool roll_failed; //  a replica failed during the roll
    bool rotating;    //  the roll is part of a key rotation
    int roll_only;    //  the roll restarts this replica only, -1 = every replica
    int roll_count;   //  replicas the roll restarted so far

    //  Canaries (vzctl rollout, the `canary` command).
    int canary_from;                            //  replicas from this index are canaries
    int canary_count;                           //  canary replicas, 0 = none
    size_t canary_env_count;                    //  entries in canary_env
    char canary_env[S_CANARY_ENV][VZ_PATH_MAX]; //  "K=V" over the service's env
    char canary_command[VZ_PATH_MAX];           //  command of the canaries, "" = the service's
} s_service_t;

typedef enum { OP_NONE, OP_WAIT, OP_ROLL, OP_STOP, OP_UPDATE } s_op_t;

//  What `update` does to a service of the new configuration.
typedef enum { CH_SAME, CH_ADDED, CH_CHANGED, CH_SCALED, CH_SETTINGS } s_change_t;

//  The difference between the running configuration and the file.
typedef struct {
    int from[SUP_MESH_MAX_SERVICES];        //  new index -> old index, -1 when added
    s_change_t kind[SUP_MESH_MAX_SERVICES]; //  by new index
    bool removed[SUP_MESH_MAX_SERVICES];    //  by old index
    int changes;                            //  services added, removed or changed in any way
} s_diff_t;

typedef struct {
    int fd;                         //  -1 when the slot is free
    char buf[SUP_CONTROL_LINE_MAX]; //  request bytes so far
    size_t len;                     //  bytes in buf
    s_op_t op;                      //  pending operation
    int service;                    //  its service, -1 = whole mesh
    int replica;                    //  its replica, -1 = every replica
    int64_t deadline;               //  for OP_WAIT
    char target[VZ_NAME_MAX + 16];  //  the target as the client wrote it (for the reply)
} s_client_t;

//  Growable response text.
typedef struct {
    char *data; //  heap, NUL-terminated
    size_t len; //  bytes used
    size_t cap; //  bytes allocated
} s_buf_t;

struct sup_supervisor_t {
    sup_mesh_config_t *cfg;                      //  owned configuration
    s_service_t services[SUP_MESH_MAX_SERVICES]; //  runtime state, same order as cfg
    s_client_t clients[S_MAX_CLIENTS];           //  control connections
    int listen_fd;                               //  control socket
    int signal_fd;                               //  signalfd
    int notify_out;                              //  our own VZ_NOTIFY_FD, -1 when absent or used
    bool announced;                              //  mesh readiness logged/notified
    bool shutting_down;                          //  shutdown in progress
    int shutdown_tier;                           //  tier being stopped
    unsigned seed;                               //  jitter
    struct pollfd *pfds;                         //  poll set, rebuilt every turn
    sigset_t old_mask;                           //  mask to restore on destroy
    char config_path[VZ_PATH_MAX];               //  the file `reread` and `update` read again
    char exe_dir[VZ_PATH_MAX];                   //  default bin_dir
    int lock_fd;                                 //  flock on <state>/supervisor.lock
    int64_t next_rotate_ms;                      //  next check of the log sizes
    sup_mesh_config_t *pending_cfg;              //  `update` waiting for old processes to exit
    s_diff_t pending_diff;                       //  ... and what it changes
    char *pending_reply;                         //  ... and what it will answer (heap)
};

typedef void (*s_action_t)(sup_supervisor_t *self, s_replica_t *r);

static void s_buf_printf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_buf_printf(s_buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        assert(n >= 0);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->data = realloc(b->data, b->cap);
        assert(b->data);
    }
}

static const sup_mesh_service_t *s_svc_cfg(sup_supervisor_t *self, const s_replica_t *r)
{
    return &self->cfg->services[r->service];
}

static void s_log_replica(vz_log_level_t level, sup_supervisor_t *self, const s_replica_t *r,
                          const char *msg, const char *key, const char *value)
{
    if (!vz_log_enabled(level))
        return;
    char idx[16], pid[16];
    snprintf(idx, sizeof idx, "%d", r->index);
    snprintf(pid, sizeof pid, "%d", (int)(r->pid ? r->pid : r->last_pid));
    vz_log_write(level, NULL, msg, "target", s_svc_cfg(self, r)->name, "replica", idx, "pid", pid,
                 key, value, (const char *)0);
}

static void s_set_state(sup_supervisor_t *self, s_replica_t *r, s_state_t state)
{
    if (r->state == state)
        return;
    vz_debug(NULL, "replica state", "target", s_svc_cfg(self, r)->name, "from",
             s_state_names[r->state], "to", s_state_names[state]);
    //  A probe belongs to the state that started it (startup PING or live poll).
    sup_probe_destroy(&r->probe);
    r->next_probe_ms = vz_clock_mono_ms();
    if (state == ST_READY) {
        r->became_ready = true;
        r->failed_starts = 0;
        //  The notification is the first "ready"; polls take over from here.
        r->live_ready = true;
        r->probe_errors = 0;
        r->not_ready[0] = '\0';
        r->next_probe_ms += s_svc_cfg(self, r)->ready_poll_ms;
    }
    r->state = state;
}

//  Ready now: notified, alive, and not reported unready by the latest poll.
static bool s_replica_ready(const s_replica_t *r)
{
    return r->state == ST_READY && r->live_ready;
}

static void s_close_notify(s_replica_t *r)
{
    if (r->notify_fd >= 0)
        close(r->notify_fd);
    r->notify_fd = -1;
}

//  ---------------------------------------------------------------------------
//  Spawning

//  Append "key=value" to env, replacing an existing entry for key.
static void s_env_set(char **env, size_t *count, size_t cap, const char *key, const char *value)
{
    size_t klen = strlen(key);
    char *entry = NULL;
    int n = asprintf(&entry, "%s=%s", key, value);
    assert(n >= 0 && entry);
    for (size_t i = 0; i < *count; i++)
        if (strncmp(env[i], key, klen) == 0 && env[i][klen] == '=') {
            free(env[i]);
            env[i] = entry;
            return;
        }
    assert(*count + 1 < cap);
    env[(*count)++] = entry;
}

//  The child's environment: ours, then the mesh wiring, then the service's own.
static char **s_child_env(sup_supervisor_t *self, const s_replica_t *r)
{
    const sup_mesh_config_t *cfg = self->cfg;
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    size_t base = 0;
    while (environ[base])
        base++;
    size_t cap = base + 16 + SUP_MESH_MAX_ENV, count = 0;
    char **env = calloc(cap, sizeof *env);
    assert(env);
    for (size_t i = 0; i < base; i++) {
        //  A VZ_NOTIFY_FD meant for us must not reach the child, nor a key of ours.
        if (strncmp(environ[i], "VZ_NOTIFY_FD=", 13) == 0 ||
            strncmp(environ[i], "VZ_CURVE_CERT=", 14) == 0 ||
            strncmp(environ[i], "VZ_CURVE_SECRET_FD=", 19) == 0)
            continue;
        env[count] = strdup(environ[i]);
        assert(env[count]);
        count++;
    }
    char value[VZ_PATH_MAX * 2];
    if (cfg->isolation == SUP_ISOLATION_FD) {
        //  The secret comes through a pipe (s_spawn); the child gets no path to it.
        snprintf(value, sizeof value, "%d", SUP_CHILD_SECRET_FD);
        s_env_set(env, &count, cap, "VZ_CURVE_SECRET_FD", value);
    } else {
        snprintf(value, sizeof value, "%s/keys/secret/%s.key", cfg->state_dir, svc->name);
        s_env_set(env, &count, cap, "VZ_CURVE_CERT", value);
    }
    snprintf(value, sizeof value, "%s/keys/public", cfg->state_dir);
    s_env_set(env, &count, cap, "VZ_CURVE_ALLOW_DIR", value);
    snprintf(value, sizeof value, "%s/keys/public/broker.key", cfg->state_dir);
    s_env_set(env, &count, cap, "VZ_BROKER_KEY", value);
    int port = sup_mesh_config_port(cfg, "broker");
    if (port > 0) {
        snprintf(value, sizeof value, "tcp://127.0.0.1:%d", port);
        s_env_set(env, &count, cap, "VZ_BROKER_ENDPOINTS", value);
    }
    port = sup_mesh_config_port(cfg, "redis");
    if (port > 0) {
        //  Its own ACL user of the built-in Redis (redis_acl.h); a Redis of
        //  someone else's, or no secret: no password.
        bool builtin = false;
        for (size_t i = 0; i < cfg->service_count; i++)
            builtin = builtin || cfg->services[i].builtin_redis;
        if (!builtin || sup_redis_acl_url(cfg, svc->name, port, value, sizeof value) < 0)
            snprintf(value, sizeof value, "redis://127.0.0.1:%d", port);
        s_env_set(env, &count, cap, "VZ_REDIS_URL", value);
    }
    snprintf(value, sizeof value, "%d", r->admin_port);
    s_env_set(env, &count, cap, "VZ_ADMIN_PORT", value);
    snprintf(value, sizeof value, "%d", r->index);
    s_env_set(env, &count, cap, "VZ_REPLICA", value);
    snprintf(value, sizeof value, "%d", SUP_CHILD_NOTIFY_FD);
    s_env_set(env, &count, cap, "VZ_NOTIFY_FD", value);
    for (size_t i = 0; i < svc->env_count; i++) {
        char err[128];
        //  Validated at load; ports are final by now.
        int rc =
            sup_mesh_config_expand(cfg, svc->env[i].value, value, sizeof value, err, sizeof err);
        assert(rc == 0);
        s_env_set(env, &count, cap, svc->env[i].key, value);
    }
    //  A canary's settings (vzctl rollout) win over the service's.
    const s_service_t *s = &self->services[r->service];
    for (size_t i = 0; s->canary_count && r->index >= s->canary_from && i < s->canary_env_count;
         i++) {
        char key[VZ_NAME_MAX];
        size_t klen = strcspn(s->canary_env[i], "=");
        snprintf(key, sizeof key, "%.*s", (int)klen, s->canary_env[i]);
        s_env_set(env, &count, cap, key, s->canary_env[i] + klen + 1);
    }
    return env;
}

static void s_free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

//  argv of a service: the expanded command split on blanks, or redis-server's.
static char **s_child_argv(sup_supervisor_t *self, const s_replica_t *r)
{
    const sup_mesh_config_t *cfg = self->cfg;
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    char **argv = calloc(S_MAX_ARGS + 1, sizeof *argv);
    assert(argv);
    size_t n = 0;
    if (svc->builtin_redis) {
        char port[16], dir[VZ_PATH_MAX + 16], acl[VZ_PATH_MAX + 32];
        snprintf(port, sizeof port, "%d", sup_mesh_config_port(cfg, "redis"));
        snprintf(dir, sizeof dir, "%s/redis", cfg->state_dir);
        sup_redis_acl_path(cfg, acl, sizeof acl);
        const char *args[] = {"redis-server", "--port",    port, "--bind",
                              "127.0.0.1",    "--dir",     dir,  "--appendonly",
                              "yes",          "--save",    "",   "--protected-mode",
                              "yes",          "--aclfile", acl};
        _Static_assert(sizeof args / sizeof args[0] <= S_MAX_ARGS, "redis-server's words fit");
        for (; n < sizeof args / sizeof args[0]; n++)
            argv[n] = strdup(args[n]);
        return argv;
    }
    char cmd[VZ_PATH_MAX], err[128];
    const s_service_t *s = &self->services[r->service];
    bool canary = s->canary_count && r->index >= s->canary_from && *s->canary_command;
    int rc = sup_mesh_config_expand(cfg, canary ? s->canary_command : svc->command, cmd, sizeof cmd,
                                    err, sizeof err);
    if (rc < 0 && canary) //  an operator's path, not validated at load: taken as written
        vz_strlcpy(cmd, s->canary_command, sizeof cmd);
    assert(rc == 0 || canary);
    char *save = NULL;
    for (char *tok = strtok_r(cmd, " \t", &save); tok && n < S_MAX_ARGS;
         tok = strtok_r(NULL, " \t", &save))
        argv[n++] = strdup(tok);
    return argv;
}

static void s_fail_replica(sup_supervisor_t *self, s_replica_t *r, const char *reason)
{
    vz_strlcpy(r->reason, reason, sizeof r->reason);
    s_set_state(self, r, ST_FAILED);
    s_log_replica(VZ_LOG_ERROR, self, r, "replica failed", "reason", reason);
}

static void s_spawn(sup_supervisor_t *self, s_replica_t *r)
{
    const sup_mesh_config_t *cfg = self->cfg;
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    char **argv = s_child_argv(self, r);
    char path[VZ_PATH_MAX], log_path[VZ_PATH_MAX + VZ_NAME_MAX + 32];
    snprintf(log_path, sizeof log_path, "%s/logs/%s.%d.log", cfg->state_dir, svc->name, r->index);
    if (!argv[0] || sup_child_resolve(argv[0], cfg->bin_dir, path, sizeof path) < 0) {
        char why[VZ_PATH_MAX + 64];
        snprintf(why, sizeof why, "command not found: %s", argv[0] ? argv[0] : "(empty)");
        s_fail_replica(self, r, why);
        s_free_strv(argv);
        return;
    }
    char **env = s_child_env(self, r);
    sup_child_spec_t spec = {.path = path,
                             .argv = argv,
                             .envp = env,
                             .log_path = log_path,
                             .notify = !svc->builtin_redis,
                             .secret_fd = -1,
                             .set_ids = cfg->isolation == SUP_ISOLATION_UID,
                             .uid = svc->uid,
                             .gid = svc->gid};
    int pid = 0;
    if (cfg->isolation == SUP_ISOLATION_FD && !svc->builtin_redis) {
        char key[VZ_PATH_MAX + VZ_NAME_MAX + 32];
        snprintf(key, sizeof key, "%s/keys/secret/%s.key_secret", cfg->state_dir, svc->name);
        pid = sup_iso_secret_pipe(key, &spec.secret_fd);
        spec.secret = pid == 0;
    }
    if (pid == 0)
        pid = sup_child_spawn(&spec, &r->notify_fd);
    if (spec.secret_fd >= 0)
        close(spec.secret_fd);
    s_free_strv(argv);
    s_free_strv(env);
    if (pid < 0) {
        //  fork or the log file failed: likely temporary, so back off and retry.
        s_log_replica(VZ_LOG_ERROR, self, r, "unable to start replica", "reason", strerror(-pid));
        r->due_ms = vz_clock_mono_ms() + S_BACKOFF_MAX_MS;
        s_set_state(self, r, ST_BACKOFF);
        return;
    }
    r->pid = pid;
    r->started_ms = vz_clock_mono_ms();
    r->killed = false;
    r->start_timed_out = false;
    r->became_ready = false;
    r->spawns++;
    s_set_state(self, r, ST_STARTING);
    s_log_replica(VZ_LOG_INFO, self, r, "replica started", "command", path);
}

//  ---------------------------------------------------------------------------
//  Transition actions

//  All present, wanted, non-failed replicas of service i are ready, and one at least.
static bool s_service_ready(sup_supervisor_t *self, int i)
{
    const s_service_t *s = &self->services[i];
    int ready = 0;
    for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
        const s_replica_t *r = &s->replicas[k];
        if (!r->present || !r->wanted || r->state == ST_FAILED)
            continue;
        if (!s_replica_ready(r))
            return false;
        ready++;
    }
    return ready > 0;
}

static void s_act_want(sup_supervisor_t *self, s_replica_t *r)
{
    r->wanted = true;
    r->death_count = 0;
    r->streak = 0;
    r->failed_starts = 0;
    r->reason[0] = '\0';
    s_set_state(self, r, ST_WAITING);
}

static void s_act_drop(sup_supervisor_t *self, s_replica_t *r)
{
    if (!r->wanted)
        s_set_state(self, r, ST_STOPPED);
}

static void s_act_try_spawn(sup_supervisor_t *self, s_replica_t *r)
{
    if (!r->wanted || self->shutting_down) {
        s_set_state(self, r, ST_STOPPED);
        return;
    }
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    for (size_t d = 0; d < svc->dep_count; d++)
        if (!s_service_ready(self, svc->deps[d]))
            return;
    s_spawn(self, r);
}

static void s_act_terminate(sup_supervisor_t *self, s_replica_t *r)
{
    assert(r->pid > 0);
    sup_child_signal(r->pid, SIGTERM);
    r->due_ms = vz_clock_mono_ms() + self->cfg->stop_timeout_ms;
    s_set_state(self, r, ST_STOPPING);
}

static void s_fire(sup_supervisor_t *self, s_replica_t *r, s_event_t ev);

//  Start a readiness probe: Redis PING, or GET /readyz on the admin port.
static void s_probe_start(sup_supervisor_t *self, s_replica_t *r, int timeout_ms)
{
    assert(!r->probe);
    bool redis = s_svc_cfg(self, r)->builtin_redis;
    int port = redis ? sup_mesh_config_port(self->cfg, "redis") : r->admin_port;
    //  Redis: as vz-supervisor, since the default user is off (redis_acl.h).
    char auth[128] = "";
    if (redis && sup_redis_acl_auth(self->cfg, auth, sizeof auth) < 0)
        auth[0] = '\0';
    r->probe = sup_probe_new(redis ? SUP_PROBE_PING : SUP_PROBE_READYZ, port, auth[0] ? auth : NULL,
                             vz_clock_mono_ms() + timeout_ms);
    explicit_bzero(auth, sizeof auth);
}

//  Advance the probe in flight (never blocks); a finished one fires EV_PROBED.
static void s_probe_advance(sup_supervisor_t *self, s_replica_t *r)
{
    if (!r->probe)
        return;
    r->probed = sup_probe_step(r->probe, vz_clock_mono_ms());
    if (r->probed == SUP_PROBE_RUNNING)
        return;
    if (r->probed != SUP_PROBE_READY)
        vz_strlcpy(r->not_ready, sup_probe_reason(r->probe), sizeof r->not_ready);
    sup_probe_destroy(&r->probe);
    s_fire(self, r, EV_PROBED);
}

static void s_act_ready(sup_supervisor_t *self, s_replica_t *r)
{
    bool redis = s_svc_cfg(self, r)->builtin_redis;
    s_set_state(self, r, ST_READY);
    s_log_replica(VZ_LOG_INFO, self, r, "replica ready", "via",
                  redis ? "redis PING" : "notification fd");
}

//  Starting: enforce start_timeout (systemd TimeoutStartSec); Redis, which
//  has no notification fd, is PINGed until it answers.
static void s_act_starting_tick(sup_supervisor_t *self, s_replica_t *r)
{
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    int64_t now = vz_clock_mono_ms();
    if (svc->start_timeout_ms > 0 && now - r->started_ms >= svc->start_timeout_ms) {
        char why[96];
        snprintf(why, sizeof why, "not ready within start_timeout (%d ms)", svc->start_timeout_ms);
        s_log_replica(VZ_LOG_WARN, self, r, "replica start timed out", "reason", why);
        r->start_timed_out = true;
        s_act_terminate(self, r);
        return;
    }
    if (svc->builtin_redis && !r->probe && now >= r->next_probe_ms)
        s_probe_start(self, r, S_PING_MS);
}

static void s_act_starting_probed(sup_supervisor_t *self, s_replica_t *r)
{
    r->next_probe_ms = vz_clock_mono_ms() + S_PING_EVERY_MS;
    if (r->probed == SUP_PROBE_READY)
        s_act_ready(self, r);
}

//  Ready: poll readiness every ready_poll. A replica that answers "not
//  ready" is only marked so, never restarted: it is alive (liveness is the
//  process itself), just unable to serve for now (readiness).
static void s_act_poll(sup_supervisor_t *self, s_replica_t *r)
{
    const sup_mesh_service_t *svc = s_svc_cfg(self, r);
    if (svc->ready_poll_ms <= 0 || r->probe || vz_clock_mono_ms() < r->next_probe_ms)
        return;
    if (!svc->builtin_redis && r->admin_port <= 0)
        return;
    int timeout = svc->ready_poll_ms < S_PROBE_MIN_MS ? S_PROBE_MIN_MS : svc->ready_poll_ms;
    s_probe_start(self, r, timeout > S_PROBE_MAX_MS ? S_PROBE_MAX_MS : timeout);
}

static void s_act_live_probed(sup_supervisor_t *self, s_replica_t *r)
{
    r->next_probe_ms = vz_clock_mono_ms() + s_svc_cfg(self, r)->ready_poll_ms;
    bool was = r->live_ready;
    if (r->probed == SUP_PROBE_READY) {
        r->probe_errors = 0;
        r->live_ready = true;
        r->not_ready[0] = '\0';
    } else if (r->probed == SUP_PROBE_NOT_READY) {
        //  The daemon said so itself: believe it at once.
        r->live_ready = false;
    } else if (++r->probe_errors >= S_PROBE_ERRORS)
        //  One lost answer under load is not an outage; several in a row are.
        r->live_ready = false;
    if (was && !r->live_ready)
        s_log_replica(VZ_LOG_WARN, self, r, "replica not ready", "reason", r->not_ready);
    else if (!was && r->live_ready)
        s_log_replica(VZ_LOG_INFO, self, r, "replica ready again", "via",
                      s_svc_cfg(self, r)->builtin_redis ? "redis PING" : "/readyz");
}

static void s_describe_exit(int status, char *out, size_t n)
{
    if (WIFEXITED(status))
        snprintf(out, n, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "signal %d", WTERMSIG(status));
    else
        snprintf(out, n, "status %d", status);
}

//  An unexpected death: permanent error, too many deaths, or back off.
static void s_act_died(sup_supervisor_t *self, s_replica_t *r)
{
    int64_t now = vz_clock_mono_ms();
    char how[32];
    s_describe_exit(r->status, how, sizeof how);
    s_log_replica(VZ_LOG_WARN, self, r, "replica exited", "status", how);
    if (r->start_timed_out)
        snprintf(how, sizeof how, "start timeout");
    if (!r->wanted || self->shutting_down) {
        s_set_state(self, r, ST_STOPPED);
        return;
    }
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 100) {
        s_fail_replica(self, r, "exit 100 (permanent error)");
        return;
    }
    //  Only a process that served for a while resets the backoff; one that
    //  never became ready (a 30 s start timeout) is still failing to start.
    if (r->became_ready && now - r->started_ms >= S_STABLE_MS)
        r->streak = 0;
    r->failed_starts = r->became_ready ? 0 : r->failed_starts + 1;
    r->deaths[r->death_pos] = now;
    r->death_pos = (r->death_pos + 1) % (S_DEATH_LIMIT + 1);
    if (r->death_count < S_DEATH_LIMIT + 1)
        r->death_count++;
    //  The ring's oldest entry is the death S_DEATH_LIMIT deaths ago.
    if (r->death_count == S_DEATH_LIMIT + 1 && now - r->deaths[r->death_pos] <= S_DEATH_WINDOW_MS) {
        char why[96];
        snprintf(why, sizeof why, "%d deaths within %d s (last: %s)", S_DEATH_LIMIT + 1,
                 S_DEATH_WINDOW_MS / 1000, how);
        s_fail_replica(self, r, why);
        return;
    }
    //  Start timeouts are slower than the window: count failed starts in a
    //  row too (supervisord's startretries), so they also end in failed.
    if (r->failed_starts > S_DEATH_LIMIT) {
        char why[96];
        snprintf(why, sizeof why, "%d starts in a row never became ready (last: %s)",
                 r->failed_starts, how);
        s_fail_replica(self, r, why);
        return;
    }
    int64_t delay = S_BACKOFF_MIN_MS;
    for (int i = 0; i < r->streak && delay < S_BACKOFF_MAX_MS; i++)
        delay *= 2;
    delay = delay > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : delay;
    //  "Equal jitter": half fixed, half random, so replicas do not restart in step.
    delay = delay / 2 + rand_r(&self->seed) % (delay / 2 + 1);
    r->streak++;
    r->due_ms = now + delay;
    s_set_state(self, r, ST_BACKOFF);
}

static void s_act_backoff_due(sup_supervisor_t *self, s_replica_t *r)
{
    if (!r->wanted || self->shutting_down)
        s_set_state(self, r, ST_STOPPED);
    else if (vz_clock_mono_ms() >= r->due_ms) {
        s_set_state(self, r, ST_WAITING);
        s_act_try_spawn(self, r);
    }
}

static void s_act_enforce_stop(sup_supervisor_t *self, s_replica_t *r)
{
    if (!r->killed && vz_clock_mono_ms() >= r->due_ms) {
        s_log_replica(VZ_LOG_WARN, self, r, "replica did not stop in time", "signal", "SIGKILL");
        sup_child_signal(r->pid, SIGKILL);
        r->killed = true;
    }
}

static void s_act_stopped(sup_supervisor_t *self, s_replica_t *r)
{
    char how[32];
    s_describe_exit(r->status, how, sizeof how);
    s_log_replica(VZ_LOG_INFO, self, r, "replica stopped", "status", how);
    //  Killed for missing its start timeout: that is a death, with backoff and tally.
    if (r->start_timed_out && r->wanted && !self->shutting_down) {
        s_act_died(self, r);
        return;
    }
    if (r->wanted && !self->shutting_down) {
        s_set_state(self, r, ST_WAITING);
        s_act_try_spawn(self, r);
    } else
        s_set_state(self, r, ST_STOPPED);
    //  A scaled-down slot disappears once its process is gone.
    if (r->index >= self->services[r->service].desired && r->state == ST_STOPPED)
        r->present = false;
}

//  s6-style actions[state][event]; NULL = the event means nothing in that state.
// clang-format off
static const s_action_t s_transitions[ST_COUNT][EV_COUNT] = {
    //                START        STOP               TICK                  NOTIFIED      PROBED                  EXIT
    [ST_STOPPED]  = { s_act_want,  NULL,              NULL,                 NULL,         NULL,                   NULL },
    [ST_WAITING]  = { NULL,        s_act_drop,        s_act_try_spawn,      NULL,         NULL,                   NULL },
    [ST_STARTING] = { NULL,        s_act_terminate,   s_act_starting_tick,  s_act_ready,  s_act_starting_probed,  s_act_died },
    [ST_READY]    = { NULL,        s_act_terminate,   s_act_poll,           NULL,         s_act_live_probed,      s_act_died },
    [ST_BACKOFF]  = { NULL,        s_act_drop,        s_act_backoff_due,    NULL,         NULL,                   NULL },
    [ST_STOPPING] = { NULL,        NULL,              s_act_enforce_stop,   NULL,         NULL,                   s_act_stopped },
    [ST_FAILED]   = { s_act_want,  s_act_drop,        NULL,                 NULL,         NULL,                   NULL },
};
// clang-format on

static void s_fire(sup_supervisor_t *self, s_replica_t *r, s_event_t ev)
{
    s_action_t action = s_transitions[r->state][ev];
    if (action)
        action(self, r);
}

//  ---------------------------------------------------------------------------
//  Scaling, rolling restarts, shutdown

//  A free port for an "auto" admin port that no replica and no named port
//  holds already: the kernel may hand out the same ephemeral port twice
//  once the probe socket is closed (seen: two auth replicas given one port,
//  the second failing to bind until it was marked failed).
static int s_auto_admin_port(sup_supervisor_t *self)
{
    int port = -EADDRINUSE;
    for (int attempt = 0; attempt < 16; attempt++) {
        port = vz_ports_free();
        if (port < 0)
            return port;
        bool taken = false;
        for (size_t i = 0; i < self->cfg->port_count && !taken; i++)
            taken = self->cfg->ports[i].port == port;
        for (size_t i = 0; i < self->cfg->service_count && !taken; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS && !taken; k++)
                taken = self->services[i].replicas[k].admin_port == port;
        if (!taken)
            return port;
    }
    return -EADDRINUSE;
}

static void s_scale(sup_supervisor_t *self, int i, int count)
{
    s_service_t *s = &self->services[i];
    const sup_mesh_service_t *svc = &self->cfg->services[i];
    s->desired = count;
    for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
        s_replica_t *r = &s->replicas[k];
        if (k < count && !r->present) {
            r->present = true;
            if (!r->admin_port)
                r->admin_port = svc->admin_auto ? s_auto_admin_port(self) : svc->admin_port + k;
            r->state = ST_STOPPED;
            s_fire(self, r, EV_START);
        } else if (k < count && r->present && !r->wanted && r->state == ST_STOPPING)
            r->wanted = true; //  scaled back up while draining: restart after the exit
        else if (k >= count && r->present && r->wanted) {
            r->wanted = false;
            s_fire(self, r, EV_STOP);
            if (r->state == ST_STOPPED || r->state == ST_FAILED)
                r->present = false;
        }
    }
}

//  A rolling restart of service i: every replica, or only replica `only` (>= 0).
static void s_roll_begin(sup_supervisor_t *self, int i, bool rotating, int only)
{
    s_service_t *s = &self->services[i];
    s->roll_next = 0;
    s->roll_current = -1;
    s->roll_failed = false;
    s->rotating = rotating;
    s->roll_only = only;
    s->roll_count = 0;
}

//  Final step of a key rotation: the new public certificate takes the
//  canonical name, which removes the old one in the same rename.
static int s_rotate_finish(sup_supervisor_t *self, int i)
{
    const char *name = self->cfg->services[i].name;
    char from[VZ_PATH_MAX + 96], to[VZ_PATH_MAX + 96];
    snprintf(from, sizeof from, "%s/keys/public/%s.rotating.key", self->cfg->state_dir, name);
    snprintf(to, sizeof to, "%s/keys/public/%s.key", self->cfg->state_dir, name);
    return rename(from, to) < 0 ? -errno : 0;
}

static void s_reply(sup_supervisor_t *self, s_client_t *c, const char *text);

static void s_roll_finish(sup_supervisor_t *self, int i)
{
    s_service_t *s = &self->services[i];
    const char *name = self->cfg->services[i].name;
    char text[256];
    if (s->roll_failed)
        snprintf(text, sizeof text, "error a replica of %s failed during the restart%s\n", name,
                 s->rotating ? "; both the old and the new public key stay allowed" : "");
    else if (s->rotating && s_rotate_finish(self, i) < 0)
        snprintf(text, sizeof text, "error unable to retire the old public key of %s: %s\n", name,
                 strerror(errno));
    else if (s->rotating)
        snprintf(text, sizeof text, "ok\nrotated the key of %s (%d replica%s restarted)\n", name,
                 s->roll_count, s->roll_count == 1 ? "" : "s");
    else if (s->roll_only >= 0)
        snprintf(text, sizeof text, "ok\nrestarted %s.%d\n", name, s->roll_only);
    else
        snprintf(text, sizeof text, "ok\nrestarted %s (%d replica%s)\n", name, s->roll_count,
                 s->roll_count == 1 ? "" : "s");
    vz_info(NULL, s->rotating ? "key rotation done" : "rolling restart done", "target", name,
            "result", s->roll_failed ? "failed" : "ok");
    s->roll_next = -1;
    s->rotating = false;
    for (int c = 0; c < S_MAX_CLIENTS; c++)
        if (self->clients[c].fd >= 0 && self->clients[c].op == OP_ROLL &&
            self->clients[c].service == i)
            s_reply(self, &self->clients[c], text);
}

//  One step of a rolling restart: wait for the current replica to be ready
//  again, then restart the next one.
static void s_roll_step(sup_supervisor_t *self, int i)
{
    s_service_t *s = &self->services[i];
    if (s->roll_next < 0)
        return;
    if (s->roll_current >= 0) {
        s_replica_t *r = &s->replicas[s->roll_current];
        if (r->present && r->wanted && r->state != ST_READY && r->state != ST_FAILED)
            return;
        if (r->state == ST_FAILED)
            s->roll_failed = true;
        s->roll_current = -1;
    }
    while (s->roll_next < SUP_MESH_MAX_REPLICAS) {
        s_replica_t *r = &s->replicas[s->roll_next++];
        if (!r->present || !r->wanted || (s->roll_only >= 0 && r->index != s->roll_only))
            continue;
        s->roll_current = r->index;
        s->roll_count++;
        s_log_replica(VZ_LOG_INFO, self, r, "restarting replica", "why",
                      s->rotating ? "key rotation" : "rolling restart");
        if (r->state == ST_STARTING || r->state == ST_READY)
            s_fire(self, r, EV_STOP);
        else if (r->state == ST_FAILED)
            s_fire(self, r, EV_START);
        return;
    }
    s_roll_finish(self, i);
}

static bool s_tier_alive(sup_supervisor_t *self, int tier)
{
    for (size_t i = 0; i < self->cfg->service_count; i++) {
        if (self->cfg->services[i].tier != tier)
            continue;
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
            if (self->services[i].replicas[k].pid > 0)
                return true;
    }
    return false;
}

static void s_shutdown_begin(sup_supervisor_t *self, const char *why)
{
    if (self->shutting_down)
        return;
    vz_info(NULL, "shutting down", "reason", why);
    self->shutting_down = true;
    self->shutdown_tier = 0;
    for (size_t i = 0; i < self->cfg->service_count; i++) {
        int t = self->cfg->services[i].tier;
        self->shutdown_tier = t > self->shutdown_tier ? t : self->shutdown_tier;
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
            self->services[i].replicas[k].wanted = false;
    }
}

//  Stop the highest tier still alive; the loop ends when nothing is left.
static bool s_shutdown_step(sup_supervisor_t *self)
{
    while (self->shutdown_tier >= 0) {
        for (size_t i = 0; i < self->cfg->service_count; i++)
            if (self->cfg->services[i].tier == self->shutdown_tier)
                for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
                    s_fire(self, &self->services[i].replicas[k], EV_STOP);
        if (s_tier_alive(self, self->shutdown_tier))
            return false;
        self->shutdown_tier--;
    }
    for (size_t i = 0; i < self->cfg->service_count; i++)
        if (s_tier_alive(self, self->cfg->services[i].tier))
            return false;
    return true;
}

//  ---------------------------------------------------------------------------
//  Control commands

static void s_reply(sup_supervisor_t *self, s_client_t *c, const char *text)
{
    //  The response ends with an empty line; text already ends in "\n".
    if (sup_control_write(c->fd, text) == 0)
        sup_control_write(c->fd, "\n");
    close(c->fd);
    c->fd = -1;
    c->op = OP_NONE;
}

static int s_find_service(sup_supervisor_t *self, const char *name, s_buf_t *out)
{
    int i = sup_mesh_config_find(self->cfg, name);
    if (i < 0)
        s_buf_printf(out, "unknown service \"%.*s\"", VZ_NAME_MAX, name);
    return i;
}

//  A command's target: "all" (service -1), "S" (replica -1) or "S.i", where
//  i must be below the service's replica count. 0, or -1 with the reason.
static int s_target(sup_supervisor_t *self, const char *text, int *service, int *replica,
                    s_buf_t *out)
{
    *service = *replica = -1;
    if (strcmp(text, "all") == 0)
        return 0;
    char name[VZ_NAME_MAX];
    const char *dot = strrchr(text, '.');
    size_t len = dot ? (size_t)(dot - text) : strlen(text);
    if (len >= sizeof name) {
        s_buf_printf(out, "unknown service \"%.*s\"", VZ_NAME_MAX, text);
        return -1;
    }
    memcpy(name, text, len);
    name[len] = '\0';
    if ((*service = s_find_service(self, name, out)) < 0)
        return -1;
    if (!dot)
        return 0;
    int desired = self->services[*service].desired;
    char *end = NULL;
    long k = strtol(dot + 1, &end, 10);
    if (*end || end == dot + 1 || k < 0 || k >= desired) {
        s_buf_printf(out, "%s has no replica \"%.8s\" (it runs %d: 0..%d)", name, dot + 1, desired,
                     desired - 1);
        return -1;
    }
    *replica = (int)k;
    return 0;
}

static bool s_in_target(int service, int replica, int i, int k)
{
    return (service < 0 || service == i) && (replica < 0 || replica == k);
}

//  Return codes of command handlers: 0 reply "ok" + body, -1 reply "error
//  <body>", 1 reply later (the client stays open with a pending op).
static int s_cmd_status(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int svc = -1, rep = -1;
    if (argv[1] && s_target(self, argv[1], &svc, &rep, out) < 0)
        return -1;
    int64_t now = vz_clock_mono_ms();
    for (size_t i = 0; i < self->cfg->service_count; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            const s_replica_t *r = &self->services[i].replicas[k];
            if (!r->present || !s_in_target(svc, rep, (int)i, k))
                continue;
            int64_t up = r->pid > 0 ? now - r->started_ms : 0;
            //  The reason column says why it failed, or why its latest poll says not ready.
            const char *reason = "-";
            char why[SUP_PROBE_REASON_MAX + 16];
            if (*r->reason)
                reason = r->reason;
            else if (r->state == ST_READY && !r->live_ready) {
                snprintf(why, sizeof why, "not ready: %s", r->not_ready);
                reason = why;
            }
            //  Tab-separated: service replica pid state ready uptime_ms restarts admin_port reason
            s_buf_printf(out, "%s\t%d\t%d\t%s\t%s\t%lld\t%d\t%d\t%s\n", self->cfg->services[i].name,
                         k, (int)r->pid, s_state_names[r->state], s_replica_ready(r) ? "yes" : "no",
                         (long long)up, r->spawns > 0 ? r->spawns - 1 : 0, r->admin_port, reason);
        }
    return 0;
}

static int s_cmd_ports(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    for (size_t i = 0; i < self->cfg->port_count; i++)
        s_buf_printf(out, "%s\t%d\n", self->cfg->ports[i].name, self->cfg->ports[i].port);
    return 0;
}

//  Want the replicas of the target; `vzctl start` then waits for them with `wait`.
static int s_cmd_start(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int svc, rep;
    if (s_target(self, argv[1], &svc, &rep, out) < 0)
        return -1;
    int wanted = 0;
    for (size_t i = 0; i < self->cfg->service_count; i++) {
        if (svc >= 0 && (int)i != svc)
            continue;
        s_service_t *s = &self->services[i];
        //  A service scaled to 0 comes back with its configured count (at least 1 when named).
        int configured = self->cfg->services[i].replicas;
        if (s->desired == 0 && (configured > 0 || svc >= 0))
            s_scale(self, (int)i, configured > 0 ? configured : 1);
        for (int k = 0; k < s->desired; k++) {
            if (rep >= 0 && k != rep)
                continue;
            s_replica_t *r = &s->replicas[k];
            r->wanted = true;
            s_fire(self, r, EV_START);
            wanted++;
        }
    }
    vz_info(NULL, "started by request", "target", argv[1]);
    s_buf_printf(out, "starting %s (%d replica%s)\n", argv[1], wanted, wanted == 1 ? "" : "s");
    return 0;
}

//  1 once no process of the target runs any more.
static int s_stop_check(sup_supervisor_t *self, int service, int replica)
{
    for (size_t i = 0; i < self->cfg->service_count; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
            if (s_in_target(service, replica, (int)i, k) && self->services[i].replicas[k].pid > 0)
                return 0;
    return 1;
}

//  SIGTERM (SIGKILL after stop_timeout) to the target, dependents first;
//  answered once every process of the target is gone, as systemctl stop does.
static int s_cmd_stop(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int svc, rep;
    if (s_target(self, argv[1], &svc, &rep, out) < 0)
        return -1;
    for (int i = (int)self->cfg->service_count - 1; i >= 0; i--)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            if (!s_in_target(svc, rep, i, k))
                continue;
            s_replica_t *r = &self->services[i].replicas[k];
            r->wanted = false;
            s_fire(self, r, EV_STOP);
        }
    vz_info(NULL, "stopped by request", "target", argv[1]);
    c->op = OP_STOP;
    c->service = svc;
    c->replica = rep;
    vz_strlcpy(c->target, argv[1], sizeof c->target);
    return 1;
}

static int s_cmd_restart(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int i, rep;
    if (s_target(self, argv[1], &i, &rep, out) < 0)
        return -1;
    if (i < 0) {
        s_buf_printf(out, "restart takes one service or replica (vzctl restart all restarts every "
                          "service, one after the other)");
        return -1;
    }
    s_service_t *s = &self->services[i];
    if (s->roll_next >= 0) {
        s_buf_printf(out, "a restart of %s is already in progress", self->cfg->services[i].name);
        return -1;
    }
    //  A stopped replica is started, as systemctl restart does.
    for (int k = 0; k < s->desired; k++)
        if ((rep < 0 || k == rep) && !s->replicas[k].wanted) {
            s->replicas[k].wanted = true;
            s_fire(self, &s->replicas[k], EV_START);
        }
    s_roll_begin(self, i, false, rep);
    c->op = OP_ROLL;
    c->service = i;
    return 1;
}

static int s_cmd_scale(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int i = s_find_service(self, argv[1], out);
    if (i < 0)
        return -1;
    char *end = NULL;
    long n = strtol(argv[2], &end, 10);
    if (*end || end == argv[2] || n < 0 || n > SUP_MESH_MAX_REPLICAS) {
        s_buf_printf(out, "replicas must be an integer in 0..%d", SUP_MESH_MAX_REPLICAS);
        return -1;
    }
    if (self->cfg->services[i].builtin_redis && n > 1) {
        s_buf_printf(out, "the built-in redis runs one replica");
        return -1;
    }
    int before = self->services[i].desired;
    s_scale(self, i, (int)n);
    vz_info(NULL, "service scaled", "target", argv[1], "replicas", argv[2]);
    s_buf_printf(out, "scaled %s from %d to %ld replicas\n", argv[1], before, n);
    return 0;
}

//  canary S N [command=PATH] [K=V...]: N replicas of S beside its own, with
//  these settings over the service's (vzctl rollout); N 0 stops them.
static int s_cmd_canary(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int i = s_find_service(self, argv[1], out);
    if (i < 0)
        return -1;
    s_service_t *s = &self->services[i];
    int base = s->canary_count ? s->canary_from : s->desired;
    char *end = NULL;
    long n = strtol(argv[2], &end, 10);
    if (*end || end == argv[2] || n < 0 || base + n > SUP_MESH_MAX_REPLICAS ||
        self->cfg->services[i].builtin_redis) {
        s_buf_printf(out, "canaries must be an integer in 0..%d", SUP_MESH_MAX_REPLICAS - base);
        return -1;
    }
    size_t envs = 0;
    char command[VZ_PATH_MAX] = "";
    for (int a = 3; argv[a]; a++) {
        const char *eq = strchr(argv[a], '=');
        if (strncmp(argv[a], "command=", 8) == 0)
            vz_strlcpy(command, argv[a] + 8, sizeof command);
        else if (!eq || eq == argv[a] || eq - argv[a] >= VZ_NAME_MAX || envs == S_CANARY_ENV ||
                 strlen(argv[a]) >= VZ_PATH_MAX) {
            s_buf_printf(out, "canary settings are K=V (at most %d) or command=PATH", S_CANARY_ENV);
            return -1;
        } else
            vz_strlcpy(s->canary_env[envs++], argv[a], VZ_PATH_MAX);
    }
    //  Settings apply to canaries started from now on; running ones keep theirs.
    s->canary_env_count = envs;
    vz_strlcpy(s->canary_command, command, sizeof s->canary_command);
    s->canary_from = base;
    s->canary_count = (int)n;
    s_scale(self, i, base + (int)n);
    vz_info(NULL, "canaries set", "service", argv[1], "replicas", argv[2]);
    s_buf_printf(out, "%s: %ld canar%s from replica %d\n", argv[1], n, n == 1 ? "y" : "ies", base);
    return 0;
}

static int s_cmd_reload(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    const char *target = argv ? argv[1] : NULL; //  the supervisor's own SIGHUP: no argv
    int sent = 0, only = target ? s_find_service(self, target, out) : -1;
    if (target && only < 0)
        return -1;
    for (size_t i = 0; i < self->cfg->service_count; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            const s_replica_t *r = &self->services[i].replicas[k];
            //  Redis ignores SIGHUP; it is not sent the signal at all.
            if (r->pid > 0 && !self->cfg->services[i].builtin_redis &&
                (only < 0 || only == (int)i) && sup_child_signal(r->pid, SIGHUP) == 0)
                sent++;
        }
    s_buf_printf(out, "sent SIGHUP to %d process%s\n", sent, sent == 1 ? "" : "es");
    vz_info(NULL, "reload forwarded", "signal", "SIGHUP");
    return 0;
}

//  OP_WAIT condition on a target: 1 met, 0 not yet, -1 cannot be met (failed replica).
static int s_wait_check(sup_supervisor_t *self, int service, int replica, s_buf_t *why)
{
    for (size_t i = 0; i < self->cfg->service_count; i++) {
        if (service >= 0 && (int)i != service)
            continue;
        const s_service_t *s = &self->services[i];
        if (s->roll_next >= 0)
            return 0;
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            const s_replica_t *r = &s->replicas[k];
            if (!r->present || (replica >= 0 && k != replica))
                continue;
            if (r->state == ST_FAILED && r->wanted) {
                if (why)
                    s_buf_printf(why, "%s.%d failed: %s", self->cfg->services[i].name, k,
                                 r->reason);
                return -1;
            }
            if (k >= s->desired || (r->wanted && !s_replica_ready(r)))
                return 0;
        }
    }
    return 1;
}

static int s_cmd_wait(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    c->service = c->replica = -1;
    int64_t timeout = 30000;
    for (int a = 1; argv[a]; a++) {
        char *end = NULL;
        long v = strtol(argv[a], &end, 10);
        if (*end == '\0' && end != argv[a] && v >= 0)
            timeout = v;
        else if (s_target(self, argv[a], &c->service, &c->replica, out) < 0)
            return -1;
        else
            vz_strlcpy(c->target, argv[a], sizeof c->target);
    }
    if (c->service < 0)
        vz_strlcpy(c->target, "everything", sizeof c->target);
    c->op = OP_WAIT;
    c->deadline = vz_clock_mono_ms() + timeout;
    return 1;
}

static int s_cmd_shutdown(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    s_shutdown_begin(self, "vzctl shutdown");
    s_buf_printf(out, "shutting down: stopping every service in reverse dependency order\n");
    return 0;
}

static int s_move(const char *from, const char *to)
{
    return rename(from, to) < 0 && errno != ENOENT ? -errno : 0;
}

//  Overlap rotation: new pair, new public key allowed beside the old one,
//  new secret in place, rolling restart, then the old public key goes.
static int s_cmd_rotate(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    int i = s_find_service(self, argv[1], out);
    if (i < 0)
        return -1;
    const sup_mesh_config_t *cfg = self->cfg;
    if (strcmp(argv[1], "broker") == 0) {
        s_buf_printf(out,
                     "refusing to rotate the broker's key this way: every daemon pins the "
                     "broker's public key (VZ_BROKER_KEY) as the CURVE server key, so a broker "
                     "with a new key would be rejected by all of them. Rotate it by giving the "
                     "clients the new broker public key first (and restarting them), then "
                     "restarting the broker with the new secret");
        return -1;
    }
    if (cfg->services[i].builtin_redis) {
        s_buf_printf(out, "redis has no CURVE key");
        return -1;
    }
    if (self->services[i].roll_next >= 0) {
        s_buf_printf(out, "a restart of %s is already in progress", argv[1]);
        return -1;
    }
    const char *name = argv[1];
    const char *st = cfg->state_dir;
    char tmp[VZ_PATH_MAX + 64], from[VZ_PATH_MAX + 160], to[VZ_PATH_MAX + 160];
    snprintf(tmp, sizeof tmp, "%s/keys/rotate", st);
    //  Leftovers of an interrupted rotation would be kept by keygen: clear them.
    const char *leftovers[] = {"public/%s.key", "secret/%s.key", "secret/%s.key_secret"};
    for (size_t k = 0; k < 3; k++) {
        char rel[VZ_NAME_MAX + 32];
        snprintf(rel, sizeof rel, leftovers[k], name);
        snprintf(from, sizeof from, "%s/%s", tmp, rel);
        unlink(from);
    }
    int rc = vz_curve_keygen(tmp, name);
    if (rc < 0) {
        s_buf_printf(out, "unable to generate a key pair for %s: %s", name, strerror(-rc));
        return -1;
    }
    //  The new secret is its service's before it takes the old one's place.
    snprintf(from, sizeof from, "%s/secret/%s.key_secret", tmp, name);
    rc = cfg->isolation == SUP_ISOLATION_UID
             ? sup_iso_own_file(from, cfg->services[i].uid, cfg->services[i].gid, 0400)
             : 0;
    if (rc < 0) {
        s_buf_printf(out, "unable to hand the new key of %s to its uid: %s", name, strerror(-rc));
        return -1;
    }
    snprintf(from, sizeof from, "%s/public/%s.key", tmp, name);
    snprintf(to, sizeof to, "%s/keys/public/%s.rotating.key", st, name);
    rc = s_move(from, to);
    snprintf(from, sizeof from, "%s/secret/%s.key_secret", tmp, name);
    snprintf(to, sizeof to, "%s/keys/secret/%s.key_secret", st, name);
    rc = rc < 0 ? rc : s_move(from, to);
    snprintf(from, sizeof from, "%s/secret/%s.key", tmp, name);
    snprintf(to, sizeof to, "%s/keys/secret/%s.key", st, name);
    rc = rc < 0 ? rc : s_move(from, to);
    if (rc < 0) {
        s_buf_printf(out, "unable to install the new key of %s: %s", name, strerror(-rc));
        return -1;
    }
    vz_info(NULL, "key rotation started", "target", name);
    s_roll_begin(self, i, true, -1);
    c->op = OP_ROLL;
    c->service = i;
    return 1;
}

//  ---------------------------------------------------------------------------
//  reread and update (supervisord semantics): the file is read again and
//  compared by service name. Added services start, removed ones stop,
//  changed ones (what their processes see: command, environment, admin
//  port) stop and start again, and every other service keeps running.

//  What the processes of a service see, after substitution, is the same.
static bool s_same_process(const sup_mesh_config_t *a, const sup_mesh_service_t *sa,
                           const sup_mesh_config_t *b, const sup_mesh_service_t *sb)
{
    if (sa->builtin_redis != sb->builtin_redis || sa->admin_auto != sb->admin_auto ||
        sa->admin_port != sb->admin_port || sa->env_count != sb->env_count)
        return false;
    //  Its uid and what it is given to own (isolation).
    if (a->isolation != b->isolation || strcmp(sa->user, sb->user) ||
        strcmp(sa->state_dirs, sb->state_dirs) || strcmp(sa->secret_files, sb->secret_files))
        return false;
    //  Every child is also given the broker and Redis ports, and bin_dir resolves commands.
    if (sup_mesh_config_port(a, "redis") != sup_mesh_config_port(b, "redis") ||
        sup_mesh_config_port(a, "broker") != sup_mesh_config_port(b, "broker") ||
        strcmp(a->bin_dir, b->bin_dir))
        return false;
    char x[VZ_PATH_MAX], y[VZ_PATH_MAX], err[128];
    //  Both were validated at load: expansion cannot fail.
    if (sup_mesh_config_expand(a, sa->command, x, sizeof x, err, sizeof err) < 0 ||
        sup_mesh_config_expand(b, sb->command, y, sizeof y, err, sizeof err) < 0 || strcmp(x, y))
        return false;
    for (size_t e = 0; e < sa->env_count; e++)
        if (strcmp(sa->env[e].key, sb->env[e].key) ||
            sup_mesh_config_expand(a, sa->env[e].value, x, sizeof x, err, sizeof err) < 0 ||
            sup_mesh_config_expand(b, sb->env[e].value, y, sizeof y, err, sizeof err) < 0 ||
            strcmp(x, y))
            return false;
    return true;
}

//  The supervisor's own settings that only apply to a service: timeouts and dependencies.
static bool s_same_settings(const sup_mesh_config_t *a, const sup_mesh_service_t *sa,
                            const sup_mesh_config_t *b, const sup_mesh_service_t *sb)
{
    if (sa->start_timeout_ms != sb->start_timeout_ms || sa->ready_poll_ms != sb->ready_poll_ms ||
        sa->dep_count != sb->dep_count)
        return false;
    for (size_t d = 0; d < sa->dep_count; d++)
        if (strcmp(a->services[sa->deps[d]].name, b->services[sb->deps[d]].name))
            return false;
    return true;
}

//  Read the file again into a new configuration (heap, caller frees) and
//  describe the difference in out. NULL with the reason in out.
static sup_mesh_config_t *s_reread(sup_supervisor_t *self, s_diff_t *d, s_buf_t *out)
{
    const sup_mesh_config_t *old = self->cfg;
    sup_mesh_config_t *cfg = calloc(1, sizeof *cfg);
    assert(cfg);
    char err[VZ_PATH_MAX + 256];
    if (sup_mesh_config_load(cfg, self->config_path, err, sizeof err) < 0 ||
        sup_mesh_config_resolve(cfg, self->exe_dir, err, sizeof err) < 0) {
        s_buf_printf(out, "%s: %s (nothing changed)", self->config_path, err);
        free(cfg);
        return NULL;
    }
    if (strcmp(cfg->state_dir, old->state_dir) || strcmp(cfg->control, old->control)) {
        s_buf_printf(out, "supervisor/state_dir or supervisor/control changed: restart the "
                          "supervisor to move them (nothing changed)");
        free(cfg);
        return NULL;
    }
    //  An "auto" port keeps the port it was given, or every user would change.
    for (size_t p = 0; p < cfg->port_count; p++)
        for (size_t q = 0; q < old->port_count; q++)
            if (cfg->ports[p].is_auto && old->ports[q].is_auto &&
                strcmp(cfg->ports[p].name, old->ports[q].name) == 0)
                cfg->ports[p].port = old->ports[q].port;
    int rc = sup_mesh_config_alloc_ports(cfg);
    if (rc < 0) {
        s_buf_printf(out, "unable to allocate auto ports: %s (nothing changed)", strerror(-rc));
        free(cfg);
        return NULL;
    }
    memset(d, 0, sizeof *d);
    for (size_t j = 0; j < old->service_count; j++)
        if (sup_mesh_config_find(cfg, old->services[j].name) < 0) {
            d->removed[j] = true;
            d->changes++;
            s_buf_printf(out, "removed %s\n", old->services[j].name);
        }
    for (size_t i = 0; i < cfg->service_count; i++) {
        const sup_mesh_service_t *sn = &cfg->services[i];
        int j = d->from[i] = sup_mesh_config_find(old, sn->name);
        const sup_mesh_service_t *so = j >= 0 ? &old->services[j] : NULL;
        if (!so)
            d->kind[i] = CH_ADDED;
        else if (!s_same_process(old, so, cfg, sn))
            d->kind[i] = CH_CHANGED;
        else if (so->replicas != sn->replicas)
            d->kind[i] = CH_SCALED;
        else if (!s_same_settings(old, so, cfg, sn))
            d->kind[i] = CH_SETTINGS;
        else
            continue;
        d->changes++;
        if (d->kind[i] == CH_SCALED)
            s_buf_printf(out, "scaled %s from %d to %d replicas\n", sn->name, so->replicas,
                         sn->replicas);
        else
            s_buf_printf(out, "%s %s\n",
                         d->kind[i] == CH_ADDED     ? "added"
                         : d->kind[i] == CH_CHANGED ? "changed (restarted)"
                                                    : "updated settings of",
                         sn->name);
    }
    if (d->changes == 0)
        s_buf_printf(out, "no changes\n");
    return cfg;
}

static int s_cmd_reread(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    s_diff_t d;
    sup_mesh_config_t *cfg = s_reread(self, &d, out);
    free(cfg);
    return cfg ? 0 : -1;
}

//  Old service j goes away in an update to cfg (removed, or changed and restarted).
static bool s_update_drops(const sup_mesh_config_t *cfg, const s_diff_t *d, int j)
{
    if (d->removed[j])
        return true;
    for (size_t i = 0; i < cfg->service_count; i++)
        if (d->from[i] == j && d->kind[i] == CH_CHANGED)
            return true;
    return false;
}

static int s_prepare_state(sup_supervisor_t *self, char *err, size_t errlen);

//  Second half of `update`, once the dropped services' processes are gone:
//  the runtime slots follow their services to the new order, then the new
//  configuration takes over and added or changed services start.
static void s_update_apply(sup_supervisor_t *self)
{
    sup_mesh_config_t *cfg = self->pending_cfg;
    const s_diff_t *d = &self->pending_diff;
    s_service_t *old = malloc(sizeof self->services);
    assert(old);
    memcpy(old, self->services, sizeof self->services);
    for (int i = 0; i < SUP_MESH_MAX_SERVICES; i++) {
        s_service_t *s = &self->services[i];
        int j = (size_t)i < cfg->service_count && d->kind[i] != CH_ADDED && d->kind[i] != CH_CHANGED
                    ? d->from[i]
                    : -1;
        if (j >= 0)
            *s = old[j];
        else {
            memset(s, 0, sizeof *s);
            s->roll_next = s->roll_current = -1;
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
                s->replicas[k].notify_fd = -1;
        }
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            s->replicas[k].service = i;
            s->replicas[k].index = k;
        }
    }
    //  Slots left behind hold no process; release what they may still hold.
    for (size_t j = 0; j < self->cfg->service_count; j++)
        if (s_update_drops(cfg, d, (int)j))
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                s_close_notify(&old[j].replicas[k]);
                sup_probe_destroy(&old[j].replicas[k].probe);
            }
    free(old);
    //  Pending requests name services by index: follow them by name.
    for (int c = 0; c < S_MAX_CLIENTS; c++) {
        s_client_t *cl = &self->clients[c];
        if (cl->fd < 0 || cl->op == OP_NONE || cl->op == OP_UPDATE || cl->service < 0)
            continue;
        cl->service = sup_mesh_config_find(cfg, self->cfg->services[cl->service].name);
        if (cl->service < 0)
            s_reply(self, cl, "error the service was removed by update\n");
    }
    free(self->cfg);
    self->cfg = cfg;
    self->pending_cfg = NULL;
    char err[VZ_PATH_MAX + 256];
    if (s_prepare_state(self, err, sizeof err) < 0)
        vz_error(NULL, "unable to prepare the state directory", "reason", err);
    for (size_t i = 0; i < cfg->service_count; i++)
        if (d->kind[i] == CH_ADDED || d->kind[i] == CH_CHANGED || d->kind[i] == CH_SCALED)
            s_scale(self, (int)i, cfg->services[i].replicas);
    vz_info(NULL, "configuration updated", "config", self->config_path);
    char *text = NULL;
    int len = asprintf(&text, "ok\n%s", self->pending_reply);
    assert(len >= 0);
    for (int c = 0; c < S_MAX_CLIENTS; c++)
        if (self->clients[c].fd >= 0 && self->clients[c].op == OP_UPDATE)
            s_reply(self, &self->clients[c], text);
    free(text);
    free(self->pending_reply);
    self->pending_reply = NULL;
}

//  1 once no process of a service the pending update drops runs any more.
static bool s_update_ready(sup_supervisor_t *self)
{
    for (size_t j = 0; j < self->cfg->service_count; j++)
        if (s_update_drops(self->pending_cfg, &self->pending_diff, (int)j) &&
            !s_stop_check(self, (int)j, -1))
            return false;
    return true;
}

static int s_cmd_update(sup_supervisor_t *self, s_client_t *c, char **argv, s_buf_t *out)
{
    for (size_t i = 0; i < self->cfg->service_count; i++)
        if (self->services[i].roll_next >= 0) {
            s_buf_printf(out, "a restart of %s is in progress: update after it",
                         self->cfg->services[i].name);
            return -1;
        }
    s_diff_t d;
    sup_mesh_config_t *cfg = s_reread(self, &d, out);
    if (!cfg)
        return -1;
    if (d.changes == 0) {
        free(cfg);
        return 0;
    }
    vz_info(NULL, "updating the configuration", "config", self->config_path);
    self->pending_cfg = cfg;
    self->pending_diff = d;
    self->pending_reply = strdup(out->data);
    assert(self->pending_reply);
    //  Removed and changed services stop first, dependents first.
    for (int j = (int)self->cfg->service_count - 1; j >= 0; j--)
        if (s_update_drops(cfg, &d, j))
            s_scale(self, j, 0);
    c->op = OP_UPDATE;
    return 1;
}

//  ---------------------------------------------------------------------------
//  Log rotation by size (supervisord's logfile_maxbytes, logfile_backups).
//  A child writes its log through its own O_APPEND descriptor, which a
//  rename would leave pointing at the old file; so the file is copied to
//  S.i.log.1 and emptied in place (logrotate's copytruncate). Lines
//  written between the copy and the truncation are lost: the copy is one
//  read/write loop of at most log_max_bytes plus what arrived meanwhile.

static int s_copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int outfd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = outfd < 0 ? -errno : 0;
    char buf[65536];
    ssize_t n;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 || write(outfd, buf, (size_t)n) != n)
            rc = -(errno ? errno : EIO);
    }
    close(in);
    if (outfd >= 0)
        close(outfd);
    return rc;
}

static int s_rotate_file(const char *path, int backups)
{
    char from[VZ_PATH_MAX + 128], to[VZ_PATH_MAX + 128];
    for (int n = backups; n > 1; n--) {
        snprintf(from, sizeof from, "%s.%d", path, n - 1);
        snprintf(to, sizeof to, "%s.%d", path, n);
        if (rename(from, to) < 0 && errno != ENOENT)
            return -errno;
    }
    snprintf(to, sizeof to, "%s.1", path);
    int rc = backups > 0 ? s_copy_file(path, to) : 0;
    if (rc == 0 && truncate(path, 0) < 0)
        rc = -errno;
    return rc;
}

static void s_rotate_logs(sup_supervisor_t *self)
{
    const sup_mesh_config_t *cfg = self->cfg;
    int64_t now = vz_clock_mono_ms();
    if (cfg->log_max_bytes <= 0 || now < self->next_rotate_ms)
        return;
    self->next_rotate_ms = now + S_ROTATE_EVERY_MS;
    for (size_t i = 0; i < cfg->service_count; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            if (!self->services[i].replicas[k].present)
                continue;
            char path[VZ_PATH_MAX + 96];
            snprintf(path, sizeof path, "%s/logs/%s.%d.log", cfg->state_dir, cfg->services[i].name,
                     k);
            struct stat st;
            if (stat(path, &st) < 0 || st.st_size < cfg->log_max_bytes)
                continue;
            int rc = s_rotate_file(path, cfg->log_backups);
            if (rc < 0)
                vz_warn(NULL, "unable to rotate log", "file", path, "reason", strerror(-rc));
            else
                vz_debug(NULL, "log rotated", "file", path);
        }
}

typedef int (*s_cmd_fn_t)(sup_supervisor_t *, s_client_t *, char **, s_buf_t *);

//  Dispatch table; arity is checked centrally before the handler runs.
// clang-format off
static const struct {
    const char *name; //  request verb
    int min_args;     //  arguments after the verb
    int max_args;     //  (inclusive)
    s_cmd_fn_t fn;    //  handler
    bool changes;     //  starts or stops replicas (refused while an update is pending)
} s_commands[] = {
    {"status", 0, 1, s_cmd_status, false},     {"ports", 0, 0, s_cmd_ports, false},
    {"start", 1, 1, s_cmd_start, true},        {"stop", 1, 1, s_cmd_stop, true},
    {"restart", 1, 1, s_cmd_restart, true},    {"scale", 2, 2, s_cmd_scale, true},
    {"reload", 0, 1, s_cmd_reload, false},     {"wait", 0, 2, s_cmd_wait, false},
    {"shutdown", 0, 0, s_cmd_shutdown, false}, {"rotate", 1, 1, s_cmd_rotate, true},
    {"reread", 0, 0, s_cmd_reread, false},     {"update", 0, 0, s_cmd_update, true},
    {"canary", 2, S_MAX_ARGS - 1, s_cmd_canary, true},
};
// clang-format on

static void s_dispatch(sup_supervisor_t *self, s_client_t *c)
{
    char *argv[S_MAX_ARGS + 1] = {NULL};
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(c->buf, " \t\r", &save); tok && argc < S_MAX_ARGS;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    s_buf_t out = {.data = malloc(256), .len = 0, .cap = 256};
    assert(out.data);
    out.data[0] = '\0';
    int rc = -1;
    size_t n = sizeof s_commands / sizeof s_commands[0], k = 0;
    while (k < n && (argc == 0 || strcmp(s_commands[k].name, argv[0]) != 0))
        k++;
    if (k == n)
        s_buf_printf(&out, "unknown command \"%.32s\"", argc ? argv[0] : "");
    else if (argc - 1 < s_commands[k].min_args || argc - 1 > s_commands[k].max_args)
        s_buf_printf(&out, "%s takes %d..%d arguments", argv[0], s_commands[k].min_args,
                     s_commands[k].max_args);
    else if (self->shutting_down && strcmp(argv[0], "status") && strcmp(argv[0], "ports"))
        s_buf_printf(&out, "shutting down");
    //  While an update waits for old processes, nothing may start them again.
    else if (self->pending_cfg && s_commands[k].changes)
        s_buf_printf(&out, "an update is in progress: try again when it is done");
    else
        rc = s_commands[k].fn(self, c, argv, &out);
    if (rc == 0) {
        char *text = NULL;
        int len = asprintf(&text, "ok\n%s", out.data);
        assert(len >= 0);
        s_reply(self, c, text);
        free(text);
    } else if (rc < 0) {
        char *text = NULL;
        int len = asprintf(&text, "error %s\n", out.data);
        assert(len >= 0);
        s_reply(self, c, text);
        free(text);
    }
    free(out.data);
}

static void s_client_read(sup_supervisor_t *self, s_client_t *c)
{
    if (c->op != OP_NONE) {
        //  A waiting client that hangs up gives up its wait.
        char byte;
        if (recv(c->fd, &byte, 1, MSG_DONTWAIT) == 0) {
            close(c->fd);
            c->fd = -1;
            c->op = OP_NONE;
        }
        return;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *nl = strchr(c->buf, '\n');
    if (nl) {
        *nl = '\0';
        s_dispatch(self, c);
    } else if (c->len == sizeof c->buf - 1)
        s_reply(self, c, "error request line too long\n");
}

static void s_accept(sup_supervisor_t *self)
{
    int fd = accept4(self->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    //  A client that stops reading must not stall the whole mesh.
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (int i = 0; i < S_MAX_CLIENTS; i++)
        if (self->clients[i].fd < 0) {
            self->clients[i] = (s_client_t){.fd = fd, .op = OP_NONE, .service = -1, .replica = -1};
            return;
        }
    s_client_t busy = {.fd = fd};
    s_reply(self, &busy, "error too many control connections\n");
}

static void s_check_waits(sup_supervisor_t *self)
{
    //  Stops first: a stop of a service that an update removes is answered
    //  while the service still has its index.
    for (int i = 0; i < S_MAX_CLIENTS; i++) {
        s_client_t *c = &self->clients[i];
        if (c->fd >= 0 && c->op == OP_STOP && s_stop_check(self, c->service, c->replica)) {
            char text[VZ_NAME_MAX + 32];
            snprintf(text, sizeof text, "ok\nstopped %s\n", c->target);
            s_reply(self, c, text);
        }
    }
    if (self->pending_cfg && !self->shutting_down && s_update_ready(self))
        s_update_apply(self);
    int64_t now = vz_clock_mono_ms();
    for (int i = 0; i < S_MAX_CLIENTS; i++) {
        s_client_t *c = &self->clients[i];
        if (c->fd < 0 || c->op != OP_WAIT)
            continue;
        s_buf_t why = {.data = calloc(1, 256), .len = 0, .cap = 256};
        assert(why.data);
        int met = self->shutting_down ? -1 : s_wait_check(self, c->service, c->replica, &why);
        char *text = NULL;
        int len = 0;
        if (met > 0)
            len = asprintf(&text, "ok\n");
        else if (met < 0)
            len = asprintf(&text, "error %s\n", self->shutting_down ? "shutting down" : why.data);
        else if (now >= c->deadline)
            len = asprintf(&text, "error timeout: %s not ready in time\n", c->target);
        assert(len >= 0);
        if (text)
            s_reply(self, c, text);
        free(text);
        free(why.data);
    }
}

//  ---------------------------------------------------------------------------
//  Loop

static void s_reap(sup_supervisor_t *self)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (size_t i = 0; i < self->cfg->service_count; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                s_replica_t *r = &self->services[i].replicas[k];
                if (r->pid != pid)
                    continue;
                //  Cleared first: the exit action may already start a new process.
                r->status = status;
                r->last_pid = pid;
                r->pid = 0;
                s_close_notify(r);
                s_fire(self, r, EV_EXIT);
            }
}

static bool s_handle_signals(sup_supervisor_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            s_reap(self);
        else if (si.ssi_signo == SIGHUP) {
            s_buf_t out = {.data = calloc(1, 64), .len = 0, .cap = 64};
            assert(out.data);
            s_cmd_reload(self, NULL, NULL, &out);
            free(out.data);
        } else
            s_shutdown_begin(self, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
    return true;
}

static void s_read_notify(sup_supervisor_t *self, s_replica_t *r)
{
    char buf[64];
    ssize_t n = read(r->notify_fd, buf, sizeof buf);
    if (n > 0 && memchr(buf, '\n', (size_t)n)) {
        s_close_notify(r);
        s_fire(self, r, EV_NOTIFIED);
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        s_close_notify(r); //  closed without a line: never ready by notification
}

static void s_announce(sup_supervisor_t *self)
{
    if (self->announced || self->shutting_down || s_wait_check(self, -1, -1, NULL) <= 0)
        return;
    self->announced = true;
    vz_info(NULL, "mesh ready");
    if (self->notify_out >= 0) {
        ssize_t n = write(self->notify_out, "\n", 1);
        (void)n;
        close(self->notify_out);
        self->notify_out = -1;
    }
}

//  How long poll may sleep: a short tick while anything is in transition or
//  a probe is in flight (their deadlines are checked on ticks), otherwise
//  until the next readiness poll is due, at most S_TICK_IDLE_MS.
static int s_poll_timeout(sup_supervisor_t *self)
{
    if (self->shutting_down || self->pending_cfg)
        return S_TICK_BUSY_MS;
    for (int c = 0; c < S_MAX_CLIENTS; c++)
        if (self->clients[c].fd >= 0 && self->clients[c].op != OP_NONE)
            return S_TICK_BUSY_MS;
    int64_t now = vz_clock_mono_ms(), wake = now + S_TICK_IDLE_MS;
    for (size_t i = 0; i < self->cfg->service_count; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            const s_replica_t *r = &self->services[i].replicas[k];
            if (!r->present)
                continue;
            if (r->probe ||
                (r->state != ST_READY && r->state != ST_STOPPED && r->state != ST_FAILED))
                return S_TICK_BUSY_MS;
            if (r->state == ST_READY && self->cfg->services[i].ready_poll_ms > 0 &&
                r->next_probe_ms < wake)
                wake = r->next_probe_ms;
        }
    return wake > now ? (int)(wake - now) : 0;
}

int sup_supervisor_run(sup_supervisor_t *self)
{
    assert(self);
    static const char *const modes[] = {"auto", "uid", "fd", "off"};
    vz_info(NULL, "supervisor started", "state_dir", self->cfg->state_dir, "control",
            self->cfg->control, "isolation", modes[self->cfg->isolation]);
    if (*self->cfg->closed_dir)
        vz_warn(NULL,
                "isolation auto: fd, not uid: other uids cannot reach the binaries, the config "
                "or the state (chmod o+x the directory, or set supervisor/isolation; "
                "docs/operations/isolation.md)",
                "dir", self->cfg->closed_dir);
    for (size_t i = 0; i < self->cfg->service_count; i++)
        s_scale(self, (int)i, self->cfg->services[i].replicas);
    for (;;) {
        for (size_t i = 0; i < self->cfg->service_count; i++) {
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                s_replica_t *r = &self->services[i].replicas[k];
                s_probe_advance(self, r);
                if (r->present || r->pid)
                    s_fire(self, r, EV_TICK);
            }
            s_roll_step(self, (int)i);
        }
        s_check_waits(self);
        s_announce(self);
        s_rotate_logs(self);
        if (self->shutting_down && s_shutdown_step(self))
            break;
        size_t n = 0;
        self->pfds[n++] = (struct pollfd){.fd = self->signal_fd, .events = POLLIN};
        self->pfds[n++] = (struct pollfd){.fd = self->listen_fd, .events = POLLIN};
        for (int c = 0; c < S_MAX_CLIENTS; c++)
            self->pfds[n++] = (struct pollfd){.fd = self->clients[c].fd, .events = POLLIN};
        for (size_t i = 0; i < self->cfg->service_count; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++)
                self->pfds[n++] = (struct pollfd){.fd = self->services[i].replicas[k].notify_fd,
                                                  .events = POLLIN};
        for (size_t i = 0; i < self->cfg->service_count; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                const sup_probe_t *p = self->services[i].replicas[k].probe;
                self->pfds[n++] = (struct pollfd){.fd = p ? sup_probe_fd(p) : -1,
                                                  .events = p ? sup_probe_events(p) : 0};
            }
        int rc = poll(self->pfds, n, s_poll_timeout(self));
        if (rc < 0 && errno != EINTR) {
            vz_error(NULL, "unable to poll", "reason", strerror(errno));
            s_shutdown_begin(self, "poll failed");
            continue;
        }
        if (rc <= 0)
            continue;
        n = 0;
        if (self->pfds[n++].revents)
            s_handle_signals(self);
        if (self->pfds[n++].revents)
            s_accept(self);
        for (int c = 0; c < S_MAX_CLIENTS; c++)
            if (self->pfds[n++].revents && self->clients[c].fd >= 0)
                s_client_read(self, &self->clients[c]);
        for (size_t i = 0; i < self->cfg->service_count; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                s_replica_t *r = &self->services[i].replicas[k];
                if (self->pfds[n++].revents && r->notify_fd >= 0)
                    s_read_notify(self, r);
            }
        //  A probe may have been replaced meanwhile: step only the one polled.
        for (size_t i = 0; i < self->cfg->service_count; i++)
            for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
                s_replica_t *r = &self->services[i].replicas[k];
                struct pollfd *pfd = &self->pfds[n++];
                if (pfd->revents && r->probe && sup_probe_fd(r->probe) == pfd->fd)
                    s_probe_advance(self, r);
            }
    }
    vz_info(NULL, "supervisor stopped");
    return VZ_EXIT_OK;
}

//  ---------------------------------------------------------------------------
//  Setup

static int s_mkdir(const char *path, mode_t mode, char *err, size_t errlen)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "unable to create %s: %s", path, strerror(errno));
        return -1;
    }
    //  An existing directory gets the mode too: keys must never be world-readable.
    if (chmod(path, mode) < 0) {
        snprintf(err, errlen, "unable to chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

//  One supervisor per state directory: an flock on <state>/supervisor.lock,
//  held until exit (the kernel drops it even after SIGKILL). A second one
//  refuses to start, naming the pid written in the file by the holder.
static int s_lock_state(sup_supervisor_t *self, char *err, size_t errlen)
{
    char path[VZ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/supervisor.lock", self->cfg->state_dir);
    //  The message names the state directory twice and the lock once.
    char why[3 * VZ_PATH_MAX + 256];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "unable to open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(why, sizeof why,
                     "another vz-supervisor (pid %s) is running on the state directory %s "
                     "(%s is locked); stop it first (vzctl --state %s shutdown)",
                     *pid ? pid : "?", self->cfg->state_dir, path, self->cfg->state_dir);
        else
            snprintf(why, sizeof why, "unable to lock %s: %s", path, strerror(e));
        vz_strlcpy(err, why, errlen);
        return -1;
    }
    char text[24];
    int len = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) != len)
        vz_warn(NULL, "unable to write the pid to the lock file", "file", path);
    self->lock_fd = fd;
    return 0;
}

//  Each blank-separated item of a service's list template, expanded, to fn.
static int
s_each_path(const sup_mesh_config_t *cfg, const sup_mesh_service_t *svc, const char *tmpl,
            int (*fn)(const sup_mesh_config_t *, const sup_mesh_service_t *, const char *),
            char *err, size_t errlen)
{
    char list[VZ_PATH_MAX], why[128];
    if (sup_mesh_config_expand(cfg, tmpl, list, sizeof list, why, sizeof why) < 0) {
        snprintf(err, errlen, "services/%s: %s", svc->name, why);
        return -1;
    }
    char *save = NULL;
    for (char *p = strtok_r(list, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
        int rc = fn(cfg, svc, p);
        if (rc < 0) {
            snprintf(err, errlen, "unable to prepare %s for %s: %s", p, svc->name, strerror(-rc));
            return -1;
        }
    }
    return 0;
}

//  A state directory of a service: made, and its uid's with isolation uid.
static int s_state_dir(const sup_mesh_config_t *cfg, const sup_mesh_service_t *svc,
                       const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return cfg->isolation == SUP_ISOLATION_UID ? sup_iso_own_tree(path, svc->uid, svc->gid, 0700)
                                               : 0;
}

//  A secret file of a service: made when absent, owner-only.
static int s_secret_file(const sup_mesh_config_t *cfg, const sup_mesh_service_t *svc,
                         const char *path)
{
    return sup_iso_secret_file(path, svc->uid, svc->gid, cfg->isolation == SUP_ISOLATION_UID);
}

//  Isolation uid: each service owns its secrets and state (isolation.h);
//  Redis owns its directory, but not the secret its users' passwords come from.
static int s_prepare_owners(sup_supervisor_t *self, char *err, size_t errlen)
{
    sup_mesh_config_t *cfg = self->cfg;
    bool uid = cfg->isolation == SUP_ISOLATION_UID;
    if (uid && sup_iso_assign(cfg, err, errlen) < 0)
        return -1;
    char path[VZ_PATH_MAX + VZ_NAME_MAX + 32];
    for (size_t i = 0; i < cfg->service_count; i++) {
        const sup_mesh_service_t *svc = &cfg->services[i];
        int rc = 0;
        if (uid && svc->builtin_redis) {
            snprintf(path, sizeof path, "%s/redis", cfg->state_dir);
            rc = sup_iso_own_tree(path, svc->uid, svc->gid, 0700);
            snprintf(path, sizeof path, "%s/redis/secret", cfg->state_dir);
            if (rc == 0 && access(path, F_OK) == 0)
                rc = sup_iso_own_file(path, geteuid(), getegid(), 0600);
        } else if (uid) {
            snprintf(path, sizeof path, "%s/keys/secret/%s.key_secret", cfg->state_dir, svc->name);
            rc = sup_iso_own_file(path, svc->uid, svc->gid, 0400);
        }
        if (rc < 0) {
            snprintf(err, errlen, "unable to hand %s to the uid of %s: %s", path, svc->name,
                     strerror(-rc));
            return -1;
        }
        if (s_each_path(cfg, svc, svc->state_dirs, s_state_dir, err, errlen) < 0 ||
            s_each_path(cfg, svc, svc->secret_files, s_secret_file, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int s_prepare_state(sup_supervisor_t *self, char *err, size_t errlen)
{
    const sup_mesh_config_t *cfg = self->cfg;
    //  Isolation uid: the key tree may be crossed but not listed, the public
    //  keys are everyone's, and the logs (bootstrap tokens) are root's.
    bool uid = cfg->isolation == SUP_ISOLATION_UID;
    mode_t cross = uid ? 0711 : 0700;
    const struct {
        const char *sub; //  directory under state_dir
        mode_t mode;     //  its mode
    } dirs[] = {{"logs", uid ? 0700 : 0755}, {"redis", 0700},        {"keys", cross},
                {"keys/public", 0755},       {"keys/secret", cross}, {"keys/rotate", 0700}};
    char path[VZ_PATH_MAX + 32];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", cfg->state_dir, dirs[i].sub);
        if (s_mkdir(path, dirs[i].mode, err, errlen) < 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/keys", cfg->state_dir);
    for (size_t i = 0; i < cfg->service_count; i++) {
        if (cfg->services[i].builtin_redis)
            continue;
        int rc = vz_curve_keygen(path, cfg->services[i].name);
        if (rc < 0) {
            snprintf(err, errlen, "unable to generate the key pair of %s in %s: %s",
                     cfg->services[i].name, path, strerror(-rc));
            return -1;
        }
    }
    //  keygen may have widened it; the key tree stays owner-only (crossable under uid).
    if (s_mkdir(path, cross, err, errlen) < 0 || s_prepare_owners(self, err, errlen) < 0)
        return -1;
    int redis_port = sup_mesh_config_port(cfg, "redis");
    for (size_t i = 0; i < cfg->service_count; i++)
        if (cfg->services[i].builtin_redis) {
            if (sup_redis_acl_write(cfg, err, errlen) < 0)
                return -1;
            //  Redis reads its users; nobody else.
            sup_redis_acl_path(cfg, path, sizeof path);
            int rc =
                uid ? sup_iso_own_file(path, cfg->services[i].uid, cfg->services[i].gid, 0600) : 0;
            if (rc < 0) {
                snprintf(err, errlen, "unable to hand %s to redis: %s", path, strerror(-rc));
                return -1;
            }
            //  A running Redis (an update) learns new users now; at the
            //  first start it reads the file itself.
            sup_redis_acl_reload(cfg, redis_port);
        }
    return 0;
}

sup_supervisor_t *sup_supervisor_new(const char *config_path, const char *exe_dir, int *exit_code)
{
    assert(config_path && exe_dir && exit_code);
    sup_supervisor_t *self = calloc(1, sizeof *self);
    assert(self);
    self->cfg = calloc(1, sizeof *self->cfg);
    assert(self->cfg);
    self->listen_fd = self->signal_fd = self->notify_out = self->lock_fd = -1;
    vz_strlcpy(self->exe_dir, exe_dir, sizeof self->exe_dir);
    self->seed = (unsigned)getpid() ^ (unsigned)vz_clock_mono_ms();
    for (int c = 0; c < S_MAX_CLIENTS; c++)
        self->clients[c].fd = -1;
    for (size_t i = 0; i < SUP_MESH_MAX_SERVICES; i++) {
        self->services[i].roll_next = self->services[i].roll_current = -1;
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            self->services[i].replicas[k].service = (int)i;
            self->services[i].replicas[k].index = k;
            self->services[i].replicas[k].notify_fd = -1;
        }
    }
    //  Per replica: its readiness pipe and its probe socket.
    self->pfds = calloc(2 + S_MAX_CLIENTS + 2 * SUP_MESH_MAX_SERVICES * SUP_MESH_MAX_REPLICAS,
                        sizeof *self->pfds);
    assert(self->pfds);
    //  Block before anything could start a thread, so every thread inherits it.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &self->old_mask);
    signal(SIGPIPE, SIG_IGN);

    char err[VZ_PATH_MAX + 256];
    *exit_code = VZ_EXIT_PERMANENT;
    int rc = sup_mesh_config_load(self->cfg, config_path, err, sizeof err);
    if (rc == 0)
        rc = sup_mesh_config_resolve(self->cfg, exe_dir, err, sizeof err);
    //  Kept absolute: `reread` reads it again, whatever the cwd.
    char abs[PATH_MAX];
    if (rc == 0)
        vz_strlcpy(self->config_path, realpath(config_path, abs) ? abs : config_path,
                   sizeof self->config_path);
    if (rc == 0 && (rc = s_lock_state(self, err, sizeof err)) < 0)
        *exit_code = VZ_EXIT_TEMPORARY;
    if (rc == 0 && (rc = sup_mesh_config_alloc_ports(self->cfg)) < 0)
        snprintf(err, sizeof err, "unable to allocate auto ports: %s", strerror(-rc));
    if (rc == 0 && (rc = s_prepare_state(self, err, sizeof err)) < 0)
        *exit_code = VZ_EXIT_TEMPORARY;
    if (rc == 0) {
        self->listen_fd = sup_control_listen(self->cfg->control);
        if (self->listen_fd < 0) {
            rc = self->listen_fd;
            snprintf(err, sizeof err, "unable to listen on %s: %s", self->cfg->control,
                     rc == -EADDRINUSE ? "another supervisor is running there" : strerror(-rc));
        }
    }
    if (rc == 0 && (self->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, sizeof err, "unable to create signalfd: %s", strerror(errno));
        *exit_code = VZ_EXIT_TEMPORARY;
    }
    if (rc < 0) {
        fprintf(stderr, "vz-supervisor: %s\n", err);
        vz_error(NULL, "unable to start", "reason", err);
        sup_supervisor_destroy(&self);
        return NULL;
    }
    const char *nfd = getenv("VZ_NOTIFY_FD");
    if (nfd && *nfd) {
        char *end = NULL;
        long fd = strtol(nfd, &end, 10);
        if (*end == '\0' && fd > 2 && fcntl((int)fd, F_GETFD) >= 0) {
            self->notify_out = (int)fd;
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        }
    }
    *exit_code = VZ_EXIT_OK;
    return self;
}

void sup_supervisor_destroy(sup_supervisor_t **self_p)
{
    assert(self_p);
    sup_supervisor_t *self = *self_p;
    if (!self)
        return;
    for (int c = 0; c < S_MAX_CLIENTS; c++)
        if (self->clients[c].fd >= 0)
            s_reply(self, &self->clients[c], "error supervisor stopped\n");
    for (size_t i = 0; i < SUP_MESH_MAX_SERVICES; i++)
        for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
            s_close_notify(&self->services[i].replicas[k]);
            sup_probe_destroy(&self->services[i].replicas[k].probe);
        }
    if (self->listen_fd >= 0) {
        close(self->listen_fd);
        unlink(self->cfg->control);
    }
    if (self->signal_fd >= 0)
        close(self->signal_fd);
    if (self->notify_out >= 0)
        close(self->notify_out);
    //  The lock file stays: unlinking it would race with a supervisor locking it.
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self->pending_cfg);
    free(self->pending_reply);
    sigprocmask(SIG_SETMASK, &self->old_mask, NULL);
    free(self->pfds);
    free(self->cfg);
    free(self);
    *self_p = NULL;
}
