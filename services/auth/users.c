/*  users - register, login (with lockout), profile
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Redis: {auth}:user:<uid> = {email, pw, name, scope, tier, created,
 *  updated}; {auth}:email:<email> = uid (SET NX makes e-mails unique).
 *
 *  Login answers "invalid email or password" for an unknown e-mail and a
 *  wrong password alike, and both paths run the KDF once (an unknown user
 *  is checked against a dummy hash of the same cost), so neither the reply
 *  nor its timing tells whether an account exists. Failures are counted
 *  per account (keyed by a hash of the e-mail, whether or not it exists)
 *  and per client IP over a 15-minute window: from lock_threshold failures
 *  on, the account is locked for 1 s, 2 s, 4 s ... up to lock_max_s; from
 *  ip_threshold failures the IP is refused until its window ends. Locked
 *  attempts are refused before the KDF runs, so brute force costs the
 *  attacker time and the service nothing. The account counter is reset by
 *  a successful login or after lock_max_s + 15 min without a failure (a
 *  quiet period longer than the longest lock), never while locks go on.
 */
#include "auth.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "passwords.h"
#include "vz_proto.h"
#include "vz_telemetry.h"

#define EMAIL_MAX 254
#define NAME_MAX_BYTES 100
#define FAIL_WINDOW_S 900 //  IP window; also added to lock_max_s for the account's quiet period

//  KEYS fail-account, fail-ip, lock-account; ARGV threshold, IP window,
//  max lock ms, account quiet period. The account counter's expiry moves
//  with every failure and outlives the longest lock (Keycloak's brute-force
//  detector): only a success or a quiet period longer than the cap resets
//  it, so guesses spread over time and IPs keep paying the capped lock.
const char auth_lua_login_fail[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "local m = redis.call('INCR', KEYS[2])\n"
    "if m == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end\n"
    "local t = tonumber(ARGV[1])\n"
    "if n >= t then\n"
    "  local ms = math.min(1000 * 2 ^ math.min(n - t, 30), tonumber(ARGV[3]))\n"
    "  redis.call('SET', KEYS[3], n, 'PX', math.floor(ms))\n"
    "end\n"
    "return n\n";

//  RFC 5321/5322 subset that real providers accept: local@domain with a
//  dot-atom local part and DNS labels, a TLD of letters. Lowercased into out.
static bool s_email(const char *in, char *out, size_t n)
{
    size_t len = strlen(in);
    const char *at = strrchr(in, '@');
    if (len > EMAIL_MAX || len + 1 > n || !at || at == in || (size_t)(at - in) > 64)
        return false;
    for (const char *p = in; p < at; p++) {
        bool ok = isalnum((unsigned char)*p) || strchr("!#$%&'*+/=?^_`{|}~-.", *p);
        if (!ok || (*p == '.' && (p == in || p + 1 == at || p[1] == '.')))
            return false;
    }
    const char *label = at + 1, *last = NULL;
    if (!*label)
        return false;
    for (const char *p = label;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t l = (size_t)(p - label);
            if (l == 0 || l > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            last = label;
            if (*p == '\0')
                break;
            label = p + 1;
        } else if (!isalnum((unsigned char)*p) && *p != '-')
            return false;
    }
    if (last == at + 1 || strlen(last) < 2)
        return false; //  needs a dot and a TLD of 2+ letters
    for (const char *p = last; *p; p++)
        if (!isalpha((unsigned char)*p))
            return false;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    return true;
}

static const char *s_or(const char *value, const char *fallback)
{
    return value ? value : fallback;
}

static bool s_name_ok(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static void s_write_user(vz_json_writer_t *w, const char *uid, const redisReply *user)
{
    const char *name = auth_hash_field(user, "name");
    const char *created = auth_hash_field(user, "created");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", uid);
    vz_json_write_kv_string(w, "email", s_or(auth_hash_field(user, "email"), ""));
    vz_json_write_kv_string(w, "name", name ? name : "");
    vz_json_write_kv_string(w, "scope", s_or(auth_hash_field(user, "scope"), ""));
    vz_json_write_kv_string(w, "tier", s_or(auth_hash_field(user, "tier"), VZ_AUTHCTX_TIER_FREE));
    vz_json_write_kv_int(w, "created", created ? atoll(created) : 0);
    vz_json_write_object_end(w);
}

static redisReply *s_user_get(auth_t *self, const char *uid)
{
    char key[96];
    snprintf(key, sizeof key, "{auth}:user:%s", uid);
    const char *argv[] = {"HGETALL", key};
    return auth_redis(self, 2, argv);
}

//  Register, after the KDF: store the user (e-mail unique by SET NX).
static void s_register_then(auth_t *self, auth_kdf_t *job, vz_reply_t *reply)
{
    char uid[24] = "u_", email_key[EMAIL_MAX + 16], user_key[64];
    if (job->hash_rc != 0 || auth_random_hex(uid + 2, 8) < 0) {
        vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "cannot hash the password");
        return;
    }
    snprintf(email_key, sizeof email_key, "{auth}:email:%s", job->email);
    snprintf(user_key, sizeof user_key, "{auth}:user:%s", uid);
    const char *setnx[] = {"SET", email_key, uid, "NX"};
    redisReply *r = auth_redis(self, 4, setnx);
    if (!r) {
        auth_unavailable(reply);
        return;
    }
    bool taken = r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    if (taken) {
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_CONFLICT, "email: already registered");
        return;
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)(vz_clock_now_ms() / 1000));
    //  Never admin: that is granted out of band (admin.c).
    const char *hset[] = {"HSET",    user_key,  "email", job->email, "pw",   job->hash,
                          "name",    job->name, "scope", "user",     "tier", VZ_AUTHCTX_TIER_FREE,
                          "created", now};
    r = auth_redis(self, 14, hset);
    if (!r) {
        const char *del[] = {"DEL", email_key};
        redisReply *d = auth_redis(self, 2, del);
        if (d)
            freeReplyObject(d);
        auth_unavailable(reply);
        return;
    }
    freeReplyObject(r);
    vz_info(job->id, "user registered", "user", uid);
    vz_telemetry_event("signup", NULL);
    redisReply *user = s_user_get(self, uid);
    vz_json_writer_t *w = vz_json_writer_new(0);
    s_write_user(w, uid, user);
    if (user)
        freeReplyObject(user);
    vz_authctx_reply_created(reply, &w, NULL);
}

int auth_h_register(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const vz_json_value_t *body = vz_json_root(doc);
    const char *email_in = NULL, *password = NULL, *name = NULL;
    char email[EMAIL_MAX + 1];
    int rc = 0;
    if (auth_json_str(body, "email", EMAIL_MAX, &email_in, reply) < 0 ||
        auth_json_str(body, "password", 1024, &password, reply) < 0 ||
        auth_json_str(body, "name", NAME_MAX_BYTES, &name, reply) < 0)
        goto done;
    if (!email_in || !s_email(email_in, email, sizeof email)) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "email: not a valid e-mail address");
        goto done;
    }
    if (!password) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, "password: required");
        goto done;
    }
    const char *why = auth_password_policy(password, email);
    if (why) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, why);
        goto done;
    }
    if (name && !s_name_ok(name)) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "name: control characters not allowed");
        goto done;
    }
    //  The KDF runs on a pool thread; s_register_then continues here.
    auth_kdf_t *job = auth_kdf_new(NULL, NULL, password, self->config.iterations);
    if (job) {
        vz_strlcpy(job->email, email, sizeof job->email);
        job->has_name = name != NULL;
        vz_strlcpy(job->name, name ? name : "", sizeof job->name);
    }
    rc = auth_kdf_start(self, job, s_register_then, reply, req);
done:
    vz_json_destroy(&doc);
    return rc;
}

//  Refuse early when the account or the IP is locked. 0 go on, -1 replied.
static int s_lock_check(auth_t *self, const char *acct_key, const char *ip_key, vz_reply_t *reply)
{
    const char *pttl[] = {"PTTL", acct_key};
    const char *get[] = {"GET", ip_key};
    const char *ttl[] = {"TTL", ip_key};
    redisReply *a = auth_redis(self, 2, pttl);
    redisReply *b = a ? auth_redis(self, 2, get) : NULL;
    if (!a || !b) {
        if (a)
            freeReplyObject(a);
        auth_unavailable(reply);
        return -1;
    }
    long long wait_ms = a->type == REDIS_REPLY_INTEGER && a->integer > 0 ? a->integer : 0;
    bool ip_locked = b->type == REDIS_REPLY_STRING && atoll(b->str) >= self->config.ip_threshold;
    freeReplyObject(a);
    freeReplyObject(b);
    if (ip_locked) {
        redisReply *t = auth_redis(self, 2, ttl);
        long long s = t && t->type == REDIS_REPLY_INTEGER && t->integer > 0 ? t->integer : 1;
        if (t)
            freeReplyObject(t);
        wait_ms = wait_ms > s * 1000 ? wait_ms : s * 1000;
    }
    if (wait_ms == 0)
        return 0;
    if (self->locked_out)
        vz_series_inc(self->locked_out);
    char msg[96];
    snprintf(msg, sizeof msg, "too many failed logins; retry in %lld s", (wait_ms + 999) / 1000);
    vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_TOO_MANY, msg);
    return -1;
}

//  Login, after the KDF: count a failure, or reset the account's count,
//  store an upgraded hash and issue the tokens.
static void s_login_then(auth_t *self, auth_kdf_t *job, vz_reply_t *reply)
{
    const char *uid = job->uid;
    if (!job->ok || !*uid) {
        const char *keys[] = {job->acct_fail, job->ip_fail, job->acct_lock};
        char threshold[16], window[16], max_ms[24], quiet[24];
        snprintf(threshold, sizeof threshold, "%d", self->config.lock_threshold);
        snprintf(window, sizeof window, "%d", FAIL_WINDOW_S);
        snprintf(max_ms, sizeof max_ms, "%lld", (long long)self->config.lock_max_s * 1000);
        snprintf(quiet, sizeof quiet, "%d", self->config.lock_max_s + FAIL_WINDOW_S);
        const char *args[] = {threshold, window, max_ms, quiet};
        redisReply *f = vz_redis_eval(self->redis, self->login_fail, 3, keys, 4, args);
        if (f)
            freeReplyObject(f);
        if (self->login_failed)
            vz_series_inc(self->login_failed);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED, "invalid email or password");
        return;
    }
    const char *del[] = {"DEL", job->acct_fail};
    redisReply *d = auth_redis(self, 2, del);
    if (d)
        freeReplyObject(d);
    //  The pool rehashed a hash made at a lower cost: store it.
    if (job->hash_rc == 0) {
        char user_key[64];
        snprintf(user_key, sizeof user_key, "{auth}:user:%s", uid);
        const char *hset[] = {"HSET", user_key, "pw", job->hash};
        redisReply *h = auth_redis(self, 4, hset);
        if (h)
            freeReplyObject(h);
    }
    const redisReply *user = job->user;
    auth_grant_t grant = {.sub = uid,
                          .scope = s_or(auth_hash_field(user, "scope"), "user"),
                          .tier = s_or(auth_hash_field(user, "tier"), VZ_AUTHCTX_TIER_FREE)};
    auth_tokens_respond(self, &grant, uid, NULL, reply);
    vz_telemetry_event("login", NULL);
}

int auth_h_login(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    vz_authctx_read(req, &ctx);
    vz_json_t *doc = auth_json_body(req, reply);
    if (!doc)
        return 0;
    const vz_json_value_t *body = vz_json_root(doc);
    const char *email_in = NULL, *password = NULL;
    int rc = 0;
    redisReply *idr = NULL, *user = NULL;
    if (auth_json_str(body, "email", EMAIL_MAX, &email_in, reply) < 0 ||
        auth_json_str(body, "password", 1024, &password, reply) < 0)
        goto done;
    if (!email_in || !password) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    !email_in ? "email: required" : "password: required");
        goto done;
    }
    char email[EMAIL_MAX + 1], ehash[65];
    for (size_t i = 0; i <= strlen(email_in); i++)
        email[i] = (char)tolower((unsigned char)email_in[i]);
    auth_sha256_hex(ehash, email, strlen(email));
    char acct_fail[64], acct_lock[64], ip_fail[128];
    snprintf(acct_fail, sizeof acct_fail, "{auth}:fail:a:%.32s", ehash);
    snprintf(acct_lock, sizeof acct_lock, "{auth}:lock:a:%.32s", ehash);
    snprintf(ip_fail, sizeof ip_fail, "{auth}:fail:i:%.64s",
             *ctx.client_ip ? ctx.client_ip : "unknown");
    if (s_lock_check(self, acct_lock, ip_fail, reply) < 0)
        goto done;

    char email_key[EMAIL_MAX + 16];
    snprintf(email_key, sizeof email_key, "{auth}:email:%s", email);
    const char *get[] = {"GET", email_key};
    if (!(idr = auth_redis(self, 2, get))) {
        rc = auth_unavailable(reply);
        goto done;
    }
    const char *uid = idr->type == REDIS_REPLY_STRING ? idr->str : NULL;
    if (uid && !(user = s_user_get(self, uid))) {
        rc = auth_unavailable(reply);
        goto done;
    }
    const char *stored = uid ? auth_hash_field(user, "pw") : NULL;
    //  Always one KDF run: the dummy hash stands in for a missing user, and
    //  the password is rehashed when its stored cost is below the setting.
    auth_kdf_t *job = auth_kdf_new(password, stored ? stored : self->dummy_hash,
                                   stored ? password : NULL, self->config.iterations);
    if (job) {
        vz_strlcpy(job->uid, stored ? uid : "", sizeof job->uid);
        vz_strlcpy(job->acct_fail, acct_fail, sizeof job->acct_fail);
        vz_strlcpy(job->acct_lock, acct_lock, sizeof job->acct_lock);
        vz_strlcpy(job->ip_fail, ip_fail, sizeof job->ip_fail);
        job->user = user; //  the job frees it
        user = NULL;
    }
    rc = auth_kdf_start(self, job, s_login_then, reply, req);
done:
    if (idr)
        freeReplyObject(idr);
    if (user)
        freeReplyObject(user);
    vz_json_destroy(&doc);
    return rc;
}

//  The signed-in user (auth jwt, a user subject). NULL after replying.
static redisReply *s_me(auth_t *self, const vz_envelope_t *req, vz_authctx_t *ctx,
                        vz_reply_t *reply)
{
    vz_authctx_read(req, ctx);
    if (strcmp(ctx->auth, VZ_AUTHCTX_BY_JWT) != 0 || strncmp(ctx->sub, "u_", 2) != 0) {
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                               "a user's bearer token is required");
        return NULL;
    }
    redisReply *user = s_user_get(self, ctx->sub);
    if (!user) {
        auth_unavailable(reply);
        return NULL;
    }
    if (user->type != REDIS_REPLY_ARRAY || user->elements == 0) {
        freeReplyObject(user);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_NOT_FOUND, "user not found");
        return NULL;
    }
    return user;
}

int auth_h_profile_get(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    redisReply *user = s_me(self, req, &ctx, reply);
    if (!user)
        return 0;
    vz_json_writer_t *w = vz_json_writer_new(0);
    s_write_user(w, ctx.sub, user);
    freeReplyObject(user);
    return vz_authctx_reply_json(reply, &w);
}

//  Store a new name and/or password hash (NULL: unchanged) and answer the
//  profile; a new password ends every session (refresh family) of the user.
static int s_profile_write(auth_t *self, const char *uid, const char *name, const char *hash,
                           bool revoke, vz_reply_t *reply)
{
    char user_key[64], now[24];
    snprintf(user_key, sizeof user_key, "{auth}:user:%s", uid);
    snprintf(now, sizeof now, "%lld", (long long)(vz_clock_now_ms() / 1000));
    const char *argv[8] = {"HSET", user_key, "updated", now};
    int argc = 4;
    if (hash) {
        argv[argc++] = "pw";
        argv[argc++] = hash;
    }
    if (name) {
        argv[argc++] = "name";
        argv[argc++] = name;
    }
    redisReply *r = auth_redis(self, argc, argv);
    if (!r)
        return auth_unavailable(reply);
    freeReplyObject(r);
    if (revoke)
        auth_tokens_revoke_user(self, uid);
    redisReply *user = s_user_get(self, uid);
    vz_json_writer_t *w = vz_json_writer_new(0);
    s_write_user(w, uid, user);
    if (user)
        freeReplyObject(user);
    return vz_authctx_reply_json(reply, &w);
}

//  Password change, after the KDF.
static void s_profile_then(auth_t *self, auth_kdf_t *job, vz_reply_t *reply)
{
    if (!job->ok)
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED, "current_password: does not match");
    else if (job->hash_rc != 0)
        vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "cannot hash the password");
    else
        s_profile_write(self, job->uid, job->has_name ? job->name : NULL, job->hash, true, reply);
}

int auth_h_profile_update(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    redisReply *user = s_me(self, req, &ctx, reply);
    if (!user)
        return 0;
    vz_json_t *doc = auth_json_body(req, reply);
    int rc = 0;
    if (!doc)
        goto done;
    const vz_json_value_t *body = vz_json_root(doc);
    const char *name = NULL, *password = NULL, *current = NULL;
    if (auth_json_str(body, "name", NAME_MAX_BYTES, &name, reply) < 0 ||
        auth_json_str(body, "password", 1024, &password, reply) < 0 ||
        auth_json_str(body, "current_password", 1024, &current, reply) < 0)
        goto done;
    for (size_t i = 0; i < vz_json_size(body); i++) {
        const char *k = vz_json_key_at(body, i);
        if (strcmp(k, "name") != 0 && strcmp(k, "password") != 0 &&
            strcmp(k, "current_password") != 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "%.40s: cannot be changed here", k);
            rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, msg);
            goto done;
        }
    }
    if (name && !s_name_ok(name)) {
        rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                    "name: control characters not allowed");
        goto done;
    }
    if (password) {
        const char *why = auth_password_policy(password, auth_hash_field(user, "email"));
        if (!current) {
            rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION,
                                        "current_password: required to change it");
            goto done;
        }
        if (why) {
            rc = vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, why);
            goto done;
        }
        //  Check the current one and hash the new one on a pool thread.
        auth_kdf_t *job =
            auth_kdf_new(current, auth_hash_field(user, "pw"), password, self->config.iterations);
        if (job) {
            job->hash_below = INT_MAX;
            vz_strlcpy(job->uid, ctx.sub, sizeof job->uid);
            job->has_name = name != NULL;
            vz_strlcpy(job->name, name ? name : "", sizeof job->name);
        }
        rc = auth_kdf_start(self, job, s_profile_then, reply, req);
        goto done;
    }
    rc = s_profile_write(self, ctx.sub, name, NULL, false, reply);
done:
    if (user)
        freeReplyObject(user);
    vz_json_destroy(&doc);
    return rc;
}
