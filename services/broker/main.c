/*  vz-broker - routes requests between services under the call policy
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: read the configuration, build the app, run the reactor until
 *  SIGTERM, drain, tear down. The routing itself is in broker.c.
 *
 *  Telemetry: the broker reports like every daemon (VZ_TELEMETRY
 *  auto|on|off, vz_telemetry.h), but it cannot call itself through a
 *  socket: its reporter's snapshots go to telemetry.ingest through
 *  broker_send_self, as identity "broker" under the call policy, and the
 *  outcome comes back through broker_on_answer (auto mode's sink check).
 */
#include <czmq.h>

#include "broker.h"
#include "policy.h"
#include "weights.h"
#include "vz_curve.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_telemetry.h"
#include "vz_telemetry_contract.h"

#define S_SNAPSHOT_TTL_MS 10000 //  deadline of a snapshot, as vz_event gives every event

typedef struct {
    char bind[VZ_PATH_MAX];    //  VZ_BROKER_BIND
    char policy[VZ_PATH_MAX];  //  VZ_BROKER_POLICY
    char weights[VZ_PATH_MAX]; //  VZ_BROKER_WEIGHTS
    int queue_max;             //  VZ_BROKER_QUEUE_MAX
    int retry_max;             //  VZ_BROKER_RETRY_MAX
    int services_per_identity; //  VZ_BROKER_SERVICES_PER_IDENTITY
} s_config_t;

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_BIND", "broker/bind", VZ_CFG_STR,
                "tcp://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_BROKER), 0, 0, bind,
                "endpoint the broker's CURVE ROUTER binds (port 0 or * = ephemeral)"),
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_POLICY", "broker/policy", VZ_CFG_STR, "configs/policy.cfg",
                0, 0, policy, "call policy file (ZPL), relative to cwd"),
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_WEIGHTS", "broker/weights", VZ_CFG_STR, "", 0, 0, weights,
                "routing weights file (ZPL) splitting services between versions, reread on "
                "SIGHUP and when it changes (checked every second); \"\" or a missing file = "
                "no weights"),
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_QUEUE_MAX", "broker/queue_max", VZ_CFG_INT, "10000", 1,
                10000000, queue_max, "queued requests per service before \"overloaded\""),
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_RETRY_MAX", "broker/retry_max", VZ_CFG_INT, "1", 0, 10,
                retry_max, "re-dispatches of an idempotent request after its worker died"),
    VZ_CFG_ITEM(s_config_t, "VZ_BROKER_SERVICES_PER_IDENTITY", "broker/services_per_identity",
                VZ_CFG_INT, "16", 1, 4096, services_per_identity,
                "services one identity may create by calling or serving them; more are refused"),
};

typedef struct {
    vz_daemon_t *daemon;       //  common daemon machinery
    vz_auth_t *auth;           //  ZAP handler for the allow directory
    broker_t *broker;          //  routing engine
    zloop_t *loop;             //  the one reactor
    vz_telemetry_t *telemetry; //  the broker's own reporter, NULL when VZ_TELEMETRY=off
    const char *policy;        //  policy path, for reloads (points into the config)
    const char *weights;       //  weights path, "" = none (points into the config)
    weights_stamp_t stamp;     //  the weights file as last loaded
} s_app_t;

//  Read the weights file and apply it. 0, or -EINVAL when the file is bad
//  (logged; the weights in force stay).
static int s_load_weights(s_app_t *app)
{
    if (!*app->weights)
        return 0;
    weights_changed(app->weights, &app->stamp);
    char err[VZ_PATH_MAX + 128];
    broker_weights_t *list = NULL;
    size_t n = 0;
    int rc = weights_load(app->weights, &list, &n, err, sizeof err);
    if (rc == -EINVAL) {
        vz_error(NULL, "unable to load weights: keeping the old ones", "reason", err);
        return rc;
    }
    broker_set_weights(app->broker, list, n);
    free(list);
    char count[24];
    snprintf(count, sizeof count, "%zu", n);
    vz_info(NULL, "weights loaded", "path", app->weights, "services", count);
    return 0;
}

//  The weights file changed since it was loaded: load it, no signal needed.
static int s_weights_poll(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    s_app_t *app = (s_app_t *)arg;
    weights_stamp_t stamp = app->stamp;
    if (weights_changed(app->weights, &stamp))
        s_load_weights(app);
    return 0;
}

//  The reload hook (SIGHUP, on the reactor): swap the policy only when the
//  new file is valid.
static void s_reload(void *arg)
{
    s_app_t *app = (s_app_t *)arg;
    char err[VZ_PATH_MAX + 128];
    policy_t *policy = policy_load(app->policy, err, sizeof err);
    if (!policy) {
        vz_error(NULL, "unable to reload policy: keeping the old one", "reason", err);
        s_load_weights(app);
        return;
    }
    char count[24];
    snprintf(count, sizeof count, "%zu", policy_size(policy));
    broker_set_policy(app->broker, &policy);
    vz_info(NULL, "policy reloaded", "path", app->policy, "identities", count);
    s_load_weights(app);
}

//  A snapshot of the reporter: telemetry.ingest, sent by the broker itself.
static int s_tl_send(void *arg, const char *body, size_t len)
{
    s_app_t *app = (s_app_t *)arg;
    return broker_send_self(app->broker, VZ_TL_SERVICE, VZ_TL_METHOD_INGEST, body, len,
                            S_SNAPSHOT_TTL_MS);
}

//  What became of a snapshot: the sink's answer, for auto mode.
static void s_tl_answer(void *arg, const char *service, const char *code)
{
    s_app_t *app = (s_app_t *)arg;
    if (app->telemetry && strcmp(service, VZ_TL_SERVICE) == 0)
        vz_telemetry_answer(app->telemetry, code);
}

//  The broker's reporter as the common settings say (vz_telemetry_new_daemon
//  does the same for daemons that reach the broker through a socket).
static void s_tl_start(s_app_t *app)
{
    const vz_daemon_config_t *common = vz_daemon_config(app->daemon);
    if (common->telemetry == VZ_TELEMETRY_OFF)
        return;
    vz_telemetry_config_t tc = {.service = vz_daemon_service(app->daemon),
                                .replica = common->replica,
                                .interval_ms = common->telemetry_interval_ms,
                                .send = s_tl_send,
                                .arg = app,
                                .sample_permille = common->telemetry_sample_permille,
                                .slow_us = (int64_t)common->telemetry_slow_ms * 1000,
                                .auto_mode = common->telemetry == VZ_TELEMETRY_AUTO};
    app->telemetry = vz_telemetry_new(&tc);
    if (!app->telemetry || vz_telemetry_attach(app->telemetry, app->loop) < 0) {
        vz_warn(NULL, "unable to start telemetry reporting");
        vz_telemetry_destroy(&app->telemetry);
        return;
    }
    broker_on_answer(app->broker, s_tl_answer, app);
    broker_set_telemetry(app->broker, app->telemetry);
}

//  Unhook and destroy the reporter (before the loop it is attached to).
static void s_tl_stop(s_app_t *app)
{
    if (app->broker) {
        broker_on_answer(app->broker, NULL, NULL);
        broker_set_telemetry(app->broker, NULL);
    }
    vz_telemetry_destroy(&app->telemetry);
}

int main(int argc, char **argv)
{
    s_config_t config;
    vz_daemon_spec_t spec = {.service = "broker",
                             .admin_port = VZ_PORT_ADMIN_BROKER,
                             .needs_broker = false,
                             .needs_allow_dir = true,
                             .items = s_items,
                             .count = sizeof s_items / sizeof s_items[0],
                             .config = &config};
    int exit_code = VZ_EXIT_OK;
    s_app_t app = {.policy = config.policy, .weights = config.weights};
    app.daemon = vz_daemon_new(&spec, argc, argv, &exit_code);
    if (!app.daemon)
        return exit_code;

    char err[VZ_PATH_MAX + 128];
    policy_t *policy = policy_load(config.policy, err, sizeof err);
    if (!policy) {
        vz_error(NULL, "unable to start: bad policy", "reason", err);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_PERMANENT;
    }
    const vz_daemon_config_t *common = vz_daemon_config(app.daemon);
    app.auth = vz_auth_new(common->allow_dir);
    if (!app.auth) {
        vz_error(NULL, "unable to start authentication", "allow_dir", common->allow_dir);
        policy_destroy(&policy);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_PERMANENT;
    }
    broker_config_t bconfig = {.endpoint = config.bind,
                               .cert = vz_daemon_cert(app.daemon),
                               .metrics = vz_daemon_metrics(app.daemon),
                               .heartbeat_ms = common->heartbeat_ms,
                               .queue_max = config.queue_max,
                               .retry_max = config.retry_max,
                               .services_per_identity = config.services_per_identity,
                               .allow_dir = common->allow_dir};
    app.broker = broker_new(&bconfig, &policy);
    if (!app.broker) {
        //  A malformed endpoint will never bind; a busy port may free up.
        int permanent = errno == EINVAL || errno == EPROTONOSUPPORT;
        vz_error(NULL, "unable to bind broker socket", "endpoint", config.bind, "reason",
                 strerror(errno));
        policy_destroy(&policy);
        vz_auth_destroy(&app.auth);
        vz_daemon_destroy(&app.daemon);
        return permanent ? VZ_EXIT_PERMANENT : VZ_EXIT_TEMPORARY;
    }
    if (s_load_weights(&app) < 0) {
        broker_destroy(&app.broker);
        vz_auth_destroy(&app.auth);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_PERMANENT;
    }
    app.loop = zloop_new();
    s_tl_start(&app);
    vz_daemon_on_reload(app.daemon, s_reload, &app);
    if (*app.weights)
        zloop_timer(app.loop, WEIGHTS_POLL_MS, 0, s_weights_poll, &app);
    if (broker_attach(app.broker, app.loop) < 0 || vz_daemon_attach(app.daemon, app.loop) < 0) {
        vz_error(NULL, "unable to start reactor");
        exit_code = VZ_EXIT_TEMPORARY;
    } else {
        char port[16];
        snprintf(port, sizeof port, "%d", broker_port(app.broker));
        vz_info(NULL, "broker ready", "endpoint", config.bind, "port", port);
        vz_daemon_ready(app.daemon);
        //  zloop_start also returns when any signal (SIGHUP) interrupts its
        //  poll; only SIGTERM/SIGINT (zsys_interrupted) end the run.
        while (!zsys_interrupted)
            zloop_start(app.loop);
        vz_info(NULL, "broker draining");
        vz_daemon_not_ready(app.daemon, "shutting down");
        broker_drain(app.broker, common->drain_ms);
    }
    s_tl_stop(&app);
    zloop_destroy(&app.loop);
    broker_destroy(&app.broker);
    vz_auth_destroy(&app.auth);
    vz_daemon_destroy(&app.daemon);
    return exit_code;
}
