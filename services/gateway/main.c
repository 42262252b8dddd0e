/*  vz-gateway - public HTTP front: routes /v1/... to services via the broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The main thread runs the one reactor (zloop): the upstream's broker
 *  client and wake-up fd, plus a tick that follows readiness and SIGTERM.
 *  libmicrohttpd's pool threads serve HTTP and reach the reactor only
 *  through vz_upstream_submit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "upstream.h"
#include "vz_daemon.h"

#define GATEWAY_ADMIN_PORT 9101
#define TICK_MS 50

typedef struct {
    vz_gateway_config_t http; //  public HTTP settings
    int grace_ms;             //  local wait past an upstream deadline
} gw_config_t;

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_ADDR", "gateway/addr", VZ_CFG_STR, "127.0.0.1", 0, 0,
                http.addr, "public HTTP bind address (IPv4)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_PORT", "gateway/port", VZ_CFG_INT, "8080", 0, 65535,
                http.port, "public HTTP port; 0 = ephemeral"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_THREADS", "gateway/threads", VZ_CFG_INT, "2", 1, 64,
                http.threads, "HTTP thread pool size"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_BODY", "gateway/max_body", VZ_CFG_INT, "1048576", 0,
                64 * 1024 * 1024, http.max_body, "largest request body, bytes (413 above)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_TIMEOUT_MS", "gateway/timeout", VZ_CFG_MS, "5000", 1,
                300000, http.timeout_ms, "default upstream deadline per request (504 after)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_GRACE_MS", "gateway/grace", VZ_CFG_MS, "250", 0, 5000,
                grace_ms, "extra wait past a deadline for the broker's own verdict"),
};

typedef struct {
    vz_daemon_t *daemon;     //  common settings, admin port, readiness
    vz_upstream_t *upstream; //  broker client (this thread)
    vz_gateway_t *gateway;   //  HTTP front
    bool ready;              //  last readiness we announced
    int64_t drain_until;     //  0 = not draining; else when to give up on in-flight
    bool drained;            //  the drain is over: leave the loop for good
} app_t;

//  Readiness follows the broker link; SIGTERM starts the drain, and the
//  loop ends once nothing is in flight or the drain budget is spent.
static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    app_t *app = arg;
    int64_t now = vz_now_ms();
    if (zsys_interrupted && !app->drain_until) {
        vz_daemon_not_ready(app->daemon, "draining");
        vz_gateway_drain(app->gateway);
        app->drain_until = now + vz_daemon_config(app->daemon)->drain_ms;
        char inflight[16];
        snprintf(inflight, sizeof inflight, "%d", vz_gateway_inflight(app->gateway));
        vz_info(NULL, "draining", "inflight", inflight);
    }
    if (app->drain_until) {
        app->drained = vz_gateway_inflight(app->gateway) == 0 || now >= app->drain_until;
        return app->drained ? -1 : 0;
    }
    bool up = vz_upstream_link_up(app->upstream);
    if (up && !app->ready)
        vz_daemon_ready(app->daemon);
    else if (!up && app->ready) {
        vz_daemon_not_ready(app->daemon, "broker link down");
        vz_warn(NULL, "broker link down");
    }
    app->ready = up;
    return 0;
}

int main(int argc, char **argv)
{
    gw_config_t config;
    vz_daemon_spec_t spec = {
        .service = "gateway",
        .admin_port = GATEWAY_ADMIN_PORT,
        .needs_broker = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    app_t app = {.daemon = vz_daemon_new(&spec, argc, argv, &code)};
    if (!app.daemon)
        return code;
    const vz_daemon_config_t *common = vz_daemon_config(app.daemon);
    vz_upstream_config_t upcfg = {
        .endpoints = common->broker_endpoints,
        .broker_key = vz_daemon_broker_key(app.daemon),
        .cert = vz_daemon_cert(app.daemon),
        .redis_url = common->redis_url,
        .heartbeat_ms = common->heartbeat_ms,
        .grace_ms = config.grace_ms,
    };
    app.upstream = vz_upstream_new(&upcfg);
    if (!app.upstream) {
        vz_error(NULL, "unable to create broker client", "endpoints", common->broker_endpoints);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_TEMPORARY;
    }
    app.gateway = vz_gateway_new(&config.http, app.upstream, vz_daemon_metrics(app.daemon));
    if (!app.gateway) {
        vz_error(NULL, "unable to listen on public HTTP port", "addr", config.http.addr, "reason",
                 strerror(errno));
        vz_upstream_destroy(&app.upstream);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_TEMPORARY;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", vz_gateway_port(app.gateway));
    vz_info(NULL, "listening", "addr", config.http.addr, "port", port);

    zloop_t *loop = zloop_new();
    zloop_set_nonstop(loop, true); //  s_on_tick ends the loop, after draining
    vz_upstream_attach(app.upstream, loop);
    zloop_timer(loop, TICK_MS, 0, s_on_tick, &app);
    //  A signal interrupting the poll ends zloop_start even in nonstop mode;
    //  go round again until the drain is over.
    while (zloop_start(loop) == 0 && !app.drained)
        ;
    zloop_destroy(&loop);

    //  Anything still waiting gets 503 before libmicrohttpd stops, so no
    //  connection is left suspended.
    vz_upstream_close(app.upstream);
    vz_gateway_destroy(&app.gateway);
    vz_upstream_destroy(&app.upstream);
    vz_info(NULL, "stopped");
    vz_daemon_destroy(&app.daemon);
    return VZ_EXIT_OK;
}
