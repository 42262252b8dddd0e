/*  vz-gateway - public HTTP front: routes /v1/... to services via the broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The main thread runs the one reactor (zloop): the upstream's broker
 *  client and wake-up fd, plus a tick that follows readiness and SIGTERM.
 *  libmicrohttpd's pool threads serve HTTP and reach the reactor only
 *  through gw_upstream_submit.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "health.h"
#include "upstream.h"
#include "vz_admin.h"
#include "vz_clock.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_ratelimit_contract.h"

#define TICK_MS 50

typedef struct {
    gw_gateway_config_t http; //  public HTTP settings
    int grace_ms;             //  local wait past an upstream deadline
    char routes[VZ_PATH_MAX]; //  route table file, "" = search the default places
    int retry_budget_pct;     //  retries as a share of first attempts
    gw_edge_config_t edge;    //  JWT, API keys, fail-open buckets
    int rl_failure;           //  0 open, 1 closed (the order of its choices)
    bool rl_batch;            //  ratelimit.check_batch for checks queued together
    bool direct;              //  idempotent forwards straight to workers (docs/protocol.md)
    int bundle_max;           //  forwards per bundle envelope (0/1 = off)
    int health_ms;            //  between /health probes
    char trusted[1024];       //  trusted proxies, CIDRs
    int fwd_header;           //  0 X-Forwarded-For, 1 Forwarded (the order of its choices)
} gw_config_t;

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_ADDR", "gateway/addr", VZ_CFG_STR, "127.0.0.1", 0, 0,
                http.addr, "public HTTP bind address (IPv4)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_PORT", "gateway/port", VZ_CFG_INT,
                VZ_PORT_TEXT(VZ_PORT_GATEWAY), 0, 65535, http.port,
                "public HTTP port; 0 = ephemeral"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_THREADS", "gateway/threads", VZ_CFG_INT, "2", 1, 64,
                http.threads, "HTTP thread pool size"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_BODY", "gateway/max_body", VZ_CFG_INT, "1048576", 0,
                64 * 1024 * 1024, http.max_body, "largest request body, bytes (413 above)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_TIMEOUT_MS", "gateway/timeout", VZ_CFG_MS, "5000", 1,
                300000, http.timeout_ms, "default upstream deadline per request (504 after)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_GRACE_MS", "gateway/grace", VZ_CFG_MS, "250", 0, 5000,
                grace_ms, "extra wait past a deadline for the broker's own verdict"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_ROUTES", "gateway/routes", VZ_CFG_STR, "", 0, 0, routes,
                "route table (ZPL); \"\" = configs/routes.cfg in the cwd or the source tree"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_OPENAPI", "gateway/openapi", VZ_CFG_STR, "", 0, 0,
                http.openapi_path,
                "OpenAPI document for /v1/openapi.yaml; \"\" = docs/openapi.yaml, found alike"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_URL", "gateway/max_url", VZ_CFG_INT, "2048", 64, 65536,
                http.max_url, "longest request path, bytes (414 above)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_HEADER", "gateway/max_header", VZ_CFG_INT, "16384",
                4096, 1048576, http.max_header,
                "memory for one request head, bytes (431 or 414 above)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_ACCESS_LOG_BUFFER", "gateway/access_log_buffer",
                VZ_CFG_INT, "32768", 0, 1048576, http.access_log_buffer,
                "access-log lines collected before one write, bytes (flushed every 50 ms); 0 = "
                "a write per line"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_DEPRECATION_CLIENTS", "gateway/deprecation_clients",
                VZ_CFG_INT, "100", 1, 1000, http.deprecation_clients,
                "callers recorded per deprecated route (the busiest kept; GET "
                "/v1/admin/deprecations)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_CONNECTIONS", "gateway/max_connections", VZ_CFG_INT,
                "1024", 1, 100000, http.max_connections, "concurrent client connections"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_MAX_PER_IP", "gateway/max_per_ip", VZ_CFG_INT, "0", 0,
                100000, http.max_per_ip, "concurrent connections per client IP; 0 = no limit"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_IDLE_TIMEOUT_MS", "gateway/idle_timeout", VZ_CFG_MS,
                "30000", 1000, 3600000, http.idle_s,
                "idle or slow client connection closed after this"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_CORS_ORIGINS", "gateway/cors_origins", VZ_CFG_STR, "", 0,
                0, http.cors_origins,
                "CORS: allowed Origins, comma-separated; * = any; \"\" = off"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_HEALTH_PROBE_MS", "gateway/health_probe", VZ_CFG_MS, "2s",
                100, 60000, health_ms,
                "/health is probed (broker, Redis, workers) this often and answered from the "
                "last result"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_TRUSTED_PROXIES", "gateway/trusted_proxies", VZ_CFG_STR,
                "", 0, 0, trusted,
                "peers (IPv4/IPv6 CIDRs, comma-separated) whose forwarding header names the "
                "client; \"\" = the TCP peer is the client"),
    VZ_CFG_ENUM_ITEM(gw_config_t, "VZ_GATEWAY_CLIENT_IP_HEADER", "gateway/client_ip_header",
                     "x-forwarded-for", "x-forwarded-for forwarded", fwd_header,
                     "header a trusted proxy names the client in; read from the right, the "
                     "right-most untrusted address wins"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_PROXY_PROTOCOL", "gateway/proxy_protocol", VZ_CFG_BOOL,
                "false", 0, 0, http.proxy_protocol,
                "a trusted proxy's connection may start with a PROXY protocol header (v1 or v2) "
                "naming the client"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RETRY_BUDGET", "gateway/retry_budget", VZ_CFG_INT, "20", 0,
                100, retry_budget_pct, "retries of idempotent calls, % of first attempts"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_BREAKER_FAILURES", "gateway/breaker/failures", VZ_CFG_INT,
                "5", 1, 1000, http.breaker.failures,
                "breaker: consecutive upstream failures that open it"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_BREAKER_RATIO", "gateway/breaker/ratio", VZ_CFG_INT, "50",
                1, 100, http.breaker.ratio_pct,
                "breaker: % of failures over the window that opens it"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_BREAKER_WINDOW", "gateway/breaker/window", VZ_CFG_INT,
                "20", 2, 64, http.breaker.window, "breaker: outcomes in the ratio window"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_BREAKER_COOLDOWN_MS", "gateway/breaker/cooldown",
                VZ_CFG_MS, "5000", 10, 600000, http.breaker.cooldown_ms,
                "breaker: open time before half-open probes"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWT_ISSUER", "gateway/jwt/issuer", VZ_CFG_STR,
                "http://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_GATEWAY), 0, 0, edge.issuer,
                "required JWT iss (auth's VZ_AUTH_ISSUER)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWT_AUDIENCE", "gateway/jwt/audience", VZ_CFG_STR,
                "vizmesh", 0, 0, edge.audience, "required JWT aud (auth's VZ_AUTH_AUDIENCE)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWT_LEEWAY_S", "gateway/jwt/leeway", VZ_CFG_INT, "30", 0,
                300, edge.leeway_s, "clock skew allowed on exp/nbf/iat, seconds"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWKS_REFRESH_MS", "gateway/jwks/refresh", VZ_CFG_MS, "5m",
                1000, 86400000, edge.refresh_ms, "JWKS background refresh period"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWKS_MIN_INTERVAL_MS", "gateway/jwks/min_interval",
                VZ_CFG_MS, "10s", 10, 3600000, edge.min_interval_ms,
                "least time between JWKS fetches (unknown kid, retries)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_JWKS_RETRY_MS", "gateway/jwks/retry", VZ_CFG_MS, "1s", 10,
                3600000, edge.retry_ms,
                "least time between JWKS fetches while no key was ever fetched and the last "
                "fetch failed (as Envoy's failed_refetch_duration)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_TOKEN_CACHE", "gateway/jwt/cache", VZ_CFG_INT, "1024", 0,
                1000000, edge.token_cache, "verified-token cache slots; 0 = off"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_AUTH_TIMEOUT_MS", "gateway/auth/timeout", VZ_CFG_MS, "1s",
                10, 60000, edge.fetch_timeout_ms, "deadline of auth.jwks and auth.api_key_verify"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_AUTH_FAILURES", "gateway/auth/failures", VZ_CFG_INT, "60",
                1, 1000000, http.auth_failures,
                "failed credentials a minute per client IP (per replica); beyond, its requests "
                "with a credential get 429 before any verification or call to auth"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_APIKEY_TTL_MS", "gateway/apikey/ttl", VZ_CFG_MS, "30s", 0,
                3600000, edge.apikey_ttl_ms, "valid API-key answers cached this long"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_APIKEY_NEGATIVE_MS", "gateway/apikey/negative_ttl",
                VZ_CFG_MS, "5s", 0, 3600000, edge.apikey_negative_ms,
                "unknown or revoked API keys cached this long"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_APIKEY_CACHE_MAX", "gateway/apikey/cache_max", VZ_CFG_INT,
                "10000", 1, 10000000, edge.apikey_cache_max, "API-key cache entries at most"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_TIMEOUT_MS", "gateway/ratelimit/timeout",
                VZ_CFG_MS, "100", 1, 10000, http.rl_timeout_ms,
                "deadline of ratelimit.check; then the failure policy applies"),
    VZ_CFG_ENUM_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_FAILURE", "gateway/ratelimit/failure",
                     "open", "open closed", rl_failure,
                     "limiter silent: open (local per-replica bucket) or closed (503)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_BATCH", "gateway/ratelimit/batch", VZ_CFG_BOOL,
                "true", 0, 0, rl_batch,
                "send the checks queued together as one ratelimit.check_batch"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_DIRECT", "gateway/upstream/direct", VZ_CFG_BOOL, "true", 0,
                0, direct,
                "send idempotent calls straight to a worker's direct endpoint when a broker's "
                "directory lists one (docs/protocol.md, \"Direct calls\"); false = every call "
                "through a broker"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_FORWARD_BUNDLE", "gateway/upstream/bundle", VZ_CFG_INT,
                "64", 0, 256, bundle_max,
                "forwards to one service.method queued together travel as one bundle envelope of "
                "at most this many (0 or 1 = one envelope each)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_LEASE", "gateway/ratelimit/lease", VZ_CFG_INT,
                "32", 0, 1000, http.rl_lease,
                "most tokens one check leases for a busy caller (0 or 1 = every request checked; "
                "never above 1% of the policy's limit)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_LEASE_MS", "gateway/ratelimit/lease_ms",
                VZ_CFG_MS, "1000", 1, 60000, http.rl_lease_ms,
                "leased tokens not spent by then are dropped"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_RATELIMIT_LOCAL_LIMIT", "gateway/ratelimit/local_limit",
                VZ_CFG_INT, "100", 1, 100000000, http.rl_local_limit,
                "fail-open: anonymous requests a minute per replica (free x10, premium x100)"),
    VZ_CFG_ITEM(gw_config_t, "VZ_GATEWAY_BREAKER_PROBES", "gateway/breaker/probes", VZ_CFG_INT, "1",
                1, 100, http.breaker.probes, "breaker: calls let through at once when half-open"),
};

//  Resolve a default file: rel in the cwd, else in the source tree the
//  binary was built in (<tree>/build-x/bin/vz-gateway), so `make run` and
//  the tests find configs/ without extra settings. out keeps "" if neither.
static void s_default_file(const char *rel, char *out, size_t n)
{
    if (access(rel, R_OK) == 0) {
        vz_strlcpy(out, rel, n);
        return;
    }
    char exe[VZ_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return;
    exe[len] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return;
        *slash = '\0';
    }
    char path[VZ_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", exe, rel);
    if (access(path, R_OK) == 0)
        vz_strlcpy(out, path, n);
}

typedef struct {
    vz_daemon_t *daemon;       //  common settings, admin port, readiness
    gw_upstream_t *upstream;   //  broker client (this thread)
    gw_edge_t *edge;           //  JWKS and caches
    gw_gateway_t *gateway;     //  HTTP front
    gw_health_cache_t *health; //  /health, probed on the tick (health.h)
    bool ready;                //  last readiness we announced
    int64_t drain_until;       //  0 = not draining; else when to give up on in-flight
    bool drained;              //  the drain is over: leave the loop for good
    const char *routes_path;   //  route table file, reloaded on SIGHUP
} app_t;

//  The reload hook (vz_daemon_on_reload, reactor thread after SIGHUP):
//  load and validate the whole table, then swap; a bad file keeps the old
//  table and says why. Not while draining: the table is about to go.
static void s_reload(void *arg)
{
    app_t *app = arg;
    if (app->drain_until)
        return;
    char err[256];
    gw_routes_t *routes = gw_routes_load(app->routes_path, err, sizeof err);
    vz_metrics_t *metrics = vz_daemon_metrics(app->daemon);
    if (!routes) {
        vz_error(NULL, "unable to reload route table", "path", app->routes_path, "reason", err);
        vz_series_inc(vz_metrics_counter(metrics, "vz_gateway_route_reloads_total",
                                         "Route table reloads, by result", "result=rejected"));
        return;
    }
    char count[16];
    snprintf(count, sizeof count, "%zu", gw_routes_count(routes));
    gw_gateway_set_routes(app->gateway, &routes);
    vz_series_inc(vz_metrics_counter(metrics, "vz_gateway_route_reloads_total",
                                     "Route table reloads, by result", "result=ok"));
    vz_info(NULL, "route table reloaded", "path", app->routes_path, "routes", count);
}

//  Readiness follows the broker link; SIGTERM starts the drain, and the
//  loop ends once nothing is in flight or the drain budget is spent.
static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    app_t *app = arg;
    int64_t now = vz_clock_mono_ms();
    gw_gateway_flush_log(app->gateway); //  access-log lines at most one tick late
    if (zsys_interrupted && !app->drain_until) {
        vz_daemon_not_ready(app->daemon, "draining");
        gw_gateway_drain(app->gateway);
        app->drain_until = now + vz_daemon_config(app->daemon)->drain_ms;
        char inflight[16];
        snprintf(inflight, sizeof inflight, "%d", gw_gateway_inflight(app->gateway));
        vz_info(NULL, "draining", "inflight", inflight);
    }
    if (app->drain_until) {
        app->drained = gw_gateway_inflight(app->gateway) == 0 || now >= app->drain_until;
        return app->drained ? -1 : 0;
    }
    gw_gateway_health_tick(app->gateway, app->health, now);
    bool up = gw_upstream_link_up(app->upstream);
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
    //  Before any thread starts: glibc would give each of the HTTP, ZeroMQ
    //  and reactor threads its own arena, and freed request memory would
    //  stay spread over them. One arena for all (the per-thread tcache still
    //  serves small allocations without the arena lock; docs/performance.md
    //  §5e measures it with the other memory changes).
    mallopt(M_ARENA_MAX, 1);
    gw_config_t config;
    vz_daemon_spec_t spec = {
        .service = "gateway",
        .admin_port = VZ_PORT_ADMIN_GATEWAY,
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
    //  libmicrohttpd counts its timeout in seconds.
    config.http.idle_s = (config.http.idle_s + 999) / 1000;
    if (!config.routes[0])
        s_default_file("configs/routes.cfg", config.routes, sizeof config.routes);
    if (!config.http.openapi_path[0])
        s_default_file("docs/openapi.yaml", config.http.openapi_path,
                       sizeof config.http.openapi_path);
    config.http.rl_fail_open = config.rl_failure == 0;
    config.http.auth_timeout_ms = config.edge.fetch_timeout_ms;
    char err[256];
    gw_routes_t *routes =
        gw_routes_load(config.routes[0] ? config.routes : "configs/routes.cfg", err, sizeof err);
    if (!routes) {
        vz_error(NULL, "unable to load route table", "setting", "VZ_GATEWAY_ROUTES", "reason", err);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_PERMANENT;
    }
    app.routes_path = config.routes[0] ? config.routes : "configs/routes.cfg";
    gw_trust_t *trust = gw_trust_new(config.trusted, err, sizeof err);
    if (!trust) {
        vz_error(NULL, "unable to read trusted proxies", "setting", "VZ_GATEWAY_TRUSTED_PROXIES",
                 "reason", err);
        gw_routes_unref(&routes);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_PERMANENT;
    }
    config.http.trust = trust;
    config.http.fwd_header = config.fwd_header == 0 ? GW_FWD_XFF : GW_FWD_FORWARDED;
    gw_upstream_config_t upcfg = {
        .endpoints = common->broker_endpoints,
        .broker_key = vz_daemon_broker_key(app.daemon),
        .cert = vz_daemon_cert(app.daemon),
        .redis_url = common->redis_url,
        .heartbeat_ms = common->heartbeat_ms,
        .grace_ms = config.grace_ms,
        .retry_budget_pct = config.retry_budget_pct,
        .metrics = vz_daemon_metrics(app.daemon),
        //  One envelope for every check queued in one reactor pass: a
        //  check per envelope was about half the JWT route's cost.
        .batch = &(const gw_upstream_batch_t){VZ_RL_SERVICE, "check", "check_batch"},
        .batch_count = config.rl_batch ? 1 : 0,
        .bundle_max = (size_t)config.bundle_max,
        .direct = config.direct,
    };
    app.upstream = gw_upstream_new(&upcfg);
    if (!app.upstream) {
        vz_error(NULL, "unable to create broker client", "endpoints", common->broker_endpoints);
        gw_routes_unref(&routes);
        gw_trust_destroy(&trust);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_TEMPORARY;
    }
    app.edge = gw_edge_new(&config.edge, app.upstream, vz_daemon_metrics(app.daemon));
    app.gateway = gw_gateway_new(&config.http, &routes, app.upstream, app.edge,
                                 vz_daemon_metrics(app.daemon));
    gw_routes_unref(&routes); //  taken on success; still ours on failure
    if (!app.gateway) {
        vz_error(NULL, "unable to listen on public HTTP port", "addr", config.http.addr, "reason",
                 strerror(errno));
        gw_upstream_destroy(&app.upstream);
        gw_edge_destroy(&app.edge);
        gw_trust_destroy(&trust);
        vz_daemon_destroy(&app.daemon);
        return VZ_EXIT_TEMPORARY;
    }
    app.health = gw_health_cache_new(app.upstream, config.health_ms);
    vz_admin_set_health(vz_daemon_admin(app.daemon), gw_health_cache_admin, app.health);
    char port[16];
    snprintf(port, sizeof port, "%d", gw_gateway_port(app.gateway));
    vz_info(NULL, "listening", "addr", config.http.addr, "port", port);

    zloop_t *loop = zloop_new();
    zloop_set_nonstop(loop, true); //  s_on_tick ends the loop, after draining
    gw_upstream_attach(app.upstream, loop);
    gw_edge_attach(app.edge, loop);
    zloop_timer(loop, TICK_MS, 0, s_on_tick, &app);
    //  Each answered request goes to telemetry (NULL when VZ_TELEMETRY=off).
    vz_telemetry_t *telemetry = vz_telemetry_new_daemon(app.daemon, loop);
    gw_gateway_set_telemetry(app.gateway, telemetry);
    vz_daemon_on_reload(app.daemon, s_reload, &app);
    if (vz_daemon_attach(app.daemon, loop) < 0) {
        vz_error(NULL, "unable to attach the reload hook");
        gw_upstream_close(app.upstream);
        gw_gateway_destroy(&app.gateway);
        vz_telemetry_destroy(&telemetry);
        zloop_destroy(&loop);
        gw_upstream_destroy(&app.upstream);
        gw_edge_destroy(&app.edge);
        gw_trust_destroy(&trust);
        vz_daemon_destroy(&app.daemon);
        gw_health_cache_destroy(&app.health);
        return VZ_EXIT_TEMPORARY;
    }
    //  A signal interrupting the poll ends zloop_start even in nonstop mode;
    //  go round again until the drain is over.
    while (zloop_start(loop) == 0 && !app.drained)
        ;

    //  Anything still waiting gets 503 before libmicrohttpd stops, so no
    //  connection is left suspended. The reporter goes after the HTTP
    //  threads and before its loop.
    gw_upstream_close(app.upstream);
    gw_gateway_destroy(&app.gateway);
    vz_telemetry_destroy(&telemetry);
    zloop_destroy(&loop);
    gw_upstream_destroy(&app.upstream); //  the health probe ends with it
    gw_edge_destroy(&app.edge);
    gw_trust_destroy(&trust);
    vz_info(NULL, "stopped");
    vz_daemon_destroy(&app.daemon);
    gw_health_cache_destroy(&app.health); //  after the admin server that reads it
    return VZ_EXIT_OK;
}
