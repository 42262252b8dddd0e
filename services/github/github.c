/*  github - the application object's life cycle, webhook intake, the apply consumer
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_app.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"

#define BACKLOG_EVERY_MS 1000 //  queue depth gauge refresh
#define DELIVERY_MAX 64       //  longest X-GitHub-Delivery (a GUID is 36)

// --------------------------------------------------------------------------
//  Metrics

void gh_count_delivery(gh_t *self, const char *event, const char *outcome)
{
    if (!self->metrics)
        return;
    char labels[160];
    snprintf(labels, sizeof labels, "event=%s,outcome=%s", event, outcome);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_github_deliveries",
                                     "Webhook deliveries by event and outcome", labels));
}

//  The intake's outcomes under github's names.
static void s_count_intake(void *arg, const char *event, vz_intake_outcome_t outcome)
{
    static const char *const names[] = {
        [VZ_INTAKE_QUEUED] = "queued",
        [VZ_INTAKE_DUPLICATE] = "duplicate",
        [VZ_INTAKE_UNAVAILABLE] = "unavailable",
    };
    gh_count_delivery(arg, event, names[outcome]);
}

static vz_stream_verdict_t s_apply_entry(void *arg, const vz_stream_entry_t *entry);

// --------------------------------------------------------------------------
//  Life cycle

gh_t *gh_new(const gh_config_t *config, const char *redis_url, const char *rules_path,
             const char *consumer, vz_metrics_t *metrics, char *err, size_t errlen)
{
    gh_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    self->metrics = metrics;
    snprintf(self->consumer, sizeof self->consumer, "%s", consumer);
    snprintf(self->secrets, sizeof self->secrets, "%s", config->webhook_secrets);
    gh_sig_parse(self->secrets, &self->sig);
    snprintf(self->ttl, sizeof self->ttl, "%d", config->dedup_ttl_s);
    self->rules = gh_rules_load(rules_path, err, errlen);
    if (!self->rules) {
        gh_destroy(&self);
        return NULL;
    }
    self->redis = vz_redis_new(redis_url, 200, config->redis_timeout_ms, 500);
    vz_intake_config_t ic = {.seen_prefix = GH_PREFIX "seen:",
                             .stream = GH_STREAM,
                             .maxlen = GH_STREAM_MAXLEN,
                             .ttl_s = config->dedup_ttl_s,
                             .what = "delivery"};
    self->intake = self->redis ? vz_intake_new(self->redis, &ic, s_count_intake, self) : NULL;
    self->apply = vz_redis_script_new(gh_lua_apply);
    self->items = vz_redis_script_new(gh_lua_items);
    self->repos = vz_redis_script_new(gh_lua_repos);
    vz_stream_config_t sc = {.stream = GH_STREAM,
                             .group = GH_GROUP,
                             .consumer = consumer,
                             .claim_idle_ms = config->claim_idle_ms,
                             .max_deliveries = config->max_deliveries};
    self->stream = self->redis ? vz_stream_new(self->redis, &sc, s_apply_entry, self) : NULL;
    if (!self->redis || !self->intake || !self->apply || !self->items || !self->repos ||
        !self->stream) {
        snprintf(err, errlen, "bad Redis URL or out of memory");
        gh_destroy(&self);
        return NULL;
    }
    if (metrics) {
        self->backlog = vz_metrics_gauge(metrics, "vz_github_queue_backlog",
                                         "Queued deliveries not yet applied (lag + pending)", NULL);
        self->dead = vz_metrics_counter(metrics, "vz_github_deliveries_dead",
                                        "Deliveries moved to {github}:deliveries:dead", NULL);
        //  Every family the dashboard and the alerts use exists from the start (at 0).
        (void)vz_metrics_counter(metrics, "vz_github_deliveries",
                                 "Webhook deliveries by event and outcome",
                                 "event=any,outcome=queued");
        (void)vz_metrics_counter(metrics, "vz_github_notifications",
                                 "Partner notifications handed to the notifier, by result",
                                 "result=delivered");
    }
    return self;
}

void gh_destroy(gh_t **self_p)
{
    gh_t *self = *self_p;
    if (!self)
        return;
    gh_client_destroy(&self->client);
    vz_stream_destroy(&self->jobs);
    vz_outbox_destroy(&self->notify);
    vz_stream_destroy(&self->stream);
    vz_intake_destroy(&self->intake);
    vz_redis_script_destroy(&self->apply);
    vz_redis_script_destroy(&self->items);
    vz_redis_script_destroy(&self->repos);
    vz_redis_destroy(&self->redis);
    gh_rules_destroy(&self->rules);
    memset(self->secrets, 0, sizeof self->secrets);
    memset(self->config.webhook_secrets, 0, sizeof self->config.webhook_secrets);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Intake: verify, then queue in the batch's one round trip, then answer

//  After the worker's batch: every delivery queued in one round trip, then
//  answered; 200 only once it is in the stream (vz_intake). A delivery not
//  queued is a failed one: reconciliation asks GitHub to redeliver it.
static void s_flush(void *arg)
{
    gh_t *self = arg;
    vz_intake_flush(self->intake);
}

//  A header value made of [A-Za-z0-9_.-], 1..max bytes.
static bool s_token(const char *text, size_t max)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)text[i]) || text[i] == '-' || text[i] == '_' ||
              text[i] == '.'))
            return false;
    return true;
}

int gh_h_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    if (self->sig.count == 0) {
        gh_count_delivery(self, "any", "github_not_configured");
        return vz_authctx_reply_error(reply, 503, GH_ERR_NOT_CONFIGURED,
                                      "VZ_GITHUB_WEBHOOK_SECRETS is not set, webhooks cannot be "
                                      "verified");
    }
    //  Only the gateway's ctx counts (vz_authctx): from anyone else no header.
    const char *header = vz_authctx_header(req, "X-Hub-Signature-256");
    gh_sig_rc_t rc = gh_sig_verify(&self->sig, header, req->body, req->body_len);
    if (rc == GH_SIG_OK) {
        vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
        if (!doc || vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT)
            rc = GH_SIG_BAD_JSON;
        vz_json_destroy(&doc);
    }
    if (rc != GH_SIG_OK) {
        gh_count_delivery(self, "any", gh_sig_code(rc));
        return gh_sig_reply(reply, rc);
    }
    const char *event = vz_authctx_header(req, "X-GitHub-Event");
    const char *delivery = vz_authctx_header(req, "X-GitHub-Delivery");
    if (!s_token(event, GH_NAME_MAX - 1) || !s_token(delivery, DELIVERY_MAX)) {
        gh_count_delivery(self, "any", "header_missing");
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID,
                                      "header_missing: X-GitHub-Event and X-GitHub-Delivery "
                                      "are required ([A-Za-z0-9_.-])");
    }
    const char *fields[] = {"delivery", delivery, "event", event};
    return vz_intake_add(self->intake, reply, s_flush, delivery, "any", fields, 2, req->body,
                         req->body_len);
}

// --------------------------------------------------------------------------
//  Consumer: apply one queued delivery

static vz_stream_verdict_t s_apply_entry(void *arg, const vz_stream_entry_t *entry)
{
    gh_t *self = arg;
    size_t len = 0;
    const char *body = vz_stream_field(entry, "body", &len);
    const char *event = vz_stream_field(entry, "event", NULL);
    const char *delivery = vz_stream_field(entry, "delivery", NULL);
    if (!delivery || !*delivery)
        delivery = entry->id;
    gh_event_t *ev = calloc(1, sizeof *ev);
    if (!ev)
        return VZ_STREAM_RETRY;
    //  Queued deliveries were verified; one that does not read is counted
    //  and acknowledged (it would never read better).
    int rc = body && event ? gh_event_read(event, body, len, ev) : -1;
    gh_ops_t ops = {0};
    char counted[GH_NAME_MAX + 8];
    if (rc == 0) {
        gh_event_ops(ev, body, len, &ops);
        if (ev->handled)
            (void)gh_rules_apply(self->rules, ev, delivery, GH_OUTBOX, &ops);
        //  A new installation, or repositories added to one: its repositories
        //  are read once (gh_sync.c, the backfill).
        if ((strcmp(ev->event, "installation") == 0 && strcmp(ev->action, "created") == 0) ||
            (strcmp(ev->event, "installation_repositories") == 0 &&
             strcmp(ev->action, "added") == 0)) {
            char inst[24];
            snprintf(inst, sizeof inst, "%lld", (long long)ev->installation);
            gh_ops_add(&ops, 'X', GH_JOBS, "backfill", inst);
        }
        snprintf(counted, sizeof counted, "%s%s", ev->handled ? "" : "other:", ev->event);
    } else
        snprintf(counted, sizeof counted, "invalid");
    char applied[DELIVERY_MAX + 32];
    snprintf(applied, sizeof applied, GH_PREFIX "applied:%s", delivery);
    const char *keys[] = {applied, entry->stream, GH_PREFIX "counts"};
    size_t nargs = 4 + ops.n;
    const char **args = calloc(nargs, sizeof *args);
    redisReply *r = NULL;
    if (args) {
        args[0] = entry->group;
        args[1] = entry->id;
        args[2] = self->ttl;
        args[3] = counted;
        for (size_t i = 0; i < ops.n; i++)
            args[4 + i] = ops.argv[i];
        r = vz_redis_eval(self->redis, self->apply, 3, keys, (int)nargs, args);
    }
    free(args);
    gh_ops_free(&ops);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (!ok && r && r->type == REDIS_REPLY_ERROR)
        vz_warn(NULL, "unable to apply a github delivery", "delivery", delivery, "reason", r->str);
    const char *label = rc != 0 ? "invalid" : ev->handled ? ev->event : "other";
    if (ok)
        gh_count_delivery(self, label,
                          r->integer == 0 ? "replayed"
                          : ev->handled   ? "applied"
                                          : "unhandled");
    if (r)
        freeReplyObject(r);
    free(ev);
    return ok ? VZ_STREAM_ACKED : VZ_STREAM_RETRY;
}

int gh_notify_start(gh_t *self, vz_call_t *calls, const char *consumer)
{
    //  Entries carry the call: method "send", body a vz_nt_send_encode body.
    vz_outbox_config_t c = {.stream = GH_OUTBOX,
                            .consumer = consumer,
                            .retry_ms = self->config.notify_retry_ms,
                            .metric = "vz_github_notifications",
                            .help = "Partner notifications handed to the notifier, by result",
                            .what = "github"};
    self->notify = vz_outbox_new(self->redis, calls, &c, self->metrics, NULL, NULL);
    return self->notify ? 0 : -1;
}

int gh_poll(gh_t *self)
{
    int64_t now = vz_clock_mono_ms();
    if (self->notify)
        (void)vz_outbox_poll(self->notify, now);
    if (self->jobs)
        (void)vz_stream_poll(self->jobs, now);
    int rc = vz_stream_poll(self->stream, now);
    if (self->backlog && now >= self->backlog_due) {
        self->backlog_due = now + BACKLOG_EVERY_MS;
        long long n = vz_stream_backlog(self->stream);
        if (n >= 0)
            vz_series_set(self->backlog, (double)n);
        vz_stream_stats_t st;
        vz_stream_stats(self->stream, &st);
        if (st.dead > self->dead_seen) {
            vz_series_add(self->dead, (double)(st.dead - self->dead_seen));
            self->dead_seen = st.dead;
        }
    }
    return rc;
}
