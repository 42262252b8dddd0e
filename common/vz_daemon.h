/*  vz_daemon - what every daemon does the same way (s6 daemon contract)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vz_daemon_new parses the common settings below plus the daemon's own
 *  table (environment, then optional ZPL file from --config or
 *  VZ_CONFIG_FILE), initialises logging, loads the CURVE certificate
 *  (refusing to start without one), resolves the broker key, starts the
 *  metrics registry and the admin HTTP port. It never daemonises.
 *
 *  Readiness: vz_daemon_ready sets /readyz to 200 and, the first time,
 *  writes "\n" to the file descriptor named by VZ_NOTIFY_FD and closes it
 *  (s6 notification-fd), so a supervisor learns the daemon is up only after
 *  every bind/connect succeeded.
 *
 *  Signals: SIGTERM and SIGINT set zsys_interrupted (CZMQ's handler), which
 *  stops the loop; the daemon then drains and exits VZ_EXIT_OK. SIGHUP sets
 *  a flag; the reload hook (vz_daemon_on_reload) runs on the reactor thread
 *  within 100 ms of it. A daemon without a hook may poll the flag with
 *  vz_daemon_reload_requested.
 *
 *  Redis: a daemon whose spec says needs_redis gets a Redis connection of
 *  its own for the check (VZ_REDIS_URL, validated at start, 100 ms
 *  timeouts), PINGed every 500 ms by vz_daemon_serve: the daemon is ready
 *  only while Redis answers, "redis unreachable" on /readyz otherwise.
 *
 *  Clock: VZ_CLOCK_START with VZ_CLOCK_TEST=1 shifts vz_clock_now_* for
 *  integration tests (vz_clock.h); the daemon logs a warning at start.
 *
 *  Common settings (env / ZPL path / default):
 *    VZ_LOG_LEVEL         log/level            info
 *    VZ_CURVE_CERT        curve/cert           (required unless VZ_CURVE_SECRET_FD)
 *                                              own secret certificate path
 *    VZ_CURVE_SECRET_FD   -                    -1  fd to read the certificate from, once
 *    VZ_CURVE_ALLOW_DIR   curve/allow_dir      ""  public certificates allowed to connect
 *    VZ_BROKER_KEY        broker/key           ""  broker public key: Z85 or certificate path
 *    VZ_BROKER_ENDPOINTS  broker/endpoints     tcp://127.0.0.1:5555
 *    VZ_ADMIN_ADDR        admin/addr           127.0.0.1
 *    VZ_ADMIN_PORT        admin/port           (the daemon's default; 0 = ephemeral)
 *    VZ_HEARTBEAT_MS      broker/heartbeat     1000
 *    VZ_DRAIN_TIMEOUT_MS  drain/timeout        5000
 *    VZ_REDIS_URL         redis/url            redis://127.0.0.1:6380
 *    VZ_REPLICA           -                    0   replica index, for logs
 *    VZ_WORKER_CREDIT     worker/credit        0   broker credit of a worker; 0 = the
 *                                                  credit the service passes to serve
 *    VZ_SERVICE_VERSION   worker/version       ""  version announced in RDY; "" = the
 *                                                  build's (VZ_BUILD_VERSION)
 *    VZ_TELEMETRY         report/telemetry     auto  auto|on|off: report request outcomes
 *                                                  and saturation to telemetry.ingest
 *                                                  (vz_telemetry.h); auto = while a sink
 *                                                  takes the snapshots, on = always
 *    VZ_TELEMETRY_INTERVAL_MS report/interval 10000  one snapshot per this period
 *    VZ_TELEMETRY_SAMPLE_PERMILLE report/sample 10  traces kept per 1000
 *    VZ_TELEMETRY_SLOW_MS report/slow          100   slower requests keep their span
 *
 *  Start-up refusals (exit 100, one JSON line on stderr naming the setting
 *  or file): any invalid setting, an unreadable or malformed config file,
 *  an unknown argument, a certificate that is missing, public-only,
 *  nameless or whose "name" is not spec->service, a missing broker key
 *  when needs_broker, a missing allow directory when needs_allow_dir, a
 *  VZ_NOTIFY_FD that is not an open descriptor. A busy admin port: 111.
 *  Success logs one "started" line (service_name, admin_port, replica, pid).
 *  VZ_NOTIFY_FD is removed from the environment once read.
 */
#ifndef VZ_DAEMON_H
#define VZ_DAEMON_H

#include <czmq.h>
#include "vz_admin.h"
#include "vz_common.h"
#include "vz_config.h"
#include "vz_log.h"
#include "vz_metrics.h"
#include "vz_redis.h"
#include "vz_worker.h"

typedef struct {
    int log_level;                       //  vz_log_level_t: debug|info|warn|error
    char cert[VZ_PATH_MAX];              //  own certificate (with secret)
    int cert_fd;                         //  VZ_CURVE_SECRET_FD: read it from here, -1 = cert
    char allow_dir[VZ_PATH_MAX];         //  allowed client certificates (servers only)
    char broker_key[VZ_PATH_MAX];        //  as configured: Z85 or path
    char broker_endpoints[VZ_PATH_MAX];  //  comma-separated
    char admin_addr[64];                 //  admin HTTP bind address
    int admin_port;                      //  admin HTTP port
    int heartbeat_ms;                    //  broker heartbeat interval
    int drain_ms;                        //  drain budget on SIGTERM
    char redis_url[VZ_PATH_MAX];         //  redis://host:port[/db] (with the password file's)
    char redis_password_file[VZ_PATH_MAX]; //  VZ_REDIS_PASSWORD_FILE, "" = none
    int replica;                         //  replica index given by the supervisor
    int worker_credit;                   //  broker credit override, 0 = service default
    char service_version[32];            //  VZ_SERVICE_VERSION, "" = the build's (VZ_BUILD_VERSION)
    char direct[128];                    //  VZ_DIRECT: off, auto or tcp://HOST:PORT (vz_worker.h)
    char config_file[VZ_PATH_MAX];       //  optional ZPL file
    int telemetry;                       //  vz_telemetry_mode_t
    int telemetry_interval_ms;           //  snapshot period
    int telemetry_sample_permille;       //  traces kept per 1000
    int telemetry_slow_ms;               //  spans this slow always kept
} vz_daemon_config_t;

//  VZ_TELEMETRY, in the order of its choices.
typedef enum { VZ_TELEMETRY_AUTO, VZ_TELEMETRY_ON, VZ_TELEMETRY_OFF } vz_telemetry_mode_t;

typedef struct {
    const char *service;          //  service name (also the expected certificate name)
    int admin_port;               //  default admin port for this daemon
    bool needs_broker;            //  broker key required
    bool needs_allow_dir;         //  accepts CURVE clients: allow dir required
    const vz_cfg_item_t *items;   //  the daemon's own settings (may be NULL)
    size_t count;                 //  rows in items
    void *config;                 //  the daemon's config struct the rows point into
    bool needs_redis;             //  ready only while Redis answers (VZ_REDIS_URL)
} vz_daemon_spec_t;

typedef struct vz_daemon_t vz_daemon_t;

//  Returns NULL and sets *exit_code: VZ_EXIT_OK after --help,
//  VZ_EXIT_PERMANENT for bad configuration or keys (message on stderr),
//  VZ_EXIT_TEMPORARY when the admin port cannot be bound.
vz_daemon_t *vz_daemon_new(const vz_daemon_spec_t *spec, int argc, char **argv, int *exit_code);
void vz_daemon_destroy(vz_daemon_t **self_p);

const vz_daemon_config_t *vz_daemon_config(const vz_daemon_t *self);
const char *vz_daemon_service(const vz_daemon_t *self);
zcert_t *vz_daemon_cert(vz_daemon_t *self);                //  borrowed
const char *vz_daemon_broker_key(const vz_daemon_t *self); //  Z85, "" if none
vz_metrics_t *vz_daemon_metrics(vz_daemon_t *self);        //  borrowed
vz_admin_t *vz_daemon_admin(vz_daemon_t *self);            //  borrowed

//  Mark ready (first call also notifies the supervisor) or not ready.
void vz_daemon_ready(vz_daemon_t *self);
void vz_daemon_not_ready(vz_daemon_t *self, const char *reason);

//  True (once) after SIGHUP. For daemons without a reload hook.
bool vz_daemon_reload_requested(vz_daemon_t *self);

//  The reload hook: after SIGHUP, fn(arg) runs once on the reactor thread
//  (the loop given to vz_daemon_serve or vz_daemon_attach), within 100 ms.
//  fn reloads what it can and logs what it could not; a bad new file must
//  leave the old state in place. One hook per daemon: a second call
//  replaces it, fn NULL removes it. Call before serve or attach.
typedef void(vz_reload_fn)(void *arg);
void vz_daemon_on_reload(vz_daemon_t *self, vz_reload_fn *fn, void *arg);

//  For a daemon that runs its own loop instead of vz_daemon_serve (the
//  broker): run the reload hook from that loop. 0, or -1 when the timer
//  cannot be added. Readiness stays the daemon's to set.
int vz_daemon_attach(vz_daemon_t *self, zloop_t *loop);

//  The Redis connection of the needs_redis check (NULL without it),
//  borrowed; reactor thread only, like every vz_redis_t.
vz_redis_t *vz_daemon_redis(vz_daemon_t *self);

//  An extra readiness condition for vz_daemon_serve, checked on the reactor
//  thread every 100 ms: return true when ready, else false with *reason (a
//  static or long-lived text). The daemon is ready, and the supervisor is
//  notified, only while the broker link is up AND Redis answers (with
//  needs_redis) AND the check passes. Call before vz_daemon_serve. For
//  Redis itself, set needs_redis instead of writing a check.
typedef bool(vz_ready_check_fn)(void *arg, const char **reason);
void vz_daemon_set_ready_check(vz_daemon_t *self, vz_ready_check_fn *fn, void *arg);

//  fn(arg) is called once on the reactor thread when vz_daemon_serve's
//  loop has stopped, before the worker drains: modules that hold open
//  deferred replies on other sockets (vz_call) end them here, while the
//  worker can still answer them. Up to 4 hooks, called in the order set;
//  set them before vz_daemon_serve.
typedef void(vz_stop_fn)(void *arg);
void vz_daemon_on_stop(vz_daemon_t *self, vz_stop_fn *fn, void *arg);

//  Run a worker daemon: build the worker from the common settings, attach it
//  to loop (NULL = a new loop; pass your own to add sockets of your own),
//  mark ready while the broker link is up and not ready while it is down,
//  run until SIGTERM, then drain. Returns the process exit code. credit is
//  the service's default for how many requests the broker may have
//  outstanding here (VZ_WORKER_CREDIT overrides it): 1 keeps a slow request
//  from holding others back at this replica; more lets the broker pipeline
//  requests, so one wake-up serves many (a fast service needs it).
int vz_daemon_serve(vz_daemon_t *self, zloop_t *loop, const vz_method_t *methods, size_t count,
                    int credit, void *app);

#endif
