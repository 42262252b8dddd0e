/*  gw_deprecation - API versions: deprecation headers, sunset, callers of old routes
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gw_deprecation.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_clock.h"
#include "vz_common.h"
#include "vz_json.h"

#define DATE_MIN_S 86400              //  1970-01-02: 0 means "none" in a route
#define DATE_MAX_S 253402300799       //  9999-12-31T23:59:59Z: four-digit years
#define REPORT_MAX (32 * 1024 * 1024) //  128 routes x 1000 clients x ~160 bytes fit

// --------------------------------------------------------------------------
//  Dates and headers

int gw_deprecation_parse_date(const char *text, int64_t *out_s)
{
    assert(text && out_s);
    int64_t us = 0;
    if (vz_clock_parse_utc(text, &us) < 0 || us / 1000000 < DATE_MIN_S || us / 1000000 > DATE_MAX_S)
        return -EINVAL;
    *out_s = us / 1000000;
    return 0;
}

void gw_deprecation_sf_date(int64_t s, char *buf, size_t n)
{
    assert(buf && n > 0);
    snprintf(buf, n, "@%lld", (long long)s);
}

//  strftime's %a and %b follow the locale; HTTP dates are always English.
int gw_deprecation_http_date(int64_t s, char *buf, size_t n)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    assert(buf && n > 0);
    struct tm tm;
    time_t t = (time_t)s;
    if (s < 0 || s > DATE_MAX_S || !gmtime_r(&t, &tm))
        return -EINVAL;
    int w = snprintf(buf, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return w > 0 && (size_t)w < n ? 0 : -EINVAL;
}

int gw_deprecation_link(const char *successor, const char *doc, char *buf, size_t n)
{
    assert(successor && doc && buf && n > 0);
    int w = 0;
    if (*successor && *doc)
        w = snprintf(
            buf, n,
            "<%s>; rel=\"successor-version\", <%s>; rel=\"deprecation\"; type=\"text/html\"",
            successor, doc);
    else if (*successor)
        w = snprintf(buf, n, "<%s>; rel=\"successor-version\"", successor);
    else if (*doc)
        w = snprintf(buf, n, "<%s>; rel=\"deprecation\"; type=\"text/html\"", doc);
    else
        buf[0] = '\0';
    return w >= 0 && (size_t)w < n ? 0 : -ENAMETOOLONG;
}

bool gw_deprecation_ref_ok(const char *ref)
{
    assert(ref);
    if (ref[0] != '/' && strncmp(ref, "https://", 8) != 0 && strncmp(ref, "http://", 7) != 0)
        return false;
    //  Inside <...> of a Link value: nothing that could end it or start another.
    for (const char *c = ref; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || strchr("<>\",\\", *c))
            return false;
    return true;
}

bool gw_deprecation_sunset(const gw_route_t *route, int64_t now_s)
{
    assert(route);
    return route->sunset_s > 0 && now_s >= route->sunset_s;
}

void gw_deprecation_client(const char *kid, const char *sub, const char *ip, char *buf, size_t n)
{
    assert(buf && n > 0);
    if (kid && *kid)
        snprintf(buf, n, "key:%s", kid);
    else if (sub && *sub)
        snprintf(buf, n, "sub:%s", sub);
    else
        snprintf(buf, n, "ip:%s", ip && *ip ? ip : "unknown");
}

// --------------------------------------------------------------------------
//  Callers per route

#define NONE UINT32_MAX //  end of a hash chain

typedef struct {
    char client[GW_DEPRECATION_CLIENT_MAX]; //  client key
    uint64_t calls;                         //  calls counted (an upper bound)
    uint64_t overcount;                     //  of which possibly another client's
    int64_t first_s;                        //  first call, Unix s
    int64_t last_s;                         //  last call, Unix s
    uint32_t next;                          //  next client in its hash chain, NONE = last
} s_client_t;

//  A known client is found through its hash chain (a repeat caller is the
//  common case, under the one lock); only a newcomer to a full route scans
//  for the least busy client to replace.
typedef struct {
    char route[VZ_NAME_MAX]; //  route name
    uint64_t calls;          //  every call, exact
    uint64_t replaced;       //  clients that gave their place to a new one
    size_t count;            //  clients in use
    s_client_t *clients;     //  heap array of clients_max
    uint32_t *heads;         //  hash chains: first client of each, NONE = empty
} s_route_t;

struct gw_deprecations_t {
    pthread_mutex_t lock;           //  guards everything below
    size_t clients_max;             //  clients per route
    uint32_t mask;                  //  hash chains per route - 1 (a power of two)
    size_t count;                   //  routes in use
    s_route_t route[GW_ROUTES_MAX]; //  recorded routes
};

gw_deprecations_t *gw_deprecations_new(size_t clients_max)
{
    assert(clients_max >= 1 && clients_max <= GW_DEPRECATION_CLIENTS_MAX);
    gw_deprecations_t *self = calloc(1, sizeof *self);
    assert(self);
    pthread_mutex_init(&self->lock, NULL);
    self->clients_max = clients_max;
    uint32_t chains = 16;
    while (chains < 2 * clients_max)
        chains *= 2;
    self->mask = chains - 1;
    return self;
}

void gw_deprecations_destroy(gw_deprecations_t **self_p)
{
    assert(self_p);
    gw_deprecations_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        free(self->route[i].clients);
        free(self->route[i].heads);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  Route name's record, made on first use; NULL when GW_ROUTES_MAX are.
static s_route_t *s_route(gw_deprecations_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->route[i].route, name) == 0)
            return &self->route[i];
    if (self->count == GW_ROUTES_MAX)
        return NULL;
    s_route_t *r = &self->route[self->count++];
    vz_strlcpy(r->route, name, sizeof r->route);
    r->clients = calloc(self->clients_max, sizeof *r->clients);
    r->heads = malloc((self->mask + 1) * sizeof *r->heads);
    assert(r->clients && r->heads);
    memset(r->heads, 0xff, (self->mask + 1) * sizeof *r->heads); //  all NONE
    return r;
}

//  FNV-1a: short keys, no adversary gain beyond a longer chain.
static uint32_t s_hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

//  Unlink client i from the chain of its key.
static void s_unlink(gw_deprecations_t *self, s_route_t *r, uint32_t i)
{
    uint32_t *link = &r->heads[s_hash(r->clients[i].client) & self->mask];
    while (*link != i) {
        assert(*link != NONE);
        link = &r->clients[*link].next;
    }
    *link = r->clients[i].next;
}

//  Space-saving: the client's entry, else a free one, else the one with
//  the fewest calls (the oldest of those), handed over to the newcomer.
static s_client_t *s_client(gw_deprecations_t *self, s_route_t *r, const char *client,
                            int64_t now_s)
{
    uint32_t chain = s_hash(client) & self->mask;
    for (uint32_t i = r->heads[chain]; i != NONE; i = r->clients[i].next)
        if (strcmp(r->clients[i].client, client) == 0)
            return &r->clients[i];
    uint32_t slot = 0;
    uint64_t inherited = 0;
    if (r->count < self->clients_max)
        slot = (uint32_t)r->count++;
    else {
        for (uint32_t i = 1; i < r->count; i++) {
            const s_client_t *c = &r->clients[i], *min = &r->clients[slot];
            if (c->calls < min->calls || (c->calls == min->calls && c->last_s < min->last_s))
                slot = i;
        }
        inherited = r->clients[slot].calls;
        r->replaced++;
        s_unlink(self, r, slot);
    }
    s_client_t *c = &r->clients[slot];
    vz_strlcpy(c->client, client, sizeof c->client);
    c->calls = c->overcount = inherited;
    c->first_s = now_s;
    c->next = r->heads[chain];
    r->heads[chain] = slot;
    return c;
}

void gw_deprecations_record(gw_deprecations_t *self, const char *route, const char *client,
                            int64_t now_s)
{
    assert(self && route && client);
    //  Cut as it will be stored, so that a long key finds itself again.
    char key[GW_DEPRECATION_CLIENT_MAX];
    snprintf(key, sizeof key, "%s", client);
    pthread_mutex_lock(&self->lock);
    s_route_t *r = s_route(self, route);
    if (r) {
        r->calls++;
        s_client_t *c = s_client(self, r, key, now_s);
        c->calls++;
        c->last_s = now_s;
    }
    pthread_mutex_unlock(&self->lock);
}

static int s_by_calls(const void *a, const void *b)
{
    const s_client_t *x = a, *y = b;
    return x->calls < y->calls ? 1 : x->calls > y->calls ? -1 : strcmp(x->client, y->client);
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_route_t *)a)->route, ((const s_route_t *)b)->route);
}

static void s_write_date(vz_json_writer_t *w, const char *key, int64_t s)
{
    struct tm tm;
    time_t t = (time_t)s;
    char text[32] = "";
    if (gmtime_r(&t, &tm))
        strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    vz_json_write_kv_string(w, key, text);
}

char *gw_deprecations_report(gw_deprecations_t *self, size_t *len)
{
    assert(self && len);
    vz_json_writer_t *w = vz_json_writer_new(REPORT_MAX);
    assert(w);
    pthread_mutex_lock(&self->lock);
    //  Sorted in place: the order of entries does not matter to recording.
    qsort(self->route, self->count, sizeof self->route[0], s_by_name);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "clients_max", (int64_t)self->clients_max);
    vz_json_write_key(w, "routes");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->count; i++) {
        s_route_t *r = &self->route[i];
        //  A sorted copy: the slots are what the hash chains point at.
        s_client_t *sorted = malloc((r->count ? r->count : 1) * sizeof *sorted);
        assert(sorted);
        memcpy(sorted, r->clients, r->count * sizeof *sorted);
        qsort(sorted, r->count, sizeof *sorted, s_by_calls);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "route", r->route);
        vz_json_write_kv_int(w, "calls", (int64_t)r->calls);
        vz_json_write_kv_int(w, "replaced", (int64_t)r->replaced);
        vz_json_write_key(w, "clients");
        vz_json_write_array_begin(w);
        for (size_t k = 0; k < r->count; k++) {
            const s_client_t *c = &sorted[k];
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "client", c->client);
            vz_json_write_kv_int(w, "calls", (int64_t)c->calls);
            vz_json_write_kv_int(w, "overcount", (int64_t)c->overcount);
            s_write_date(w, "first_seen", c->first_s);
            s_write_date(w, "last_seen", c->last_s);
            vz_json_write_object_end(w);
        }
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
        free(sorted);
    }
    pthread_mutex_unlock(&self->lock);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    char *doc = vz_json_writer_take(w, len);
    vz_json_writer_destroy(&w);
    return doc;
}
