/*  vz_endpoints - a broker endpoint list, DNS names expanded to every address
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_endpoints.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

//  Append ep unless present. 0 or -EINVAL when full or too long.
static int s_add(vz_endpoints_t *out, const char *ep)
{
    if (vz_endpoints_has(out, ep))
        return 0;
    if (out->n == VZ_ENDPOINTS_MAX || strlen(ep) >= VZ_PATH_MAX)
        return -EINVAL;
    vz_strlcpy(out->ep[out->n++], ep, VZ_PATH_MAX);
    return 0;
}

static bool s_is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return strcmp(host, "*") == 0 || inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

//  Split tcp://HOST:PORT: host copied into host (n bytes), *port points
//  into ep. 1 when HOST is a name, 0 when an address ("*", a literal or
//  [v6]), -EINVAL when ep is not tcp://HOST:PORT.
static int s_split(const char *ep, char *host, size_t n, const char **port)
{
    const char *colon = strrchr(ep, ':');
    if (strncmp(ep, "tcp://", 6) != 0 || !colon || colon <= ep + 6 || !colon[1] ||
        (size_t)(colon - ep - 6) >= n)
        return -EINVAL;
    memcpy(host, ep + 6, (size_t)(colon - ep - 6));
    host[colon - ep - 6] = '\0';
    *port = colon + 1;
    return !(*host == '[' || s_is_literal(host));
}

//  Every address of host (IPv4 first, IPv6 only when there is no IPv4),
//  as tcp://ADDR:port. 1 when it resolved, 0 when not, -EINVAL when full.
static int s_expand(vz_endpoints_t *out, const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return 0;
    bool v4 = false;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        v4 = v4 || a->ai_family == AF_INET;
    int rc = 1;
    for (struct addrinfo *a = res; a && rc > 0; a = a->ai_next) {
        char addr[INET6_ADDRSTRLEN], ep[VZ_PATH_MAX];
        if (a->ai_family == AF_INET && v4)
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, addr, sizeof addr);
        else if (a->ai_family == AF_INET6 && !v4)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, addr, sizeof addr);
        else
            continue;
        snprintf(ep, sizeof ep, a->ai_family == AF_INET ? "tcp://%s:%s" : "tcp://[%s]:%s", addr,
                 port);
        if (s_add(out, ep) < 0)
            rc = -EINVAL;
    }
    freeaddrinfo(res);
    return rc;
}

static int s_compare(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int vz_endpoints_resolve(const char *list, vz_endpoints_t *out)
{
    assert(list && out);
    memset(out, 0, sizeof *out);
    char *copy = strdup(list);
    assert(copy);
    char *save = NULL;
    int rc = 0;
    for (char *ep = strtok_r(copy, ", ", &save); ep && rc == 0; ep = strtok_r(NULL, ", ", &save)) {
        if (strncmp(ep, "tcp://", 6) != 0) {
            rc = strstr(ep, "://") ? s_add(out, ep) : -EINVAL;
            continue;
        }
        char host[VZ_PATH_MAX];
        const char *port = NULL;
        int kind = s_split(ep, host, sizeof host, &port);
        if (kind < 0) {
            rc = kind;
            continue;
        }
        bool name = kind == 1;
        int found = name ? s_expand(out, host, port) : 0;
        out->names = out->names || name;
        out->unresolved = out->unresolved || (name && found == 0);
        if (found < 0)
            rc = found;
        else if (found == 0)
            rc = s_add(out, ep);
    }
    free(copy);
    if (rc == 0 && out->n == 0)
        rc = -EINVAL;
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    qsort(out->ep, out->n, sizeof out->ep[0], s_compare);
    return 0;
}

bool vz_endpoints_has(const vz_endpoints_t *set, const char *ep)
{
    assert(set && ep);
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->ep[i], ep) == 0)
            return true;
    return false;
}

struct vz_resolver_t {
    pthread_t thread;       //  the resolving thread
    pthread_mutex_t lock;   //  guards set, stop
    pthread_cond_t wake;    //  signals stop
    vz_endpoints_t set;     //  latest resolution with endpoints
    bool stop;              //  destroy asks the thread to end
    atomic_uint generation; //  bumped per resolution that changed set
    unsigned taken;         //  generation the owner took (owner's thread)
    char *list;             //  the configured list
};

static void *s_resolve_loop(void *arg)
{
    vz_resolver_t *self = arg;
    pthread_mutex_lock(&self->lock);
    //  1 s, 2 s, 4 s, then every VZ_ENDPOINTS_RESOLVE_MS: a mesh that starts
    //  all at once (compose, a fresh namespace) finds every broker soon.
    int interval = 1000;
    while (!self->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)(interval % 1000) * 1000000L;
        until.tv_sec += interval / 1000 + ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        interval = interval * 2 < VZ_ENDPOINTS_RESOLVE_MS ? interval * 2 : VZ_ENDPOINTS_RESOLVE_MS;
        pthread_cond_timedwait(&self->wake, &self->lock, &until);
        if (self->stop)
            break;
        pthread_mutex_unlock(&self->lock);
        vz_endpoints_t set;
        //  A name that does not resolve now (a DNS outage) keeps the last
        //  good set rather than replacing addresses by the bare name.
        bool ok = vz_endpoints_resolve(self->list, &set) == 0 && !set.unresolved;
        pthread_mutex_lock(&self->lock);
        if (ok && memcmp(&set, &self->set, sizeof set) != 0) {
            self->set = set;
            atomic_fetch_add(&self->generation, 1);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

vz_resolver_t *vz_resolver_new(const char *list, const vz_endpoints_t *first)
{
    assert(list && first);
    vz_resolver_t *self = (vz_resolver_t *)calloc(1, sizeof *self);
    assert(self);
    self->list = strdup(list);
    assert(self->list);
    self->set = *first;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    if (pthread_create(&self->thread, NULL, s_resolve_loop, self) != 0) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
        free(self->list);
        free(self);
        return NULL;
    }
    return self;
}

void vz_resolver_destroy(vz_resolver_t **self_p)
{
    assert(self_p);
    vz_resolver_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    free(self->list);
    free(self);
    *self_p = NULL;
}

bool vz_resolver_take(vz_resolver_t *self, vz_endpoints_t *out)
{
    assert(self && out);
    if (atomic_load(&self->generation) == self->taken)
        return false;
    pthread_mutex_lock(&self->lock);
    *out = self->set;
    self->taken = atomic_load(&self->generation);
    pthread_mutex_unlock(&self->lock);
    return out->n > 0;
}

bool vz_endpoints_named(const char *ep)
{
    assert(ep);
    char host[VZ_PATH_MAX];
    const char *port = NULL;
    return s_split(ep, host, sizeof host, &port) == 1;
}
