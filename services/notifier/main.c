/*  vz-notifier - e-mail, Slack, Discord, PagerDuty and webhooks from a durable outbox
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, the delivery timer,
 *  vz_daemon_serve. The modules are described in nt.h;
 *  docs/services/notifier.md describes the API and the guarantees.
 */
#include <stdio.h>
#include <stdlib.h>

#include "nt.h"
#include "nt_route.h"
#include "nt_send.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_proto.h"

#define NT_CREDIT 8 //  send is one Redis script; deliveries run beside, on timers
#define NT_JSON_MAX (16 * 1024)

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_TEMPLATES", "notifier/templates", VZ_CFG_STR,
                "configs/templates", 0, 0, templates, "template directory"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_STATE_DIR", "notifier/state_dir", VZ_CFG_STR,
                "state/notifier", 0, 0, state_dir, ".eml files go to <dir>/mail without SMTP"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_MAIL_FROM", "notifier/mail_from", VZ_CFG_STR,
                "noreply@vizmesh.localhost", 0, 0, mail_from, "sender address"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_MAIL_FROM_NAME", "notifier/mail_from_name", VZ_CFG_STR,
                "vizmesh", 0, 0, mail_from_name, "sender display name"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_MAIL_DOMAIN", "notifier/mail_domain", VZ_CFG_STR,
                "vizmesh.localhost", 0, 0, mail_domain, "Message-ID domain"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SMTP_URL", "smtp/url", VZ_CFG_STR, "", 0, 0, smtp_url,
                "smtp://host:587 (STARTTLS required) or smtps://host:465; \"\" = .eml files"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SMTP_USER", "smtp/user", VZ_CFG_STR, "", 0, 0, smtp_user,
                "SMTP AUTH user (\"\" = no AUTH)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SMTP_PASSWORD_FILE", "smtp/password_file", VZ_CFG_STR, "",
                0, 0, smtp_pass_file,
                "file holding the SMTP password (else env VZ_NOTIFIER_SMTP_PASSWORD)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SMTP_CA_FILE", "smtp/ca_file", VZ_CFG_STR, "", 0, 0,
                smtp_ca_file, "CA bundle (PEM) for the SMTP server; \"\" = system store"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SMTP_TIMEOUT_MS", "smtp/timeout", VZ_CFG_MS, "30s", 1000,
                600000, smtp_timeout_ms, "one SMTP transfer"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_SLACK_URL", "slack/url", VZ_CFG_STR, "", 0, 0, slack_url,
                "Slack incoming webhook URL (\"\" = channel off)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_DISCORD_URL", "discord/url", VZ_CFG_STR, "", 0, 0,
                discord_url, "Discord webhook URL (\"\" = channel off)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_PAGERDUTY_URL", "pagerduty/url", VZ_CFG_STR,
                "https://events.pagerduty.com/v2/enqueue", 0, 0, pagerduty_url,
                "PagerDuty Events API v2 URL"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_PAGERDUTY_KEY_FILE", "pagerduty/key_file", VZ_CFG_STR, "",
                0, 0, pagerduty_key_file,
                "file holding the routing key (else env VZ_NOTIFIER_PAGERDUTY_KEY; none = off)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_WEBHOOK_URL", "webhook/url", VZ_CFG_STR, "", 0, 0,
                webhook_url, "generic JSON webhook URL (\"\" = channel off)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_WEBHOOK_SECRET_FILE", "webhook/secret_file", VZ_CFG_STR,
                "", 0, 0, webhook_secret_file,
                "file holding the HMAC key (else env VZ_NOTIFIER_WEBHOOK_SECRET)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_MAX_ATTEMPTS", "outbox/max_attempts", VZ_CFG_INT, "8", 1,
                100, max_attempts, "delivery attempts before the dead letter"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_BACKOFF_MS", "outbox/backoff", VZ_CFG_MS, "2s", 10,
                3600000, backoff_ms, "first retry delay ceiling (doubles, jittered)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_BACKOFF_MAX_MS", "outbox/backoff_max", VZ_CFG_MS, "10m",
                10, 86400000, backoff_max_ms, "largest retry delay"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_CLAIM_MS", "outbox/claim", VZ_CFG_MS, "2m", 200, 86400000,
                claim_ms,
                "idle time after which another replica takes over a delivery (> SMTP timeout)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_POLL_MS", "outbox/poll", VZ_CFG_MS, "100ms", 10, 10000,
                poll_ms, "delivery loop period"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_INFLIGHT", "outbox/inflight", VZ_CFG_INT, "16", 1, 1024,
                inflight, "deliveries in flight per replica"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_IDEMPOTENCY_TTL_S", "outbox/idempotency_ttl", VZ_CFG_INT,
                "86400", 60, 2592000, idem_ttl_s,
                "seconds an idempotency key (and a delivered message) is kept"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_ATTACH_MAX", "outbox/attach_max", VZ_CFG_INT, "524288", 1,
                786432, attach_max, "bytes of one attachment"),
    VZ_CFG_ITEM(
        nt_config_t, "VZ_NOTIFIER_ATTACH_TOTAL", "outbox/attach_total", VZ_CFG_INT, "655360", 1,
        786432, attach_total,
        "bytes of all attachments of a message (their base64 travels in one 1 MiB envelope)"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_REDIS_TIMEOUT_MS", "outbox/redis_timeout", VZ_CFG_MS,
                "200", 5, 5000, redis_timeout_ms, "Redis command timeout"),
    VZ_CFG_ENUM_ITEM(nt_config_t, "VZ_NOTIFIER_ROUTE_CRITICAL", "route/critical", "pagerduty",
                     NT_ROUTE_CHOICES, route[NT_SEV_CRITICAL], "where critical alerts go"),
    VZ_CFG_ENUM_ITEM(nt_config_t, "VZ_NOTIFIER_ROUTE_ERROR", "route/error", "pagerduty",
                     NT_ROUTE_CHOICES, route[NT_SEV_ERROR], "where error alerts go"),
    VZ_CFG_ENUM_ITEM(nt_config_t, "VZ_NOTIFIER_ROUTE_WARNING", "route/warning", "slack",
                     NT_ROUTE_CHOICES, route[NT_SEV_WARNING], "where warning alerts go"),
    VZ_CFG_ENUM_ITEM(nt_config_t, "VZ_NOTIFIER_ROUTE_INFO", "route/info", "digest",
                     NT_ROUTE_CHOICES, route[NT_SEV_INFO], "where info alerts go"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_WARNING_DELAY_MS", "route/warning_delay", VZ_CFG_MS,
                "15m", 0, 86400000, warning_delay_ms,
                "warning alerts wait this long and are dropped if resolved meanwhile"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_DIGEST_TO", "route/digest_to", VZ_CFG_STR,
                "ops@vizmesh.localhost", 0, 0, digest_to, "address of the daily info digest"),
    VZ_CFG_ITEM(nt_config_t, "VZ_NOTIFIER_ALERT_SOURCE", "route/source", VZ_CFG_STR, "vizmesh", 0,
                0, alert_source, "PagerDuty source when an alert names none"),
    VZ_HTTP_CFG_ITEMS(nt_config_t, http),
};

static const vz_method_t s_methods[] = {
    {"send", nt_h_send, 0, NT_SEND_BODY_MAX},
    {"alert", nt_h_alert, 0, NT_JSON_MAX},
    {"get", nt_h_get, VZ_METHOD_IDEMPOTENT, NT_JSON_MAX},
    {"dead_list", nt_h_dead_list, VZ_METHOD_IDEMPOTENT, NT_JSON_MAX},
    {"dead_retry", nt_h_dead_retry, 0, NT_JSON_MAX},
};

int main(int argc, char **argv)
{
    nt_config_t config;
    vz_daemon_spec_t spec = {
        .service = NT_SERVICE,
        .admin_port = VZ_PORT_ADMIN_NOTIFIER,
        .needs_broker = true,
        //  Ready only while Redis answers: the outbox is there.
        .needs_redis = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    zloop_t *loop = zloop_new();
    char err[512] = "";
    nt_t *nt = nt_new(&config, vz_daemon_config(daemon)->redis_url, loop, vz_daemon_metrics(daemon),
                      err, sizeof err);
    if (!nt) {
        vz_error(NULL, "unable to start the notifier", "reason", err, NULL);
        zloop_destroy(&loop);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_info(NULL, "mail delivery", "mode", config.smtp_url[0] ? "smtp" : "eml files", NULL);
    vz_daemon_on_reload(daemon, nt_reload, nt);
    zloop_timer(loop, (size_t)config.poll_ms, 0, nt_deliver_tick, nt);
    zloop_timer(loop, NT_ROUTE_DIGEST_CHECK_MS, 0, nt_route_digest_tick, nt);
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           NT_CREDIT, nt);
    nt_destroy(&nt);
    zloop_destroy(&loop);
    vz_daemon_destroy(&daemon);
    return code;
}
