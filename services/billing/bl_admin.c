/*  bl_admin - revenue figures, reconciliation with Stripe's event list, revenue gauges
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bl_app.h"
#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

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
    //  In the mesh, a reader of VZ_BILLING_READERS (the reporter) asks with
    //  a JSON body {period, at}; through the gateway, scope admin.
    bool reader =
        !vz_authctx_trusted(req->caller) && vz_authctx_scope_has(self->config.readers, req->caller);
    if (!reader && !vz_authctx_scope_has(who.scope, "admin"))
        return vz_authctx_reply_error(reply, 403, VZ_AUTHCTX_ERR_DENIED, "missing scope: admin");
    //  period and at: ?period=&at= (ctx query.<name>) or route parameters
    //  (/v1/billing/revenue/{period}/{at}); defaults month and now.
    const char *period = vz_authctx_param(req, "period");
    const char *at_text = vz_authctx_param(req, "at");
    vz_json_t *body =
        reader && req->body_len ? vz_json_parse(req->body, req->body_len, NULL, NULL) : NULL;
    char body_period[16] = "", body_at[32] = "";
    if (body) {
        const char *p = vz_json_get_string(vz_json_root(body), "period", NULL);
        const char *a = vz_json_get_string(vz_json_root(body), "at", NULL);
        snprintf(body_period, sizeof body_period, "%s", p ? p : "");
        snprintf(body_at, sizeof body_at, "%s", a ? a : "");
        period = body_period;
        at_text = body_at;
        vz_json_destroy(&body);
    }
    if (!period)
        period = vz_authctx_query(req, "period");
    if (!at_text)
        at_text = vz_authctx_query(req, "at");
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
    vz_json_writer_t *w = vz_json_writer_new(BL_REPLY_MAX);
    bl_rev_write(w, period, periods, count);
    return vz_authctx_reply_json(reply, &w);
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

//  Queue one listed event as the intake does: 1 queued, 0 known, -1 failed.
static int s_recon_enqueue(bl_t *self, const vz_json_value_t *event)
{
    vz_json_writer_t *w = vz_json_writer_new(256 * 1024);
    vz_json_write_value(w, event);
    size_t len = 0;
    const char *text = vz_json_writer_status(w) == 0 ? vz_json_writer_data(w, &len) : NULL;
    bl_sig_event_t ev;
    int rc = -1;
    if (text && bl_sig_event(text, len, &ev) == BL_SIG_OK) {
        char created[24];
        snprintf(created, sizeof created, "%" PRId64, ev.created);
        const char *fields[] = {"id", ev.id, "type", ev.type, "created", created};
        rc = vz_intake_enqueue(self->intake, ev.id, fields, 3, text, len);
    }
    vz_json_writer_destroy(&w);
    return rc;
}

static int s_recon_page(s_recon_t *run, const char *after);

static void s_recon_end(s_recon_t *run, int status, const char *code, const char *message)
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
        bl_complete_error(&run->handle, status, code, message);
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
        s_recon_end(run, r->error.status, r->error.code, r->error.message);
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
        s_recon_end(run, 503, VZ_ERR_UNAVAILABLE, "events not queued: Redis or Stripe answer");
    else if (!more || !after[0] || run->pages >= RECONCILE_PAGES || s_recon_page(run, after) < 0)
        s_recon_end(run, 0, NULL, NULL);
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
    if (bl_stripe_unusable(self, reply))
        return 0;
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
//  Revenue gauges (the business row of the dashboard)

//  vz_billing_mrr{currency} (arr false) or vz_billing_arr{currency}.
static vz_series_t *s_money_gauge(bl_t *self, bool arr, const char *currency)
{
    char labels[32];
    snprintf(labels, sizeof labels, "currency=%s", currency);
    return arr ? vz_metrics_gauge(self->metrics, "vz_billing_arr",
                                  "Annual run rate (12 x MRR) now, minor units", labels)
               : vz_metrics_gauge(self->metrics, "vz_billing_mrr",
                                  "Monthly recurring revenue now, minor units", labels);
}

//  The subscription counts, in the order of their figures below.
static const struct {
    const char *name, *help;
} s_counts[] = {
    {"vz_billing_paying_subscriptions", "Subscriptions paying now (active or past_due)"},
    {"vz_billing_new_subscriptions", "Subscriptions paying for the first time this month"},
    {"vz_billing_churned_subscriptions", "Subscriptions that stopped paying this month"},
};

bool bl_currencies_ok(const char *list)
{
    //  Lowercase three-letter codes separated by commas, as Stripe spells them.
    if (!*list)
        return true;
    for (const char *p = list;; p += 4) {
        if (strspn(p, "abcdefghijklmnopqrstuvwxyz") != 3 || (p[3] && p[3] != ','))
            return false;
        if (!p[3])
            return true; //  "usd," would go on to an empty code and fail
    }
}

void bl_gauges_init(bl_t *self)
{
    if (!self->metrics)
        return;
    const char *list = self->config.gauge_currencies;
    for (const char *p = list; strlen(p) >= 3; p += p[3] == ',' ? 4 : 3) {
        char currency[4] = {p[0], p[1], p[2], '\0'};
        (void)s_money_gauge(self, false, currency);
        (void)s_money_gauge(self, true, currency);
    }
    for (size_t i = 0; i < sizeof s_counts / sizeof s_counts[0]; i++)
        (void)vz_metrics_gauge(self->metrics, s_counts[i].name, s_counts[i].help, NULL);
}

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
        vz_series_set(s_money_gauge(self, false, p.cur[i].currency), (double)p.cur[i].mrr);
        vz_series_set(s_money_gauge(self, true, p.cur[i].currency), (double)p.cur[i].arr);
    }
    const int64_t counts[] = {p.paying_end, p.new_subs, p.churned};
    for (size_t i = 0; i < sizeof s_counts / sizeof s_counts[0]; i++)
        vz_series_set(vz_metrics_gauge(self->metrics, s_counts[i].name, s_counts[i].help, NULL),
                      (double)counts[i]);
    return 0;
}
