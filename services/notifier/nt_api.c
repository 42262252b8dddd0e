/*  nt_api - status of a notification and the dead letters (the gateway's admin routes)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  get:        GET /v1/notifications/{id} (owner or admin), or a service
 *              asking about a message it sent (body {"id": ...}).
 *  dead_list:  GET /v1/notifications/dead (admin): the newest 100.
 *  dead_retry: POST /v1/notifications/dead/{id}/retry (admin): requeue with
 *              its attempts reset.
 *  No field that holds an address or a rendered text is returned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nt.h"
#include "nt_outbox.h"
#include "nt_send.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_log.h"
#include "vz_notifier_contract.h"

#define DEAD_LIST_MAX "100"

//  The id from the route parameter or, for a service, from {"id"}. "" when none.
static void s_id(const vz_envelope_t *req, char *id, size_t n)
{
    id[0] = '\0';
    const char *param = vz_authctx_param(req, "id");
    if (param) {
        vz_strlcpy(id, param, n);
        return;
    }
    vz_json_t *doc = vz_json_parse(req->body, req->body_len, NULL, NULL);
    const char *v = doc ? vz_json_get_string(vz_json_root(doc), VZ_NT_F_ID, NULL) : NULL;
    if (v)
        vz_strlcpy(id, v, n);
    vz_json_destroy(&doc);
}

//  Admin through the gateway; services (untrusted for the auth context) never.
static bool s_admin(const vz_envelope_t *req)
{
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    return who.trusted && vz_authctx_scope_has(who.scope, "admin");
}

int nt_h_get(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    nt_t *self = app;
    char id[NT_ID_MAX + 8];
    s_id(req, id, sizeof id);
    if (!vz_nt_id_valid(id))
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "no such notification");
    static const char *const fields[] = {"status",     "channel",    "attempts",     "last_error",
                                         "created_ms", "updated_ms", "delivered_ms", "next_ms",
                                         "template",   "owner",      "severity"};
    enum { N = sizeof fields / sizeof fields[0] };
    char key[64];
    snprintf(key, sizeof key, NT_KEY_MSG "%s", id);
    const char *argv[2 + N] = {"HMGET", key};
    for (size_t i = 0; i < N; i++)
        argv[2 + i] = fields[i];
    redisReply *r = vz_redis_command(self->redis, 2 + N, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != N) {
        if (r)
            freeReplyObject(r);
        return nt_reply_err(reply, NT_E_REDIS, "the outbox did not answer");
    }
    const char *owner = r->element[9]->type == REDIS_REPLY_STRING ? r->element[9]->str : NULL;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    bool allowed =
        owner &&
        (who.trusted ? (strcmp(who.sub, owner) == 0 || vz_authctx_scope_has(who.scope, "admin"))
                     : strcmp(req->caller, owner) == 0);
    if (!r->element[0] || r->element[0]->type != REDIS_REPLY_STRING || !allowed) {
        freeReplyObject(r);
        //  Someone else's message is "not found" too: ids are not disclosed.
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "no such notification");
    }
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", id);
    for (size_t i = 0; i < N; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || i == 9)
            continue;
        //  Counters and times as numbers, the rest as strings.
        if (strcmp(fields[i], "attempts") == 0 || strstr(fields[i], "_ms"))
            vz_json_write_kv_int(w, fields[i], strtoll(e->str, NULL, 10));
        else
            vz_json_write_kv_string(w, fields[i], e->str);
    }
    vz_json_write_object_end(w);
    freeReplyObject(r);
    return vz_authctx_reply_json(reply, &w);
}

int nt_h_dead_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    nt_t *self = app;
    if (!s_admin(req))
        return nt_reply_err(reply, NT_E_DENIED, "scope admin required");
    const char *argv[] = {"XREVRANGE", NT_KEY_DEAD, "+", "-", "COUNT", DEAD_LIST_MAX};
    redisReply *r = vz_redis_command(self->redis, 6, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return nt_reply_err(reply, NT_E_REDIS, "the outbox did not answer");
    }
    vz_json_writer_t *w = vz_json_writer_new(256 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "dead");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *kv = e->element[1];
        vz_json_write_object_begin(w);
        for (size_t j = 0; j + 1 < kv->elements; j += 2) {
            if (kv->element[j]->type != REDIS_REPLY_STRING ||
                kv->element[j + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(kv->element[j]->str, "at_ms") == 0)
                vz_json_write_kv_int(w, "at_ms", strtoll(kv->element[j + 1]->str, NULL, 10));
            else
                vz_json_write_kv_string(w, kv->element[j]->str, kv->element[j + 1]->str);
        }
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    freeReplyObject(r);
    return vz_authctx_reply_json(reply, &w);
}

int nt_h_dead_retry(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    nt_t *self = app;
    if (!s_admin(req))
        return nt_reply_err(reply, NT_E_DENIED, "scope admin required");
    char id[NT_ID_MAX + 8];
    s_id(req, id, sizeof id);
    int rc = vz_nt_id_valid(id) ? nt_outbox_requeue(self, id, vz_clock_now_ms()) : 0;
    if (rc < 0)
        return nt_reply_err(reply, NT_E_REDIS, "the outbox did not answer");
    if (rc == 0)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "no such dead letter");
    vz_info(req->id, "dead letter requeued", "id", id, NULL);
    vz_json_writer_t *w = vz_json_writer_new(256);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", id);
    vz_json_write_kv_string(w, "status", NT_ST_QUEUED);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}
