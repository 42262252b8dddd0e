/*  tokens - access JWTs, refresh-token rotation with reuse detection, logout
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Refresh tokens are opaque ("rt_" + 32 random bytes) and stored only as
 *  SHA-256: {auth}:rt:<hash> = {uid, fam, used}. Every token belongs to a
 *  family (one login); {auth}:fam:<fam> exists while the family is alive and
 *  its TTL is the family's absolute lifetime. Using a token marks it used
 *  and issues the next one of the family; presenting a used token again
 *  means it was copied, so the whole family is revoked (RFC 6819 §5.2.2.3,
 *  OAuth 2.0 Security BCP §4.14). The check-and-mark is one Lua script, so
 *  two replicas racing on the same token cannot both succeed.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_proto.h"

#define RT_PREFIX "rt_"
#define RT_MAX 128

//  KEYS rt, the family key prefix (hash tag: same slot); reply {status, uid, fam}: ok | invalid |
//  reuse | revoked.
const char auth_lua_rt_use[] =
    "local t = redis.call('HMGET', KEYS[1], 'uid', 'fam', 'used')\n"
    "if not t[1] or not t[2] then return {'invalid'} end\n"
    "local fam = KEYS[2] .. t[2]\n"
    "if t[3] == '1' then\n"
    "  redis.call('DEL', fam)\n"
    "  return {'reuse', t[1], t[2]}\n"
    "end\n"
    "if redis.call('EXISTS', fam) == 0 then return {'revoked', t[1], t[2]} end\n"
    "redis.call('HSET', KEYS[1], 'used', '1')\n"
    "return {'ok', t[1], t[2]}\n";

//  KEYS rt, fam, user's family set; ARGV uid, fam id, ttl, new family?
const char auth_lua_rt_issue[] =
    "local ttl = tonumber(ARGV[3])\n"
    "if ARGV[4] == '1' then\n"
    "  redis.call('SET', KEYS[2], ARGV[1], 'EX', ttl)\n"
    "  redis.call('SADD', KEYS[3], ARGV[2])\n"
    "  redis.call('EXPIRE', KEYS[3], ttl)\n"
    "else\n"
    "  ttl = redis.call('TTL', KEYS[2])\n"
    "  if ttl <= 0 then return 0 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'fam', ARGV[2], 'used', '0')\n"
    "redis.call('EXPIRE', KEYS[1], ttl)\n"
    "return 1\n";

int auth_tokens_access(auth_t *self, const auth_grant_t *grant, char **token_p)
{
    const vz_jwt_key_t *key = auth_keys_signing(self);
    if (!key)
        return -1;
    vz_jwt_claims_t c = {0};
    int64_t now = vz_clock_now_ms() / 1000;
    //  A claim is never cut, and the scope must fit the gateway's ctx entry.
    if (strlen(grant->scope) > VZ_AUTHCTX_VALUE_MAX ||
        vz_strlcpy(c.iss, self->config.issuer, sizeof c.iss) < 0 ||
        vz_strlcpy(c.aud, self->config.audience, sizeof c.aud) < 0 ||
        vz_strlcpy(c.sub, grant->sub, sizeof c.sub) < 0 ||
        vz_strlcpy(c.scope, grant->scope, sizeof c.scope) < 0 ||
        vz_strlcpy(c.tier, grant->tier, sizeof c.tier) < 0 ||
        (grant->client_id && vz_strlcpy(c.client_id, grant->client_id, sizeof c.client_id) < 0))
        return -ENAMETOOLONG;
    if (auth_random_hex(c.jti, 16) < 0)
        return -1;
    c.iat = c.nbf = now;
    c.exp = now + self->config.access_ttl_s;
    return vz_jwt_sign(key, &c, token_p) == 0 ? 0 : -1;
}

//  A new refresh token for uid in family fam (new family when *fam is "").
static int s_refresh_issue(auth_t *self, const char *uid, char fam[33], char out[RT_MAX])
{
    bool fresh = fam[0] == '\0';
    if (fresh && auth_random_hex(fam, 16) < 0)
        return -1;
    memcpy(out, RT_PREFIX, sizeof RT_PREFIX);
    if (auth_random_b64(out + strlen(RT_PREFIX), 32) < 0)
        return -1;
    char hash[65], rt_key[80], fam_key[64], set_key[320], ttl[16];
    auth_sha256_hex(hash, out, strlen(out));
    snprintf(rt_key, sizeof rt_key, "{auth}:rt:%s", hash);
    snprintf(fam_key, sizeof fam_key, "{auth}:fam:%s", fam);
    snprintf(set_key, sizeof set_key, "{auth}:ufams:%s", uid);
    snprintf(ttl, sizeof ttl, "%d", self->config.refresh_ttl_s);
    const char *keys[] = {rt_key, fam_key, set_key};
    const char *args[] = {uid, fam, ttl, fresh ? "1" : "0"};
    redisReply *r = vz_redis_eval(self->redis, self->rt_issue, 3, keys, 4, args);
    int rc = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

int auth_tokens_respond(auth_t *self, const auth_grant_t *grant, const char *uid, const char *fam,
                        vz_reply_t *reply)
{
    char *access = NULL;
    int rc = auth_tokens_access(self, grant, &access);
    if (rc < 0) {
        if (rc == -ENAMETOOLONG)
            vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "granted claims do not fit a token");
        else
            auth_unavailable(reply);
        return -1;
    }
    char refresh[RT_MAX] = "", family[33] = "";
    if (fam)
        vz_strlcpy(family, fam, sizeof family);
    if (uid && s_refresh_issue(self, uid, family, refresh) < 0) {
        free(access);
        auth_unavailable(reply);
        return -1;
    }
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "access_token", access);
    vz_json_write_kv_string(w, "token_type", "Bearer");
    vz_json_write_kv_int(w, "expires_in", self->config.access_ttl_s);
    vz_json_write_kv_string(w, "scope", grant->scope);
    if (uid)
        vz_json_write_kv_string(w, "refresh_token", refresh);
    vz_json_write_object_end(w);
    free(access);
    vz_authctx_reply_json(reply, &w);
    return 0;
}

int auth_tokens_verify(auth_t *self, const char *token, size_t len, vz_jwt_claims_t *claims)
{
    const vz_jwt_keyset_t *set = auth_keys_public(self);
    if (!set)
        return VZ_JWT_EKID;
    vz_jwt_verify_opts_t opts = {.issuer = self->config.issuer,
                                 .audience = self->config.audience,
                                 .leeway_s = self->config.leeway_s};
    return vz_jwt_verify(set, token, len, &opts, claims);
}

//  Use a refresh token: 0 with uid/fam filled, or replies and returns -1.
static int s_refresh_use(auth_t *self, const char *token, char *uid, size_t uid_n, char fam[33],
                         vz_reply_t *reply)
{
    if (strncmp(token, RT_PREFIX, strlen(RT_PREFIX)) != 0 || strlen(token) >= RT_MAX) {
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED, "invalid refresh token");
        return -1;
    }
    char hash[65], key[80];
    auth_sha256_hex(hash, token, strlen(token));
    snprintf(key, sizeof key, "{auth}:rt:%s", hash);
    const char *keys[] = {key, "{auth}:fam:"};
    redisReply *r = vz_redis_eval(self->redis, self->rt_use, 2, keys, 0, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        if (r)
            freeReplyObject(r);
        auth_unavailable(reply);
        return -1;
    }
    const char *status = r->element[0]->str;
    int rc = -1;
    if (strcmp(status, "ok") == 0 && r->elements == 3) {
        vz_strlcpy(uid, r->element[1]->str, uid_n);
        vz_strlcpy(fam, r->element[2]->str, 33);
        rc = 0;
    } else if (strcmp(status, "reuse") == 0) {
        if (self->refresh_reuse)
            vz_series_inc(self->refresh_reuse);
        vz_warn(NULL, "refresh token reuse: family revoked", "family", r->element[2]->str);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                               "refresh token already used; session revoked");
    } else
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED, "invalid refresh token");
    freeReplyObject(r);
    return rc;
}

int auth_h_refresh(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const char *token = NULL;
    if (auth_json_str(vz_json_root(doc), "refresh_token", RT_MAX, &token, reply) < 0) {
        vz_json_destroy(&doc);
        return 0;
    }
    if (!token) {
        vz_json_destroy(&doc);
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                      "refresh_token: required");
    }
    char uid[64], fam[33];
    int rc = s_refresh_use(self, token, uid, sizeof uid, fam, reply);
    vz_json_destroy(&doc);
    if (rc < 0)
        return 0;
    //  Scope and tier come from the user record now, so changes apply at refresh.
    char key[96];
    snprintf(key, sizeof key, "{auth}:user:%s", uid);
    const char *argv[] = {"HMGET", key, "scope", "tier"};
    redisReply *u = auth_redis(self, 4, argv);
    if (!u || u->type != REDIS_REPLY_ARRAY || u->elements != 2 ||
        u->element[0]->type != REDIS_REPLY_STRING || u->element[1]->type != REDIS_REPLY_STRING) {
        if (u)
            freeReplyObject(u);
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                                      "invalid refresh token");
    }
    auth_grant_t grant = {.sub = uid, .scope = u->element[0]->str, .tier = u->element[1]->str};
    auth_tokens_respond(self, &grant, uid, fam, reply);
    freeReplyObject(u);
    return 0;
}

int auth_tokens_revoke_user(auth_t *self, const char *uid)
{
    char set_key[320];
    snprintf(set_key, sizeof set_key, "{auth}:ufams:%s", uid);
    const char *members[] = {"SMEMBERS", set_key};
    redisReply *r = auth_redis(self, 2, members);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    int count = 0;
    for (size_t i = 0; i < r->elements; i++) {
        char fam_key[96];
        snprintf(fam_key, sizeof fam_key, "{auth}:fam:%s", r->element[i]->str);
        const char *del[] = {"DEL", fam_key};
        redisReply *d = auth_redis(self, 2, del);
        if (d && d->type == REDIS_REPLY_INTEGER)
            count += (int)d->integer;
        if (d)
            freeReplyObject(d);
    }
    freeReplyObject(r);
    const char *del[] = {"DEL", set_key};
    redisReply *d = auth_redis(self, 2, del);
    if (d)
        freeReplyObject(d);
    return count;
}

//  Logout: with a refresh token, end that session; without one, every
//  session of the user. Access tokens already issued stay valid until they
//  expire (at most access_ttl): the gateway verifies them offline.
int auth_h_logout(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    vz_authctx_read(req, &ctx);
    if (strcmp(ctx.auth, VZ_AUTHCTX_BY_JWT) != 0 || !*ctx.sub)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                                      "bearer token required");
    const char *token = NULL;
    vz_json_t *doc = NULL;
    if (req->body_len > 0) {
        if (!(doc = auth_json_body(req, reply)))
            return 0;
        if (auth_json_str(vz_json_root(doc), "refresh_token", RT_MAX, &token, reply) < 0) {
            vz_json_destroy(&doc);
            return 0;
        }
    }
    int revoked = 0;
    if (token) {
        char hash[65], key[80];
        auth_sha256_hex(hash, token, strlen(token));
        snprintf(key, sizeof key, "{auth}:rt:%s", hash);
        const char *argv[] = {"HMGET", key, "uid", "fam"};
        redisReply *r = auth_redis(self, 4, argv);
        if (!r) {
            vz_json_destroy(&doc);
            return auth_unavailable(reply);
        }
        //  Only the owner may end a session; anything else looks like "not found".
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, ctx.sub) == 0 &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            char fam_key[96];
            snprintf(fam_key, sizeof fam_key, "{auth}:fam:%s", r->element[1]->str);
            const char *del[] = {"DEL", fam_key};
            redisReply *d = auth_redis(self, 2, del);
            revoked = d && d->type == REDIS_REPLY_INTEGER ? (int)d->integer : 0;
            if (d)
                freeReplyObject(d);
        }
        freeReplyObject(r);
    } else if ((revoked = auth_tokens_revoke_user(self, ctx.sub)) < 0) {
        vz_json_destroy(&doc);
        return auth_unavailable(reply);
    }
    vz_json_destroy(&doc);
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "sessions_revoked", revoked);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}
