/*  vz-reporter - the weekly executive report: scheduled once across replicas, on demand
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, the schedule's tick,
 *  vz_daemon_serve. The run lives in rp_run.c, the schedule in rp_app.c
 *  (rp.h); docs/services/reporter.md describes the service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp.h"
#include "rp_chart.h"
#include "vz_daemon.h"
#include "vz_ports.h"

#define RP_CREDIT 4 //  runs are rare; reads of the archive are one Redis call each

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_SCHEDULE", "reporter/schedule", VZ_CFG_STR, "0 8 * * 1",
                0, 0, schedule,
                "cron expression in UTC (minute hour day month weekday); the default is Monday "
                "08:00"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_RECIPIENTS", "reporter/recipients", VZ_CFG_STR,
                "exec@vizmesh.localhost", 0, 0, recipients,
                "e-mail addresses of the report, separated by spaces or commas"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_READERS", "reporter/readers", VZ_CFG_STR, "vzctl", 0, 0,
                readers,
                "in-mesh identities that may run and read reports (through the gateway: scope "
                "admin)"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_GITHUB_REPO", "reporter/github_repo", VZ_CFG_STR, "", 0,
                0, github_repo, "repository of the roadmap section (owner/name); \"\" = all"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_ERROR_ISSUES", "reporter/error_issues", VZ_CFG_STR, "", 0,
                0, error_issues,
                "error codes linked to GitHub issues, \"code=owner/repo#number\" separated by "
                "spaces (at most 8): the errors table shows each issue's state"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_TEMPLATE", "reporter/template", VZ_CFG_STR,
                "weekly_report", 0, 0, template_name,
                "the notifier's template (variables week, html, text)"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_TICK_MS", "reporter/tick", VZ_CFG_MS, "1s", 100, 60000,
                tick_ms, "how often the schedule is checked"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_LEASE_MS", "reporter/lease", VZ_CFG_MS, "2m", 1000,
                3600000, lease_ms,
                "lease of one run (longer than gather + send); a failed run is retried after it"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_GATHER_MS", "reporter/gather", VZ_CFG_MS, "10s", 100,
                600000, gather_ms, "deadline of the parallel calls for the figures"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_SEND_MS", "reporter/send", VZ_CFG_MS, "20s", 100, 600000,
                send_ms, "deadline of each notifier.send"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_CATCHUP_S", "reporter/catchup", VZ_CFG_INT, "518400", 0,
                31536000, catchup_s,
                "a firing missed by every replica is run when one is back within this many "
                "seconds"),
    VZ_CFG_ITEM(rp_config_t, "VZ_REPORTER_REDIS_TIMEOUT_MS", "reporter/redis_timeout", VZ_CFG_MS,
                "500", 5, 10000, redis_timeout_ms, "Redis command timeout"),
};

static const vz_method_t s_methods[] = {
    {"run", rp_h_run, VZ_METHOD_DEFERRED, 0},
    {"list", rp_h_list, VZ_METHOD_IDEMPOTENT, 0},
    {"get", rp_h_get, VZ_METHOD_IDEMPOTENT, 0},
};

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    rp_tick(arg);
    return 0;
}

int main(int argc, char **argv)
{
    rp_config_t config;
    vz_daemon_spec_t spec = {
        .service = RP_SERVICE,
        .admin_port = VZ_PORT_ADMIN_REPORTER,
        .needs_broker = true,
        //  The lease and the send records are in Redis: no run without it.
        .needs_redis = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    char host[64] = "reporter", owner[96], err[256];
    gethostname(host, sizeof host - 1);
    snprintf(owner, sizeof owner, "%s/%d/%d", host, vz_daemon_config(daemon)->replica,
             (int)getpid());
    rp_t *app = rp_new(&config, vz_daemon_config(daemon)->redis_url, vz_daemon_metrics(daemon),
                       owner, err, sizeof err);
    if (!app) {
        vz_error(NULL, "unable to start the reporter", "reason", err);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    zloop_t *loop = zloop_new();
    app->calls = vz_call_new_daemon(daemon, loop);
    if (!app->calls) {
        vz_error(NULL, "unable to create the call socket");
        zloop_destroy(&loop);
        rp_destroy(&app);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_info(NULL, "reporter schedule", "schedule", config.schedule, "owner", owner);
    zloop_timer(loop, (size_t)config.tick_ms, 0, s_tick, app);
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           RP_CREDIT, app);
    vz_call_destroy(&app->calls);
    zloop_destroy(&loop);
    rp_destroy(&app);
    vz_daemon_destroy(&daemon);
    rp_chart_shutdown();
    return code;
}
