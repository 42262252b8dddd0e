/*  lease - rate-limit tokens taken from the limiter in small leases
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "lease.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>

//  Lease checks in flight per caller at most: enough for a caller on many
//  connections to keep its requests fed, few enough that a burst followed
//  by silence strands at most this many leases' tokens.
#define S_ASKS_MAX 4

typedef struct {
    uint64_t tokens;         //  leased, not yet spent
    uint64_t used;           //  spent from the current lease
    uint64_t want;           //  size of the next lease
    uint64_t cap;            //  largest lease for this caller's policy
    int64_t expires_ms;      //  the lease's tokens are void after this
    int asking;              //  checks for more than one token in flight
    vz_rl_decision_t answer; //  the limiter's answer that granted the lease
} s_lease_t;

struct gw_leases_t {
    pthread_mutex_t lock; //  guards leases
    zhashx_t *leases;     //  caller key -> s_lease_t (owned)
    uint64_t max_tokens;  //  VZ_GATEWAY_RATELIMIT_LEASE
    int ttl_ms;           //  lifetime of a lease
    size_t max_entries;   //  callers remembered at most
};

static void s_free(void **item_p)
{
    free(*item_p);
    *item_p = NULL;
}

gw_leases_t *gw_leases_new(int max_tokens, int ttl_ms, int max_entries)
{
    if (max_tokens < 2 || ttl_ms <= 0 || max_entries <= 0)
        return NULL;
    gw_leases_t *self = calloc(1, sizeof *self);
    assert(self);
    pthread_mutex_init(&self->lock, NULL);
    self->leases = zhashx_new();
    assert(self->leases);
    zhashx_set_destructor(self->leases, s_free);
    self->max_tokens = (uint64_t)max_tokens;
    self->ttl_ms = ttl_ms;
    self->max_entries = (size_t)max_entries;
    return self;
}

void gw_leases_destroy(gw_leases_t **self_p)
{
    assert(self_p);
    gw_leases_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->leases);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

bool gw_leases_take(gw_leases_t *self, const char *key, int64_t now_ms, vz_rl_decision_t *out,
                    uint64_t *want_p)
{
    assert(self && key && out && want_p);
    pthread_mutex_lock(&self->lock);
    s_lease_t *lease = zhashx_lookup(self->leases, key);
    *want_p = 1;
    bool served = false;
    if (lease && lease->tokens > 0 && now_ms < lease->expires_ms) {
        lease->tokens--;
        lease->used++;
        *out = lease->answer;
        out->remaining += lease->tokens;
        served = true;
    } else if (lease) {
        if (now_ms < lease->expires_ms) //  spent before it expired: the caller is faster
            lease->want = lease->want * 2 < lease->cap ? lease->want * 2 : lease->cap;
        else if (lease->tokens > 0) { //  expired with tokens left: lease only what was used
            lease->want = lease->used > 1 ? lease->used : 1;
            lease->tokens = 0;
        }
        //  A few leases asked for at a time per caller: otherwise every
        //  request arriving while the last lease is spent would ask for one.
        if (lease->want > 1 && lease->asking < S_ASKS_MAX) {
            *want_p = lease->want;
            lease->asking++;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return served;
}

//  Bounded memory: forget expired leases, and everyone if that is not enough.
static void s_make_room(gw_leases_t *self, int64_t now_ms)
{
    if (zhashx_size(self->leases) < self->max_entries)
        return;
    zlistx_t *keys = zhashx_keys(self->leases);
    for (const char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
        s_lease_t *lease = zhashx_lookup(self->leases, k);
        if (lease->expires_ms <= now_ms)
            zhashx_delete(self->leases, k);
    }
    zlistx_destroy(&keys);
    if (zhashx_size(self->leases) >= self->max_entries)
        zhashx_purge(self->leases);
}

void gw_leases_grant(gw_leases_t *self, const char *key, uint64_t n, vz_rl_decision_t *rl,
                     int64_t now_ms)
{
    assert(self && key && rl && n >= 1);
    pthread_mutex_lock(&self->lock);
    s_lease_t *lease = zhashx_lookup(self->leases, key);
    if (!lease) {
        s_make_room(self, now_ms);
        lease = calloc(1, sizeof *lease);
        assert(lease);
        lease->want = 1;
        zhashx_insert(self->leases, key, lease);
    }
    //  1 % of the window's limit: a policy under 200 a window is never leased.
    uint64_t cap = rl->limit / 100;
    lease->cap = cap < self->max_tokens ? cap : self->max_tokens;
    if (lease->cap < 1)
        lease->cap = 1;
    if (now_ms >= lease->expires_ms) {
        lease->tokens = 0;
        lease->used = 0;
    }
    //  Concurrent checks of one caller add up; every token is the limiter's.
    if (n > 1 && lease->asking > 0)
        lease->asking--;
    lease->tokens += n - 1;
    lease->used += 1;
    lease->expires_ms = now_ms + self->ttl_ms;
    if (lease->want > lease->cap)
        lease->want = lease->cap;
    //  The limiter's remaining leaves out what is leased here, which this
    //  caller still has: count it in the headers.
    lease->answer = *rl;
    rl->remaining += lease->tokens;
    pthread_mutex_unlock(&self->lock);
}

void gw_leases_shrink(gw_leases_t *self, const char *key)
{
    assert(self && key);
    pthread_mutex_lock(&self->lock);
    s_lease_t *lease = zhashx_lookup(self->leases, key);
    if (lease) {
        lease->want = 1;
        if (lease->asking > 0)
            lease->asking--;
    }
    pthread_mutex_unlock(&self->lock);
}

void gw_leases_abandon(gw_leases_t *self, const char *key)
{
    assert(self && key);
    pthread_mutex_lock(&self->lock);
    s_lease_t *lease = zhashx_lookup(self->leases, key);
    if (lease && lease->asking > 0)
        lease->asking--;
    pthread_mutex_unlock(&self->lock);
}
