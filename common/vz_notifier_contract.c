/*  vz_notifier_contract - the body of notifier.send, its reply, and the names of the methods
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_notifier_contract.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static void s_kv(vz_json_writer_t *w, const char *key, const char *value)
{
    if (value)
        vz_json_write_kv_string(w, key, value);
}

static void s_var(vz_json_writer_t *w, const vz_nt_var_t *var)
{
    vz_json_write_key(w, var->name);
    switch (var->type) {
    case VZ_NT_VAR_STR:
        vz_json_write_string(w, var->s ? var->s : "");
        break;
    case VZ_NT_VAR_INT:
        vz_json_write_int(w, var->i);
        break;
    case VZ_NT_VAR_DOUBLE:
        vz_json_write_double(w, var->d);
        break;
    case VZ_NT_VAR_BOOL:
        vz_json_write_bool(w, var->b);
        break;
    }
}

//  An attachment's content: its base64 as given, or its raw bytes
//  encoded (standard alphabet, padded, one line). -1 when too large.
static int s_content(vz_json_writer_t *w, const vz_nt_attachment_t *a)
{
    if (a->content || !a->bytes) {
        s_kv(w, VZ_NT_F_CONTENT, a->content);
        return 0;
    }
    if (a->len > VZ_NT_SEND_BODY_MAX / 4 * 3)
        return -1;
    char *b64 = malloc(a->len / 3 * 4 + 8);
    if (!b64)
        return -1;
    int n = EVP_EncodeBlock((unsigned char *)b64, a->bytes, (int)a->len);
    vz_json_write_key(w, VZ_NT_F_CONTENT);
    vz_json_write_string_len(w, b64, (size_t)n);
    free(b64);
    return 0;
}

char *vz_nt_send_encode(const vz_nt_send_t *send, size_t *len_p)
{
    assert(send && (send->data || send->ndata == 0) &&
           (send->attachments || send->nattachments == 0) &&
           (send->recipients || send->nrecipients == 0));
    vz_json_writer_t *w = vz_json_writer_new(VZ_NT_SEND_BODY_MAX);
    vz_json_write_object_begin(w);
    s_kv(w, VZ_NT_F_CHANNEL, send->channel);
    s_kv(w, VZ_NT_F_TO, send->to);
    //  Named recipients take the place of a single "to" string.
    if (!send->to && send->nrecipients) {
        vz_json_write_key(w, VZ_NT_F_TO);
        vz_json_write_array_begin(w);
        for (size_t i = 0; i < send->nrecipients; i++) {
            vz_json_write_object_begin(w);
            s_kv(w, VZ_NT_F_NAME, send->recipients[i].name ? send->recipients[i].name : "");
            s_kv(w, VZ_NT_F_ADDRESS, send->recipients[i].address);
            vz_json_write_object_end(w);
        }
        vz_json_write_array_end(w);
    }
    s_kv(w, VZ_NT_F_TEMPLATE, send->template_name);
    s_kv(w, VZ_NT_F_SEVERITY, send->severity);
    s_kv(w, VZ_NT_F_KEY, send->idempotency_key);
    s_kv(w, VZ_NT_F_EVENT_ACTION, send->event_action);
    s_kv(w, VZ_NT_F_DEDUP_KEY, send->dedup_key);
    s_kv(w, VZ_NT_F_SOURCE, send->source);
    //  data is written when a caller gives any variable (templates may need none).
    if (send->ndata) {
        vz_json_write_key(w, VZ_NT_F_DATA);
        vz_json_write_object_begin(w);
        for (size_t i = 0; i < send->ndata; i++)
            s_var(w, &send->data[i]);
        vz_json_write_object_end(w);
    }
    bool fits = true;
    if (send->nattachments) {
        vz_json_write_key(w, VZ_NT_F_ATTACHMENTS);
        vz_json_write_array_begin(w);
        for (size_t i = 0; i < send->nattachments; i++) {
            const vz_nt_attachment_t *a = &send->attachments[i];
            vz_json_write_object_begin(w);
            s_kv(w, VZ_NT_F_NAME, a->name);
            s_kv(w, VZ_NT_F_TYPE, a->type);
            if (s_content(w, a) < 0)
                fits = false;
            s_kv(w, VZ_NT_F_CONTENT_ID, a->content_id);
            vz_json_write_object_end(w);
        }
        vz_json_write_array_end(w);
    }
    vz_json_write_object_end(w);
    //  NULL when over VZ_NT_SEND_BODY_MAX (the writer's bound).
    char *body = fits ? vz_json_writer_take(w, len_p) : NULL;
    vz_json_writer_destroy(&w);
    return body;
}

int vz_nt_send_view(const vz_json_value_t *root, vz_nt_send_view_t *view, const char **reason)
{
    assert(view);
    memset(view, 0, sizeof *view);
    if (vz_json_type(root) != VZ_JSON_OBJECT) {
        if (reason)
            *reason = "body must be a JSON object";
        return VZ_EMALFORMED;
    }
    view->channel = vz_json_get_string(root, VZ_NT_F_CHANNEL, NULL);
    view->template_name = vz_json_get_string(root, VZ_NT_F_TEMPLATE, NULL);
    view->severity = vz_json_get_string(root, VZ_NT_F_SEVERITY, NULL);
    view->has_severity = vz_json_get(root, VZ_NT_F_SEVERITY) != NULL;
    view->idempotency_key = vz_json_get_string(root, VZ_NT_F_KEY, NULL);
    view->has_idempotency_key = vz_json_get(root, VZ_NT_F_KEY) != NULL;
    view->event_action = vz_json_get_string(root, VZ_NT_F_EVENT_ACTION, NULL);
    view->dedup_key = vz_json_get_string(root, VZ_NT_F_DEDUP_KEY, NULL);
    view->source = vz_json_get_string(root, VZ_NT_F_SOURCE, NULL);
    view->to = vz_json_get(root, VZ_NT_F_TO);
    view->data = vz_json_get(root, VZ_NT_F_DATA);
    view->attachments = vz_json_get(root, VZ_NT_F_ATTACHMENTS);
    return 0;
}

bool vz_nt_key_valid(const char *key, size_t max)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
            return false;
    return true;
}

bool vz_nt_event_action_valid(const char *action)
{
    return action && (strcmp(action, "trigger") == 0 || strcmp(action, "acknowledge") == 0 ||
                      strcmp(action, "resolve") == 0);
}

bool vz_nt_id_valid(const char *id)
{
    if (!id || strncmp(id, "n_", 2) != 0 || strlen(id) != VZ_NT_ID_MAX - 1)
        return false;
    for (const char *p = id + 2; *p; p++)
        if (!strchr("0123456789abcdef", *p))
            return false;
    return true;
}

void vz_nt_send_reply_write(vz_json_writer_t *w, const vz_nt_send_reply_t *reply)
{
    assert(w && reply);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_NT_F_ID, reply->id);
    vz_json_write_kv_string(w, VZ_NT_F_STATUS, reply->status);
    vz_json_write_kv_bool(w, VZ_NT_F_DUPLICATE, reply->duplicate);
    vz_json_write_object_end(w);
}

int vz_nt_send_reply_decode(const void *body, size_t len, vz_nt_send_reply_t *reply,
                            const char **reason)
{
    assert(reply);
    memset(reply, 0, sizeof *reply);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    const char *id = vz_json_get_string(root, VZ_NT_F_ID, NULL);
    const char *status = vz_json_get_string(root, VZ_NT_F_STATUS, NULL);
    const char *why = NULL;
    if (!doc || vz_json_type(root) != VZ_JSON_OBJECT)
        why = "not a JSON object";
    else if (!vz_nt_id_valid(id))
        why = "id: expected n_ and 24 hex digits";
    else if (!status || !*status || strlen(status) >= sizeof reply->status)
        why = "status: expected a short string";
    else if (vz_json_bool(vz_json_get(root, VZ_NT_F_DUPLICATE), &reply->duplicate) < 0)
        why = "duplicate: expected a boolean";
    if (!why) {
        vz_strlcpy(reply->id, id, sizeof reply->id);
        vz_strlcpy(reply->status, status, sizeof reply->status);
    }
    vz_json_destroy(&doc);
    if (why) {
        memset(reply, 0, sizeof *reply);
        if (reason)
            *reason = why;
        return VZ_EMALFORMED;
    }
    return 0;
}
