/*  tl_alert - alert state per SLO and severity, and the notifier request
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "tl_alert.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "vz_common.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

static const char *const s_states[] = {"inactive", "pending", "firing", "resolved"};
static const char *const s_severities[TL_SEVERITIES] = {"page", "ticket"};

const char *tl_alert_state_name(tl_alert_state_t state)
{
    assert(state <= TL_ALERT_RESOLVED);
    return s_states[state];
}

const char *tl_severity_name(tl_severity_t severity)
{
    assert(severity < TL_SEVERITIES);
    return s_severities[severity];
}

tl_alert_t *tl_alerts_get(tl_alerts_t *self, const char *slo, tl_severity_t severity)
{
    assert(self && slo && severity < TL_SEVERITIES);
    for (size_t i = 0; i < self->count; i++)
        if (self->alert[i].severity == severity && strcmp(self->alert[i].slo, slo) == 0)
            return &self->alert[i];
    if (self->count == TL_ALERT_MAX)
        return NULL;
    tl_alert_t *alert = &self->alert[self->count++];
    memset(alert, 0, sizeof *alert);
    vz_strlcpy(alert->slo, slo, sizeof alert->slo);
    alert->severity = severity;
    snprintf(alert->key, sizeof alert->key, "slo/%s/%s", slo, s_severities[severity]);
    return alert;
}

static void s_enter(tl_alert_t *alert, tl_alert_state_t state, int64_t now_s)
{
    alert->state = state;
    alert->since_s = now_s;
}

tl_notify_t tl_alert_step(tl_alert_t *alert, bool condition, double burn, int64_t now_s,
                          int64_t pending_s)
{
    assert(alert);
    switch (alert->state) {
    case TL_ALERT_INACTIVE:
    case TL_ALERT_RESOLVED:
        if (!condition)
            return TL_NOTIFY_NONE;
        s_enter(alert, TL_ALERT_PENDING, now_s);
        alert->burn = burn;
        //  No pending period: fire on the first evaluation that sees it.
        if (pending_s > 0)
            return TL_NOTIFY_NONE;
        // fall through
    case TL_ALERT_PENDING:
        if (!condition) {
            s_enter(alert, TL_ALERT_INACTIVE, now_s);
            return TL_NOTIFY_NONE;
        }
        if (burn > alert->burn)
            alert->burn = burn;
        if (now_s - alert->since_s < pending_s)
            return TL_NOTIFY_NONE;
        s_enter(alert, TL_ALERT_FIRING, now_s);
        alert->fired_s = now_s;
        return TL_NOTIFY_FIRE;
    case TL_ALERT_FIRING:
        if (condition) {
            if (burn > alert->burn)
                alert->burn = burn;
            return TL_NOTIFY_NONE;
        }
        s_enter(alert, TL_ALERT_RESOLVED, now_s);
        alert->resolved_s = now_s;
        return TL_NOTIFY_RESOLVE;
    }
    return TL_NOTIFY_NONE;
}

char *tl_alert_notify_body(const tl_alert_t *alert, tl_notify_t what, const tl_alerting_t *alerting,
                           size_t *len_p)
{
    assert(alert && alerting && what != TL_NOTIFY_NONE);
    bool page = alert->severity == TL_SEV_PAGE;
    const char *action = what == TL_NOTIFY_FIRE ? "trigger" : "resolve";
    char idem[TL_ALERT_KEY_MAX + 48], summary[256];
    snprintf(idem, sizeof idem, "%s/%lld/%s", alert->key, (long long)alert->fired_s, action);
    if (strncmp(alert->key, "synthetic/", 10) == 0)
        snprintf(summary, sizeof summary, "Synthetic check %s %s through the gateway", alert->slo,
                 what == TL_NOTIFY_RESOLVE ? "passes again" : "failed");
    else
        snprintf(summary, sizeof summary, "SLO %s: error budget burning at %.1fx (%s)%s",
                 alert->slo, alert->burn, s_severities[alert->severity],
                 what == TL_NOTIFY_RESOLVE ? ", resolved" : "");
    vz_nt_var_t data[] = {
        {.name = "dedup_key", .type = VZ_NT_VAR_STR, .s = alert->key},
        {.name = "event_action", .type = VZ_NT_VAR_STR, .s = action},
        {.name = "slo", .type = VZ_NT_VAR_STR, .s = alert->slo},
        {.name = "severity", .type = VZ_NT_VAR_STR, .s = s_severities[alert->severity]},
        {.name = "burn_rate", .type = VZ_NT_VAR_DOUBLE, .d = alert->burn},
        {.name = "summary", .type = VZ_NT_VAR_STR, .s = summary},
        {.name = "fired_at", .type = VZ_NT_VAR_INT, .i = alert->fired_s},
        {.name = "resolved_at",
         .type = VZ_NT_VAR_INT,
         .i = what == TL_NOTIFY_RESOLVE ? alert->resolved_s : 0},
    };
    const char *channel = page ? alerting->page_channel : alerting->ticket_channel;
    //  PagerDuty closes an incident by a resolve with the trigger's dedup
    //  key: both travel at the top level, where the notifier reads them.
    bool pagerduty = strcmp(channel, "pagerduty") == 0;
    vz_nt_send_t send = {
        .channel = channel,
        .event_action = pagerduty ? action : NULL,
        .dedup_key = pagerduty ? alert->key : NULL,
        .to = page ? alerting->page_to : alerting->ticket_to,
        .template_name = "slo_alert",
        .severity = page ? "critical" : "warning",
        .idempotency_key = idem,
        .data = data,
        .ndata = sizeof data / sizeof data[0],
    };
    char *body = vz_nt_send_encode(&send, len_p);
    return body;
}

char *tl_alerts_json(const tl_alerts_t *self, size_t *len_p)
{
    assert(self);
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->count; i++) {
        const tl_alert_t *a = &self->alert[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "key", a->key);
        vz_json_write_kv_string(w, "slo", a->slo);
        vz_json_write_kv_string(w, "severity", s_severities[a->severity]);
        vz_json_write_kv_string(w, "state", s_states[a->state]);
        vz_json_write_kv_int(w, "since", a->since_s);
        vz_json_write_kv_int(w, "fired_at", a->fired_s);
        vz_json_write_kv_int(w, "resolved_at", a->resolved_s);
        vz_json_write_key(w, "burn_rate");
        vz_json_write_double(w, a->burn);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    char *text = vz_json_writer_take(w, len_p);
    vz_json_writer_destroy(&w);
    return text;
}

static int s_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

int tl_alerts_load(tl_alerts_t *self, const char *json, size_t len)
{
    assert(self && json);
    self->count = 0;
    vz_json_t *doc = vz_json_parse(json, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    int rc = root && vz_json_type(root) == VZ_JSON_ARRAY ? 0 : -EINVAL;
    for (size_t i = 0; rc == 0 && i < vz_json_size(root); i++) {
        const vz_json_value_t *item = vz_json_at(root, i);
        const char *slo = vz_json_get_string(item, "slo", NULL);
        int sev = s_index(s_severities, TL_SEVERITIES, vz_json_get_string(item, "severity", NULL));
        int state = s_index(s_states, 4, vz_json_get_string(item, "state", NULL));
        tl_alert_t *a = slo && sev >= 0 && state >= 0 && strlen(slo) < TL_SLO_NAME_MAX
                            ? tl_alerts_get(self, slo, (tl_severity_t)sev)
                            : NULL;
        if (!a || vz_json_int(vz_json_get(item, "since"), &a->since_s) < 0 ||
            vz_json_int(vz_json_get(item, "fired_at"), &a->fired_s) < 0 ||
            vz_json_int(vz_json_get(item, "resolved_at"), &a->resolved_s) < 0 ||
            vz_json_double(vz_json_get(item, "burn_rate"), &a->burn) < 0) {
            rc = -EINVAL;
            break;
        }
        a->state = (tl_alert_state_t)state;
    }
    vz_json_destroy(&doc);
    if (rc < 0)
        self->count = 0;
    return rc;
}
