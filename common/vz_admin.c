/*  vz_admin - the small admin HTTP port every daemon has
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thread per connection under a small connection limit: the port sees a
 *  probe or a scrape every few seconds, and a slow /metrics render can then
 *  never hold up a liveness probe behind it. Handlers only read atomics
 *  and render the registry, so they need nothing from the reactor.
 */
#include "vz_admin.h"
#include "vz_common.h"
#include "vz_log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_CONNECTION_LIMIT 64   //  concurrent connections before MHD refuses
#define S_CONNECTION_TIMEOUT 10 //  seconds an idle connection may stay
#define S_REASON_MAX 128        //  readiness reason kept, incl. NUL

#define S_JSON "application/json"
#define S_PROM "text/plain; version=0.0.4; charset=utf-8"

struct vz_admin_t {
    struct MHD_Daemon *daemon;  //  libmicrohttpd server with its own threads
    vz_metrics_t *metrics;      //  borrowed registry rendered at /metrics
    int port;                   //  port actually bound
    atomic_bool ready;          //  /readyz answer; written by the reactor
    pthread_mutex_t lock;       //  guards reason
    char reason[S_REASON_MAX];  //  why not ready
    _Atomic(vz_admin_health_fn *) health; //  GET /health, NULL = 404
    _Atomic(void *) health_arg;           //  its argument (stored before health)
};

typedef struct {
    unsigned status;  //  HTTP status
    char *body;       //  heap body, freed by MHD
    const char *type; //  Content-Type
} s_reply_t;

typedef s_reply_t(s_route_fn)(vz_admin_t *self);

static s_reply_t s_json(unsigned status, const char *text)
{
    s_reply_t reply = {status, strdup(text), S_JSON};
    assert(reply.body);
    return reply;
}

static s_reply_t s_healthz(vz_admin_t *self)
{
    return s_json(200, "{\"status\":\"ok\"}");
}

static s_reply_t s_readyz(vz_admin_t *self)
{
    if (atomic_load(&self->ready))
        return s_json(200, "{\"status\":\"ready\"}");
    char escaped[S_REASON_MAX * 6 + 1];
    pthread_mutex_lock(&self->lock);
    if (vz_json_escape(escaped, sizeof escaped, self->reason) < 0)
        escaped[0] = '\0';
    pthread_mutex_unlock(&self->lock);
    char body[sizeof escaped + 64];
    snprintf(body, sizeof body, "{\"status\":\"not_ready\",\"reason\":\"%s\"}", escaped);
    return s_json(503, body);
}

static s_reply_t s_metrics(vz_admin_t *self)
{
    s_reply_t reply = {200, vz_metrics_render(self->metrics), S_PROM};
    assert(reply.body);
    return reply;
}

//  The daemon's detailed health document, when it set one (else 404).
static s_reply_t s_health(vz_admin_t *self)
{
    vz_admin_health_fn *fn = atomic_load(&self->health);
    if (!fn)
        return s_json(404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path\"}}");
    bool healthy = false;
    char *body = fn(atomic_load(&self->health_arg), &healthy);
    if (!body)
        return s_json(503, "{\"status\":\"starting\"}");
    return (s_reply_t){healthy ? 200 : 503, body, S_JSON};
}

static const struct {
    const char *path; //  exact URL path
    s_route_fn *fn;   //  builds the reply
} s_routes[] = {
    {"/healthz", s_healthz},
    {"/readyz", s_readyz},
    {"/metrics", s_metrics},
    {"/health", s_health},
};

void vz_admin_set_health(vz_admin_t *self, vz_admin_health_fn *fn, void *arg)
{
    assert(self);
    atomic_store(&self->health_arg, arg);
    atomic_store(&self->health, fn);
}

static enum MHD_Result s_queue(struct MHD_Connection *connection, s_reply_t reply, bool allow)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(reply.body), reply.body, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(reply.body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(connection, reply.status, response);
    MHD_destroy_response(response);
    return rc;
}

//  The first call for a request only marks the connection: answering then
//  makes MHD close the connection after each reply (TOOLING.md). Request
//  bodies are read and dropped; no route takes one.
static enum MHD_Result s_access(void *cls, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    static const char s_seen = 1;
    vz_admin_t *self = cls;
    if (!*con_cls) {
        *con_cls = (void *)&s_seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        if (strcmp(url, s_routes[i].path) != 0)
            continue;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return s_queue(
                connection,
                s_json(405, "{\"error\":\"method_not_allowed\",\"allow\":\"GET, HEAD\"}"), true);
        return s_queue(connection, s_routes[i].fn(self), false);
    }
    return s_queue(connection, s_json(404, "{\"error\":\"not_found\"}"), false);
}

vz_admin_t *vz_admin_new(const char *addr, int port, vz_metrics_t *metrics)
{
    assert(addr && metrics);
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(addr, NULL, &hints, &res) != 0 || !res) {
        errno = EINVAL;
        return NULL;
    }
    struct sockaddr_storage sa;
    memcpy(&sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    if (sa.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);

    vz_admin_t *self = calloc(1, sizeof *self);
    assert(self);
    self->metrics = metrics;
    atomic_init(&self->ready, false);
    pthread_mutex_init(&self->lock, NULL);
    vz_strlcpy(self->reason, "starting", sizeof self->reason);
    errno = 0;
    self->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, s_access, self,
                                    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT,
                                    (unsigned)S_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                                    (unsigned)S_CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!self->daemon) {
        int e = errno ? errno : EADDRINUSE;
        pthread_mutex_destroy(&self->lock);
        free(self);
        errno = e;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    return self;
}

void vz_admin_destroy(vz_admin_t **self_p)
{
    assert(self_p);
    vz_admin_t *self = *self_p;
    if (!self)
        return;
    MHD_stop_daemon(self->daemon);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int vz_admin_port(const vz_admin_t *self)
{
    assert(self);
    return self->port;
}

void vz_admin_set_ready(vz_admin_t *self, bool ready, const char *reason)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    vz_strlcpy(self->reason, reason ? reason : "", sizeof self->reason);
    pthread_mutex_unlock(&self->lock);
    atomic_store(&self->ready, ready);
}

bool vz_admin_ready(const vz_admin_t *self)
{
    assert(self);
    return atomic_load(&self->ready);
}
