/*  admin - the first admin, granted out of band with a one-time bootstrap token
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Registration never grants scope admin. While no admin exists, the first
 *  replica to start creates a bootstrap token ("vzb_" + 32 random bytes),
 *  stores only its SHA-256 in Redis ({auth}:bootstrap, SET NX with the expiry
 *  bootstrap_ttl_s) and prints the token once, to its log. Whoever can read
 *  that log (the operator) hands it to a registered user, who redeems it
 *  with a user access token (method admin_bootstrap, POST /v1/auth/bootstrap):
 *  one Lua script checks the hash, deletes the token, adds admin to the
 *  user's scope and records the uid in {auth}:admins. A token that expired
 *  unused is replaced at the next start of an auth replica.
 *
 *  Redis: {auth}:bootstrap = sha256 hex (expiring); {auth}:admins = set of the
 *  uids granted admin this way (its size says whether an admin exists).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "vz_proto.h"

#define K_BOOTSTRAP "{auth}:bootstrap"
#define K_ADMINS "{auth}:admins"
#define TOKEN_PREFIX "vzb_"
#define TOKEN_MAX 128

//  KEYS bootstrap, user, admins; ARGV hash, uid. The user's new scope
//  (admin added once), 0 no such token (wrong, used or expired), -1 no such
//  user (the token stays).
const char auth_lua_bootstrap[] =
    "local h = redis.call('GET', KEYS[1])\n"
    "if not h or h ~= ARGV[1] then return 0 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "local scope = redis.call('HGET', KEYS[2], 'scope') or ''\n"
    "if not string.find(' ' .. scope .. ' ', ' admin ', 1, true) then\n"
    "  if scope == '' then scope = 'admin' else scope = scope .. ' admin' end\n"
    "  redis.call('HSET', KEYS[2], 'scope', scope)\n"
    "end\n"
    "redis.call('SADD', KEYS[3], ARGV[2])\n"
    "return scope\n";

int auth_bootstrap_start(auth_t *self)
{
    const char *scard[] = {"SCARD", K_ADMINS};
    redisReply *r = auth_redis(self, 2, scard);
    if (!r)
        return -1;
    long long admins = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (admins > 0) {
        self->bootstrap_checked = true;
        return 0;
    }
    char token[TOKEN_MAX] = TOKEN_PREFIX, hash[65], ttl[16];
    if (auth_random_b64(token + strlen(TOKEN_PREFIX), 32) < 0)
        return -1;
    auth_sha256_hex(hash, token, strlen(token));
    snprintf(ttl, sizeof ttl, "%d", self->config.bootstrap_ttl_s);
    //  NX: one token at a time, whichever replica starts first prints it.
    const char *set[] = {"SET", K_BOOTSTRAP, hash, "NX", "EX", ttl};
    r = auth_redis(self, 6, set);
    if (!r) {
        OPENSSL_cleanse(token, sizeof token);
        return -1;
    }
    bool created = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    self->bootstrap_checked = true;
    if (created)
        vz_warn(NULL,
                "no admin yet: one-time admin bootstrap token; a registered user redeems it "
                "with POST /v1/auth/bootstrap (docs/services/auth.md)",
                "bootstrap", token, "expires_in_s", ttl);
    else
        vz_info(NULL, "no admin yet: a bootstrap token printed at an earlier start is pending");
    OPENSSL_cleanse(token, sizeof token);
    return 1;
}

int auth_h_admin_bootstrap(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    vz_authctx_read(req, &ctx);
    if (strcmp(ctx.auth, VZ_AUTHCTX_BY_JWT) != 0 || strncmp(ctx.sub, "u_", 2) != 0)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                                      "a user's bearer token is required");
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const char *token = NULL;
    int rc = 0;
    if (auth_json_str(vz_json_root(doc), "token", TOKEN_MAX, &token, reply) < 0)
        goto done;
    if (!token || strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "token: the vzb_ bootstrap token from the auth log");
        goto done;
    }
    char hash[65], user_key[96];
    auth_sha256_hex(hash, token, strlen(token));
    snprintf(user_key, sizeof user_key, "{auth}:user:%s", ctx.sub);
    const char *keys[] = {K_BOOTSTRAP, user_key, K_ADMINS};
    const char *args[] = {hash, ctx.sub};
    redisReply *r = vz_redis_eval(self->redis, self->bootstrap, 3, keys, 2, args);
    if (!r || (r->type != REDIS_REPLY_INTEGER && r->type != REDIS_REPLY_STRING)) {
        if (r)
            freeReplyObject(r);
        rc = auth_unavailable(reply);
        goto done;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        rc = r->integer == 0
                 ? vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED,
                                          "bootstrap token invalid, used or expired")
                 : vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "user not found");
        freeReplyObject(r);
        goto done;
    }
    vz_warn(req->id, "admin granted by the bootstrap token", "user", ctx.sub);
    //  The caller's access token predates the grant: a refresh or a new
    //  login carries scope admin.
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", ctx.sub);
    vz_json_write_kv_string(w, "scope", r->str);
    vz_json_write_object_end(w);
    freeReplyObject(r);
    rc = vz_authctx_reply_json(reply, &w);
done:
    vz_json_destroy(&doc);
    return rc;
}
