/*  vz_daemon - what every daemon does the same way (s6 daemon contract)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Start-up is a straight line of checks, each of which either passes or
 *  ends the process with a message and the s6 exit code that tells the
 *  supervisor whether a restart can help: 100 for anything a person must
 *  fix (config, keys), 111 for what may clear by itself (a busy port).
 */
#include "vz_daemon.h"
#include "vz_clock.h"
#include "vz_curve.h"
#include "vz_ports.h"
#include "vz_proto.h"
#include "vz_telemetry.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TICK_MS 100          //  how often serve mirrors the broker link into readiness
#define S_REDIS_PROBE_MS 500   //  needs_redis: PING this often
#define S_REDIS_TIMEOUT_MS 100 //  needs_redis: connect and command timeout of the PING
#define S_STOP_MAX 4           //  vz_daemon_on_stop hooks

//  The signal flag: the one mutable global STYLE.md allows.
static volatile sig_atomic_t s_reload_flag;

struct vz_daemon_t {
    vz_daemon_config_t config; //  common settings as loaded
    vz_daemon_spec_t spec;     //  copy of the daemon's spec
    zcert_t *cert;             //  own certificate, with secret
    char broker_key[41];       //  broker public key, Z85, "" if none
    vz_metrics_t *metrics;     //  registry behind /metrics
    vz_admin_t *admin;         //  admin HTTP port
    int notify_fd;             //  s6 notification fd, -1 once used or absent
    struct sigaction old_hup;  //  SIGHUP disposition to restore
    int link_state;            //  serve: -1 unknown, 0 broker down, 1 ready, 2 check failing
    vz_ready_check_fn *check;  //  extra readiness condition, or NULL
    void *check_arg;           //  its argument
    char check_reason[128];    //  last reason the check gave
    vz_reload_fn *reload;      //  SIGHUP hook, or NULL
    void *reload_arg;          //  its argument
    vz_redis_t *redis;         //  needs_redis: the connection PINGed, else NULL
    int64_t redis_probe_ms;    //  monotonic time of the last PING
    bool redis_ok;             //  the last PING was answered
    const char *redis_why;     //  why not, for /readyz
    vz_stop_fn *on_stop[S_STOP_MAX]; //  called when serve's loop stops, in order
    void *on_stop_arg[S_STOP_MAX];   //  their arguments
    size_t nstop;                    //  hooks set
};

//  Rows in the order of vz_daemon_config_t. The admin port default differs
//  per daemon and is patched in by s_common_items.
static const vz_cfg_item_t s_common[] = {
    VZ_CFG_ENUM_ITEM(vz_daemon_config_t, "VZ_LOG_LEVEL", "log/level", "info",
                     "debug info warn error", log_level, "log level"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_CURVE_CERT", "curve/cert", VZ_CFG_STR, "", 0, 0, cert,
                "path of the daemon's own secret CURVE certificate (required unless "
                "VZ_CURVE_SECRET_FD)"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_CURVE_SECRET_FD", NULL, VZ_CFG_INT, "-1", -1, 65535,
                cert_fd,
                "inherited fd holding the certificate's text, read once and closed (the "
                "supervisor's isolation = fd); -1 = read VZ_CURVE_CERT"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_CURVE_ALLOW_DIR", "curve/allow_dir", VZ_CFG_STR, "", 0, 0,
                allow_dir, "directory of public certificates allowed to connect"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_BROKER_KEY", "broker/key", VZ_CFG_STR, "", 0, 0, broker_key,
                "broker public key: 40 Z85 characters or a certificate path"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_BROKER_ENDPOINTS", "broker/endpoints", VZ_CFG_ENDPOINT,
                "tcp://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_BROKER), 0, 0, broker_endpoints,
                "broker endpoints, comma-separated"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_ADMIN_ADDR", "admin/addr", VZ_CFG_STR, "127.0.0.1", 0, 0,
                admin_addr, "admin HTTP bind address"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_ADMIN_PORT", "admin/port", VZ_CFG_INT, "0", 0, 65535,
                admin_port, "admin HTTP port, 0 = ephemeral"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_HEARTBEAT_MS", "broker/heartbeat", VZ_CFG_MS, "1000", 10,
                60000, heartbeat_ms, "broker heartbeat interval"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_DRAIN_TIMEOUT_MS", "drain/timeout", VZ_CFG_MS, "5000", 0,
                600000, drain_ms, "how long to finish in-flight work on SIGTERM"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_REDIS_URL", "redis/url", VZ_CFG_STR,
                "redis://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_REDIS), 0, 0, redis_url,
                "Redis URL, redis[s]://[[user]:password@]host[:port][,host:port...][/db]"
                "[?ca_file=..&cluster=1|&sentinel=NAME&sentinel_password=..] "
                "(docs/operations/redis.md)"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_REDIS_PASSWORD_FILE", "redis/password_file", VZ_CFG_STR, "",
                0, 0, redis_password_file,
                "file holding the Redis password (a mounted Secret), put into VZ_REDIS_URL; "
                "\"\" = none"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_REPLICA", NULL, VZ_CFG_INT, "0", 0, 9999, replica,
                "replica index given by the supervisor, for logs"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_WORKER_CREDIT", "worker/credit", VZ_CFG_INT, "0", 0,
                VZ_CREDIT_MAX, worker_credit,
                "requests the broker may have outstanding at this worker, 0 = the service's own default"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_SERVICE_VERSION", "worker/version", VZ_CFG_STR, "", 0, 0,
                service_version,
                "version the worker announces to the broker (weighted routing, vzctl rollout); "
                "empty = the build's version"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_DIRECT", "worker/direct", VZ_CFG_STR, "auto", 0, 0, direct,
                "direct endpoint callers may use instead of a broker (docs/protocol.md, \"Direct "
                "calls\"): off, auto (the loopback when every broker is local, else every "
                "interface, announced by the host name's address) or tcp://HOST:PORT"),
    VZ_CFG_ENUM_ITEM(vz_daemon_config_t, "VZ_TELEMETRY", "report/telemetry", "auto", "auto on off",
                     telemetry,
                     "report request outcomes, spans and saturation to telemetry; auto = while a "
                     "sink takes them (else one probe a minute), on = always"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_TELEMETRY_INTERVAL_MS", "report/interval", VZ_CFG_MS,
                "10000", 100, 600000, telemetry_interval_ms, "telemetry snapshot period"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_TELEMETRY_SAMPLE_PERMILLE", "report/sample", VZ_CFG_INT,
                "10", 0, 1000, telemetry_sample_permille,
                "traces whose spans are kept, per 1000 (errors and slow requests always)"),
    VZ_CFG_ITEM(vz_daemon_config_t, "VZ_TELEMETRY_SLOW_MS", "report/slow", VZ_CFG_MS, "100", 0,
                600000, telemetry_slow_ms, "a request this slow always keeps its span; 0 = none"),
};
#define S_COMMON_COUNT (sizeof s_common / sizeof s_common[0])
#define S_ADMIN_PORT_ROW 7

static void s_common_items(vz_cfg_item_t items[S_COMMON_COUNT], char *port_text, size_t n,
                           int admin_port)
{
    memcpy(items, s_common, sizeof s_common);
    assert(strcmp(items[S_ADMIN_PORT_ROW].env, "VZ_ADMIN_PORT") == 0);
    snprintf(port_text, n, "%d", admin_port);
    items[S_ADMIN_PORT_ROW].def = port_text;
}

static void s_on_sighup(int sig)
{
    s_reload_flag = 1;
}

static void s_usage(const vz_daemon_spec_t *spec, const vz_cfg_item_t *items, const char *prog)
{
    printf("Usage: %s [--config FILE]\n\n"
           "Runs the %s daemon in the foreground. Settings come from the environment,\n"
           "which wins over the optional ZPL file (--config or VZ_CONFIG_FILE), which wins\n"
           "over the defaults below. Exit codes: 0 clean, 100 bad configuration or keys,\n"
           "111 temporary failure.\n\nCommon settings:\n",
           prog, spec->service);
    vz_config_usage(stdout, items, S_COMMON_COUNT);
    if (spec->count) {
        printf("\n%s settings:\n", spec->service);
        vz_config_usage(stdout, spec->items, spec->count);
    }
    fflush(stdout);
}

//  --config FILE, --config=FILE, --help. Returns 1 when help was shown,
//  0 to go on, -EINVAL (message in err) for anything else.
static int s_parse_args(int argc, char **argv, char *file, size_t n, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        const char *value = NULL;
        if (strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a FILE argument");
                return -EINVAL;
            }
            value = argv[++i];
        } else if (strncmp(arg, "--config=", 9) == 0)
            value = arg + 9;
        else {
            snprintf(err, errlen, "unknown argument \"%.64s\" (try --help)", arg);
            return -EINVAL;
        }
        if (vz_strlcpy(file, value, n) < 0) {
            snprintf(err, errlen, "--config path is longer than %zu bytes", n - 1);
            return -EINVAL;
        }
    }
    return 0;
}

//  VZ_REDIS_PASSWORD_FILE's first line into config's Redis URL. 0 or -1
//  (logged).
static int s_redis_password(vz_daemon_config_t *config)
{
    char password[256] = "", url[VZ_PATH_MAX];
    FILE *f = fopen(config->redis_password_file, "re");
    bool read = f && fgets(password, sizeof password, f);
    if (f)
        fclose(f);
    password[strcspn(password, "\r\n")] = '\0';
    int rc = read && password[0]
                 ? vz_redis_url_password(config->redis_url, password, url, sizeof url)
                 : -ENOENT;
    explicit_bzero(password, sizeof password);
    if (rc < 0) {
        vz_error(NULL, "unable to load configuration", "setting", "VZ_REDIS_PASSWORD_FILE", "file",
                 config->redis_password_file, "reason",
                 rc == -ENOENT   ? "unreadable or empty"
                 : rc == -EINVAL ? "VZ_REDIS_URL holds a password already"
                                 : "the URL gets too long");
        return -1;
    }
    vz_strlcpy(config->redis_url, url, sizeof config->redis_url);
    explicit_bzero(url, sizeof url);
    return 0;
}

//  Everything here runs once before any thread of ours exists, so a
//  failure can simply report and unwind.
static int s_setup(vz_daemon_t *self, int argc, char **argv)
{
    const vz_daemon_spec_t *spec = &self->spec;
    char err[VZ_PATH_MAX + 256] = "";
    char port_text[16];
    vz_cfg_item_t items[S_COMMON_COUNT];
    s_common_items(items, port_text, sizeof port_text, spec->admin_port);

    char file[VZ_PATH_MAX] = "";
    const char *env_file = getenv("VZ_CONFIG_FILE");
    if (env_file && vz_strlcpy(file, env_file, sizeof file) < 0) {
        vz_error(NULL, "unable to load configuration: VZ_CONFIG_FILE is too long");
        return VZ_EXIT_PERMANENT;
    }
    int rc = s_parse_args(argc, argv, file, sizeof file, err, sizeof err);
    if (rc == 1) {
        s_usage(spec, items, argc > 0 && argv[0] ? argv[0] : spec->service);
        return VZ_EXIT_OK;
    }
    if (rc == 0)
        rc = vz_config_load(&self->config, items, S_COMMON_COUNT, file, err, sizeof err);
    if (rc == 0 && spec->count)
        rc = vz_config_load(spec->config, spec->items, spec->count, file, err, sizeof err);
    if (rc < 0) {
        vz_error(NULL, "unable to load configuration", "reason", err);
        return VZ_EXIT_PERMANENT;
    }
    vz_strlcpy(self->config.config_file, file, sizeof self->config.config_file);

    //  The enum's choices are in vz_log_level_t order.
    vz_log_init(spec->service, (vz_log_level_t)self->config.log_level);
    const char *shifted = NULL;
    if (vz_clock_from_env(&shifted, err, sizeof err) < 0) {
        vz_error(NULL, "unable to load configuration", "reason", err);
        return VZ_EXIT_PERMANENT;
    }
    if (shifted)
        vz_warn(NULL,
                "clock shifted for tests: wall time runs from VZ_CLOCK_START (never in "
                "production)",
                "start", shifted, "setting", "VZ_CLOCK_START");

    //  Keys first: a daemon without them must refuse to start (s6 rule 11).
    //  A secret handed over by fd is read once; no file of it is needed.
    bool by_fd = self->config.cert_fd >= 0;
    if (by_fd)
        self->cert = vz_curve_cert_read_fd(self->config.cert_fd, err, sizeof err);
    else if (!*self->config.cert)
        snprintf(err, sizeof err, "VZ_CURVE_CERT is required but not set (or VZ_CURVE_SECRET_FD)");
    else
        self->cert = vz_curve_cert_load(self->config.cert, err, sizeof err);
    if (!self->cert) {
        vz_error(NULL, "unable to load certificate", "file", by_fd ? "-" : self->config.cert,
                 "reason", err, "setting", by_fd ? "VZ_CURVE_SECRET_FD" : "VZ_CURVE_CERT");
        return VZ_EXIT_PERMANENT;
    }
    const char *name = zcert_meta(self->cert, "name");
    if (!name || strcmp(name, spec->service) != 0) {
        vz_error(NULL, "unable to use certificate: it names another service", "file",
                 self->config.cert, "cert_name", name, "expected", spec->service);
        return VZ_EXIT_PERMANENT;
    }
    struct stat st;
    if (spec->needs_allow_dir && (stat(self->config.allow_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        vz_error(NULL, "unable to use allow directory: not a directory", "dir",
                 self->config.allow_dir, "setting", "VZ_CURVE_ALLOW_DIR");
        return VZ_EXIT_PERMANENT;
    }
    if (spec->needs_broker && !*self->config.broker_key) {
        vz_error(NULL, "unable to find broker key: VZ_BROKER_KEY is required", "setting",
                 "VZ_BROKER_KEY");
        return VZ_EXIT_PERMANENT;
    }
    if (*self->config.broker_key &&
        vz_curve_server_key(self->config.broker_key, self->broker_key) < 0) {
        vz_error(NULL,
                 "unable to read broker key: expected 40 Z85 characters or a public "
                 "certificate file",
                 "value", self->config.broker_key, "setting", "VZ_BROKER_KEY");
        return VZ_EXIT_PERMANENT;
    }

    if (self->config.redis_password_file[0] && s_redis_password(&self->config) < 0)
        return VZ_EXIT_PERMANENT;
    if (spec->needs_redis) {
        self->redis = vz_redis_new(self->config.redis_url, S_REDIS_TIMEOUT_MS, S_REDIS_TIMEOUT_MS,
                                   S_REDIS_PROBE_MS);
        if (!self->redis) {
            char shown[VZ_PATH_MAX]; //  never the password
            vz_redis_redact(self->config.redis_url, shown, sizeof shown);
            vz_error(NULL, "unable to load configuration", "reason",
                     "VZ_REDIS_URL: expected redis://host:port[/db] (rediss:// for TLS, "
                     "user:password@ before the host, TLS files readable)",
                     "value", shown);
            return VZ_EXIT_PERMANENT;
        }
    }

    const char *notify = getenv("VZ_NOTIFY_FD");
    if (notify && *notify) {
        char *end;
        long fd = strtol(notify, &end, 10);
        if (*end || fd < 0 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
            vz_error(NULL, "unable to use notification fd: not an open descriptor", "value", notify,
                     "setting", "VZ_NOTIFY_FD");
            return VZ_EXIT_PERMANENT;
        }
        self->notify_fd = (int)fd;
        fcntl(self->notify_fd, F_SETFD, FD_CLOEXEC);
    }
    //  Our children (if any) must not inherit a descriptor they cannot use.
    unsetenv("VZ_NOTIFY_FD");

    self->metrics = vz_metrics_new();
    assert(self->metrics);
    vz_metrics_enable_process(self->metrics);
    self->admin = vz_admin_new(self->config.admin_addr, self->config.admin_port, self->metrics);
    if (!self->admin) {
        char where[128];
        snprintf(where, sizeof where, "%s:%d", self->config.admin_addr, self->config.admin_port);
        vz_error(NULL, "unable to bind admin port", "addr", where, "reason", strerror(errno));
        return VZ_EXIT_TEMPORARY;
    }
    vz_admin_set_ready(self->admin, false, "starting");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, &self->old_hup);
    //  CZMQ installs its SIGINT/SIGTERM handler here, so a signal that
    //  arrives before the first socket still ends in a clean drain.
    zsys_init();

    char port[16], replica[16], pid[16];
    snprintf(port, sizeof port, "%d", vz_admin_port(self->admin));
    snprintf(replica, sizeof replica, "%d", self->config.replica);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    vz_info(NULL, "started", "service_name", spec->service, "admin_port", port, "replica", replica,
            "pid", pid);
    return -1;
}

vz_daemon_t *vz_daemon_new(const vz_daemon_spec_t *spec, int argc, char **argv, int *exit_code)
{
    assert(spec && spec->service && exit_code);
    assert(!spec->count || (spec->items && spec->config));
    vz_daemon_t *self = calloc(1, sizeof *self);
    assert(self);
    self->spec = *spec;
    self->notify_fd = -1;
    self->link_state = -1;
    //  Log lines before the level is known still carry the service name.
    vz_log_init(spec->service, VZ_LOG_INFO);
    int code = s_setup(self, argc, argv);
    if (code >= 0) {
        *exit_code = code;
        vz_daemon_destroy(&self);
        return NULL;
    }
    *exit_code = VZ_EXIT_OK;
    return self;
}

void vz_daemon_destroy(vz_daemon_t **self_p)
{
    assert(self_p);
    vz_daemon_t *self = *self_p;
    if (!self)
        return;
    if (self->admin)
        sigaction(SIGHUP, &self->old_hup, NULL);
    vz_admin_destroy(&self->admin);
    vz_redis_destroy(&self->redis);
    vz_metrics_destroy(&self->metrics);
    zcert_destroy(&self->cert);
    if (self->notify_fd >= 0)
        close(self->notify_fd);
    free(self);
    *self_p = NULL;
}

const vz_daemon_config_t *vz_daemon_config(const vz_daemon_t *self)
{
    assert(self);
    return &self->config;
}

const char *vz_daemon_service(const vz_daemon_t *self)
{
    assert(self);
    return self->spec.service;
}

zcert_t *vz_daemon_cert(vz_daemon_t *self)
{
    assert(self);
    return self->cert;
}

const char *vz_daemon_broker_key(const vz_daemon_t *self)
{
    assert(self);
    return self->broker_key;
}

vz_metrics_t *vz_daemon_metrics(vz_daemon_t *self)
{
    assert(self);
    return self->metrics;
}

vz_admin_t *vz_daemon_admin(vz_daemon_t *self)
{
    assert(self);
    return self->admin;
}

void vz_daemon_ready(vz_daemon_t *self)
{
    assert(self);
    vz_admin_set_ready(self->admin, true, NULL);
    if (self->notify_fd >= 0) {
        //  s6 notification: one newline, then the descriptor is closed so
        //  the supervisor also sees EOF.
        ssize_t rc;
        do
            rc = write(self->notify_fd, "\n", 1);
        while (rc < 0 && errno == EINTR);
        close(self->notify_fd);
        self->notify_fd = -1;
    }
}

void vz_daemon_not_ready(vz_daemon_t *self, const char *reason)
{
    assert(self);
    vz_admin_set_ready(self->admin, false, reason);
}

bool vz_daemon_reload_requested(vz_daemon_t *self)
{
    assert(self);
    if (!s_reload_flag)
        return false;
    s_reload_flag = 0;
    return true;
}

void vz_daemon_on_reload(vz_daemon_t *self, vz_reload_fn *fn, void *arg)
{
    assert(self);
    self->reload = fn;
    self->reload_arg = arg;
}

vz_redis_t *vz_daemon_redis(vz_daemon_t *self)
{
    assert(self);
    return self->redis;
}

//  The flag is left alone without a hook, for daemons that poll it.
static void s_run_reload(vz_daemon_t *self)
{
    if (self->reload && vz_daemon_reload_requested(self))
        self->reload(self->reload_arg);
}

static int s_on_attach_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_run_reload(arg);
    return 0;
}

int vz_daemon_attach(vz_daemon_t *self, zloop_t *loop)
{
    assert(self && loop);
    return zloop_timer(loop, S_TICK_MS, 0, s_on_attach_tick, self) < 0 ? -1 : 0;
}

//  needs_redis: PING on the reactor, bounded by the 100 ms timeouts; a
//  Redis that is away costs a failed connect at most every probe period.
static bool s_redis_answers(vz_daemon_t *self)
{
    int64_t now = vz_clock_mono_ms();
    if (self->redis_probe_ms && now - self->redis_probe_ms < S_REDIS_PROBE_MS)
        return self->redis_ok;
    self->redis_probe_ms = now;
    const char *argv[] = {"PING"};
    redisReply *reply = vz_redis_command(self->redis, 1, argv, NULL);
    self->redis_ok = reply && reply->type == REDIS_REPLY_STATUS;
    //  Credentials refused (a wrong password, or none where Redis wants
    //  one) is a configuration error: say so rather than "unreachable".
    bool refused = vz_redis_refused(self->redis) ||
                   (reply && reply->type == REDIS_REPLY_ERROR &&
                    (strncmp(reply->str, "NOAUTH", 6) == 0 ||
                     strncmp(reply->str, "WRONGPASS", 9) == 0 ||
                     strncmp(reply->str, "NOPERM", 6) == 0));
    self->redis_why = refused ? "redis refused our credentials (the user and password of "
                                "VZ_REDIS_URL)"
                              : "redis unreachable";
    if (reply)
        freeReplyObject(reply);
    return self->redis_ok;
}

typedef struct {
    vz_daemon_t *daemon; //  whose readiness to set
    vz_worker_t *worker; //  whose link to watch
} s_serve_t;

void vz_daemon_set_ready_check(vz_daemon_t *self, vz_ready_check_fn *fn, void *arg)
{
    assert(self);
    self->check = fn;
    self->check_arg = arg;
}

void vz_daemon_on_stop(vz_daemon_t *self, vz_stop_fn *fn, void *arg)
{
    assert(self && fn && self->nstop < S_STOP_MAX);
    self->on_stop[self->nstop] = fn;
    self->on_stop_arg[self->nstop++] = arg;
}

//  Readiness follows the broker link and the daemon's own check (Redis, say):
//  a worker that cannot do its job should not count as a ready endpoint, and
//  the supervisor must not hear "ready" before both hold.
static int s_on_link_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_serve_t *serve = arg;
    vz_daemon_t *self = serve->daemon;
    s_run_reload(self);
    bool link = vz_worker_connected(serve->worker);
    const char *reason = "";
    bool check = true;
    if (self->redis && !s_redis_answers(self)) {
        check = false;
        reason = self->redis_why;
    } else if (self->check)
        check = self->check(self->check_arg, &reason);
    int state = !link ? 0 : check ? 1 : 2;
    if (state == self->link_state &&
        (state != 2 || strcmp(reason ? reason : "", self->check_reason) == 0))
        return 0;
    int was = self->link_state;
    self->link_state = state;
    vz_strlcpy(self->check_reason, reason ? reason : "", sizeof self->check_reason);
    if (state == 1) {
        vz_daemon_ready(self);
        vz_info(NULL, was == 2 ? "ready again" : "broker link up");
    } else if (state == 0) {
        vz_daemon_not_ready(self, "broker unreachable");
        vz_warn(NULL, "broker link down", "endpoints", self->config.broker_endpoints);
    } else {
        const char *why = *self->check_reason ? self->check_reason : "not ready";
        vz_daemon_not_ready(self, why);
        vz_warn(NULL, "not ready", "reason", why);
    }
    return 0;
}

static void s_observe(void *arg, const char *method, const char *code, int64_t duration_us,
                      const char *traceparent)
{
    vz_telemetry_record((vz_telemetry_t *)arg, method, code, duration_us);
    vz_telemetry_span((vz_telemetry_t *)arg, traceparent, method, code ? code : "ok", duration_us);
}

int vz_daemon_serve(vz_daemon_t *self, zloop_t *loop, const vz_method_t *methods, size_t count,
                    int credit, void *app)
{
    assert(self);
    if (!*self->broker_key) {
        vz_error(NULL, "unable to start worker: VZ_BROKER_KEY is required", "setting",
                 "VZ_BROKER_KEY");
        return VZ_EXIT_PERMANENT;
    }
    if (*self->config.service_version && !vz_version_valid(self->config.service_version)) {
        vz_error(NULL, "unable to start worker: bad VZ_SERVICE_VERSION", "setting",
                 "VZ_SERVICE_VERSION", "value", self->config.service_version);
        return VZ_EXIT_PERMANENT;
    }
    //  Every method's outcome goes to the daemon's reporter (vz_telemetry.h).
    zloop_t *own = loop ? NULL : zloop_new();
    if (own)
        loop = own;
    vz_telemetry_t *telemetry = vz_telemetry_new_daemon(self, loop);
    if (!telemetry && errno)
        vz_warn(NULL, "unable to start telemetry reporting", "reason", strerror(errno));
    vz_worker_config_t config = {
        .service = self->spec.service,
        .endpoints = self->config.broker_endpoints,
        .broker_key = self->broker_key,
        .cert = self->cert,
        .heartbeat_ms = self->config.heartbeat_ms,
        //  The operator's setting wins over the service's default.
        .credit = self->config.worker_credit > 0 ? self->config.worker_credit : credit,
        .metrics = self->metrics,
        .observe = telemetry ? s_observe : NULL,
        .observe_arg = telemetry,
        .version = *self->config.service_version ? self->config.service_version : VZ_BUILD_VERSION,
        .direct = self->config.direct,
    };
    vz_worker_t *worker = vz_worker_new(&config, methods, count, app);
    if (!worker) {
        vz_error(NULL, "unable to create worker", "reason", strerror(errno), "endpoints",
                 self->config.broker_endpoints);
        vz_telemetry_destroy(&telemetry);
        zloop_destroy(&own);
        return VZ_EXIT_TEMPORARY;
    }
    s_serve_t serve = {self, worker};
    int timer = zloop_timer(loop, S_TICK_MS, 0, s_on_link_tick, &serve);
    int code = VZ_EXIT_OK;
    if (timer < 0 || vz_worker_attach(worker, loop) < 0) {
        vz_error(NULL, "unable to attach worker to the reactor");
        code = VZ_EXIT_TEMPORARY;
    } else {
        self->link_state = -1;
        vz_daemon_not_ready(self, "broker unreachable");
        //  zloop_start returns 0 when poll is interrupted by any signal
        //  (SIGHUP included) and -1 when a handler failed; only SIGTERM or
        //  SIGINT (zsys_interrupted) ends a clean run.
        int rc = 0;
        while (rc == 0 && !zsys_interrupted)
            rc = zloop_start(loop);
        if (rc < 0)
            code = VZ_EXIT_TEMPORARY;
    }
    if (timer >= 0)
        zloop_timer_end(loop, timer);
    for (size_t i = 0; i < self->nstop; i++)
        self->on_stop[i](self->on_stop_arg[i]);
    vz_daemon_not_ready(self, "draining");
    char drain[16];
    snprintf(drain, sizeof drain, "%d", self->config.drain_ms);
    vz_info(NULL, "draining", "timeout_ms", drain);
    vz_worker_drain(worker, self->config.drain_ms);
    vz_worker_destroy(&worker);
    vz_telemetry_destroy(&telemetry);
    zloop_destroy(&own);
    vz_info(NULL, "stopped");
    return code;
}
