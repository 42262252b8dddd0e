/*  api_keys - create (shown once), list, revoke and verify API keys
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A key reads "vzk_<id>_<secret>": id is 12 hex characters (the lookup
 *  prefix, also the key id the gateway puts in ctx "kid"), secret 32 random
 *  bytes in base64url. Redis keeps only SHA-256 of the whole key:
 *  {auth}:ak:<id> = {hash, sub, name, scope, created, last_used} and
 *  {auth}:uak:<uid> = set of the user's key ids. A slow KDF would add nothing
 *  for a 256-bit random secret and would make the gateway's cache misses
 *  slow; the comparison is constant-time anyway.
 *
 *  Verification is one Lua round trip (the key record and its owner's
 *  current tier); last_used is written at most once a minute per key.
 */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "vz_auth_contract.h"
#include "vz_proto.h"

#define KEY_PREFIX "vzk_"
#define ID_HEX 12
#define KEY_MAX 96
#define KEYS_PER_USER 20
#define NAME_MAX_BYTES 64
#define LAST_USED_EVERY_S 60

//  KEYS ak, the user key prefix (hash tag: same slot); reply {hash, sub, scope, last_used, tier} or
//  nil.
const char auth_lua_apikey_get[] =
    "local k = redis.call('HMGET', KEYS[1], 'hash', 'sub', 'scope', 'last_used')\n"
    "if not k[1] then return nil end\n"
    "local tier = redis.call('HGET', KEYS[2] .. k[2], 'tier')\n"
    "if not tier then return nil end\n"
    "return {k[1], k[2], k[3] or '', k[4] or '0', tier}\n";

//  Parse "vzk_<12 hex>_<secret>" and copy the id. False when malformed.
static bool s_parse(const char *key, char id[ID_HEX + 1])
{
    size_t len = strlen(key), plen = strlen(KEY_PREFIX);
    if (len <= plen + ID_HEX + 1 || len >= KEY_MAX || strncmp(key, KEY_PREFIX, plen) != 0 ||
        key[plen + ID_HEX] != '_')
        return false;
    for (size_t i = 0; i < ID_HEX; i++) {
        char c = key[plen + i];
        if (!isdigit((unsigned char)c) && !(c >= 'a' && c <= 'f'))
            return false;
        id[i] = c;
    }
    id[ID_HEX] = '\0';
    return true;
}

//  The caller must be a user signed in with a JWT. 0, or -1 after replying.
static int s_user(const vz_envelope_t *req, vz_authctx_t *ctx, vz_reply_t *reply)
{
    vz_authctx_read(req, ctx);
    if (strcmp(ctx->auth, VZ_AUTHCTX_BY_JWT) != 0 || strncmp(ctx->sub, "u_", 2) != 0) {
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                               "a user's bearer token is required");
        return -1;
    }
    return 0;
}

int auth_h_api_key_create(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    if (s_user(req, &ctx, reply) < 0)
        return 0;
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const vz_json_value_t *body = vz_json_root(doc);
    const char *name = NULL, *scope = NULL;
    int rc = 0;
    if (auth_json_str(body, "name", NAME_MAX_BYTES, &name, reply) < 0 ||
        auth_json_str(body, "scope", VZ_AUTHCTX_VALUE_MAX, &scope, reply) < 0)
        goto done;
    if (!name || !*name) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, "name: required");
        goto done;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                        "name: control characters not allowed");
            goto done;
        }
    //  A key never carries more than its owner has (ctx scope = the token's).
    char scopes[VZ_CTX_VAL_MAX];
    if (vz_authctx_scope_normalize(scope ? scope : ctx.scope, scopes, sizeof scopes) < 0 ||
        !vz_authctx_scope_subset(scopes, ctx.scope)) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "scope: must be a subset of your scopes");
        goto done;
    }
    char set_key[64];
    snprintf(set_key, sizeof set_key, "{auth}:uak:%s", ctx.sub);
    const char *scard[] = {"SCARD", set_key};
    redisReply *r = auth_redis(self, 2, scard);
    if (!r) {
        rc = auth_unavailable(reply);
        goto done;
    }
    long long have = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (have >= KEYS_PER_USER) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_CONFLICT,
                                    "too many API keys; delete one first");
        goto done;
    }
    char id[ID_HEX + 1], secret[48], key[KEY_MAX], hash[65], ak[32], now[24];
    if (auth_random_hex(id, ID_HEX / 2) < 0 || auth_random_b64(secret, 32) < 0) {
        rc = vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "no randomness");
        goto done;
    }
    snprintf(key, sizeof key, KEY_PREFIX "%s_%s", id, secret);
    auth_sha256_hex(hash, key, strlen(key));
    snprintf(ak, sizeof ak, "{auth}:ak:%s", id);
    snprintf(now, sizeof now, "%lld", (long long)(vz_clock_now_ms() / 1000));
    const char *hset[] = {"HSET", ak,      "hash", hash,      "sub", ctx.sub,     "name",
                          name,   "scope", scopes, "created", now,   "last_used", "0"};
    const char *sadd[] = {"SADD", set_key, id};
    r = auth_redis(self, 14, hset);
    redisReply *r2 = r ? auth_redis(self, 3, sadd) : NULL;
    if (!r || !r2) {
        if (r)
            freeReplyObject(r);
        rc = auth_unavailable(reply);
        goto done;
    }
    freeReplyObject(r);
    freeReplyObject(r2);
    vz_info(req->id, "api key created", "user", ctx.sub, "kid", id);
    rc = auth_reply_credential(reply, &(auth_credential_t){.id_field = "id",
                                                           .id = id,
                                                           .secret_field = "key",
                                                           .secret = key,
                                                           .secret_size = sizeof key,
                                                           .name = name,
                                                           .scope = scopes,
                                                           .created = now});
done:
    vz_json_destroy(&doc);
    return rc;
}

int auth_h_api_key_list(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    if (s_user(req, &ctx, reply) < 0)
        return 0;
    char set_key[64];
    snprintf(set_key, sizeof set_key, "{auth}:uak:%s", ctx.sub);
    const char *smembers[] = {"SMEMBERS", set_key};
    redisReply *ids = auth_redis(self, 2, smembers);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (ids)
            freeReplyObject(ids);
        return auth_unavailable(reply);
    }
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "keys");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < ids->elements; i++) {
        const char *id = ids->element[i]->str;
        char ak[64];
        snprintf(ak, sizeof ak, "{auth}:ak:%s", id);
        const char *hmget[] = {"HMGET", ak, "name", "scope", "created", "last_used"};
        redisReply *k = auth_redis(self, 6, hmget);
        if (k && k->type == REDIS_REPLY_ARRAY && k->elements == 4 &&
            k->element[0]->type == REDIS_REPLY_STRING) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, KEY_PREFIX "%s_", id);
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "id", id);
            vz_json_write_kv_string(w, "prefix", prefix);
            vz_json_write_kv_string(w, "name", k->element[0]->str);
            vz_json_write_kv_string(
                w, "scope", k->element[1]->type == REDIS_REPLY_STRING ? k->element[1]->str : "");
            vz_json_write_kv_int(w, "created", k->element[2]->str ? atoll(k->element[2]->str) : 0);
            vz_json_write_kv_int(w, "last_used",
                                 k->element[3]->str ? atoll(k->element[3]->str) : 0);
            vz_json_write_object_end(w);
        }
        if (k)
            freeReplyObject(k);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    freeReplyObject(ids);
    return vz_authctx_reply_json(reply, &w);
}

int auth_h_api_key_delete(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    if (s_user(req, &ctx, reply) < 0)
        return 0;
    const char *id = vz_authctx_param(req, "id");
    if (!id || strlen(id) != ID_HEX || strspn(id, "0123456789abcdef") != ID_HEX)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "no such API key");
    char set_key[64], ak[32];
    snprintf(set_key, sizeof set_key, "{auth}:uak:%s", ctx.sub);
    snprintf(ak, sizeof ak, "{auth}:ak:%s", id);
    //  Membership in the caller's own set is the ownership check.
    const char *srem[] = {"SREM", set_key, id};
    redisReply *r = auth_redis(self, 3, srem);
    if (!r)
        return auth_unavailable(reply);
    bool owned = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!owned)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "no such API key");
    const char *del[] = {"DEL", ak};
    r = auth_redis(self, 2, del);
    if (!r)
        return auth_unavailable(reply);
    freeReplyObject(r);
    vz_info(req->id, "api key revoked", "user", ctx.sub, "kid", id);
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", id);
    vz_json_write_kv_bool(w, "deleted", true);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

static int s_verify_reply(vz_reply_t *reply, bool valid, const char *sub, const char *scope,
                          const char *tier, const char *kid)
{
    vz_auth_key_identity_t id = {.valid = valid};
    //  A stored value that does not fit is refused, never cut (a cut scope
    //  list could spell a scope that was not granted).
    if (vz_strlcpy(id.sub, sub, sizeof id.sub) < 0 ||
        vz_strlcpy(id.scope, scope, sizeof id.scope) < 0 ||
        vz_strlcpy(id.tier, tier, sizeof id.tier) < 0 || vz_strlcpy(id.kid, kid, sizeof id.kid) < 0)
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "API key record does not fit the reply");
    size_t len;
    uint8_t *body = vz_auth_key_identity_encode(&id, &len);
    return auth_reply_take(reply, body, len);
}

//  Internal (gateway): {"key"} -> {valid, sub, scope, tier, kid}
//  (vz_auth_contract.h). An unknown, malformed or revoked key is
//  valid=false, never an error; only a body the contract refuses (not a
//  map, no key, a key that is not a string or longer than the field) is
//  invalid_request.
int auth_h_api_key_verify(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_auth_key_verify_t in;
    char id[ID_HEX + 1];
    const char *why = NULL;
    if (vz_auth_key_verify_decode(&in, req->body, req->body_len, &why) < 0) {
        OPENSSL_cleanse(&in, sizeof in);
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, why);
    }
    const char *key = in.key;
    if (strlen(key) > KEY_MAX || !s_parse(key, id)) {
        OPENSSL_cleanse(&in, sizeof in);
        return s_verify_reply(reply, false, "", "", "", "");
    }
    char ak[32], hash[65];
    snprintf(ak, sizeof ak, "{auth}:ak:%s", id);
    const char *keys[] = {ak, "{auth}:user:"};
    redisReply *r = vz_redis_eval(self->redis, self->apikey_get, 2, keys, 0, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        OPENSSL_cleanse(&in, sizeof in);
        return auth_unavailable(reply);
    }
    auth_sha256_hex(hash, key, strlen(key));
    OPENSSL_cleanse(&in, sizeof in);
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 5;
    for (size_t i = 0; ok && i < 5; i++)
        ok = r->element[i]->type == REDIS_REPLY_STRING;
    ok = ok && r->element[0]->len == 64 && CRYPTO_memcmp(r->element[0]->str, hash, 64) == 0;
    if (!ok) {
        freeReplyObject(r);
        return s_verify_reply(reply, false, "", "", "", "");
    }
    long long now = (long long)(vz_clock_now_ms() / 1000), last = atoll(r->element[3]->str);
    if (now - last >= LAST_USED_EVERY_S) {
        char stamp[24];
        snprintf(stamp, sizeof stamp, "%lld", now);
        const char *hset[] = {"HSET", ak, "last_used", stamp};
        redisReply *h = auth_redis(self, 4, hset);
        if (h)
            freeReplyObject(h);
    }
    int rc =
        s_verify_reply(reply, true, r->element[1]->str, r->element[2]->str, r->element[4]->str, id);
    freeReplyObject(r);
    return rc;
}
