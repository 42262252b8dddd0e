/*  breaker - one circuit breaker per upstream service
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "breaker.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_proto.h"

#define WINDOW_MAX 64

struct gw_breaker_t {
    pthread_mutex_t lock;              //  guards everything below
    gw_breaker_state_t state;          //  current state (open turns half-open lazily)
    int consecutive;                   //  failures in a row
    uint64_t outcomes;                 //  last WINDOW_MAX outcomes, bit set = failure
    int seen;                          //  outcomes recorded, capped at the window
    int64_t open_until;                //  open: when probes may start
    int probing;                       //  half-open: probes in flight
    const gw_breaker_config_t *config; //  the set's
    vz_series_t *gauge;                //  vz_gateway_breaker_state
    vz_series_t *to[3];                //  transitions to each state
};

struct gw_breakers_t {
    gw_breaker_config_t config; //  copy
    vz_metrics_t *metrics;      //  borrowed
    pthread_mutex_t lock;       //  guards map
    zhashx_t *map;              //  service -> gw_breaker_t *
};

static void s_breaker_free(void **item)
{
    gw_breaker_t *b = *item;
    if (b) {
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
    *item = NULL;
}

gw_breakers_t *gw_breakers_new(const gw_breaker_config_t *config, vz_metrics_t *metrics)
{
    assert(config && metrics);
    gw_breakers_t *self = calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    if (self->config.window > WINDOW_MAX)
        self->config.window = WINDOW_MAX;
    if (self->config.probes < 1)
        self->config.probes = 1;
    self->metrics = metrics;
    pthread_mutex_init(&self->lock, NULL);
    self->map = zhashx_new();
    zhashx_set_destructor(self->map, s_breaker_free);
    return self;
}

void gw_breakers_destroy(gw_breakers_t **self_p)
{
    assert(self_p);
    gw_breakers_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->map);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

gw_breaker_t *gw_breakers_get(gw_breakers_t *self, const char *service)
{
    assert(self && service);
    pthread_mutex_lock(&self->lock);
    gw_breaker_t *b = zhashx_lookup(self->map, service);
    if (!b) {
        b = calloc(1, sizeof *b);
        assert(b);
        pthread_mutex_init(&b->lock, NULL);
        b->config = &self->config;
        char labels[128];
        snprintf(labels, sizeof labels, "service=%s", service);
        b->gauge =
            vz_metrics_gauge(self->metrics, "vz_gateway_breaker_state",
                             "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open", labels);
        static const char *const names[] = {"closed", "half_open", "open"};
        for (int i = 0; i < 3; i++) {
            snprintf(labels, sizeof labels, "service=%s,to=%s", service, names[i]);
            b->to[i] = vz_metrics_counter(self->metrics, "vz_gateway_breaker_transitions_total",
                                          "Circuit breaker state changes, by service and new state",
                                          labels);
        }
        zhashx_insert(self->map, service, b);
    }
    pthread_mutex_unlock(&self->lock);
    return b;
}

//  Lock held.
static void s_move(gw_breaker_t *self, gw_breaker_state_t to, int64_t now)
{
    if (self->state == to)
        return;
    self->state = to;
    if (to == GW_BREAKER_OPEN)
        self->open_until = now + self->config->cooldown_ms;
    if (to != GW_BREAKER_HALF_OPEN)
        self->probing = 0;
    if (to == GW_BREAKER_CLOSED) {
        self->consecutive = 0;
        self->outcomes = 0;
        self->seen = 0;
    }
    vz_series_set(self->gauge, (double)to);
    vz_series_inc(self->to[to]);
}

//  Lock held: open turns half-open once the cooldown is over.
static void s_tick(gw_breaker_t *self, int64_t now)
{
    if (self->state == GW_BREAKER_OPEN && now >= self->open_until)
        s_move(self, GW_BREAKER_HALF_OPEN, now);
}

bool gw_breaker_allow(gw_breaker_t *self, int64_t now_ms, int *retry_after_s)
{
    assert(self && retry_after_s);
    pthread_mutex_lock(&self->lock);
    s_tick(self, now_ms);
    bool ok = true;
    if (self->state == GW_BREAKER_OPEN)
        ok = false;
    else if (self->state == GW_BREAKER_HALF_OPEN) {
        ok = self->probing < self->config->probes;
        if (ok)
            self->probing++;
    }
    int64_t wait = self->state == GW_BREAKER_OPEN ? self->open_until - now_ms : 1000;
    *retry_after_s = (int)((wait + 999) / 1000);
    if (*retry_after_s < 1)
        *retry_after_s = 1;
    pthread_mutex_unlock(&self->lock);
    return ok;
}

static int s_popcount(uint64_t v, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++)
        count += (int)((v >> i) & 1u);
    return count;
}

void gw_breaker_record(gw_breaker_t *self, bool failure, int64_t now_ms)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    s_tick(self, now_ms);
    if (self->state == GW_BREAKER_HALF_OPEN) {
        //  A probe's verdict decides alone.
        s_move(self, failure ? GW_BREAKER_OPEN : GW_BREAKER_CLOSED, now_ms);
    } else if (self->state == GW_BREAKER_CLOSED) {
        int window = self->config->window;
        self->outcomes = (self->outcomes << 1) | (failure ? 1u : 0u);
        if (self->seen < window)
            self->seen++;
        self->consecutive = failure ? self->consecutive + 1 : 0;
        int failed = s_popcount(self->outcomes, window);
        if (self->consecutive >= self->config->failures ||
            (self->seen >= window && failed * 100 >= self->config->ratio_pct * window))
            s_move(self, GW_BREAKER_OPEN, now_ms);
    }
    //  Open: a late outcome of a call let through earlier changes nothing.
    pthread_mutex_unlock(&self->lock);
}

gw_breaker_state_t gw_breaker_state(gw_breaker_t *self, int64_t now_ms)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    s_tick(self, now_ms);
    gw_breaker_state_t state = self->state;
    pthread_mutex_unlock(&self->lock);
    return state;
}

bool gw_breaker_is_failure(const char *error_code)
{
    static const char *const failures[] = {VZ_ERR_TIMEOUT,     VZ_ERR_NO_WORKER,
                                           VZ_ERR_UNAVAILABLE, VZ_ERR_OVERLOADED,
                                           VZ_ERR_WORKER_LOST, VZ_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++)
        if (strcmp(error_code, failures[i]) == 0)
            return true;
    return false;
}
