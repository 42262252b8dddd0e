/*  billing - the billing service's application object, webhook intake and consumer
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "billing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_event.h"
#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

#define REPLY_MAX (64 * 1024) //  largest JSON answer
#define BACKLOG_EVERY_MS 1000 //  queue depth gauge refresh

//  One verified delivery waiting for the batch's enqueue round trip.
typedef struct {
    vz_deferred_t *handle;         //  the open reply
    bl_sig_event_t event;          //  id, type, created
    char *body;                    //  raw body (heap)
    char created[24];              //  created as text
    char seen[BL_SIG_ID_MAX + 16]; //  billing:seen:<id>
    const char *keys[2], *args[5]; //  script arguments
} s_pending_t;

struct bl_t {
    bl_config_t config;
    char secrets[sizeof((bl_config_t *)0)->webhook_secrets]; //  split copy of the secrets
    bl_sig_config_t sig;                                     //  points into secrets
    char ttl[16];                                            //  dedup ttl as text
    vz_redis_t *redis;                                       //  shared state
    vz_redis_script_t *enqueue;                              //  intake: dedup + XADD
    vz_redis_script_t *apply;                                //  consumer: store + ack
    vz_redis_script_t *dump;                                 //  revenue input
    vz_redis_script_t *list;                                 //  a customer's objects
    bl_stream_t *stream;                                     //  the consumer group
    s_pending_t *pending;                                    //  this batch's deliveries
    vz_redis_call_t *calls;                                  //  their script calls
    size_t npending, pending_max;
    int64_t backlog_due;   //  next queue depth refresh (monotonic ms)
    vz_metrics_t *metrics; //  borrowed, may be NULL
    vz_series_t *backlog;  //  queue depth gauge
    vz_series_t *dead;     //  entries moved dead
    uint64_t dead_seen;    //  bl_stream's count already reported
    bl_client_t *client;   //  Stripe's API (NULL before start and after stop)
    bool reconciling;      //  a reconciliation run is in flight
    bl_notify_t *notify;   //  the outbox's delivery (NULL until started)
    char missing[160];     //  which setting a Stripe call lacks, "" when none
};

// --------------------------------------------------------------------------
//  Metrics

//  Webhook deliveries by outcome (accepted, duplicate, a refusal code...).
static void s_count_webhook(bl_t *self, const char *outcome)
{
    if (!self->metrics)
        return;
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=%s", outcome);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_billing_webhooks",
                                     "Webhook deliveries by outcome", labels));
}

//  Events applied by type (unknown types as "unknown") and result.
static void s_count_event(bl_t *self, const char *type, const char *result)
{
    if (!self->metrics)
        return;
    char labels[160];
    snprintf(labels, sizeof labels, "type=%s,result=%s", type, result);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_billing_events",
                                     "Queued events processed by type and result", labels));
}

static bl_stream_verdict_t s_apply_entry(void *arg, const bl_stream_entry_t *entry);
static int s_customer_remember(bl_t *self, const char *sub, const char *id);

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
    self->enqueue = vz_redis_script_new(bl_lua_enqueue);
    self->apply = vz_redis_script_new(bl_lua_apply);
    self->dump = vz_redis_script_new(bl_lua_dump);
    self->list = vz_redis_script_new(bl_lua_list);
    bl_stream_config_t sc = {.stream = BL_STREAM,
                             .group = BL_GROUP,
                             .consumer = consumer,
                             .claim_idle_ms = config->claim_idle_ms,
                             .max_deliveries = config->max_deliveries};
    self->stream = self->redis ? bl_stream_new(self->redis, &sc, s_apply_entry, self) : NULL;
    if (!self->redis || !self->enqueue || !self->apply || !self->dump || !self->list ||
        !self->stream) {
        bl_destroy(&self);
        return NULL;
    }
    if (metrics) {
        self->backlog = vz_metrics_gauge(metrics, "vz_billing_queue_backlog",
                                         "Queued events not yet applied (lag + pending)", NULL);
        self->dead = vz_metrics_counter(metrics, "vz_billing_events_dead",
                                        "Events moved to billing:events:dead", NULL);
    }
    return self;
}

void bl_destroy(bl_t **self_p)
{
    bl_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->npending; i++)
        free(self->pending[i].body);
    free(self->pending);
    free(self->calls);
    bl_stream_destroy(&self->stream);
    vz_redis_script_destroy(&self->enqueue);
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

//  After the worker's batch: every delivery's enqueue script pipelined,
//  then each answer. 200 only once the event is in the stream.
static void s_flush(void *arg)
{
    bl_t *self = arg;
    size_t n = self->npending;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        s_pending_t *p = &self->pending[i];
        snprintf(p->seen, sizeof p->seen, BL_PREFIX "seen:%s", p->event.id);
        snprintf(p->created, sizeof p->created, "%" PRId64, p->event.created);
        p->keys[0] = p->seen;
        p->keys[1] = BL_STREAM;
        p->args[0] = self->ttl;
        p->args[1] = p->event.id;
        p->args[2] = p->event.type;
        p->args[3] = p->created;
        p->args[4] = p->body;
        self->calls[i] = (vz_redis_call_t){
            .script = self->enqueue, .nkeys = 2, .keys = p->keys, .nargs = 5, .args = p->args};
    }
    int rc = vz_redis_eval_batch(self->redis, self->calls, n);
    for (size_t i = 0; i < n; i++) {
        s_pending_t *p = &self->pending[i];
        redisReply *r = self->calls[i].reply;
        bool ok = rc == 0 && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_INTEGER;
        if (ok) {
            bool duplicate = r->element[0]->integer == 0;
            const char *body = duplicate ? "{\"received\":true,\"duplicate\":true}"
                                         : "{\"received\":true,\"duplicate\":false}";
            s_count_webhook(self, duplicate ? "duplicate" : "accepted");
            (void)vz_worker_complete(&p->handle, body, strlen(body));
        } else {
            //  Not queued: Stripe retries a non-2xx, so nothing is lost.
            s_count_webhook(self, "unavailable");
            if (r && r->type == REDIS_REPLY_ERROR)
                vz_warn(NULL, "unable to queue a webhook event", "event", p->event.id, "reason",
                        r->str);
            (void)vz_worker_complete_error(&p->handle, VZ_ERR_UNAVAILABLE,
                                           "event queue unavailable, retry later");
        }
        if (r)
            freeReplyObject(r);
        self->calls[i].reply = NULL;
        free(p->body);
        p->body = NULL;
    }
    self->npending = 0;
}

int bl_h_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    if (self->sig.count == 0) {
        //  "unavailable" is the code the gateway answers 503 for; the
        //  reason leads the message, as for refusals.
        s_count_webhook(self, "billing_not_configured");
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE,
                                      "billing_not_configured: VZ_BILLING_WEBHOOK_SECRETS is not "
                                      "set, webhooks cannot be verified");
    }
    //  Only the gateway's ctx counts (vz_authctx): from anyone else no header.
    const char *header = vz_authctx_header(req, "Stripe-Signature");
    int64_t now_s = vz_clock_now_ms() / 1000;
    bl_sig_rc_t rc = bl_sig_verify(&self->sig, header, req->body, req->body_len, now_s, NULL);
    bl_sig_event_t event;
    if (rc == BL_SIG_OK)
        rc = bl_sig_event(req->body, req->body_len, &event);
    if (rc != BL_SIG_OK) {
        s_count_webhook(self, bl_sig_code(rc));
        return bl_sig_reply(reply, rc);
    }
    if (self->npending == self->pending_max) {
        size_t max = self->pending_max ? self->pending_max * 2 : VZ_WORKER_BATCH;
        s_pending_t *pending = realloc(self->pending, max * sizeof *pending);
        if (pending)
            self->pending = pending;
        vz_redis_call_t *calls = realloc(self->calls, max * sizeof *calls);
        if (calls)
            self->calls = calls;
        if (!pending || !calls)
            return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
        self->pending_max = max;
    }
    s_pending_t *p = &self->pending[self->npending];
    memset(p, 0, sizeof *p);
    p->event = event;
    p->body = malloc(req->body_len + 1);
    if (!p->body)
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
    memcpy(p->body, req->body, req->body_len);
    p->body[req->body_len] = '\0';
    self->npending++;
    p->handle = vz_reply_defer(reply, s_flush);
    return 0;
}

// --------------------------------------------------------------------------
//  Consumer: apply one queued event

static bl_stream_verdict_t s_apply_entry(void *arg, const bl_stream_entry_t *entry)
{
    bl_t *self = arg;
    size_t len = 0;
    const char *body = bl_stream_field(entry, "body", &len);
    bl_event_t ev;
    //  Queued events were verified; one billing cannot read is counted and
    //  acknowledged like an unknown type (it would never read better).
    int rc = body ? bl_event_read(body, len, &ev) : -EINVAL;
    const char *id = rc == 0 ? ev.id : bl_stream_field(entry, "id", NULL);
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
        return BL_STREAM_RETRY;
    }
    static const char *const results[] = {"replayed", "applied", "superseded"};
    long long result = r->integer;
    freeReplyObject(r);
    //  A customer that names its user (metadata vz_user): checkout finds it.
    if (result == 1 && row && row->kind == BL_KIND_CUSTOMER && ev.vz_user[0] &&
        strcmp(ev.status, "deleted") != 0)
        (void)s_customer_remember(self, ev.vz_user, ev.object);
    s_count_event(self, row ? ev.type : (rc == 0 ? "unknown" : "invalid"),
                  result >= 0 && result <= 2 ? results[result] : "applied");
    return BL_STREAM_ACKED;
}

int bl_notify_start(bl_t *self, vz_call_t *calls, const char *consumer)
{
    self->notify =
        bl_notify_new(self->redis, calls, consumer, self->config.notify_retry_ms, self->metrics);
    return self->notify ? 0 : -1;
}

int bl_poll(bl_t *self)
{
    if (self->notify)
        (void)bl_notify_poll(self->notify);
    int rc = bl_stream_poll(self->stream);
    int64_t now = vz_clock_mono_ms();
    if (self->backlog && now >= self->backlog_due) {
        self->backlog_due = now + BACKLOG_EVERY_MS;
        long long n = bl_stream_backlog(self->stream);
        if (n >= 0)
            vz_series_set(self->backlog, (double)n);
        bl_stream_stats_t st;
        bl_stream_stats(self->stream, &st);
        if (st.dead > self->dead_seen) {
            vz_series_add(self->dead, (double)(st.dead - self->dead_seen));
            self->dead_seen = st.dead;
        }
    }
    return rc;
}

// --------------------------------------------------------------------------
//  Revenue (admin)

//  "YYYY-MM-DD" (or a full "YYYY-MM-DDTHH:MM:SSZ") into Unix seconds.
static int s_parse_date(const char *text, int64_t *out)
{
    char full[32];
    if (strlen(text) == 10)
        snprintf(full, sizeof full, "%sT00:00:00Z", text);
    else
        snprintf(full, sizeof full, "%s", text);
    int64_t us = 0;
    if (vz_clock_parse_utc(full, &us) < 0)
        return -EINVAL;
    *out = us / 1000000;
    return 0;
}

int bl_h_revenue(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (!vz_authctx_scope_has(who.scope, "admin"))
        return vz_authctx_reply_error(reply, 403, VZ_AUTHCTX_ERR_DENIED, "missing scope: admin");
    //  period and at: route parameters (/v1/billing/revenue/{period}/{at});
    //  defaults month and now.
    const char *period = vz_authctx_param(req, "period");
    const char *at_text = vz_authctx_param(req, "at");
    //  ?period=&at= as ctx query.<name>, once the gateway forwards queries.
    if (!period)
        period = vz_authctx_get(req, "query.period");
    if (!at_text)
        at_text = vz_authctx_get(req, "query.at");
    bl_rev_unit_t unit = BL_REV_MONTH;
    if (!period || !*period)
        period = "month";
    if (bl_rev_unit(period, &unit) < 0)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "period must be week, month or year");
    int64_t at = vz_clock_now_ms() / 1000;
    if (at_text && *at_text && s_parse_date(at_text, &at) < 0)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "at must be a date YYYY-MM-DD");
    bl_store_input_t in;
    if (bl_store_load(self->redis, self->dump, &in) < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
    size_t count = (size_t)self->config.trend + 1;
    bl_rev_period_t periods[BL_REV_TREND_MAX + 1];
    if (count > BL_REV_TREND_MAX + 1)
        count = BL_REV_TREND_MAX + 1;
    for (size_t i = 0; i < count; i++) {
        int64_t start = 0, end = 0;
        bl_rev_bounds(unit, at, (int)i, &start, &end);
        bl_rev_compute(&in.input, start, end, &periods[i]);
    }
    bl_store_input_free(&in);
    vz_json_writer_t *w = vz_json_writer_new(REPLY_MAX);
    bl_rev_write(w, period, periods, count);
    return vz_authctx_reply_json(reply, &w);
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
                 "billing_not_configured: set VZ_BILLING_STRIPE_SECRET_KEY or "
                 "VZ_BILLING_STRIPE_SECRET_KEY_FILE");
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

void bl_client_stop(void *arg)
{
    bl_t *self = arg;
    bl_client_destroy(&self->client);
}

//  Copy a member of a Stripe object into the answer, under its last name:
//  path is "key" or "a.b.key" (nested objects); strings, integers, booleans.
static void s_copy_kv(vz_json_writer_t *w, const vz_json_value_t *obj, const char *path)
{
    char part[64];
    const char *p = path, *dot;
    while ((dot = strchr(p, '.')) && (size_t)(dot - p) < sizeof part) {
        snprintf(part, sizeof part, "%.*s", (int)(dot - p), p);
        obj = vz_json_get(obj, part);
        p = dot + 1;
    }
    const vz_json_value_t *v = vz_json_get(obj, p);
    int64_t n = 0;
    bool b = false;
    if (vz_json_string(v, NULL))
        vz_json_write_kv_string(w, p, vz_json_string(v, NULL));
    else if (vz_json_int(v, &n) == 0)
        vz_json_write_kv_int(w, p, n);
    else if (vz_json_bool(v, &b) == 0)
        vz_json_write_kv_bool(w, p, b);
}

//  The parameters a writer built, parsed for bl_client_call (NULL when
//  not valid or unfinished); the writer is destroyed.
static vz_json_t *s_params_take(vz_json_writer_t **w_p, bool valid)
{
    size_t len = 0;
    const char *text = valid ? vz_json_writer_data(*w_p, &len) : NULL;
    vz_json_t *params = text ? vz_json_parse(text, len, NULL, NULL) : NULL;
    vz_json_writer_destroy(w_p);
    return params;
}

//  Complete handle with Stripe's error, or with the object's fields (paths,
//  NULL-terminated, as s_copy_kv takes them).
static void s_complete_pick(vz_deferred_t *handle, const bl_client_result_t *r,
                            const char *const *paths)
{
    if (!r->ok) {
        (void)vz_worker_complete_error(&handle, r->error.code, r->error.message);
        return;
    }
    vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
    const vz_json_value_t *obj = doc ? vz_json_root(doc) : NULL;
    vz_json_writer_t *w = vz_json_writer_new(REPLY_MAX);
    vz_json_write_object_begin(w);
    for (size_t i = 0; paths[i]; i++)
        s_copy_kv(w, obj, paths[i]);
    vz_json_write_object_end(w);
    size_t len = 0;
    const char *text = vz_json_writer_data(w, &len);
    if (text)
        (void)vz_worker_complete(&handle, text, len);
    else
        (void)vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "unreadable Stripe answer");
    vz_json_writer_destroy(&w);
    vz_json_destroy(&doc);
}

static void s_pi_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id",       "status",        "amount",
                                        "currency", "client_secret", NULL};
    s_complete_pick(arg, r, paths);
}

//  The checks of every user-facing call to Stripe: a signed-in caller (who
//  filled) and a configured client. 0, or -1 after replying.
static int s_stripe_caller(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                           vz_authctx_t *who)
{
    vz_authctx_read(req, who);
    if (!who->sub[0]) {
        vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "sign in first");
        return -1;
    }
    if (!self->client || !bl_client_configured(self->client)) {
        vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE,
                               self->missing[0] ? self->missing : "billing is stopping");
        return -1;
    }
    return 0;
}

//  POST /v1/billing/payment-intents {amount, currency, description?}: a
//  PaymentIntent for the caller (metadata vz_user), idempotent per caller
//  and Idempotency-Key header (or per request id without one).
int bl_h_payment_intent_create(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    if (s_stripe_caller(self, req, reply, &who) < 0)
        return 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    int64_t amount = 0;
    size_t clen = 0;
    const char *currency = vz_json_get_string(body, "currency", &clen);
    const char *description = vz_json_get_string(body, "description", NULL);
    bool valid = vz_json_int(vz_json_get(body, "amount"), &amount) == 0 && amount > 0 &&
                 amount <= 99999999 && currency && clen == 3;
    for (size_t i = 0; valid && i < clen; i++)
        valid = currency[i] >= 'a' && currency[i] <= 'z';
    if (!valid) {
        vz_json_destroy(&doc);
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "amount (1..99999999 minor units) and currency (3 "
                                      "lowercase letters) are required");
    }
    //  The parameters as the SDK would take them.
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "amount", amount);
    vz_json_write_kv_string(w, "currency", currency);
    if (description)
        vz_json_write_kv_string(w, "description", description);
    vz_json_write_key(w, "automatic_payment_methods");
    vz_json_write_object_begin(w);
    vz_json_write_kv_bool(w, "enabled", true);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    vz_json_t *params = s_params_take(&w, true);
    vz_json_destroy(&doc);
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[512];
    snprintf(logical, sizeof logical, "%s/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    int rc = params ? bl_client_call(self->client, "payment_intent_create", NULL,
                                     vz_json_root(params), logical, s_pi_done, handle)
                    : -ENOMEM;
    vz_json_destroy(&params);
    if (rc == -EAGAIN)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE,
                                       "idempotency key not stored: Redis unavailable");
    else if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "payment intent not sent");
    return 0;
}

// --------------------------------------------------------------------------
//  Reconciliation

#define RECONCILE_PAGES 10 //  pages of 100 events per run

typedef struct {
    bl_t *self;
    vz_deferred_t *handle; //  the admin request that asked, or NULL (timer)
    int queued;            //  events no webhook had delivered
    int duplicates;        //  events already known
    int pages;             //  pages read
} s_recon_t;

//  A parsed JSON value written back as text (the event's body in the queue).
static void s_write_value(vz_json_writer_t *w, const vz_json_value_t *v)
{
    int64_t i = 0;
    double d = 0;
    bool b = false;
    switch (vz_json_type(v)) {
    case VZ_JSON_OBJECT:
        vz_json_write_object_begin(w);
        for (size_t k = 0; k < vz_json_size(v); k++) {
            vz_json_write_key(w, vz_json_key_at(v, k));
            s_write_value(w, vz_json_at(v, k));
        }
        vz_json_write_object_end(w);
        break;
    case VZ_JSON_ARRAY:
        vz_json_write_array_begin(w);
        for (size_t k = 0; k < vz_json_size(v); k++)
            s_write_value(w, vz_json_at(v, k));
        vz_json_write_array_end(w);
        break;
    case VZ_JSON_STRING:
        vz_json_write_string(w, vz_json_string(v, NULL));
        break;
    case VZ_JSON_BOOL:
        vz_json_bool(v, &b);
        vz_json_write_bool(w, b);
        break;
    case VZ_JSON_NUMBER:
        if (vz_json_int(v, &i) == 0)
            vz_json_write_int(w, i);
        else {
            vz_json_double(v, &d);
            vz_json_write_double(w, d);
        }
        break;
    default:
        vz_json_write_null(w);
    }
}

//  Queue one listed event as the intake does: 1 queued, 0 known, -1 failed.
static int s_recon_enqueue(bl_t *self, const vz_json_value_t *event)
{
    vz_json_writer_t *w = vz_json_writer_new(256 * 1024);
    s_write_value(w, event);
    size_t len = 0;
    const char *text = vz_json_writer_status(w) == 0 ? vz_json_writer_data(w, &len) : NULL;
    bl_sig_event_t ev;
    int rc = -1;
    if (text && bl_sig_event(text, len, &ev) == BL_SIG_OK) {
        char seen[BL_SIG_ID_MAX + 16], created[24];
        snprintf(seen, sizeof seen, BL_PREFIX "seen:%s", ev.id);
        snprintf(created, sizeof created, "%" PRId64, ev.created);
        const char *keys[] = {seen, BL_STREAM};
        const char *args[] = {self->ttl, ev.id, ev.type, created, text};
        redisReply *r = vz_redis_eval(self->redis, self->enqueue, 2, keys, 5, args);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER)
            rc = r->element[0]->integer == 1 ? 1 : 0;
        if (r)
            freeReplyObject(r);
    }
    vz_json_writer_destroy(&w);
    return rc;
}

static int s_recon_page(s_recon_t *run, const char *after);

static void s_recon_end(s_recon_t *run, const char *code, const char *message)
{
    bl_t *self = run->self;
    self->reconciling = false;
    if (self->metrics) {
        vz_series_add(vz_metrics_counter(self->metrics, "vz_billing_reconciled",
                                         "Events found by reconciliation, by result",
                                         "result=queued"),
                      run->queued);
        vz_series_add(vz_metrics_counter(self->metrics, "vz_billing_reconciled",
                                         "Events found by reconciliation, by result",
                                         "result=duplicate"),
                      run->duplicates);
    }
    if (run->queued > 0) {
        char count[16];
        snprintf(count, sizeof count, "%d", run->queued);
        vz_info(NULL, "reconciliation queued events no webhook delivered", "count", count);
    }
    if (run->handle && code)
        (void)vz_worker_complete_error(&run->handle, code, message);
    else if (run->handle) {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"queued\":%d,\"duplicates\":%d,\"pages\":%d}",
                         run->queued, run->duplicates, run->pages);
        (void)vz_worker_complete(&run->handle, body, (size_t)n);
    } else if (code)
        vz_warn(NULL, "reconciliation stopped", "reason", message);
    free(run);
}

static void s_recon_done(void *arg, const bl_client_result_t *r)
{
    s_recon_t *run = arg;
    if (!r->ok) {
        s_recon_end(run, r->error.code, r->error.message);
        return;
    }
    run->pages++;
    vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    const vz_json_value_t *data = vz_json_get(root, "data");
    const char *last = NULL;
    bool failed = vz_json_type(data) != VZ_JSON_ARRAY;
    for (size_t i = 0; !failed && i < vz_json_size(data); i++) {
        int rc = s_recon_enqueue(run->self, vz_json_at(data, i));
        failed = rc < 0;
        run->queued += rc == 1;
        run->duplicates += rc == 0;
        last = vz_json_get_string(vz_json_at(data, i), "id", NULL);
    }
    bool more = false;
    vz_json_bool(vz_json_get(root, "has_more"), &more);
    char after[BL_SIG_ID_MAX] = "";
    if (last)
        snprintf(after, sizeof after, "%s", last);
    vz_json_destroy(&doc);
    if (failed)
        s_recon_end(run, VZ_ERR_UNAVAILABLE, "events not queued: Redis or Stripe answer");
    else if (!more || !after[0] || run->pages >= RECONCILE_PAGES || s_recon_page(run, after) < 0)
        s_recon_end(run, NULL, NULL);
}

//  Ask for one page of events (older than after, when given).
static int s_recon_page(s_recon_t *run, const char *after)
{
    bl_t *self = run->self;
    char params[256];
    int64_t since = vz_clock_now_ms() / 1000 - self->config.reconcile_lookback_s;
    snprintf(params, sizeof params, "{\"limit\":100,\"created\":{\"gte\":%" PRId64 "}%s%s%s}",
             since, after ? ",\"starting_after\":\"" : "", after ? after : "", after ? "\"" : "");
    vz_json_t *doc = vz_json_parse(params, strlen(params), NULL, NULL);
    int rc = doc ? bl_client_call(self->client, "event_list", NULL, vz_json_root(doc), "",
                                  s_recon_done, run)
                 : -EINVAL;
    vz_json_destroy(&doc);
    return rc;
}

static int s_reconcile_start(bl_t *self, vz_deferred_t *handle)
{
    if (!self->client || !bl_client_configured(self->client))
        return -ENOKEY;
    if (self->reconciling)
        return -EBUSY;
    //  One replica at a time: the lock lives as long as one period.
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d",
             self->config.reconcile_ms > 0 ? self->config.reconcile_ms : 60000);
    const char *argv[] = {"SET", BL_PREFIX "reconcile:lock", "1", "NX", "PX", ttl};
    redisReply *r = handle ? NULL : vz_redis_command(self->redis, 6, argv, NULL);
    bool locked = handle || (r && r->type == REDIS_REPLY_STATUS);
    if (r)
        freeReplyObject(r);
    if (!locked)
        return -EAGAIN;
    s_recon_t *run = calloc(1, sizeof *run);
    if (!run)
        return -ENOMEM;
    run->self = self;
    run->handle = handle;
    self->reconciling = true;
    int rc = s_recon_page(run, NULL);
    if (rc < 0) {
        self->reconciling = false;
        free(run);
    }
    return rc;
}

int bl_reconcile(bl_t *self)
{
    return s_reconcile_start(self, NULL);
}

//  POST /v1/billing/reconcile (admin): one run now, answered when it ends.
int bl_h_reconcile(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (!vz_authctx_scope_has(who.scope, "admin"))
        return vz_authctx_reply_error(reply, 403, VZ_AUTHCTX_ERR_DENIED, "missing scope: admin");
    if (!self->client || !bl_client_configured(self->client))
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE,
                                      self->missing[0] ? self->missing : "billing is stopping");
    if (self->reconciling)
        return vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                                      "a reconciliation is running");
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    int rc = s_reconcile_start(self, handle);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "reconciliation not started");
    return 0;
}

// --------------------------------------------------------------------------
//  Checkout: the caller's Stripe customer (created once), then a session

#define URL_MAX 1024 //  longest success/cancel URL accepted

typedef struct {
    bl_t *self;
    vz_deferred_t *handle;
    char sub[VZ_AUTHCTX_VALUE_MAX + 1]; //  the caller
    char logical[600];                  //  the session's idempotency name
    char *params;                       //  session parameters, without the customer (JSON
                                        //  object text whose last byte is '}')
} s_checkout_t;

static void s_checkout_free(s_checkout_t *co)
{
    free(co->params);
    free(co);
}

static void s_checkout_fail(s_checkout_t *co, const char *code, const char *message)
{
    (void)vz_worker_complete_error(&co->handle, code, message);
    s_checkout_free(co);
}

static void s_session_done(void *arg, const bl_client_result_t *r)
{
    s_checkout_t *co = arg;
    static const char *const paths[] = {"id", "url", "customer", NULL};
    s_complete_pick(co->handle, r, paths);
    co->handle = NULL;
    s_checkout_free(co);
}

//  The session for customer: params plus "customer".
static void s_session_start(s_checkout_t *co, const char *customer)
{
    size_t n = strlen(co->params);
    char *text = zsys_sprintf("%.*s,\"customer\":\"%s\"}", (int)(n - 1), co->params, customer);
    vz_json_t *doc = text ? vz_json_parse(text, strlen(text), NULL, NULL) : NULL;
    int rc = doc ? bl_client_call(co->self->client, "checkout_session_create", NULL,
                                  vz_json_root(doc), co->logical, s_session_done, co)
                 : -EINVAL;
    vz_json_destroy(&doc);
    zstr_free(&text);
    if (rc < 0)
        s_checkout_fail(co, VZ_ERR_UNAVAILABLE, "checkout session not sent");
}

//  The caller's customer id, stored when billing created it or a customer
//  event named the user (metadata vz_user). 0 and id, -ENOENT, -EIO.
static int s_customer_of(bl_t *self, const char *sub, char *id, size_t n)
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

static int s_customer_remember(bl_t *self, const char *sub, const char *id)
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

static void s_customer_done(void *arg, const bl_client_result_t *r)
{
    s_checkout_t *co = arg;
    if (!r->ok) {
        s_checkout_fail(co, r->error.code, r->error.message);
        return;
    }
    vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
    const char *id = doc ? vz_json_get_string(vz_json_root(doc), "id", NULL) : NULL;
    char customer[BL_SIG_ID_MAX] = "";
    if (id && strlen(id) < sizeof customer)
        strcpy(customer, id);
    vz_json_destroy(&doc);
    if (!customer[0] || s_customer_remember(co->self, co->sub, customer) < 0) {
        s_checkout_fail(co, VZ_ERR_UNAVAILABLE, "customer not recorded");
        return;
    }
    s_session_start(co, customer);
}

//  A URL the session may send the buyer back to.
static bool s_url_ok(const char *url)
{
    size_t n = url ? strlen(url) : 0;
    return n > 8 && n < URL_MAX &&
           (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0);
}

//  POST /v1/billing/checkout {price, quantity?, success_url, cancel_url,
//  trial_period_days?}: a Checkout Session in subscription mode for the
//  caller's customer (created the first time, metadata vz_user) -> {id, url,
//  customer}. Idempotent per caller and Idempotency-Key header.
int bl_h_checkout(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    if (s_stripe_caller(self, req, reply, &who) < 0)
        return 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    const char *ok_url = vz_json_get_string(body, "success_url", NULL);
    const char *cancel_url = vz_json_get_string(body, "cancel_url", NULL);
    int64_t quantity = 1, trial = 0;
    if (vz_json_get(body, "quantity") && vz_json_int(vz_json_get(body, "quantity"), &quantity) < 0)
        quantity = 0;
    if (vz_json_get(body, "trial_period_days") &&
        vz_json_int(vz_json_get(body, "trial_period_days"), &trial) < 0)
        trial = -1;
    if (!price || strncmp(price, "price_", 6) != 0 || strlen(price) > 128 || quantity < 1 ||
        quantity > 10000 || trial < 0 || trial > 730 || !s_url_ok(ok_url) ||
        !s_url_ok(cancel_url)) {
        vz_json_destroy(&doc);
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "price (price_...), success_url and cancel_url (http[s]) "
                                      "are required; quantity 1..10000, trial_period_days "
                                      "0..730");
    }
    s_checkout_t *co = calloc(1, sizeof *co);
    vz_json_writer_t *w = vz_json_writer_new(8192);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "mode", "subscription");
    vz_json_write_key(w, "line_items");
    vz_json_write_array_begin(w);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "price", price);
    vz_json_write_kv_int(w, "quantity", quantity);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    vz_json_write_kv_string(w, "success_url", ok_url);
    vz_json_write_kv_string(w, "cancel_url", cancel_url);
    vz_json_write_kv_string(w, "client_reference_id", who.sub);
    if (trial > 0) {
        vz_json_write_key(w, "subscription_data");
        vz_json_write_object_begin(w);
        vz_json_write_kv_int(w, "trial_period_days", trial);
        vz_json_write_object_end(w);
    }
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    if (!co || vz_json_writer_status(w) != 0) {
        vz_json_writer_destroy(&w);
        free(co);
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
    }
    size_t plen = 0;
    co->params = vz_json_writer_take(w, &plen);
    vz_json_writer_destroy(&w);
    co->self = self;
    snprintf(co->sub, sizeof co->sub, "%s", who.sub);
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    snprintf(co->logical, sizeof co->logical, "%s/checkout/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    co->handle = vz_reply_defer(reply, NULL);
    char customer[BL_SIG_ID_MAX];
    int rc = s_customer_of(self, who.sub, customer, sizeof customer);
    if (rc == 0) {
        s_session_start(co, customer);
        return 0;
    }
    if (rc == -EIO) {
        s_checkout_fail(co, VZ_ERR_UNAVAILABLE, "billing state unavailable");
        return 0;
    }
    //  The first time: the customer, keyed by the user alone, so that two
    //  first checkouts at once make one customer at Stripe.
    char params[VZ_AUTHCTX_VALUE_MAX + 64], logical[VZ_AUTHCTX_VALUE_MAX + 16];
    vz_json_writer_t *cw = vz_json_writer_new(1024);
    vz_json_write_object_begin(cw);
    vz_json_write_key(cw, "metadata");
    vz_json_write_object_begin(cw);
    vz_json_write_kv_string(cw, "vz_user", who.sub);
    vz_json_write_object_end(cw);
    vz_json_write_object_end(cw);
    snprintf(params, sizeof params, "%s", vz_json_writer_data(cw, NULL));
    vz_json_writer_destroy(&cw);
    snprintf(logical, sizeof logical, "customer/%s", who.sub);
    vz_json_t *cdoc = vz_json_parse(params, strlen(params), NULL, NULL);
    rc = cdoc ? bl_client_call(self->client, "customer_create", NULL, vz_json_root(cdoc), logical,
                               s_customer_done, co)
              : -EINVAL;
    vz_json_destroy(&cdoc);
    if (rc < 0)
        s_checkout_fail(co, VZ_ERR_UNAVAILABLE, "customer not created: Redis or Stripe away");
    return 0;
}

// --------------------------------------------------------------------------
//  The caller's own objects (from the stored state) and their changes

#define LIST_DEFAULT 10 //  items per page unless the caller asks
#define LIST_MAX 100    //  most items per page, as Stripe's lists

//  One row of the list script's answer.
typedef struct {
    const char *id, *status, *currency, *subscription;
    long long amount, mrr, created;
} s_row_t;

//  Newest first, then by id: a stable order for cursors.
static int s_row_cmp(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? 1 : -1;
    return strcmp(x->id, y->id);
}

//  GET lists: {"object":"list","data":[...],"has_more":bool} of kind for the
//  caller's customer, newest first; page size and cursor from ctx
//  query.limit and query.starting_after when the gateway passes them.
static int s_list(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply, const char *kind)
{
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (!who.sub[0])
        return vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "sign in first");
    const char *limit_text = vz_authctx_get(req, "query.limit");
    const char *after = vz_authctx_get(req, "query.starting_after");
    long limit = limit_text ? strtol(limit_text, NULL, 10) : LIST_DEFAULT;
    if (limit < 1 || limit > LIST_MAX)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "limit must be 1..100");
    char customer[BL_SIG_ID_MAX];
    int rc = s_customer_of(self, who.sub, customer, sizeof customer);
    if (rc == -EIO)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
    redisReply *r = NULL;
    if (rc == 0) {
        const char *args[] = {BL_PREFIX, kind, customer};
        r = vz_redis_eval(self->redis, self->list, 0, NULL, 3, args);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE,
                                          "billing state unavailable");
        }
    }
    size_t n = r ? r->elements : 0;
    s_row_t *rows = calloc(n + 1, sizeof *rows);
    size_t count = 0;
    for (size_t i = 0; rows && i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 7)
            continue;
        rows[count++] = (s_row_t){e->element[0]->str,
                                  e->element[1]->str,
                                  e->element[2]->str,
                                  e->element[6]->str,
                                  strtoll(e->element[3]->str, NULL, 10),
                                  strtoll(e->element[4]->str, NULL, 10),
                                  strtoll(e->element[5]->str, NULL, 10)};
    }
    qsort(rows, count, sizeof *rows, s_row_cmp);
    size_t first = 0;
    if (after && *after) {
        while (first < count && strcmp(rows[first].id, after) != 0)
            first++;
        first = first < count ? first + 1 : count; //  an unknown cursor: nothing more
    }
    vz_json_writer_t *w = vz_json_writer_new(REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "object", "list");
    vz_json_write_key(w, "data");
    vz_json_write_array_begin(w);
    size_t i = first;
    for (; i < count && i < first + (size_t)limit; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "id", rows[i].id);
        vz_json_write_kv_string(w, "status", rows[i].status);
        vz_json_write_kv_string(w, "currency", rows[i].currency);
        if (strcmp(kind, "subscription") == 0)
            vz_json_write_kv_int(w, "mrr", rows[i].mrr);
        else
            vz_json_write_kv_int(w, "amount", rows[i].amount);
        if (rows[i].subscription[0])
            vz_json_write_kv_string(w, "subscription", rows[i].subscription);
        vz_json_write_kv_int(w, "updated", rows[i].created);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_kv_bool(w, "has_more", i < count);
    vz_json_write_object_end(w);
    free(rows);
    if (r)
        freeReplyObject(r);
    return vz_authctx_reply_json(reply, &w);
}

int bl_h_subscriptions_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "subscription");
}

int bl_h_invoices_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "invoice");
}

int bl_h_payments_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_list(app, req, reply, "payment_intent");
}

//  A subscription change answered with {id, status, cancel_at_period_end}.
static void s_sub_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "status", "cancel_at_period_end", NULL};
    s_complete_pick(arg, r, paths);
}

//  A signed-in caller, a configured client and the subscription of route
//  parameter id being the caller's: 0, who filled and the first item's id
//  (from the stored event) in item; else -1 after replying.
static int s_own_subscription(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                              vz_authctx_t *who, const char **id, char *item, size_t n)
{
    if (s_stripe_caller(self, req, reply, who) < 0)
        return -1;
    *id = vz_authctx_param(req, "id");
    char customer[BL_SIG_ID_MAX], key[BL_SIG_ID_MAX + 64];
    if (!*id || !**id || strlen(*id) >= BL_SIG_ID_MAX ||
        s_customer_of(self, who->sub, customer, sizeof customer) < 0) {
        vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no such subscription");
        return -1;
    }
    snprintf(key, sizeof key, BL_PREFIX "obj:subscription:%s", *id);
    const char *argv[] = {"HMGET", key, "customer", "event"};
    redisReply *r = vz_redis_command(self->redis, 4, argv, NULL);
    bool mine = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[0]->str, customer) == 0;
    item[0] = '\0';
    if (mine && r->element[1]->type == REDIS_REPLY_STRING) {
        vz_json_t *doc = vz_json_parse(r->element[1]->str, r->element[1]->len, NULL, NULL);
        const vz_json_value_t *items = vz_json_get(
            vz_json_get(vz_json_get(vz_json_get(doc ? vz_json_root(doc) : NULL, "data"), "object"),
                        "items"),
            "data");
        const char *si = vz_json_get_string(vz_json_at(items, 0), "id", NULL);
        if (si && strlen(si) < n)
            strcpy(item, si);
        vz_json_destroy(&doc);
    }
    if (r)
        freeReplyObject(r);
    if (!mine) {
        vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND, "no such subscription");
        return -1;
    }
    return 0;
}

//  The parameters of a change from the body {price?, quantity?,
//  cancel_at_period_end?} on the first item (item), or NULL after replying
//  validation_failed.
static vz_json_t *s_update_params(const vz_envelope_t *req, vz_reply_t *reply, const char *item)
{
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    int64_t quantity = 0;
    bool at_end = false, has_q = vz_json_get(body, "quantity") != NULL,
         has_end = vz_json_get(body, "cancel_at_period_end") != NULL;
    bool valid =
        vz_json_type(body) == VZ_JSON_OBJECT && (price || has_q || has_end) &&
        (!price || (strncmp(price, "price_", 6) == 0 && strlen(price) < 128)) &&
        (!has_q || (vz_json_int(vz_json_get(body, "quantity"), &quantity) == 0 && quantity >= 1 &&
                    quantity <= 10000)) &&
        (!has_end || vz_json_bool(vz_json_get(body, "cancel_at_period_end"), &at_end) == 0) &&
        ((!price && !has_q) || item[0]);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    if (valid && (price || has_q)) {
        vz_json_write_key(w, "items");
        vz_json_write_array_begin(w);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "id", item);
        if (price)
            vz_json_write_kv_string(w, "price", price);
        if (has_q)
            vz_json_write_kv_int(w, "quantity", quantity);
        vz_json_write_object_end(w);
        vz_json_write_array_end(w);
    }
    if (valid && has_end)
        vz_json_write_kv_bool(w, "cancel_at_period_end", at_end);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                               "give price (price_...), quantity 1..10000 and/or "
                               "cancel_at_period_end (boolean)");
    return params;
}

//  PATCH (a plan or quantity change with Stripe's default proration, or a
//  cancellation at the period's end) or DELETE (cancel now) of the caller's
//  own subscription.
static int s_subscription(void *app, const vz_envelope_t *req, vz_reply_t *reply, bool cancel)
{
    bl_t *self = app;
    vz_authctx_t who;
    const char *id = NULL;
    char item[BL_SIG_ID_MAX];
    if (s_own_subscription(self, req, reply, &who, &id, item, sizeof item) < 0)
        return 0;
    vz_json_t *params = cancel ? NULL : s_update_params(req, reply, item);
    if (!cancel && !params)
        return 0;
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/%s/%s", who.sub, id,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    int rc = bl_client_call(self->client, cancel ? "subscription_cancel" : "subscription_update",
                            id, params ? vz_json_root(params) : NULL, logical, s_sub_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "change not sent");
    return 0;
}

//  PATCH /v1/billing/subscriptions/{id} {price?, quantity?, cancel_at_period_end?}
int bl_h_subscription_update(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_subscription(app, req, reply, false);
}

//  DELETE /v1/billing/subscriptions/{id}: cancel now (at the period's end:
//  PATCH cancel_at_period_end).
int bl_h_subscription_cancel(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return s_subscription(app, req, reply, true);
}

//  The checks of s_stripe_caller, then the caller's customer into
//  customer: 0, or -1 after replying (409 without one: checkout first).
static int s_caller_customer(bl_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                             vz_authctx_t *who, char *customer, size_t n)
{
    if (s_stripe_caller(self, req, reply, who) < 0)
        return -1;
    int rc = s_customer_of(self, who->sub, customer, n);
    if (rc == -EIO)
        vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "billing state unavailable");
    else if (rc < 0)
        vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                               "no payment customer yet: start with POST /v1/billing/checkout");
    return rc < 0 ? -1 : 0;
}

//  {id, status, client_secret}: the first payment's secret when Stripe
//  expanded latest_invoice.payment_intent.
static void s_created_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "status",
                                        "latest_invoice.payment_intent.client_secret", NULL};
    s_complete_pick(arg, r, paths);
}

static void s_portal_done(void *arg, const bl_client_result_t *r)
{
    static const char *const paths[] = {"id", "url", NULL};
    s_complete_pick(arg, r, paths);
}

//  POST /v1/billing/subscriptions {price, quantity?, trial_period_days?}: a
//  subscription for the caller's customer, incomplete until its first
//  payment (payment_behavior default_incomplete; the answer carries the
//  PaymentIntent's client_secret). Without a customer yet: 409, checkout
//  first.
int bl_h_subscription_create(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    char customer[BL_SIG_ID_MAX];
    if (s_caller_customer(self, req, reply, &who, customer, sizeof customer) < 0)
        return 0;
    int rc = 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *body = doc ? vz_json_root(doc) : NULL;
    const char *price = vz_json_get_string(body, "price", NULL);
    int64_t quantity = 1, trial = 0;
    bool valid = price && strncmp(price, "price_", 6) == 0 && strlen(price) < 128 &&
                 (!vz_json_get(body, "quantity") ||
                  vz_json_int(vz_json_get(body, "quantity"), &quantity) == 0) &&
                 (!vz_json_get(body, "trial_period_days") ||
                  vz_json_int(vz_json_get(body, "trial_period_days"), &trial) == 0) &&
                 quantity >= 1 && quantity <= 10000 && trial >= 0 && trial <= 730;
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "customer", customer);
    vz_json_write_key(w, "items");
    vz_json_write_array_begin(w);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "price", valid ? price : "");
    vz_json_write_kv_int(w, "quantity", quantity);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    if (trial > 0)
        vz_json_write_kv_int(w, "trial_period_days", trial);
    vz_json_write_kv_string(w, "payment_behavior", "default_incomplete");
    vz_json_write_key(w, "metadata");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "vz_user", who.sub);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "expand");
    vz_json_write_array_begin(w);
    vz_json_write_string(w, "latest_invoice.payment_intent");
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "price (price_...) is required; quantity 1..10000, "
                                      "trial_period_days 0..730");
    const char *client_key = vz_authctx_header(req, "Idempotency-Key");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/subscription/%s", who.sub,
             client_key && *client_key ? client_key : req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    rc = bl_client_call(self->client, "subscription_create", NULL, vz_json_root(params), logical,
                        s_created_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "subscription not sent");
    return 0;
}

// --------------------------------------------------------------------------
//  Revenue gauges (the business row of the dashboard)

int bl_gauges(bl_t *self)
{
    if (!self->metrics)
        return 0;
    bl_store_input_t in;
    if (bl_store_load(self->redis, self->dump, &in) < 0)
        return -EIO;
    int64_t start = 0, end = 0;
    bl_rev_bounds(BL_REV_MONTH, vz_clock_now_ms() / 1000, 0, &start, &end);
    //  "Now" is the end of the figures: MRR of what is paying at this instant.
    bl_rev_period_t p;
    bl_rev_compute(&in.input, start, vz_clock_now_ms() / 1000 + 1, &p);
    bl_store_input_free(&in);
    for (size_t i = 0; i < p.ncur; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "currency=%s", p.cur[i].currency);
        vz_series_set(vz_metrics_gauge(self->metrics, "vz_billing_mrr",
                                       "Monthly recurring revenue now, minor units", labels),
                      (double)p.cur[i].mrr);
        vz_series_set(vz_metrics_gauge(self->metrics, "vz_billing_arr",
                                       "Annual run rate (12 x MRR) now, minor units", labels),
                      (double)p.cur[i].arr);
    }
    vz_series_set(vz_metrics_gauge(self->metrics, "vz_billing_paying_subscriptions",
                                   "Subscriptions paying now (active or past_due)", NULL),
                  (double)p.paying_end);
    vz_series_set(vz_metrics_gauge(self->metrics, "vz_billing_new_subscriptions",
                                   "Subscriptions paying for the first time this month", NULL),
                  (double)p.new_subs);
    vz_series_set(vz_metrics_gauge(self->metrics, "vz_billing_churned_subscriptions",
                                   "Subscriptions that stopped paying this month", NULL),
                  (double)p.churned);
    return 0;
}

//  POST /v1/billing/portal {return_url}: a Billing Portal session for the
//  caller's customer -> {id, url}. 409 without a customer (checkout first).
int bl_h_portal(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bl_t *self = app;
    vz_authctx_t who;
    char customer[BL_SIG_ID_MAX];
    if (s_caller_customer(self, req, reply, &who, customer, sizeof customer) < 0)
        return 0;
    int rc = 0;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const char *url = vz_json_get_string(doc ? vz_json_root(doc) : NULL, "return_url", NULL);
    bool valid = s_url_ok(url);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "customer", customer);
    vz_json_write_kv_string(w, "return_url", valid ? url : "");
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    vz_json_t *params = s_params_take(&w, valid);
    if (!params)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "return_url (http[s]) is required");
    char logical[600];
    snprintf(logical, sizeof logical, "%s/portal/%s", who.sub, req->id);
    vz_deferred_t *handle = vz_reply_defer(reply, NULL);
    rc = bl_client_call(self->client, "portal_session_create", NULL, vz_json_root(params), logical,
                        s_portal_done, handle);
    vz_json_destroy(&params);
    if (rc < 0)
        (void)vz_worker_complete_error(&handle, VZ_ERR_UNAVAILABLE, "portal session not sent");
    return 0;
}
