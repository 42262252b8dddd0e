/*  vz-github - GitHub App webhooks queued and applied once; insights, roadmap, partner
 * notifications SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, the consumer's poll
 *  timer, vz_daemon_serve. github.h describes the flow, docs/services/
 *  github.md the API, the rules and the Redis keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "github.h"
#include "vz_call.h"
#include "vz_daemon.h"
#include "vz_github_contract.h"
#include "vz_ports.h"
#include "vz_proto.h"

#define GITHUB_CREDIT 16         //  webhooks pipeline into one enqueue round trip
#define WEBHOOK_BODY_MAX 1048576 //  = routes.cfg webhook_github max_body

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_WEBHOOK_SECRETS", "github/webhook_secrets", VZ_CFG_STR, "",
                0, 0, webhook_secrets,
                "webhook secrets of the App, comma-separated: several during a rotation"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_DEDUP_TTL_S", "github/dedup_ttl", VZ_CFG_INT, "604800",
                259200, 31536000, dedup_ttl_s,
                "how long a delivery GUID is remembered, seconds (GitHub redelivers with the "
                "same GUID for 3 days)"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_POLL_MS", "github/poll", VZ_CFG_MS, "20", 1, 3600000,
                poll_ms, "how often the consumer reads the delivery stream"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_CLAIM_IDLE_MS", "github/claim_idle", VZ_CFG_MS, "30s", 100,
                3600000, claim_idle_ms,
                "deliveries another replica holds this long unacknowledged are taken over"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_MAX_DELIVERIES", "github/max_deliveries", VZ_CFG_INT, "10",
                1, 1000, max_deliveries,
                "attempts before a delivery is moved to {github}:deliveries:dead"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_CONSUMER", "github/consumer", VZ_CFG_STR, "", 0, 0,
                consumer, "consumer name in the group; \"\" = <hostname>-<replica>"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_REDIS_TIMEOUT_MS", "github/redis_timeout", VZ_CFG_MS, "200",
                5, 5000, redis_timeout_ms, "Redis command timeout"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_NOTIFY_RETRY_MS", "github/notify_retry", VZ_CFG_MS, "5s",
                10, 3600000, notify_retry_ms,
                "wait before a notification the notifier could not take is offered again"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_READERS", "github/readers", VZ_CFG_STR, "reporter", 0, 0,
                readers, "mesh identities that may call repos, insights, roadmap, issue_state"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_APP_ID", "github/app_id", VZ_CFG_STR, "", 0, 0, app_id,
                "GitHub App id; \"\" = no calls to GitHub (github_not_configured)"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_APP_PRIVATE_KEY_FILE", "github/app_private_key_file",
                VZ_CFG_STR, "", 0, 0, private_key_file,
                "the App's private key (PEM), never logged; \"\" = no calls to GitHub"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_API_BASE", "github/api_base", VZ_CFG_STR, GH_API_BASE, 0, 0,
                api_base, "GitHub REST API base URL"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_USER_AGENT", "github/user_agent", VZ_CFG_STR,
                "vizmesh-github", 0, 0, user_agent, "User-Agent of every call to GitHub"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_RECONCILE_MS", "github/reconcile", VZ_CFG_MS, "10m", 0,
                86400000, reconcile_ms,
                "how often one replica asks GitHub to redeliver failed deliveries; 0 = only on "
                "POST /v1/github/reconcile"),
    VZ_CFG_ITEM(gh_config_t, "VZ_GITHUB_API_BUDGET_MS", "github/api_budget", VZ_CFG_MS, "60s", 100,
                3600000, api_budget_ms, "one call to GitHub with its rate-limit waits and retries"),
    VZ_HTTP_CFG_ITEMS(gh_config_t, http),
};

static const vz_method_t s_methods[] = {
    {VZ_GH_METHOD_WEBHOOK, gh_h_webhook, VZ_METHOD_DEFERRED, WEBHOOK_BODY_MAX},
    {VZ_GH_METHOD_REPOS, gh_h_repos, VZ_METHOD_IDEMPOTENT, 1024},
    {VZ_GH_METHOD_INSIGHTS, gh_h_insights, VZ_METHOD_IDEMPOTENT, 4096},
    {VZ_GH_METHOD_ROADMAP, gh_h_roadmap, VZ_METHOD_IDEMPOTENT, 4096},
    {VZ_GH_METHOD_ISSUE_STATE, gh_h_issue_state, VZ_METHOD_IDEMPOTENT, 4096},
    {"reconcile", gh_h_reconcile, 0, 1024},
};

static int s_poll_timer(zloop_t *loop, int timer_id, void *arg)
{
    //  Redis away: the deliveries wait in the stream; the readiness check says so.
    (void)gh_poll(arg);
    return 0;
}

static int s_reconcile_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)gh_reconcile(arg);
    return 0;
}

int main(int argc, char **argv)
{
    gh_config_t config;
    vz_daemon_spec_t spec = {
        .service = GH_SERVICE,
        .admin_port = VZ_PORT_ADMIN_GITHUB,
        .needs_broker = true,
        //  Ready only while Redis answers: no webhook can be queued without it.
        .needs_redis = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    //  A stable name per replica: a restarted replica resumes its own entries.
    char consumer[256];
    if (config.consumer[0])
        snprintf(consumer, sizeof consumer, "%s", config.consumer);
    else {
        char host[128] = "github";
        gethostname(host, sizeof host - 1);
        snprintf(consumer, sizeof consumer, "%s-%d", host, vz_daemon_config(daemon)->replica);
    }
    if (!config.webhook_secrets[0])
        vz_warn(NULL, "no webhook secret: webhooks answer 503 github_not_configured", "setting",
                "VZ_GITHUB_WEBHOOK_SECRETS");
    char err[512];
    //  The rules and labels live in the daemon's config file (configs/github.cfg).
    gh_t *app =
        gh_new(&config, vz_daemon_config(daemon)->redis_url, vz_daemon_config(daemon)->config_file,
               consumer, vz_daemon_metrics(daemon), err, sizeof err);
    if (!app) {
        vz_error(NULL, "unable to start github", "reason", err);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_info(NULL, "github consumer", "consumer", consumer, "stream", GH_STREAM);
    zloop_t *loop = zloop_new();
    if (gh_client_start(app, loop, err, sizeof err) < 0) {
        vz_error(NULL, "unable to start the GitHub App client", "reason", err);
        zloop_destroy(&loop);
        gh_destroy(&app);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    //  Partner notifications go through the notifier.
    vz_call_t *calls = vz_call_new_daemon(daemon, loop);
    if (!calls || gh_notify_start(app, calls, consumer) < 0) {
        vz_error(NULL, "unable to start the outbox delivery", "reason", strerror(errno));
        vz_call_destroy(&calls);
        zloop_destroy(&loop);
        gh_destroy(&app);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_daemon_on_stop(daemon, gh_client_stop, app);
    zloop_timer(loop, (size_t)config.poll_ms, 0, s_poll_timer, app);
    if (config.reconcile_ms > 0)
        zloop_timer(loop, (size_t)config.reconcile_ms, 0, s_reconcile_timer, app);
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           GITHUB_CREDIT, app);
    vz_call_destroy(&calls);
    zloop_destroy(&loop);
    gh_destroy(&app);
    vz_daemon_destroy(&daemon);
    return code;
}
