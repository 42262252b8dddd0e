/*  rp_api - the reporter's methods: run a report, list the archive, read one report
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Who may call: through the gateway (whose auth context the broker
 *  vouches for) a caller granted scope admin; in the mesh, an identity of
 *  VZ_REPORTER_READERS. Arguments come from the route's path parameters
 *  (ctx path.week) or, from a service, from a JSON body.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"
#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_json.h"
#include "vz_proto.h"

#define LIST_MAX 104 //  two years of weeks

static bool s_allowed(const rp_t *self, const vz_envelope_t *req, vz_reply_t *reply)
{
    if (!vz_authctx_trusted(req->caller)) {
        if (vz_authctx_scope_has(self->config.readers, req->caller))
            return true;
        vz_authctx_reply_error(reply, 0, VZ_ERR_FORBIDDEN, "not a reporter reader");
        return false;
    }
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (vz_authctx_scope_has(who.scope, "admin"))
        return true;
    if (strcmp(who.auth, VZ_AUTHCTX_BY_NONE) == 0)
        vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, "credentials required");
    else
        vz_authctx_reply_error(reply, 403, VZ_AUTHCTX_ERR_DENIED, "missing scope: admin");
    return false;
}

//  The request body as a JSON object (an empty body is {}); NULL after
//  answering invalid_request.
static vz_json_t *s_body(const vz_envelope_t *req, vz_reply_t *reply)
{
    const char *text = req->body_len ? (const char *)req->body : "{}";
    size_t len = req->body_len ? req->body_len : 2;
    vz_json_error_t err = {0};
    vz_json_t *doc = vz_json_parse(text, len, NULL, &err);
    if (!doc || vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT) {
        vz_json_destroy(&doc);
        vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "body must be a JSON object");
        return NULL;
    }
    return doc;
}

int rp_h_run(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    rp_t *self = app;
    if (!s_allowed(self, req, reply))
        return 0;
    vz_json_t *doc = s_body(req, reply);
    if (!doc)
        return 0;
    const vz_json_value_t *root = vz_json_root(doc);
    const char *week = vz_json_get_string(root, "week", NULL);
    bool dry_run = false, force = false;
    const vz_json_value_t *v;
    int bad = 0;
    if ((v = vz_json_get(root, "dry_run")) && vz_json_bool(v, &dry_run) < 0)
        bad = 1;
    if ((v = vz_json_get(root, "force")) && vz_json_bool(v, &force) < 0)
        bad = 1;
    if (vz_json_get(root, "week") && !week)
        bad = 1;
    int64_t start = rp_week_reported(vz_clock_now_ms() / 1000);
    if (!bad && week && rp_week_parse(week, &start) < 0)
        bad = 1;
    vz_json_destroy(&doc);
    if (bad)
        return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                      "week must be \"YYYY-Www\", dry_run and force booleans");
    if (self->run)
        return vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                                      "a report run is in progress on this replica");
    char id[RP_WEEK_ID_MAX];
    rp_week_id(start, id);
    uint64_t token = 0;
    if (!dry_run) {
        int sent = rp_store_sent(self->store, id);
        if (sent < 0)
            return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
        if (sent && !force)
            return vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                                          "the week's report was sent already (force: true "
                                          "sends it again)");
        int rc = rp_store_lease_take(self->store, self->owner, self->config.lease_ms, &token);
        if (rc < 0)
            return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
        if (rc == 0)
            return vz_authctx_reply_error(reply, 409, VZ_AUTHCTX_ERR_CONFLICT,
                                          "another replica is running a report");
    }
    return rp_run_start(self, start, RP_TRIGGER_MANUAL, dry_run, token,
                        vz_reply_defer(reply, NULL));
}

int rp_h_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    rp_t *self = app;
    if (!s_allowed(self, req, reply))
        return 0;
    vz_json_writer_t *w = vz_json_writer_new(1024 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "reports");
    if (rp_store_list(self->store, LIST_MAX, w) < 0) {
        vz_json_writer_destroy(&w);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

int rp_h_get(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    rp_t *self = app;
    if (!s_allowed(self, req, reply))
        return 0;
    //  "2026-W49", "2026-W49.json" or "2026-W49.pdf"; from a service {week}.
    char week[32] = "";
    const char *param = vz_authctx_param(req, "week");
    if (param)
        snprintf(week, sizeof week, "%s", param);
    else {
        vz_json_t *doc = s_body(req, reply);
        if (!doc)
            return 0;
        const char *w = vz_json_get_string(vz_json_root(doc), "week", NULL);
        snprintf(week, sizeof week, "%s", w ? w : "");
        vz_json_destroy(&doc);
    }
    const char *field = "html", *type = "text/html; charset=utf-8";
    char *dot = strchr(week, '.');
    if (dot && strcmp(dot, ".json") == 0)
        field = "json", type = "application/json";
    else if (dot && strcmp(dot, ".pdf") == 0)
        field = "pdf", type = "application/pdf";
    else if (dot && strcmp(dot, ".txt") == 0)
        field = "text", type = "text/plain; charset=utf-8";
    else if (dot)
        return vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND,
                                      "formats: .json, .pdf, .txt or none (HTML)");
    if (dot)
        *dot = '\0';
    int64_t start = 0;
    if (rp_week_parse(week, &start) < 0)
        return vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND,
                                      "a week is named YYYY-Www");
    size_t len = 0;
    int rc = 0;
    char *data = rp_store_part(self->store, week, field, &len, &rc);
    if (!data)
        return rc == -ENOENT
                   ? vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND,
                                            "no report for that week")
                   : vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    vz_reply_body(reply, data, len);
    vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_CONTENT_TYPE, type);
    free(data);
    return 0;
}
