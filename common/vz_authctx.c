/*  vz_authctx - the auth context: who may set it, its keys, scopes, worker replies
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_authctx.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_proto.h"

//  The identities whose ctx entries count. The broker's call policy
//  (configs/policy.cfg) decides who may call a service at all; this table
//  decides whose word about the HTTP caller a service believes. A new
//  identity that builds envelopes for HTTP requests is one more line here.
static const char *const s_trusted[] = {
    "gateway", //  services/gateway: verified the credential itself
};

//  Contract C: what the gateway answers for each error code a worker uses.
static const struct {
    const char *code; //  error_code of the error envelope
    int status;       //  HTTP status
} s_statuses[] = {
    {VZ_ERR_INVALID, 400},          {VZ_AUTHCTX_ERR_UNAUTHORIZED, 401},
    {VZ_AUTHCTX_ERR_DENIED, 403},   {VZ_AUTHCTX_ERR_NOT_FOUND, 404},
    {VZ_AUTHCTX_ERR_CONFLICT, 409}, {VZ_AUTHCTX_ERR_VALIDATION, 422},
    {VZ_AUTHCTX_ERR_TOO_MANY, 429}, {VZ_ERR_UNAVAILABLE, 503},
};

// --------------------------------------------------------------------------
//  Trust and reading

bool vz_authctx_trusted(const char *caller)
{
    if (!caller || !*caller)
        return false;
    for (size_t i = 0; i < sizeof s_trusted / sizeof s_trusted[0]; i++)
        if (strcmp(caller, s_trusted[i]) == 0)
            return true;
    return false;
}

const char *vz_authctx_get(const vz_envelope_t *req, const char *key)
{
    assert(req && key);
    return vz_authctx_trusted(req->caller) ? vz_envelope_ctx_get(req, key) : NULL;
}

//  prefix + name into key (VZ_CTX_KEY_MAX), lowercased when asked. False
//  when it does not fit or name is empty.
static bool s_key(char key[VZ_CTX_KEY_MAX], const char *prefix, const char *name, bool lower)
{
    size_t plen = strlen(prefix), nlen = strlen(name);
    if (nlen == 0 || plen + nlen >= VZ_CTX_KEY_MAX)
        return false;
    memcpy(key, prefix, plen);
    for (size_t i = 0; i <= nlen; i++)
        key[plen + i] = lower ? (char)tolower((unsigned char)name[i]) : name[i];
    return true;
}

const char *vz_authctx_param(const vz_envelope_t *req, const char *name)
{
    assert(name);
    char key[VZ_CTX_KEY_MAX];
    return s_key(key, VZ_AUTHCTX_PATH_PREFIX, name, false) ? vz_authctx_get(req, key) : NULL;
}

const char *vz_authctx_header(const vz_envelope_t *req, const char *name)
{
    assert(name);
    char key[VZ_CTX_KEY_MAX];
    return s_key(key, VZ_AUTHCTX_HEADER_PREFIX, name, true) ? vz_authctx_get(req, key) : NULL;
}

const char *vz_authctx_query(const vz_envelope_t *req, const char *name)
{
    assert(name);
    char key[VZ_CTX_KEY_MAX];
    return s_key(key, VZ_AUTHCTX_QUERY_PREFIX, name, false) ? vz_authctx_get(req, key) : NULL;
}

void vz_authctx_read(const vz_envelope_t *req, vz_authctx_t *ctx)
{
    assert(req && ctx);
    ctx->trusted = vz_authctx_trusted(req->caller);
    const char *auth = vz_authctx_get(req, VZ_AUTHCTX_AUTH);
    const char *sub = vz_authctx_get(req, VZ_AUTHCTX_SUB);
    const char *scope = vz_authctx_get(req, VZ_AUTHCTX_SCOPE);
    const char *tier = vz_authctx_get(req, VZ_AUTHCTX_TIER);
    const char *kid = vz_authctx_get(req, VZ_AUTHCTX_KID);
    const char *ip = vz_authctx_get(req, VZ_AUTHCTX_CLIENT_IP);
    ctx->auth = auth && *auth ? auth : VZ_AUTHCTX_BY_NONE;
    ctx->sub = sub ? sub : "";
    ctx->scope = scope ? scope : "";
    ctx->tier = tier ? tier : "";
    ctx->kid = kid ? kid : "";
    ctx->client_ip = ip ? ip : "";
}

// --------------------------------------------------------------------------
//  Writing

int vz_authctx_write(vz_ctx_entry_t *ctx, size_t *count, const vz_authctx_t *who)
{
    assert(who);
    const char *const pairs[][2] = {
        {VZ_AUTHCTX_AUTH, who->auth},   {VZ_AUTHCTX_SUB, who->sub},
        {VZ_AUTHCTX_SCOPE, who->scope}, {VZ_AUTHCTX_TIER, who->tier},
        {VZ_AUTHCTX_KID, who->kid},     {VZ_AUTHCTX_CLIENT_IP, who->client_ip},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int rc = pairs[i][1] ? vz_envelope_ctx_put(ctx, count, pairs[i][0], pairs[i][1]) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

//  prefix + name = value; the name lowercased when asked.
static int s_set_named(vz_ctx_entry_t *ctx, size_t *count, const char *prefix, const char *name,
                       bool lower, const char *value)
{
    assert(name);
    char key[VZ_CTX_KEY_MAX];
    if (!*name)
        return -EINVAL;
    if (!s_key(key, prefix, name, lower))
        return -ENAMETOOLONG;
    return vz_envelope_ctx_put(ctx, count, key, value);
}

int vz_authctx_set_param(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value)
{
    return s_set_named(ctx, count, VZ_AUTHCTX_PATH_PREFIX, name, false, value);
}

int vz_authctx_set_header(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value)
{
    return s_set_named(ctx, count, VZ_AUTHCTX_HEADER_PREFIX, name, true, value);
}

int vz_authctx_set_query(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value)
{
    return s_set_named(ctx, count, VZ_AUTHCTX_QUERY_PREFIX, name, false, value);
}

// --------------------------------------------------------------------------
//  Scope lists

const char *vz_authctx_scope_next(const char **cursor, size_t *len)
{
    assert(cursor && *cursor && len);
    const char *p = *cursor;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, " ");
    *cursor = p + n;
    *len = n;
    return n ? p : NULL;
}

//  True when list has the scope word[0..len).
static bool s_has(const char *list, const char *word, size_t len)
{
    const char *s;
    size_t n;
    while ((s = vz_authctx_scope_next(&list, &n)))
        if (n == len && memcmp(s, word, n) == 0)
            return true;
    return false;
}

bool vz_authctx_scope_has(const char *list, const char *scope)
{
    assert(list && scope);
    size_t len = strlen(scope);
    //  "" or "a b" is no single scope: it must never match by accident.
    return len > 0 && !memchr(scope, ' ', len) && s_has(list, scope, len);
}

const char *vz_authctx_scope_missing(const char *want, const char *have, size_t *len)
{
    assert(want && have && len);
    const char *s;
    while ((s = vz_authctx_scope_next(&want, len)))
        if (!s_has(have, s, *len))
            return s;
    *len = 0;
    return NULL;
}

bool vz_authctx_scope_subset(const char *want, const char *have)
{
    size_t len;
    return vz_authctx_scope_missing(want, have, &len) == NULL;
}

int vz_authctx_scope_normalize(const char *list, char *out, size_t n)
{
    assert(list && out && n > 0);
    size_t used = 0;
    const char *s;
    size_t len;
    out[0] = '\0';
    while ((s = vz_authctx_scope_next(&list, &len))) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
                out[0] = '\0';
                return -EINVAL;
            }
        }
        if (s_has(out, s, len))
            continue;
        size_t need = used + (used > 0) + len;
        if (need >= n) {
            out[0] = '\0';
            return -ENAMETOOLONG;
        }
        if (used > 0)
            out[used++] = ' ';
        memcpy(out + used, s, len);
        used += len;
        out[used] = '\0';
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Replies

//  The writer's document as the reply body: 0, or -1 after answering
//  "internal" in its place (the document failed or is unfinished).
static int s_body(vz_reply_t *reply, vz_json_writer_t **writer_p)
{
    assert(reply && writer_p);
    size_t len = 0;
    char *doc = *writer_p ? vz_json_writer_take(*writer_p, &len) : NULL;
    vz_json_writer_destroy(writer_p);
    if (!doc) {
        vz_reply_error(reply, VZ_ERR_INTERNAL, "reply does not fit");
        return -1;
    }
    int rc = vz_reply_body(reply, doc, len);
    free(doc);
    return rc < 0 ? -1 : 0;
}

int vz_authctx_reply_json(vz_reply_t *reply, vz_json_writer_t **writer_p)
{
    s_body(reply, writer_p);
    return 0;
}

int vz_authctx_reply_created(vz_reply_t *reply, vz_json_writer_t **writer_p, const char *location)
{
    if (location && strlen(location) > VZ_AUTHCTX_VALUE_MAX) {
        vz_json_writer_destroy(writer_p);
        vz_reply_error(reply, VZ_ERR_INTERNAL, "location does not fit the reply");
        return -ENAMETOOLONG;
    }
    //  An "internal" error in place of the document gets no 201.
    if (s_body(reply, writer_p) < 0)
        return 0;
    int rc = vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, "201");
    if (rc == 0 && location)
        rc = vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_LOCATION, location);
    return rc;
}

int vz_authctx_error_status(const char *code)
{
    assert(code);
    for (size_t i = 0; i < sizeof s_statuses / sizeof s_statuses[0]; i++)
        if (strcmp(code, s_statuses[i].code) == 0)
            return s_statuses[i].status;
    return 0;
}

int vz_authctx_reply_error(vz_reply_t *reply, int status, const char *code, const char *message)
{
    assert(reply && code);
    if (status == 0)
        status = vz_authctx_error_status(code);
    else if (status < 400 || status > 599)
        return -EINVAL;
    int rc = vz_reply_error(reply, code, message);
    if (rc == 0 && status) {
        char text[8];
        snprintf(text, sizeof text, "%d", status);
        rc = vz_reply_ctx_set(reply, VZ_AUTHCTX_HTTP_STATUS, text);
    }
    return rc;
}
