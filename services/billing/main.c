/*  vz-billing - Stripe webhooks verified, queued and applied once; revenue figures
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, the consumer's poll
 *  timer, vz_daemon_serve. billing.h describes the flow, docs/services/
 *  billing.md the API, the definitions and the Redis keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "billing.h"
#include "vz_call.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_proto.h"

#define BILLING_CREDIT 16       //  webhooks pipeline into one enqueue round trip
#define WEBHOOK_BODY_MAX 262144 //  = routes.cfg webhook_stripe max_body

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_WEBHOOK_SECRETS", "billing/webhook_secrets", VZ_CFG_STR,
                "", 0, 0, webhook_secrets,
                "Stripe endpoint secrets (whsec_...), comma-separated: several during a rotation"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_TOLERANCE_S", "billing/tolerance", VZ_CFG_INT, "300", 0,
                86400, tolerance_s,
                "Stripe-Signature timestamp tolerance either way, seconds; 0 = unchecked"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_DEDUP_TTL_S", "billing/dedup_ttl", VZ_CFG_INT, "259200",
                259200, 31536000, dedup_ttl_s,
                "how long an event id is remembered, seconds (at least Stripe's 3-day retries)"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_POLL_MS", "billing/poll", VZ_CFG_MS, "20", 1, 3600000,
                poll_ms, "how often the consumer reads the event stream"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_CLAIM_IDLE_MS", "billing/claim_idle", VZ_CFG_MS, "30s",
                100, 3600000, claim_idle_ms,
                "events another replica holds this long unacknowledged are taken over"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_MAX_DELIVERIES", "billing/max_deliveries", VZ_CFG_INT,
                "10", 1, 1000, max_deliveries,
                "attempts before an event is moved to {billing}:events:dead"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_CONSUMER", "billing/consumer", VZ_CFG_STR, "", 0, 0,
                consumer, "consumer name in the group; \"\" = <hostname>-<replica>"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_REDIS_TIMEOUT_MS", "billing/redis_timeout", VZ_CFG_MS,
                "200", 5, 5000, redis_timeout_ms, "Redis command timeout"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_STRIPE_API_BASE", "billing/stripe_api_base", VZ_CFG_STR,
                BL_STRIPE_BASE_URL, 0, 0, stripe_base, "Stripe API base URL"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_STRIPE_SECRET_KEY", NULL, VZ_CFG_STR, "", 0, 0, stripe_key,
                "Stripe secret key (environment only, never logged); \"\" = calls to Stripe "
                "answer billing_not_configured"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_STRIPE_SECRET_KEY_FILE", "billing/stripe_secret_key_file",
                VZ_CFG_STR, "", 0, 0, stripe_key_file,
                "file whose first line is the Stripe secret key (when the variable is empty)"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_STRIPE_ATTEMPTS", "billing/stripe_attempts", VZ_CFG_INT,
                "4", 1, 10, stripe_attempts, "attempts per Stripe call (Stripe's retry rules)"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_STRIPE_BUDGET_MS", "billing/stripe_budget", VZ_CFG_MS,
                "8s", 100, 600000, stripe_budget_ms,
                "one Stripe call with its retries and waits (keep under the route's timeout)"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_RECONCILE_MS", "billing/reconcile", VZ_CFG_MS, "10m", 0,
                86400000, reconcile_ms,
                "how often one replica lists Stripe's recent events to queue missed ones; 0 = "
                "only on POST /v1/billing/reconcile"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_RECONCILE_LOOKBACK_S", "billing/reconcile_lookback",
                VZ_CFG_INT, "259200", 60, 2592000, reconcile_lookback_s,
                "how far back reconciliation lists events, seconds"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_GAUGES_MS", "billing/gauges", VZ_CFG_MS, "60s", 0, 3600000,
                gauges_ms,
                "how often the revenue gauges (MRR, ARR, paying, new, churned) are refreshed; 0 = "
                "off"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_GAUGE_CURRENCIES", "billing/gauge_currencies", VZ_CFG_STR,
                "usd,eur", 0, 0, gauge_currencies,
                "currencies (lowercase ISO codes, comma-separated) whose MRR and ARR gauges exist "
                "from the start at 0; others appear with their first subscription"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_NOTIFY_RETRY_MS", "billing/notify_retry", VZ_CFG_MS, "5s",
                10, 3600000, notify_retry_ms,
                "wait before a side effect the notifier could not take is offered again"),
    VZ_HTTP_CFG_ITEMS(bl_config_t, http),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_REVENUE_TREND", "billing/revenue_trend", VZ_CFG_INT, "3",
                0, BL_REV_TREND_MAX, trend, "previous periods in a revenue answer"),
    VZ_CFG_ITEM(bl_config_t, "VZ_BILLING_READERS", "billing/readers", VZ_CFG_STR, "reporter", 0, 0,
                readers,
                "in-mesh identities that may read revenue, with a JSON body {period, at} (the "
                "gateway's callers need scope admin)"),
};

static const vz_method_t s_methods[] = {
    {"webhook", bl_h_webhook, VZ_METHOD_DEFERRED, WEBHOOK_BODY_MAX},
    {"revenue", bl_h_revenue, VZ_METHOD_IDEMPOTENT, 1024},
    {"payment_intent_create", bl_h_payment_intent_create, VZ_METHOD_DEFERRED, 16384},
    {"reconcile", bl_h_reconcile, VZ_METHOD_DEFERRED, 1024},
    {"checkout", bl_h_checkout, VZ_METHOD_DEFERRED, 16384},
    {"subscriptions_list", bl_h_subscriptions_list, VZ_METHOD_IDEMPOTENT, 1024},
    {"invoices_list", bl_h_invoices_list, VZ_METHOD_IDEMPOTENT, 1024},
    {"payments_list", bl_h_payments_list, VZ_METHOD_IDEMPOTENT, 1024},
    {"subscription_update", bl_h_subscription_update, VZ_METHOD_DEFERRED, 16384},
    {"subscription_cancel", bl_h_subscription_cancel, VZ_METHOD_DEFERRED, 1024},
    {"subscription_create", bl_h_subscription_create, VZ_METHOD_DEFERRED, 16384},
    {"portal", bl_h_portal, VZ_METHOD_DEFERRED, 16384},
};

//  Missed webhooks: list recent events (one replica per period, by lock).
static int s_reconcile_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)bl_reconcile(arg);
    return 0;
}

static int s_gauges_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)bl_gauges(arg);
    return 0;
}

static int s_poll_timer(zloop_t *loop, int timer_id, void *arg)
{
    //  Redis away: the events wait in the stream; the readiness check says so.
    (void)bl_poll(arg);
    return 0;
}

int main(int argc, char **argv)
{
    bl_config_t config;
    vz_daemon_spec_t spec = {
        .service = BL_SERVICE,
        .admin_port = VZ_PORT_ADMIN_BILLING,
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
        char host[128] = "billing";
        gethostname(host, sizeof host - 1);
        snprintf(consumer, sizeof consumer, "%s-%d", host, vz_daemon_config(daemon)->replica);
    }
    if (!bl_currencies_ok(config.gauge_currencies)) {
        vz_error(NULL, "VZ_BILLING_GAUGE_CURRENCIES must be lowercase ISO codes joined by commas",
                 "value", config.gauge_currencies);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    if (!config.webhook_secrets[0])
        vz_warn(NULL, "no webhook secret: webhooks answer 503 billing_not_configured", "setting",
                "VZ_BILLING_WEBHOOK_SECRETS");
    bl_t *app =
        bl_new(&config, vz_daemon_config(daemon)->redis_url, consumer, vz_daemon_metrics(daemon));
    if (!app) {
        vz_error(NULL, "unable to start billing: bad Redis URL or out of memory");
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_info(NULL, "billing consumer", "consumer", consumer, "stream", BL_STREAM);
    zloop_t *loop = zloop_new();
    char err[256];
    if (bl_client_start(app, loop, err, sizeof err) < 0) {
        vz_error(NULL, "unable to start the Stripe client", "reason", err);
        zloop_destroy(&loop);
        bl_destroy(&app);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    //  Side effects (receipts, dunning, dispute alerts) go through the notifier.
    vz_call_t *calls = vz_call_new_daemon(daemon, loop);
    if (!calls || bl_notify_start(app, calls, consumer) < 0) {
        vz_error(NULL, "unable to start the outbox delivery", "reason", strerror(errno));
        vz_call_destroy(&calls);
        zloop_destroy(&loop);
        bl_destroy(&app);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    //  Pending Stripe calls are answered while the worker can still send.
    vz_daemon_on_stop(daemon, bl_client_stop, app);
    zloop_timer(loop, (size_t)config.poll_ms, 0, s_poll_timer, app);
    if (config.gauges_ms > 0) {
        (void)bl_gauges(app); //  the stored figures now, not a period later
        zloop_timer(loop, (size_t)config.gauges_ms, 0, s_gauges_timer, app);
    }
    if (config.reconcile_ms > 0)
        zloop_timer(loop, (size_t)config.reconcile_ms, 0, s_reconcile_timer, app);
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           BILLING_CREDIT, app);
    //  Calls still pending end here (their entries stay in the outbox).
    vz_call_destroy(&calls);
    zloop_destroy(&loop);
    bl_destroy(&app);
    vz_daemon_destroy(&daemon);
    return code;
}
