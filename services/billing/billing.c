/*  billing - the application object's life cycle, webhook intake, the apply consumer
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_app.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_event.h"
#include "vz_clock.h"
#include "vz_telemetry.h"
#include "vz_log.h"
#include "vz_proto.h"

#define BACKLOG_EVERY_MS 1000 //  queue depth gauge refresh

// --------------------------------------------------------------------------
//  Metrics

#define UNVERIFIED "unverified" //  the type label of a delivery refused before reading it

//  The series of deliveries of type (a handled type, "unknown", or
//  UNVERIFIED) by outcome (accepted, duplicate, a refusal code...).
static vz_series_t *s_webhooks(bl_t *self, const char *type, const char *outcome)
{
    //  Stripe signed the type, and only handled ones get their own series.
    if (strcmp(type, UNVERIFIED) != 0 && !bl_event_type(type))
        type = "unknown";
    char labels[160];
    snprintf(labels, sizeof labels, "type=%s,outcome=%s", type, outcome);
    return vz_metrics_counter(self->metrics, "vz_billing_webhooks",
                              "Webhook deliveries by event type and outcome", labels);
}

static void s_count_webhook(bl_t *self, const char *type, const char *outcome)
{
    if (self->metrics)
        vz_series_inc(s_webhooks(self, type, outcome));
}

//  The intake's outcomes under billing's names.
static void s_count_intake(void *arg, const char *type, vz_intake_outcome_t outcome)
{
    static const char *const names[] = {
        [VZ_INTAKE_QUEUED] = "accepted",
        [VZ_INTAKE_DUPLICATE] = "duplicate",
        [VZ_INTAKE_UNAVAILABLE] = "unavailable",
    };
    s_count_webhook(arg, type, names[outcome]);
}

//  The series of events applied by type (unknown types as "unknown") and result.
static vz_series_t *s_events(bl_t *self, const char *type, const char *result)
{
    char labels[160];
    snprintf(labels, sizeof labels, "type=%s,result=%s", type, result);
    return vz_metrics_counter(self->metrics, "vz_billing_events",
                              "Queued events processed by type and result", labels);
}

static void s_count_event(bl_t *self, const char *type, const char *result)
{
    if (self->metrics)
        vz_series_inc(s_events(self, type, result));
}

//  The series dashboards and alerts read, at 0 from the start: every
//  refusal, the failed payments, the revenue gauges.
static void s_metrics_init(bl_t *self)
{
    for (int rc = BL_SIG_MISSING; rc >= BL_SIG_BAD_JSON; rc--)
        (void)s_webhooks(self, UNVERIFIED, bl_sig_code((bl_sig_rc_t)rc));
    (void)s_webhooks(self, UNVERIFIED, BL_ERR_NOT_CONFIGURED);
    (void)s_events(self, "invoice.payment_failed", "applied");
    (void)s_events(self, "payment_intent.payment_failed", "applied");
    bl_gauges_init(self);
}

static vz_stream_verdict_t s_apply_entry(void *arg, const vz_stream_entry_t *entry);

// --------------------------------------------------------------------------
//  Life cycle

bl_t *bl_new(const bl_config_t *config, const char *redis_url, const char *consumer,
             vz_metrics_t *metrics)
{
    bl_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->metrics = metrics;
    //  Secrets: comma-separated, blanks around each ignored, at most 4.
    snprintf(self->secrets, sizeof self->secrets, "%s", config->webhook_secrets);
    char *save = NULL;
    for (char *tok = strtok_r(self->secrets, ",", &save);
         tok && self->sig.count < BL_SIG_SECRETS_MAX; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (*tok)
            self->sig.secrets[self->sig.count++] = tok;
    }
    self->sig.tolerance_s = config->tolerance_s;
    snprintf(self->ttl, sizeof self->ttl, "%d", config->dedup_ttl_s);
    self->redis = vz_redis_new(redis_url, 200, config->redis_timeout_ms, 500);
    vz_intake_config_t ic = {.seen_prefix = BL_PREFIX "seen:",
                             .stream = BL_STREAM,
                             .ttl_s = config->dedup_ttl_s,
                             .what = "event"};
    self->intake = self->redis ? vz_intake_new(self->redis, &ic, s_count_intake, self) : NULL;
    self->apply = vz_redis_script_new(bl_lua_apply);
    self->dump = vz_redis_script_new(bl_lua_dump);
    self->list = vz_redis_script_new(bl_lua_list);
    vz_stream_config_t sc = {.stream = BL_STREAM,
                             .group = BL_GROUP,
                             .consumer = consumer,
                             .claim_idle_ms = config->claim_idle_ms,
                             .max_deliveries = config->max_deliveries};
    self->stream = self->redis ? vz_stream_new(self->redis, &sc, s_apply_entry, self) : NULL;
    if (!self->redis || !self->intake || !self->apply || !self->dump || !self->list ||
        !self->stream) {
        bl_destroy(&self);
        return NULL;
    }
    if (metrics) {
        self->backlog = vz_metrics_gauge(metrics, "vz_billing_queue_backlog",
                                         "Queued events not yet applied (lag + pending)", NULL);
        self->dead = vz_metrics_counter(metrics, "vz_billing_events_dead",
                                        "Events moved to {billing}:events:dead", NULL);
        s_metrics_init(self);
    }
    return self;
}

void bl_destroy(bl_t **self_p)
{
    bl_t *self = *self_p;
    if (!self)
        return;
    vz_stream_destroy(&self->stream);
    vz_intake_destroy(&self->intake);
    vz_redis_script_destroy(&self->apply);
    vz_redis_script_destroy(&self->dump);
    vz_redis_script_destroy(&self->list);
    vz_redis_destroy(&self->redis);
    bl_client_destroy(&self->client);
    bl_notify_destroy(&self->notify);
    memset(self->secrets, 0, sizeof self->secrets);
    memset(self->config.webhook_secrets, 0, sizeof self->config.webhook_secrets);
    memset(self->config.stripe_key, 0, sizeof self->config.stripe_key);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  Intake: verify, then queue in the batch's one round trip, then answer

//  After the worker's batch: every delivery queued in one round trip, then
//  answered; 200 only once the event is in the stream (vz_intake).
static void s_flush(void *arg)
{
    bl_t *self = arg;
    vz_intake_flush(self->intake);
}

int bl_h_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    if (self->sig.count == 0) {
        s_count_webhook(self, UNVERIFIED, BL_ERR_NOT_CONFIGURED);
        return vz_authctx_reply_error(reply, 503, BL_ERR_NOT_CONFIGURED,
                                      "VZ_BILLING_WEBHOOK_SECRETS is not set: webhooks cannot be "
                                      "verified");
    }
    //  Only the gateway's ctx counts (vz_authctx): from anyone else no header.
    const char *header = vz_authctx_header(req, "Stripe-Signature");
    int64_t now_s = vz_clock_now_ms() / 1000;
    bl_sig_rc_t rc = bl_sig_verify(&self->sig, header, req->body, req->body_len, now_s, NULL);
    bl_sig_event_t event;
    if (rc == BL_SIG_OK)
        rc = bl_sig_event(req->body, req->body_len, &event);
    if (rc != BL_SIG_OK) {
        s_count_webhook(self, UNVERIFIED, bl_sig_code(rc));
        return bl_sig_reply(reply, rc);
    }
    char created[24];
    snprintf(created, sizeof created, "%" PRId64, event.created);
    const char *fields[] = {"id", event.id, "type", event.type, "created", created};
    return vz_intake_add(self->intake, reply, s_flush, event.id, event.type, fields, 3, req->body,
                         req->body_len);
}

// --------------------------------------------------------------------------
//  Consumer: apply one queued event

static vz_stream_verdict_t s_apply_entry(void *arg, const vz_stream_entry_t *entry)
{
    bl_t *self = arg;
    size_t len = 0;
    const char *body = vz_stream_field(entry, "body", &len);
    bl_event_t ev;
    //  Queued events were verified; one billing cannot read is counted and
    //  acknowledged like an unknown type (it would never read better).
    int rc = body ? bl_event_read(body, len, &ev) : -EINVAL;
    const char *id = rc == 0 ? ev.id : vz_stream_field(entry, "id", NULL);
    if (!id || !*id)
        id = entry->id;
    const bl_event_type_t *row = rc == 0 ? ev.row : NULL;
    const char *kind = bl_event_kind_name(row ? row->kind : BL_KIND_UNKNOWN);

    char obj[BL_EVENT_ID_MAX + 64], applied[BL_EVENT_ID_MAX + 32], hist[BL_EVENT_ID_MAX + 64],
        idx[64];
    char created[24], rank[8], ttl_member[2 * BL_EVENT_ID_MAX + 96], amount[24], mrr[24], at[24];
    snprintf(obj, sizeof obj, BL_PREFIX "obj:%s:%s", kind, row ? ev.object : "none");
    snprintf(applied, sizeof applied, BL_PREFIX "applied:%s", id);
    snprintf(hist, sizeof hist, BL_PREFIX "hist:%s:%s", kind, row ? ev.object : "none");
    snprintf(idx, sizeof idx, BL_PREFIX "idx:%s", kind);
    snprintf(created, sizeof created, "%" PRId64, rc == 0 ? ev.created : 0);
    snprintf(rank, sizeof rank, "%d", row ? row->rank : 0);
    snprintf(amount, sizeof amount, "%" PRId64, rc == 0 ? ev.amount : 0);
    snprintf(mrr, sizeof mrr, "%" PRId64, rc == 0 ? ev.mrr : 0);
    snprintf(at, sizeof at, "%" PRId64, rc == 0 ? ev.at : 0);
    //  History points: subscriptions (status, currency, MRR) and charges
    //  (currency, amount refunded so far); the member starts with rank and
    //  event id so that equal scores sort as the state order does.
    ttl_member[0] = '\0';
    if (row && row->kind == BL_KIND_SUBSCRIPTION)
        snprintf(ttl_member, sizeof ttl_member, "%d|%s|%s|%s|%s", row->rank, ev.id,
                 ev.status[0] ? ev.status : "unknown", ev.currency, mrr);
    else if (row && row->kind == BL_KIND_CHARGE)
        snprintf(ttl_member, sizeof ttl_member, "%d|%s|%s|%s", row->rank, ev.id, ev.currency,
                 amount);
    //  Counted under their own type, known or not (signed by Stripe: a bounded set).
    const char *type = rc == 0 ? ev.type : "invalid";
    const char *keys[] = {obj, applied, entry->stream, hist, idx, BL_PREFIX "counts", BL_OUTBOX};
    const char *args[] = {entry->group,
                          entry->id,
                          id,
                          created,
                          rank,
                          ttl_member,
                          row ? ev.object : "",
                          type,
                          row && row->notify ? row->notify : "",
                          body ? body : "",
                          self->ttl,
                          row ? "1" : "0",
                          "status",
                          rc == 0 ? ev.status : "",
                          "currency",
                          rc == 0 ? ev.currency : "",
                          "amount",
                          amount,
                          "mrr",
                          mrr,
                          "at",
                          at,
                          "customer",
                          rc == 0 ? ev.customer : "",
                          "subscription",
                          rc == 0 ? ev.subscription : ""};
    redisReply *r =
        vz_redis_eval(self->redis, self->apply, 7, keys, (int)(sizeof args / sizeof args[0]), args);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            vz_warn(NULL, "unable to apply a billing event", "event", id, "reason", r->str);
        if (r)
            freeReplyObject(r);
        return VZ_STREAM_RETRY;
    }
    static const char *const results[] = {"replayed", "applied", "superseded"};
    long long result = r->integer;
    freeReplyObject(r);
    //  A customer that names its user (metadata vz_user): checkout finds it.
    if (result == 1 && row && row->kind == BL_KIND_CUSTOMER && ev.vz_user[0] &&
        strcmp(ev.status, "deleted") != 0)
        (void)bl_customer_remember(self, ev.vz_user, ev.object);
    //  Business events for telemetry: subscription.created, .updated, .deleted.
    if (result == 1 && strncmp(ev.type, "customer.subscription.", 22) == 0)
        vz_telemetry_event("subscription", ev.type + 22);
    s_count_event(self, row ? ev.type : (rc == 0 ? "unknown" : "invalid"),
                  result >= 0 && result <= 2 ? results[result] : "applied");
    return VZ_STREAM_ACKED;
}

int bl_notify_start(bl_t *self, vz_call_t *calls, const char *consumer)
{
    self->notify =
        bl_notify_new(self->redis, calls, consumer, self->config.notify_retry_ms, self->metrics);
    return self->notify ? 0 : -1;
}

int bl_poll(bl_t *self)
{
    int64_t now = vz_clock_mono_ms();
    if (self->notify)
        (void)bl_notify_poll(self->notify, now);
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

// --------------------------------------------------------------------------
//  Calls to Stripe

int bl_client_start(bl_t *self, zloop_t *loop, char *err, size_t errlen)
{
    char key[sizeof self->config.stripe_key];
    snprintf(key, sizeof key, "%s", self->config.stripe_key);
    if (!key[0] && self->config.stripe_key_file[0]) {
        FILE *f = fopen(self->config.stripe_key_file, "r");
        //  An absent file (an optional Kubernetes Secret not created) means
        //  "not configured"; one that cannot be read is an error.
        if (!f && errno == ENOENT)
            vz_warn(NULL, "no Stripe key file: calls to Stripe answer billing_not_configured",
                    "setting", "VZ_BILLING_STRIPE_SECRET_KEY_FILE");
        else if (!f || !fgets(key, sizeof key, f)) {
            snprintf(err, errlen, "cannot read VZ_BILLING_STRIPE_SECRET_KEY_FILE %s",
                     self->config.stripe_key_file);
            if (f)
                fclose(f);
            return -1;
        } else {
            fclose(f);
            key[strcspn(key, "\r\n")] = '\0';
        }
    }
    if (!key[0])
        snprintf(self->missing, sizeof self->missing,
                 "VZ_BILLING_STRIPE_SECRET_KEY (or VZ_BILLING_STRIPE_SECRET_KEY_FILE) is not "
                 "set: calls to Stripe are off");
    bl_client_config_t c = {.base_url = self->config.stripe_base,
                            .secret_key = key,
                            .max_attempts = self->config.stripe_attempts,
                            .backoff_ms = self->config.http.backoff_ms,
                            .backoff_max_ms = self->config.http.backoff_max_ms,
                            .budget_ms = self->config.stripe_budget_ms};
    self->client =
        bl_client_new(loop, &self->config.http, &c, self->redis, self->metrics, err, errlen);
    memset(key, 0, sizeof key);
    if (self->client && bl_client_warning(self->client))
        vz_warn(NULL, bl_client_warning(self->client), "setting", "VZ_HTTP_INSECURE");
    if (self->client)
        vz_info(NULL, "Stripe client", "base_url", self->config.stripe_base, "configured",
                bl_client_configured(self->client) ? "yes" : "no", "version", BL_STRIPE_VERSION);
    return self->client ? 0 : -1;
}

void bl_complete_error(vz_deferred_t **handle_p, int status, const char *code, const char *message)
{
    //  The status rides in the reply's ctx; the code and message follow.
    (void)vz_authctx_reply_error(vz_deferred_reply(*handle_p), status, code, message);
    (void)vz_worker_complete_error(handle_p, code, message);
}

bool bl_stripe_unusable(bl_t *self, vz_reply_t *reply)
{
    if (self->client && bl_client_configured(self->client))
        return false;
    if (self->missing[0])
        vz_authctx_reply_error(reply, 503, BL_ERR_NOT_CONFIGURED, self->missing);
    else
        vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing is stopping");
    return true;
}

void bl_client_stop(void *arg)
{
    bl_t *self = arg;
    bl_client_destroy(&self->client);
}

// --------------------------------------------------------------------------
//  The caller's customer

//  The caller's customer id, stored when billing created it or a customer
//  event named the user (metadata vz_user). 0 and id, -ENOENT, -EIO.
int bl_customer_of(bl_t *self, const char *sub, char *id, size_t n)
{
    char key[VZ_AUTHCTX_VALUE_MAX + 32];
    snprintf(key, sizeof key, BL_PREFIX "customer_of:%s", sub);
    const char *argv[] = {"GET", key};
    redisReply *r = vz_redis_command(self->redis, 2, argv, NULL);
    int rc = !r ? -EIO : r->type == REDIS_REPLY_STRING && r->len < n ? 0 : -ENOENT;
    if (rc == 0)
        memcpy(id, r->str, r->len + 1);
    if (r)
        freeReplyObject(r);
    return rc;
}

int bl_customer_remember(bl_t *self, const char *sub, const char *id)
{
    char key[VZ_AUTHCTX_VALUE_MAX + 32];
    snprintf(key, sizeof key, BL_PREFIX "customer_of:%s", sub);
    const char *argv[] = {"SET", key, id};
    redisReply *r = vz_redis_command(self->redis, 3, argv, NULL);
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}
