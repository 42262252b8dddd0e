/*  edge - the gateway's credential state: JWKS, verified tokens, API-key answers
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "edge.h"

#include <assert.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

#define TIMER_MAX_MS 1000

//  One fetched key set with its document; refcounted so a verify on an
//  HTTP thread keeps it alive while the reactor swaps in a newer one.
typedef struct {
    atomic_int refs;      //  holders
    vz_jwt_keyset_t *set; //  parsed keys
    char *doc;            //  the JWKS document as fetched
    size_t doc_len;       //  its length
} s_keys_t;

typedef struct {
    uint8_t digest[SHA256_DIGEST_LENGTH]; //  SHA-256 of the token
    uint64_t gen;                         //  key-set generation it was verified with; 0 = empty
    gw_edge_identity_t id;                //  what it says
} s_token_slot_t;

typedef struct {
    bool valid;            //  the auth service's answer
    gw_edge_identity_t id; //  when valid
    int64_t expires_ms;    //  drop after (monotonic ms)
} s_apikey_t;

struct gw_edge_t {
    gw_edge_config_t config; //  copy
    gw_upstream_t *upstream; //  borrowed
    pthread_mutex_t lock;    //  guards everything below except the series
    s_keys_t *keys;          //  current key set, NULL before the first fetch
    vz_jwt_keyset_t *empty;  //  an empty set: checks format and alg when no keys yet
    uint64_t gen;            //  bumped on every new key set
    //  Fetch times are monotonic ms (vz_clock_mono_ms).
    int64_t fetched_ms;         //  last good fetch, 0 = never
    int64_t attempt_ms;         //  last fetch started, 0 = never
    int64_t failed_ms;          //  last fetch failed at, 0 = last one succeeded
    int64_t ended_ms;           //  last fetch ended (either way), 0 = never
    bool fetching;              //  fetch in flight
    gw_upcall_t fetch;          //  the one fetch call
    gw_edge_waiter_t *waiters;  //  requests waiting for it
    s_token_slot_t *tokens;     //  verified-token cache, config.token_cache slots
    zhashx_t *apikeys;          //  hex digest -> s_apikey_t
    vz_series_t *jwks_age;      //  vz_gateway_jwks_age_seconds
    vz_series_t *jwks_keys;     //  vz_gateway_jwks_keys
    vz_series_t *fetch_ok;      //  vz_gateway_jwks_fetches_total{result="ok"}
    vz_series_t *fetch_err;     //  idem, result="error"
    vz_series_t *token_hits;    //  vz_gateway_token_cache_total{result="hit"}
    vz_series_t *token_misses;  //  idem, "miss"
    vz_series_t *apikey_hits;   //  vz_gateway_apikey_cache_total{result="hit"}
    vz_series_t *apikey_misses; //  idem, "miss"
};

static void s_keys_unref(s_keys_t **keys_p)
{
    s_keys_t *keys = *keys_p;
    *keys_p = NULL;
    if (!keys || atomic_fetch_sub(&keys->refs, 1) != 1)
        return;
    vz_jwt_keyset_destroy(&keys->set);
    free(keys->doc);
    free(keys);
}

static void s_hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 0xf];
    }
    out[2 * n] = '\0';
}

gw_edge_t *gw_edge_new(const gw_edge_config_t *config, gw_upstream_t *upstream,
                       vz_metrics_t *metrics)
{
    assert(config && upstream && metrics);
    gw_edge_t *self = calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    self->upstream = upstream;
    pthread_mutex_init(&self->lock, NULL);
    self->empty = vz_jwt_keyset_new();
    assert(self->empty);
    if (config->token_cache > 0) {
        self->tokens = calloc((size_t)config->token_cache, sizeof *self->tokens);
        assert(self->tokens);
    }
    self->apikeys = zhashx_new();
    zhashx_set_destructor(self->apikeys, (zhashx_destructor_fn *)zstr_free);
    self->jwks_age = vz_metrics_gauge(metrics, "vz_gateway_jwks_age_seconds",
                                      "Age of the cached JWKS; -1 before the first fetch", NULL);
    vz_series_set(self->jwks_age, -1);
    self->jwks_keys =
        vz_metrics_gauge(metrics, "vz_gateway_jwks_keys", "Keys in the cached JWKS", NULL);
    const char *fetch_help = "JWKS fetches from auth.jwks, by result";
    self->fetch_ok =
        vz_metrics_counter(metrics, "vz_gateway_jwks_fetches_total", fetch_help, "result=ok");
    self->fetch_err =
        vz_metrics_counter(metrics, "vz_gateway_jwks_fetches_total", fetch_help, "result=error");
    const char *token_help = "Verified-token cache lookups, by result";
    self->token_hits =
        vz_metrics_counter(metrics, "vz_gateway_token_cache_total", token_help, "result=hit");
    self->token_misses =
        vz_metrics_counter(metrics, "vz_gateway_token_cache_total", token_help, "result=miss");
    const char *apikey_help = "API-key cache lookups, by result";
    self->apikey_hits =
        vz_metrics_counter(metrics, "vz_gateway_apikey_cache_total", apikey_help, "result=hit");
    self->apikey_misses =
        vz_metrics_counter(metrics, "vz_gateway_apikey_cache_total", apikey_help, "result=miss");
    return self;
}

void gw_edge_destroy(gw_edge_t **self_p)
{
    assert(self_p);
    gw_edge_t *self = *self_p;
    if (!self)
        return;
    s_keys_unref(&self->keys);
    vz_jwt_keyset_destroy(&self->empty);
    free(self->fetch.reply);
    free(self->tokens);
    zhashx_destroy(&self->apikeys);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

// --------------------------------------------------------------------------
//  JWKS

static void s_fetch_done(gw_upcall_t *call);

//  Lock held: prepare the fetch; the caller submits it after unlocking.
static void s_fetch_begin_locked(gw_edge_t *self)
{
    self->fetching = true;
    self->attempt_ms = vz_clock_mono_ms();
    gw_upcall_t *call = &self->fetch;
    free(call->reply);
    gw_upcall_reset(call);
    call->kind = GW_UPCALL_FORWARD;
    vz_strlcpy(call->service, VZ_AUTH_SERVICE, sizeof call->service);
    vz_strlcpy(call->method, "jwks", sizeof call->method);
    call->timeout_ms = self->config.fetch_timeout_ms;
    call->idempotent = true;
    call->done = s_fetch_done;
    call->arg = self;
}

static void s_fetch_submit(gw_edge_t *self)
{
    if (gw_upstream_submit(self->upstream, &self->fetch) < 0) {
        //  Only after gw_upstream_close: end it here, on this thread.
        self->fetch.result = GW_UPCALL_ERROR;
        vz_strlcpy(self->fetch.error_code, VZ_ERR_UNAVAILABLE, sizeof self->fetch.error_code);
        s_fetch_done(&self->fetch);
    }
}

static void s_fetch_done(gw_upcall_t *call)
{
    gw_edge_t *self = call->arg;
    vz_jwt_keyset_t *set = NULL;
    if (call->result == GW_UPCALL_REPLY && call->reply_len > 0)
        set = vz_jwt_keyset_from_jwks((const char *)call->reply, call->reply_len);
    s_keys_t *fresh = NULL;
    if (set && vz_jwt_keyset_size(set) > 0) {
        fresh = calloc(1, sizeof *fresh);
        assert(fresh);
        atomic_init(&fresh->refs, 1);
        fresh->set = set;
        fresh->doc = (char *)call->reply; //  NUL-terminated by upstream.c
        fresh->doc_len = call->reply_len;
        call->reply = NULL;
        set = NULL;
    }
    vz_jwt_keyset_destroy(&set);
    free(call->reply);
    call->reply = NULL;

    int64_t now = vz_clock_mono_ms();
    pthread_mutex_lock(&self->lock);
    s_keys_t *old = NULL;
    if (fresh) {
        old = self->keys;
        self->keys = fresh;
        self->gen++;
        self->fetched_ms = now;
        self->failed_ms = 0;
    } else
        self->failed_ms = now;
    self->ended_ms = now;
    self->fetching = false;
    gw_edge_waiter_t *waiters = self->waiters;
    self->waiters = NULL;
    size_t count = self->keys ? vz_jwt_keyset_size(self->keys->set) : 0;
    pthread_mutex_unlock(&self->lock);
    s_keys_unref(&old);

    if (fresh) {
        vz_series_inc(self->fetch_ok);
        vz_series_set(self->jwks_keys, (double)count);
        vz_series_set(self->jwks_age, 0);
    } else {
        vz_series_inc(self->fetch_err);
        vz_warn(NULL, "unable to fetch JWKS: keeping the cached keys", "reason",
                call->result == GW_UPCALL_ERROR ? call->error_code : "invalid JWKS document");
    }
    //  fn may free the waiter (the request completes), so read next first.
    for (gw_edge_waiter_t *w = waiters, *next; w; w = next) {
        next = w->next;
        w->fn(w);
    }
}

//  Lock held. Fetches are spaced from the end of the previous one, so a
//  fetch slower than the interval (auth away: it runs to its deadline)
//  cannot be followed by another at once, for ever.
static bool s_spaced_locked(const gw_edge_t *self, int64_t now)
{
    int64_t last = self->attempt_ms > self->ended_ms ? self->attempt_ms : self->ended_ms;
    //  Without any key every JWT is refused: try again sooner (a gateway
    //  that started before auth, or met a broker auth had not found yet).
    int space = !self->keys && self->failed_ms && self->config.retry_ms > 0 &&
                        self->config.retry_ms < self->config.min_interval_ms
                    ? self->config.retry_ms
                    : self->config.min_interval_ms;
    return !last || now - last >= space;
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    gw_edge_t *self = arg;
    int64_t now = vz_clock_mono_ms();
    bool start = false;
    pthread_mutex_lock(&self->lock);
    if (self->fetched_ms)
        vz_series_set(self->jwks_age, (double)(now - self->fetched_ms) / 1000.0);
    bool spaced = s_spaced_locked(self, now);
    bool stale = !self->keys || now - self->fetched_ms >= self->config.refresh_ms;
    if (!self->fetching && spaced && stale) {
        s_fetch_begin_locked(self);
        start = true;
    }
    pthread_mutex_unlock(&self->lock);
    if (start)
        s_fetch_submit(self);
    return 0;
}

int gw_edge_attach(gw_edge_t *self, zloop_t *loop)
{
    assert(self && loop);
    int period =
        self->config.min_interval_ms < TIMER_MAX_MS ? self->config.min_interval_ms : TIMER_MAX_MS;
    if (zloop_timer(loop, (size_t)(period > 10 ? period : 10), 0, s_on_timer, self) < 0)
        return -ENOMEM;
    s_on_timer(loop, 0, self);
    return 0;
}

char *gw_edge_jwks_document(gw_edge_t *self, size_t *len_p)
{
    assert(self && len_p);
    char *copy = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->keys) {
        copy = malloc(self->keys->doc_len + 1);
        assert(copy);
        memcpy(copy, self->keys->doc, self->keys->doc_len + 1);
        *len_p = self->keys->doc_len;
    }
    pthread_mutex_unlock(&self->lock);
    return copy;
}

static void s_identity_from(const vz_jwt_claims_t *c, gw_edge_identity_t *id)
{
    memset(id, 0, sizeof *id);
    //  Client-credentials tokens carry client_id (RFC 9068): contract B "oauth".
    id->auth = c->client_id[0] ? VZ_AUTHCTX_BY_OAUTH : VZ_AUTHCTX_BY_JWT;
    vz_strlcpy(id->sub, c->sub, sizeof id->sub);
    vz_strlcpy(id->scope, c->scope, sizeof id->scope);
    //  Only the paid tier is taken from the token; anything else is free.
    vz_strlcpy(id->tier,
               strcmp(c->tier, VZ_AUTHCTX_TIER_PREMIUM) == 0 ? VZ_AUTHCTX_TIER_PREMIUM
                                                             : VZ_AUTHCTX_TIER_FREE,
               sizeof id->tier);
    id->exp = c->exp;
}

static s_token_slot_t *s_slot(gw_edge_t *self, const uint8_t *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return &self->tokens[h % (uint64_t)self->config.token_cache];
}

int gw_edge_jwt_verify(gw_edge_t *self, const char *token, size_t len, gw_edge_identity_t *id,
                       gw_edge_waiter_t *waiter)
{
    assert(self && token && id);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    int64_t now_s = vz_now_ms() / 1000;
    if (self->tokens) {
        SHA256((const unsigned char *)token, len, digest);
        pthread_mutex_lock(&self->lock);
        s_token_slot_t *slot = s_slot(self, digest);
        bool hit = slot->gen == self->gen && slot->gen != 0 &&
                   memcmp(slot->digest, digest, sizeof digest) == 0 &&
                   now_s <= slot->id.exp + self->config.leeway_s;
        if (hit)
            *id = slot->id;
        pthread_mutex_unlock(&self->lock);
        vz_series_inc(hit ? self->token_hits : self->token_misses);
        if (hit)
            return 0;
    }
    vz_jwt_verify_opts_t opts = {.issuer = self->config.issuer,
                                 .audience = self->config.audience,
                                 .leeway_s = self->config.leeway_s};
    //  Twice at most: a key set that arrives between the check and the
    //  lock is tried once more before waiting for yet another fetch.
    for (int round = 0; round < 2; round++) {
        pthread_mutex_lock(&self->lock);
        s_keys_t *keys = self->keys;
        if (keys)
            atomic_fetch_add(&keys->refs, 1);
        uint64_t gen = self->gen;
        pthread_mutex_unlock(&self->lock);

        vz_jwt_claims_t claims;
        int rc = vz_jwt_verify(keys ? keys->set : self->empty, token, len, &opts, &claims);
        s_keys_unref(&keys);
        if (rc == 0) {
            s_identity_from(&claims, id);
            if (self->tokens) {
                pthread_mutex_lock(&self->lock);
                s_token_slot_t *slot = s_slot(self, digest);
                memcpy(slot->digest, digest, sizeof digest);
                slot->gen = gen;
                slot->id = *id;
                pthread_mutex_unlock(&self->lock);
            }
            return 0;
        }
        if (rc != VZ_JWT_EKID)
            return rc;
        //  Unknown kid (or no keys at all): maybe the keys rotated.
        bool had_keys = gen != 0;
        bool start = false;
        pthread_mutex_lock(&self->lock);
        if (self->gen != gen) {
            pthread_mutex_unlock(&self->lock);
            continue;
        }
        bool spaced = s_spaced_locked(self, vz_clock_mono_ms());
        if (!self->fetching && spaced && waiter) {
            s_fetch_begin_locked(self);
            start = true;
        }
        if (self->fetching && waiter) {
            waiter->next = self->waiters;
            self->waiters = waiter;
            rc = GW_EDGE_EWAIT;
        } else if (!had_keys)
            rc = GW_EDGE_EUNAVAIL;
        pthread_mutex_unlock(&self->lock);
        if (start)
            s_fetch_submit(self);
        return rc;
    }
    return VZ_JWT_EKID;
}

// --------------------------------------------------------------------------
//  API keys

static void s_key_digest(const char *key, char *hex)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), digest);
    s_hex(digest, sizeof digest, hex);
}

int gw_edge_apikey_lookup(gw_edge_t *self, const char *key, bool *valid, gw_edge_identity_t *id)
{
    assert(self && key && valid && id);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    s_key_digest(key, hex);
    int found = 0;
    pthread_mutex_lock(&self->lock);
    s_apikey_t *entry = zhashx_lookup(self->apikeys, hex);
    if (entry && entry->expires_ms <= vz_clock_mono_ms()) {
        zhashx_delete(self->apikeys, hex);
        entry = NULL;
    }
    if (entry) {
        *valid = entry->valid;
        *id = entry->id;
        found = 1;
    }
    pthread_mutex_unlock(&self->lock);
    vz_series_inc(found ? self->apikey_hits : self->apikey_misses);
    return found;
}

void gw_edge_apikey_store(gw_edge_t *self, const char *key, bool valid,
                          const gw_edge_identity_t *id)
{
    assert(self && key);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    s_key_digest(key, hex);
    s_apikey_t *entry = calloc(1, sizeof *entry);
    assert(entry);
    entry->valid = valid;
    if (valid && id)
        entry->id = *id;
    entry->id.auth = VZ_AUTHCTX_BY_API_KEY;
    int64_t now = vz_clock_mono_ms();
    entry->expires_ms =
        now + (valid ? self->config.apikey_ttl_ms : self->config.apikey_negative_ms);
    pthread_mutex_lock(&self->lock);
    if (zhashx_size(self->apikeys) >= (size_t)self->config.apikey_cache_max) {
        //  Full: drop what expired; if that is not enough, start over
        //  (a burst of random keys must not grow memory).
        zlistx_t *keys = zhashx_keys(self->apikeys);
        for (const char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
            s_apikey_t *e = zhashx_lookup(self->apikeys, k);
            if (e && e->expires_ms <= now)
                zhashx_delete(self->apikeys, k);
        }
        zlistx_destroy(&keys);
        if (zhashx_size(self->apikeys) >= (size_t)self->config.apikey_cache_max)
            zhashx_purge(self->apikeys);
    }
    zhashx_update(self->apikeys, hex, entry);
    pthread_mutex_unlock(&self->lock);
}
