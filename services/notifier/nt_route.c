/*  nt_route - alert routing by severity (configs/notifier.cfg, section route)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nt_buf.h"
#include "nt_outbox.h"
#include "nt_send.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"

#define ALERT_KEEP_S "604800" //  a week: longer than any delay
#define DIGEST_KEEP_S "259200"
#define DIGEST_LINES "500" //  lines of one digest at most
#define DAY_MS 86400000LL

//  Route target -> channel, for the targets that are channels.
static const struct {
    nt_route_target_t target;
    nt_channel_t channel;
} s_targets[] = {
    {NT_RT_PAGERDUTY, NT_CH_PAGERDUTY}, {NT_RT_SLACK, NT_CH_SLACK},
    {NT_RT_DISCORD, NT_CH_DISCORD},     {NT_RT_EMAIL, NT_CH_EMAIL},
    {NT_RT_WEBHOOK, NT_CH_WEBHOOK},
};

nt_plan_t nt_route_plan(const nt_config_t *config, nt_sev_t sev, bool resolved, int64_t now_ms)
{
    nt_plan_t plan = {NT_PLAN_SKIP, NT_CH_EMAIL, 0, false, NULL};
    nt_route_target_t target = (nt_route_target_t)config->route[sev];
    if (target == NT_RT_NONE)
        return plan;
    if (target == NT_RT_DIGEST) {
        plan.kind = resolved ? NT_PLAN_SKIP : NT_PLAN_DIGEST;
        return plan;
    }
    for (size_t i = 0; i < sizeof s_targets / sizeof s_targets[0]; i++)
        if (s_targets[i].target == target)
            plan.channel = s_targets[i].channel;
    if (plan.channel == NT_CH_PAGERDUTY) {
        //  PagerDuty keeps the incident: a resolve must reach it.
        plan.kind = NT_PLAN_SEND;
        plan.event_action = resolved ? "resolve" : "trigger";
        return plan;
    }
    if (resolved)
        return plan; //  recorded in {nt}:alert:<key> by the caller; a pending send drops
    plan.kind = NT_PLAN_SEND;
    if (sev == NT_SEV_WARNING && config->warning_delay_ms > 0) {
        plan.due_ms = now_ms + config->warning_delay_ms;
        plan.conditional = true;
    }
    return plan;
}

void nt_route_day(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d", &tm);
}

static bool s_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
            return false;
    return true;
}

static int s_cmd(nt_t *self, int argc, const char **argv)
{
    redisReply *r = vz_redis_command(self->redis, argc, argv, NULL);
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}

//  A request encoded by the callers' encoder (vz_notifier_contract.h),
//  parsed back and submitted like any caller's send.
static nt_err_t s_submit(nt_t *self, const vz_nt_send_t *send, const char *owner, int64_t due_ms,
                         const char *cond_alert, nt_submit_t *out)
{
    size_t len = 0;
    char *text = vz_nt_send_encode(send, &len);
    //  A day's digest may hold one string past the default 64 KiB.
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = limits.max_string = VZ_NT_SEND_BODY_MAX;
    vz_json_t *doc = text ? vz_json_parse(text, len, &limits, NULL) : NULL;
    free(text);
    if (!doc) {
        memset(out, 0, sizeof *out);
        snprintf(out->detail, sizeof out->detail, "request too large");
        return NT_E_REQUEST;
    }
    nt_err_t err = nt_submit(self, vz_json_root(doc), owner, due_ms, cond_alert, out);
    vz_json_destroy(&doc);
    return err;
}

//  The send request of a plan: template "alert" with the alert's fields.
static nt_err_t s_send(nt_t *self, const nt_plan_t *plan, const vz_json_value_t *alert,
                       const char *key, const char *owner, nt_submit_t *out)
{
    const char *source = vz_json_get_string(alert, "source", NULL);
    source = source ? source : self->config.alert_source;
    static const char *const fields[] = {"name", "severity", "status", "summary"};
    vz_nt_var_t data[5];
    for (size_t i = 0; i < 4; i++) {
        const char *v = vz_json_get_string(alert, fields[i], NULL);
        data[i] = (vz_nt_var_t){.name = fields[i], .type = VZ_NT_VAR_STR, .s = v ? v : ""};
    }
    data[4] = (vz_nt_var_t){.name = "source", .type = VZ_NT_VAR_STR, .s = source};
    vz_nt_send_t send = {
        .channel = nt_channel_info(plan->channel)->name,
        .template_name = "alert",
        .to = plan->channel == NT_CH_EMAIL ? self->config.digest_to : NULL,
        .data = data,
        .ndata = 5,
        .severity = vz_json_get_string(alert, "severity", NULL),
        .event_action = plan->event_action,
        .dedup_key = key,
        .source = source,
    };
    return s_submit(self, &send, owner, plan->due_ms, plan->conditional ? key : NULL, out);
}

int nt_h_alert(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    nt_t *self = app;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (who.trusted && !vz_authctx_scope_has(who.scope, "admin"))
        return nt_reply_err(reply, NT_E_DENIED, "scope admin required");
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const vz_json_value_t *alert = doc ? vz_json_root(doc) : NULL;
    const char *name = vz_json_get_string(alert, "name", NULL);
    const char *severity = vz_json_get_string(alert, "severity", NULL);
    const char *status = vz_json_get_string(alert, "status", NULL);
    const char *key = vz_json_get_string(alert, "key", NULL);
    key = key ? key : name;
    int sev = severity ? nt_sev_find(severity) : -1;
    nt_err_t err = NT_E_OK;
    const char *detail = "";
    if (!name || !key || !s_key_ok(key) || !status ||
        (strcmp(status, "firing") && strcmp(status, "resolved")))
        err = NT_E_REQUEST, detail = "alert: {name, severity, status: firing|resolved, summary}";
    else if (sev < 0)
        err = NT_E_SEVERITY, detail = "severity: critical, error, warning or info";
    if (err != NT_E_OK) {
        vz_json_destroy(&doc);
        return nt_reply_err(reply, err, detail);
    }
    bool resolved = strcmp(status, "resolved") == 0;
    int64_t now = vz_clock_now_ms();
    //  The alert's state first: a delayed send checks it when due.
    char akey[256];
    snprintf(akey, sizeof akey, NT_KEY_ALERT "%s", key);
    const char *set[] = {"SET", akey, resolved ? "resolved" : "firing", "EX", ALERT_KEEP_S};
    if (s_cmd(self, 5, set) < 0) {
        vz_json_destroy(&doc);
        return nt_reply_err(reply, NT_E_REDIS, "the outbox did not answer");
    }
    nt_plan_t plan = nt_route_plan(&self->config, (nt_sev_t)sev, resolved, now);
    nt_submit_t out = {.id = ""};
    const char *action = "none";
    if (plan.kind == NT_PLAN_SEND) {
        const char *owner = who.trusted && who.sub[0] ? who.sub : req->caller;
        err = s_send(self, &plan, alert, key, owner, &out);
        action = plan.due_ms ? "scheduled" : "queued";
    } else if (plan.kind == NT_PLAN_DIGEST) {
        char day[16], dkey[64], line[600];
        nt_route_day(now, day, sizeof day);
        snprintf(dkey, sizeof dkey, NT_KEY_DIGEST "%s", day);
        const char *summary = vz_json_get_string(alert, "summary", NULL);
        snprintf(line, sizeof line, "%s: %s", name, summary ? summary : "");
        const char *push[] = {"RPUSH", dkey, line};
        const char *keep[] = {"EXPIRE", dkey, DIGEST_KEEP_S};
        err = s_cmd(self, 3, push) == 0 && s_cmd(self, 3, keep) == 0 ? NT_E_OK : NT_E_REDIS;
        action = "digest";
    }
    vz_json_destroy(&doc);
    if (err != NT_E_OK)
        return nt_reply_err(reply, err, out.detail[0] ? out.detail : "the outbox did not answer");
    vz_json_writer_t *w = vz_json_writer_new(512);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "action", action);
    if (plan.kind == NT_PLAN_SEND) {
        vz_json_write_kv_string(w, "id", out.id);
        vz_json_write_kv_string(w, "channel", nt_channel_info(plan.channel)->name);
        vz_json_write_kv_int(w, "due_ms", plan.due_ms);
    }
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

// --------------------------------------------------------------------------
//  The daily digest

//  Yesterday's digest, once across replicas (SET NX on its "sent" mark).
int nt_route_digest_tick(zloop_t *loop, int timer_id, void *arg)
{
    nt_t *self = arg;
    char day[16], dkey[64], sent[80];
    nt_route_day(vz_clock_now_ms() - DAY_MS, day, sizeof day);
    snprintf(dkey, sizeof dkey, NT_KEY_DIGEST "%s", day);
    snprintf(sent, sizeof sent, NT_KEY_DIGEST "%s:sent", day);
    const char *range[] = {"LRANGE", dkey, "0", DIGEST_LINES};
    redisReply *r = vz_redis_command(self->redis, 4, range, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (r)
            freeReplyObject(r);
        return 0;
    }
    const char *mark[] = {"SET", sent, "1", "NX", "EX", DIGEST_KEEP_S};
    redisReply *m = vz_redis_command(self->redis, 6, mark, NULL);
    bool mine = m && m->type == REDIS_REPLY_STATUS;
    if (m)
        freeReplyObject(m);
    if (!mine) {
        freeReplyObject(r);
        return 0;
    }
    nt_buf_t items = {0};
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            nt_buf_addf(&items, "- %s\n", r->element[i]->str);
    char count[16];
    snprintf(count, sizeof count, "%zu", r->elements);
    freeReplyObject(r);
    //  The digest is an ordinary e-mail send with its own idempotency key.
    char idem[64];
    snprintf(idem, sizeof idem, "digest-%s", day);
    vz_nt_var_t data[] = {
        {.name = "date", .type = VZ_NT_VAR_STR, .s = day},
        {.name = "items", .type = VZ_NT_VAR_STR, .s = items.data ? items.data : ""},
        {.name = "count", .type = VZ_NT_VAR_STR, .s = count},
    };
    vz_nt_send_t send = {
        .channel = "email",
        .template_name = "digest",
        .to = self->config.digest_to,
        .data = data,
        .ndata = 3,
        .severity = "info",
        .idempotency_key = idem,
    };
    nt_submit_t out;
    nt_err_t err = s_submit(self, &send, NT_SERVICE, 0, NULL, &out);
    nt_buf_free(&items);
    if (err != NT_E_OK)
        vz_warn(NULL, "unable to queue the daily digest", "day", day, "code", nt_err_code(err),
                NULL);
    else
        vz_info(NULL, "daily digest queued", "day", day, "id", out.id, NULL);
    return 0;
}
