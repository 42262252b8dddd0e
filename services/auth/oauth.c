/*  oauth - client credentials (RFC 6749 §4.4), registration, introspection (RFC 7662)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Clients are registered by an admin: {auth}:client:<client_id> = {hash,
 *  name, scope, tier, created, owner}; the secret ("cs_" + 32 random bytes)
 *  is shown once and stored as SHA-256. Client authentication takes
 *  client_id/client_secret from the form body (client_secret_post) or, if
 *  the gateway forwards the header as ctx "header.authorization", HTTP Basic
 *  (client_secret_basic). Access tokens for clients are the same ES256
 *  JWTs as for users, with sub = client_id and the client_id claim
 *  (RFC 9068), so the gateway verifies both kinds offline.
 *
 *  Token endpoint errors follow RFC 6749 §5.2: an error envelope (contract
 *  C) whose code is invalid_request (400), or unauthorized (401) for
 *  invalid_client when the client authenticated with HTTP Basic, and whose
 *  message is "<error>: <error_description>" with error one of
 *  invalid_request, invalid_client, invalid_grant, unauthorized_client,
 *  unsupported_grant_type, invalid_scope and a description in the RFC's
 *  character set. A route marked errors = "oauth2" (routes.cfg) has the
 *  gateway answer {"error": .., "error_description": ..} with that status
 *  and, for the 401, WWW-Authenticate: Basic. Introspection (RFC 7662)
 *  answers a failed client authentication unauthorized (401), as before.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vz_auth_contract.h"
#include "vz_proto.h"

#define FORM_VALUE_MAX 1024
#define CLIENT_ID_MAX 64
#define NAME_MAX_BYTES 64
#define SCOPE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789:._- " //  scopes a client may hold

int auth_h_client_register(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    vz_authctx_read(req, &ctx);
    if (strcmp(ctx.auth, VZ_AUTHCTX_BY_JWT) != 0)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                                      "bearer token required");
    if (!vz_authctx_scope_has(ctx.scope, "admin"))
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED, "scope admin required");
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const vz_json_value_t *body = vz_json_root(doc);
    const char *name = NULL, *scope = NULL, *tier = NULL;
    int rc = 0;
    if (auth_json_str(body, "name", NAME_MAX_BYTES, &name, reply) < 0 ||
        auth_json_str(body, "scope", VZ_AUTHCTX_VALUE_MAX, &scope, reply) < 0 ||
        auth_json_str(body, "tier", 16, &tier, reply) < 0)
        goto done;
    if (!name || !*name) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, "name: required");
        goto done;
    }
    //  Stored as one scope each, single spaces: what the gateway will compare.
    char scopes[VZ_CTX_VAL_MAX];
    if ((scope && strspn(scope, SCOPE_CHARS) != strlen(scope)) ||
        vz_authctx_scope_normalize(scope ? scope : "", scopes, sizeof scopes) < 0) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "scope: words of [a-z0-9:._-] separated by spaces");
        goto done;
    }
    if (tier && strcmp(tier, VZ_AUTHCTX_TIER_FREE) != 0 &&
        strcmp(tier, VZ_AUTHCTX_TIER_PREMIUM) != 0) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, "tier: free or premium");
        goto done;
    }
    char id[24] = "c_", secret[64] = "cs_", hash[65], key[48], now[24];
    if (auth_random_hex(id + 2, 8) < 0 || auth_random_b64(secret + 3, 32) < 0) {
        rc = vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "no randomness");
        goto done;
    }
    auth_sha256_hex(hash, secret, strlen(secret));
    snprintf(key, sizeof key, "{auth}:client:%s", id);
    snprintf(now, sizeof now, "%lld", (long long)(vz_clock_now_ms() / 1000));
    const char *hset[] = {"HSET",    key,     "hash",  hash,   "name",
                          name,      "scope", scopes,  "tier", tier ? tier : VZ_AUTHCTX_TIER_FREE,
                          "created", now,     "owner", ctx.sub};
    redisReply *r = auth_redis(self, 14, hset);
    if (!r) {
        rc = auth_unavailable(reply);
        goto done;
    }
    freeReplyObject(r);
    vz_info(req->id, "oauth client registered", "client_id", id, "by", ctx.sub);
    rc = auth_reply_credential(reply,
                               &(auth_credential_t){.id_field = "client_id",
                                                    .id = id,
                                                    .secret_field = "client_secret",
                                                    .secret = secret,
                                                    .secret_size = sizeof secret,
                                                    .name = name,
                                                    .scope = scopes,
                                                    .tier = tier ? tier : VZ_AUTHCTX_TIER_FREE,
                                                    .created = now});
done:
    vz_json_destroy(&doc);
    return rc;
}

//  Reply an RFC 6749 §5.2 error (see the file header): 401 only for
//  invalid_client over HTTP Basic. Returns what vz_authctx_reply_error does.
static int s_oauth_error(vz_reply_t *reply, const char *error, const char *description, bool basic)
{
    bool challenge = basic && strcmp(error, "invalid_client") == 0;
    char message[VZ_ERRMSG_MAX];
    snprintf(message, sizeof message, "%s: %s", error, description);
    return vz_authctx_reply_error(reply, challenge ? 401 : 400,
                                  challenge ? VZ_AUTHCTX_ERR_UNAUTHORIZED : VZ_ERR_INVALID,
                                  message);
}

//  Checks the form content type when the gateway tells it. 0 or -1 replied
//  (as an RFC 6749 error when oauth).
static int s_form(const vz_envelope_t *req, vz_reply_t *reply, bool oauth)
{
    const char *ct = vz_authctx_get(req, VZ_AUTHCTX_CONTENT_TYPE);
    const char *want = "application/x-www-form-urlencoded";
    if (ct && *ct && strncasecmp(ct, want, strlen(want)) != 0) {
        if (oauth)
            s_oauth_error(reply, "invalid_request",
                          "body must be application/x-www-form-urlencoded", false);
        else
            vz_authctx_reply_error(
                reply, 0, VZ_ERR_INVALID,
                "invalid_request: body must be application/x-www-form-urlencoded");
        return -1;
    }
    return 0;
}

//  client_id and client_secret from HTTP Basic (RFC 6749 §2.3.1): true when
//  the header decodes to "id:secret" that fit.
static bool s_basic(const char *basic, char id[CLIENT_ID_MAX], char *secret, size_t n)
{
    unsigned char raw[200];
    size_t blen = strlen(basic + 6);
    int len = blen < 260 ? EVP_DecodeBlock(raw, (const unsigned char *)basic + 6, (int)blen) : -1;
    while (len > 0 && blen > 6 && basic[6 + blen - 1] == '=' && raw[len - 1] == '\0') {
        len--;
        blen--;
    }
    char *colon = len > 0 ? memchr(raw, ':', (size_t)len) : NULL;
    size_t idlen = colon ? (size_t)(colon - (char *)raw) : 0;
    size_t slen = colon ? (size_t)len - idlen - 1 : 0;
    bool ok = colon && idlen < CLIENT_ID_MAX && slen < n;
    if (ok) {
        memcpy(id, raw, idlen);
        id[idlen] = '\0';
        memcpy(secret, colon + 1, slen);
        secret[slen] = '\0';
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return ok;
}

//  The client's credentials are wrong: invalid_client, as RFC 6749 §5.2
//  says when oauth (the token endpoint), else unauthorized.
static void s_client_refused(vz_reply_t *reply, bool oauth, bool basic)
{
    if (oauth)
        s_oauth_error(reply, "invalid_client", "client authentication failed", basic);
    else
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                               "invalid_client: client authentication failed");
}

//  Authenticate the OAuth client; fills its record (caller frees). NULL
//  after replying: RFC 6749 §5.2 errors when oauth (the token endpoint),
//  else unauthorized.
static redisReply *s_client_auth(auth_t *self, const vz_envelope_t *req, vz_reply_t *reply,
                                 char id[CLIENT_ID_MAX], bool oauth)
{
    const char *body = req->body ? (const char *)req->body : "";
    char secret[FORM_VALUE_MAX] = "";
    int a = auth_form_get(body, req->body_len, "client_id", id, CLIENT_ID_MAX);
    int b = auth_form_get(body, req->body_len, "client_secret", secret, sizeof secret);
    //  The gateway forwards the header as ctx "header.authorization" (routes.cfg).
    const char *authz = vz_authctx_header(req, "authorization");
    bool basic = authz && strncasecmp(authz, "Basic ", 6) == 0;
    if (basic && oauth && (a != -ENOENT || b != -ENOENT)) {
        //  RFC 6749 §2.3: one client authentication method per request.
        s_oauth_error(reply, "invalid_request", "more than one client authentication method",
                      false);
        return NULL;
    }
    if (basic && a == -ENOENT && b == -ENOENT && s_basic(authz, id, secret, sizeof secret))
        a = b = 0;
    if (a < 0 || b < 0 || strncmp(id, "c_", 2) != 0) {
        OPENSSL_cleanse(secret, sizeof secret);
        s_client_refused(reply, oauth, basic);
        return NULL;
    }
    char key[96], hash[65];
    snprintf(key, sizeof key, "{auth}:client:%s", id);
    const char *argv[] = {"HGETALL", key};
    redisReply *client = auth_redis(self, 2, argv);
    if (!client) {
        OPENSSL_cleanse(secret, sizeof secret);
        auth_unavailable(reply);
        return NULL;
    }
    auth_sha256_hex(hash, secret, strlen(secret));
    OPENSSL_cleanse(secret, sizeof secret);
    const char *stored = auth_hash_field(client, "hash");
    if (!stored || strlen(stored) != 64 || CRYPTO_memcmp(stored, hash, 64) != 0) {
        freeReplyObject(client);
        s_client_refused(reply, oauth, basic);
        return NULL;
    }
    return client;
}

int auth_h_oauth_token(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    if (s_form(req, reply, true) < 0)
        return 0;
    const char *body = req->body ? (const char *)req->body : "";
    char grant[64], scope[FORM_VALUE_MAX];
    int rc = auth_form_get(body, req->body_len, "grant_type", grant, sizeof grant);
    if (rc == -ENOENT)
        return s_oauth_error(reply, "invalid_request", "grant_type required", false);
    if (rc < 0)
        return s_oauth_error(reply, "invalid_request", "grant_type malformed or repeated", false);
    if (strcmp(grant, "client_credentials") != 0)
        return s_oauth_error(reply, "unsupported_grant_type", "only client_credentials", false);
    rc = auth_form_get(body, req->body_len, "scope", scope, sizeof scope);
    if (rc == -EINVAL)
        return s_oauth_error(reply, "invalid_request", "scope malformed or repeated", false);
    char id[CLIENT_ID_MAX];
    redisReply *client = s_client_auth(self, req, reply, id, true);
    if (!client)
        return 0;
    const char *allowed = auth_hash_field(client, "scope");
    const char *tier = auth_hash_field(client, "tier");
    allowed = allowed ? allowed : "";
    //  Absent scope: everything the client was registered with (RFC 6749 §3.3).
    char granted[VZ_CTX_VAL_MAX];
    if (vz_authctx_scope_normalize(rc == -ENOENT ? allowed : scope, granted, sizeof granted) < 0 ||
        !vz_authctx_scope_subset(granted, allowed)) {
        freeReplyObject(client);
        return s_oauth_error(reply, "invalid_scope", "scope exceeds the client's", false);
    }
    auth_grant_t g = {
        .sub = id, .scope = granted, .tier = tier ? tier : VZ_AUTHCTX_TIER_FREE, .client_id = id};
    auth_tokens_respond(self, &g, NULL, NULL, reply);
    freeReplyObject(client);
    return 0;
}

//  Shared by both introspection flavours: active or not, and the claims.
static bool s_introspect(auth_t *self, const char *token, vz_jwt_claims_t *c)
{
    return token && *token && auth_tokens_verify(self, token, strlen(token), c) == 0;
}

int auth_h_oauth_introspect(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    if (s_form(req, reply, false) < 0)
        return 0;
    char id[CLIENT_ID_MAX];
    redisReply *client = s_client_auth(self, req, reply, id, false);
    if (!client)
        return 0;
    freeReplyObject(client);
    const char *body = req->body ? (const char *)req->body : "";
    char *token = malloc(VZ_JWT_TOKEN_MAX + 1);
    if (!token)
        return -1;
    int rc = auth_form_get(body, req->body_len, "token", token, VZ_JWT_TOKEN_MAX + 1);
    if (rc < 0) {
        free(token);
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, "invalid_request: token required");
    }
    vz_jwt_claims_t c;
    bool active = s_introspect(self, token, &c);
    free(token);
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_bool(w, "active", active);
    if (active) {
        vz_json_write_kv_string(w, "sub", c.sub);
        vz_json_write_kv_string(w, "scope", c.scope);
        if (c.client_id[0])
            vz_json_write_kv_string(w, "client_id", c.client_id);
        vz_json_write_kv_string(w, "token_type", "Bearer");
        vz_json_write_kv_int(w, "exp", c.exp);
        vz_json_write_kv_int(w, "iat", c.iat);
        vz_json_write_kv_int(w, "nbf", c.nbf);
        vz_json_write_kv_string(w, "iss", c.iss);
        vz_json_write_kv_string(w, "aud", c.aud);
        vz_json_write_kv_string(w, "jti", c.jti);
        vz_json_write_kv_string(w, "tier", c.tier);
    }
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

//  Internal: {"token"} -> {active, ...} (vz_auth_contract.h). A token that
//  does not verify is active=false; a body the contract refuses is
//  invalid_request.
int auth_h_token_introspect(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_auth_introspect_t *in = malloc(sizeof *in); //  8 KiB: not on the stack
    if (!in)
        return -1;
    const char *why = NULL;
    if (vz_auth_introspect_decode(in, req->body, req->body_len, &why) < 0) {
        free(in);
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, why);
    }
    vz_jwt_claims_t c;
    vz_auth_token_info_t info = {.active = s_introspect(self, in->token, &c)};
    free(in);
    //  The claims' fields have the contract's capacities, or less.
    if (info.active && (vz_strlcpy(info.sub, c.sub, sizeof info.sub) < 0 ||
                        vz_strlcpy(info.scope, c.scope, sizeof info.scope) < 0 ||
                        vz_strlcpy(info.client_id, c.client_id, sizeof info.client_id) < 0 ||
                        vz_strlcpy(info.tier, c.tier, sizeof info.tier) < 0))
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "token claims do not fit the reply");
    if (info.active) {
        vz_strlcpy(info.token_type, "Bearer", sizeof info.token_type);
        info.exp = c.exp;
        info.iat = c.iat;
    }
    size_t len;
    uint8_t *body = vz_auth_token_info_encode(&info, &len);
    return auth_reply_take(reply, body, len);
}
