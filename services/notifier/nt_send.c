/*  nt_send - validation of a message and its entry into the outbox
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_send.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nt_buf.h"
#include "nt_mime.h"
#include "nt_outbox.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"

typedef struct {
    const char *code; //  error code on the wire
    int status;       //  HTTP status at the gateway
} s_err_row_t;

static const s_err_row_t s_errors[NT_E_COUNT] = {
    [NT_E_OK] = {"ok", 200},
    [NT_E_REQUEST] = {"invalid_request", 400},
    [NT_E_CHANNEL] = {"unknown_channel", 422},
    [NT_E_OFF] = {"channel_disabled", 422},
    [NT_E_TEMPLATE] = {"unknown_template", 422},
    [NT_E_ADDRESS] = {"invalid_address", 422},
    [NT_E_VARIABLE] = {"missing_variable", 422},
    [NT_E_INJECTION] = {"header_injection", 422},
    [NT_E_ATTACHMENT] = {"invalid_attachment", 422},
    [NT_E_TOO_LARGE] = {"attachment_too_large", 413},
    [NT_E_SEVERITY] = {"invalid_severity", 422},
    [NT_E_KEY] = {"invalid_idempotency_key", 422},
    [NT_E_DENIED] = {VZ_AUTHCTX_ERR_DENIED, 403},
    [NT_E_REDIS] = {"unavailable", 503},
};

const char *nt_err_code(nt_err_t err)
{
    return s_errors[err].code;
}

int nt_err_status(nt_err_t err)
{
    return s_errors[err].status;
}

int nt_reply_err(vz_reply_t *reply, nt_err_t err, const char *detail)
{
    return vz_authctx_reply_error(reply, s_errors[err].status, s_errors[err].code, detail);
}

//  Fail with err and a formatted detail.
#define S_FAIL(out, err, ...)                                                                      \
    do {                                                                                           \
        snprintf((out)->detail, sizeof(out)->detail, __VA_ARGS__);                                 \
        return (err);                                                                              \
    } while (0)

// --------------------------------------------------------------------------
//  Template variables from "data"

typedef struct {
    const vz_json_value_t *data; //  the data object
    char scratch[8][32];         //  numbers and booleans as text
    int next;                    //  next scratch slot
} s_vars_t;

static const char *s_var(void *arg, const char *name)
{
    s_vars_t *v = arg;
    const vz_json_value_t *value = vz_json_get(v->data, name);
    char *slot = v->scratch[v->next++ % 8];
    int64_t i;
    double d;
    bool b;
    switch (vz_json_type(value)) {
    case VZ_JSON_STRING:
        return vz_json_string(value, NULL);
    case VZ_JSON_NUMBER:
        if (vz_json_int(value, &i) == 0)
            snprintf(slot, 32, "%" PRId64, i);
        else if (vz_json_double(value, &d) == 0)
            snprintf(slot, 32, "%.15g", d);
        return slot;
    case VZ_JSON_BOOL:
        vz_json_bool(value, &b);
        return b ? "true" : "false";
    default:
        return NULL; //  absent, null, object or array: not a value to print
    }
}

static char *s_json_text(const vz_json_value_t *v)
{
    vz_json_writer_t *w = vz_json_writer_new(16 * 1024 * 1024);
    if (v)
        vz_json_write_value(w, v);
    else
        vz_json_write_null(w);
    char *text = vz_json_writer_take(w, NULL);
    vz_json_writer_destroy(&w);
    return text ? text : strdup("null");
}

// --------------------------------------------------------------------------
//  Checks

//  "to" as [{"name","address"}]: a string, an array of strings, or an
//  array of {name, address} objects.
static nt_err_t s_recipients(const vz_json_value_t *to, vz_json_writer_t *w, nt_submit_t *out)
{
    const vz_json_value_t *one = to;
    size_t count = 1;
    if (vz_json_type(to) == VZ_JSON_ARRAY) {
        count = vz_json_size(to);
        if (count == 0 || count > VZ_NT_TO_MAX)
            S_FAIL(out, NT_E_ADDRESS, "to: 1 to %d recipients", VZ_NT_TO_MAX);
    }
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < count; i++) {
        if (vz_json_type(to) == VZ_JSON_ARRAY)
            one = vz_json_at(to, i);
        const char *addr = vz_json_string(one, NULL);
        const char *name = "";
        if (vz_json_type(one) == VZ_JSON_OBJECT) {
            addr = vz_json_get_string(one, VZ_NT_F_ADDRESS, NULL);
            name = vz_json_get_string(one, VZ_NT_F_NAME, NULL);
            if (!name)
                name = "";
        }
        if (!addr)
            S_FAIL(out, NT_E_REQUEST, "to[%zu]: an address string or {name, address}", i);
        //  CR or LF anywhere is an injection attempt, whatever else is wrong.
        if (strpbrk(addr, "\r\n") || strpbrk(name, "\r\n"))
            S_FAIL(out, NT_E_ADDRESS, "to[%zu]: CR or LF in an address or name", i);
        if (!strchr(addr, '@'))
            S_FAIL(out, NT_E_ADDRESS, "to[%zu]: no '@'", i);
        if (!nt_mime_addr_valid(addr) || strlen(name) > VZ_NT_NAME_MAX)
            S_FAIL(out, NT_E_ADDRESS, "to[%zu]: not a plain address", i);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_NT_F_NAME, name);
        vz_json_write_kv_string(w, VZ_NT_F_ADDRESS, addr);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    return NT_E_OK;
}

static nt_err_t s_attachments(const nt_t *self, const vz_json_value_t *list, nt_submit_t *out)
{
    size_t count = vz_json_size(list);
    if (vz_json_type(list) != VZ_JSON_ARRAY || count > VZ_NT_ATTACH_COUNT_MAX)
        S_FAIL(out, NT_E_ATTACHMENT, "attachments: an array of at most %d", VZ_NT_ATTACH_COUNT_MAX);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        const vz_json_value_t *a = vz_json_at(list, i);
        const char *name = vz_json_get_string(a, VZ_NT_F_NAME, NULL);
        const char *type = vz_json_get_string(a, VZ_NT_F_TYPE, NULL);
        size_t b64_len = 0;
        const char *b64 = vz_json_get_string(a, VZ_NT_F_CONTENT, &b64_len);
        const char *cid = vz_json_get_string(a, VZ_NT_F_CONTENT_ID, NULL);
        if (!name || !*name || strlen(name) > VZ_NT_NAME_MAX || strpbrk(name, "\r\n\"\\/"))
            S_FAIL(out, NT_E_ATTACHMENT, "attachments[%zu].name: 1..255 bytes, no CR/LF", i);
        if (!nt_mime_type_valid(type))
            S_FAIL(out, NT_E_ATTACHMENT, "attachments[%zu].type: a media type", i);
        if (cid && *cid && !nt_mime_cid_valid(cid))
            S_FAIL(out, NT_E_ATTACHMENT, "attachments[%zu].content_id: [A-Za-z0-9._@-]", i);
        //  Cheap size check before decoding: 4 base64 characters per 3 bytes.
        if (!b64 || b64_len / 4 * 3 > (size_t)self->config.attach_max + 2)
            S_FAIL(out, b64 ? NT_E_TOO_LARGE : NT_E_ATTACHMENT,
                   "attachments[%zu].content: base64 of at most %d bytes", i,
                   self->config.attach_max);
        uint8_t *data = NULL;
        size_t len = 0;
        if (nt_mime_b64_decode(b64, b64_len, &data, &len) < 0)
            S_FAIL(out, NT_E_ATTACHMENT, "attachments[%zu].content: not base64", i);
        free(data);
        if (len > (size_t)self->config.attach_max)
            S_FAIL(out, NT_E_TOO_LARGE, "attachments[%zu]: over %d bytes", i,
                   self->config.attach_max);
        total += len;
    }
    if (total > (size_t)self->config.attach_total)
        S_FAIL(out, NT_E_TOO_LARGE, "attachments: over %d bytes in all", self->config.attach_total);
    return NT_E_OK;
}

//  The endpoint a channel needs, "" when it is off.
static const char *s_endpoint(const nt_t *self, nt_channel_t ch)
{
    switch (ch) {
    case NT_CH_SLACK:
        return self->config.slack_url;
    case NT_CH_DISCORD:
        return self->config.discord_url;
    case NT_CH_PAGERDUTY:
        return self->pd_key[0] ? self->config.pagerduty_url : "";
    case NT_CH_WEBHOOK:
        return self->config.webhook_url;
    default:
        return "e-mail";
    }
}

nt_err_t nt_submit(nt_t *self, const vz_json_value_t *root, const char *owner, int64_t due_ms,
                   const char *cond_alert, nt_submit_t *out)
{
    memset(out, 0, sizeof *out);
    //  The fields of the contract (vz_notifier_contract.h); checked here in
    //  the order that decides which error a request with several faults gets.
    vz_nt_send_view_t req;
    const char *why = NULL;
    if (vz_nt_send_view(root, &req, &why) < 0)
        S_FAIL(out, NT_E_REQUEST, "%s", why);
    const char *channel = req.channel;
    int ch = channel ? nt_channel_find(channel) : -1;
    if (ch < 0)
        S_FAIL(out, NT_E_CHANNEL, "channel: email, slack, discord, pagerduty or webhook");
    if (!*s_endpoint(self, (nt_channel_t)ch))
        S_FAIL(out, NT_E_OFF, "channel %s has no endpoint configured", channel);
    const char *tpl = req.template_name;
    if (!tpl || !nt_templates_has(self->templates, tpl))
        S_FAIL(out, NT_E_TEMPLATE, "template: not one of configs/templates");
    const vz_json_value_t *data = req.data;
    if (data && vz_json_type(data) != VZ_JSON_OBJECT)
        S_FAIL(out, NT_E_REQUEST, "data: an object of template variables");
    const char *severity = req.severity;
    if (req.has_severity && (!severity || nt_sev_find(severity) < 0))
        S_FAIL(out, NT_E_SEVERITY, "severity: critical, error, warning or info");
    const char *key = req.idempotency_key;
    if (req.has_idempotency_key && !vz_nt_key_valid(key, VZ_NT_KEY_MAX))
        S_FAIL(out, NT_E_KEY, "idempotency_key: 1..%d printable ASCII bytes", VZ_NT_KEY_MAX);
    const char *action = req.event_action;
    if (action && !vz_nt_event_action_valid(action))
        S_FAIL(out, NT_E_REQUEST, "event_action: trigger, acknowledge or resolve");
    const char *dedup = req.dedup_key;
    if (dedup && !vz_nt_key_valid(dedup, VZ_NT_DEDUP_MAX))
        S_FAIL(out, NT_E_REQUEST, "dedup_key: 1..%d printable bytes", VZ_NT_DEDUP_MAX);

    //  Recipients: required for e-mail, refused for the others (their
    //  endpoint is configured, never taken from a request).
    vz_json_writer_t *w = vz_json_writer_new(64 * 1024);
    const vz_json_value_t *to = req.to;
    nt_err_t err = NT_E_OK;
    if (nt_channel_info((nt_channel_t)ch)->needs_to)
        err = to ? s_recipients(to, w, out) : NT_E_ADDRESS;
    else
        vz_json_write_array_begin(w), vz_json_write_array_end(w);
    if (err == NT_E_ADDRESS && !to)
        snprintf(out->detail, sizeof out->detail, "to: required for %s", channel);
    char *to_text = err == NT_E_OK ? vz_json_writer_take(w, NULL) : NULL;
    vz_json_writer_destroy(&w);
    if (err != NT_E_OK)
        return err;

    const vz_json_value_t *attach = req.attachments;
    if (attach && !nt_channel_info((nt_channel_t)ch)->attachments) {
        free(to_text);
        S_FAIL(out, NT_E_ATTACHMENT, "attachments: only e-mail carries them");
    }
    if (attach && (err = s_attachments(self, attach, out)) != NT_E_OK) {
        free(to_text);
        return err;
    }

    //  Render now: a missing variable is refused here, not blank in a mail.
    s_vars_t vars = {.data = data};
    nt_rendered_t r;
    char missing[NT_TEMPLATE_NAME_MAX] = "";
    int rc = nt_template_render(self->templates, tpl, s_var, &vars, &r, missing, sizeof missing);
    if (rc < 0) {
        free(to_text);
        if (rc == -ESRCH)
            S_FAIL(out, NT_E_VARIABLE, "data.%s: required by template %s", missing, tpl);
        if (rc == -EILSEQ)
            S_FAIL(out, NT_E_INJECTION, "data.%s: CR or LF would reach the subject", missing);
        S_FAIL(out, NT_E_TEMPLATE, "template %s cannot be rendered", tpl);
    }

    char id[NT_ID_MAX] = "n_";
    vz_random_hex(id + 2, 24);
    char created[24];
    snprintf(created, sizeof created, "%lld", (long long)vz_clock_now_ms());
    char *data_text = s_json_text(data);
    char *attach_text = attach ? s_json_text(attach) : strdup("[]");
    nt_field_t fields[] = {
        {"id", id},
        {"channel", channel},
        {"to", to_text},
        {"template", tpl},
        {"subject", r.subject},
        {"text", r.text ? r.text : ""},
        {"html", r.html ? r.html : ""},
        {"severity", severity ? severity : ""},
        {"owner", owner},
        {"status", due_ms ? NT_ST_SCHEDULED : NT_ST_QUEUED},
        {"attempts", "0"},
        {"last_error", ""},
        {"created_ms", created},
        {"updated_ms", created},
        {"data", data_text},
        {"attachments", attach_text},
        {"event_action", action ? action : "trigger"},
        {"dedup_key", dedup ? dedup : ""},
        {"source", req.source ? req.source : ""},
        {"cond_alert", cond_alert ? cond_alert : ""},
    };
    rc = nt_outbox_enqueue(self, id, key, due_ms, fields, sizeof fields / sizeof fields[0], out->id,
                           sizeof out->id);
    free(to_text);
    free(data_text);
    free(attach_text);
    nt_rendered_free(&r);
    if (rc < 0)
        S_FAIL(out, NT_E_REDIS, "the outbox did not answer");
    out->duplicate = rc == 0;
    if (!out->duplicate && self->m_queued[ch])
        vz_series_inc(self->m_queued[ch]);
    return NT_E_OK;
}

// --------------------------------------------------------------------------
//  notifier.send

int nt_h_send(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    nt_t *self = app;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    //  Through the gateway (POST /v1/notifications) only an admin may send;
    //  services reach send over the broker, under its call policy.
    if (who.trusted && !vz_authctx_scope_has(who.scope, "admin"))
        return nt_reply_err(reply, NT_E_DENIED, "scope admin required");
    const char *owner = who.trusted && who.sub[0] ? who.sub : req->caller;
    //  Attachments travel as base64 strings inside the document: the
    //  default 64 KiB string limit would refuse them before their own check.
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = NT_SEND_BODY_MAX;
    limits.max_string = NT_SEND_BODY_MAX;
    vz_json_error_t jerr;
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, &limits, &jerr);
    if (!doc)
        return nt_reply_err(reply, NT_E_REQUEST, jerr.reason);
    nt_submit_t out;
    nt_err_t err = nt_submit(self, vz_json_root(doc), owner, 0, NULL, &out);
    vz_json_destroy(&doc);
    if (err != NT_E_OK) {
        vz_info(req->id, "send refused", "code", nt_err_code(err), "detail", out.detail, NULL);
        return nt_reply_err(reply, err, out.detail);
    }
    vz_nt_send_reply_t answer = {.duplicate = out.duplicate};
    vz_strlcpy(answer.id, out.id, sizeof answer.id);
    vz_strlcpy(answer.status, NT_ST_QUEUED, sizeof answer.status);
    vz_json_writer_t *w = vz_json_writer_new(512);
    vz_nt_send_reply_write(w, &answer);
    if (out.duplicate)
        return vz_authctx_reply_json(reply, &w);
    char location[96];
    snprintf(location, sizeof location, "/v1/notifications/%s", out.id);
    return vz_authctx_reply_created(reply, &w, location);
}
