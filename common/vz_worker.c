/*  vz_worker - the service side: method table, broker link, heartbeats
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_worker.h"

#include <stdio.h>
#include <string.h>

#include <unistd.h>

#include "vz_acl.h"
#include "vz_batch.h"
#include "vz_broker_contract.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_endpoints.h"
#include "vz_log.h"
#include "vz_proto.h"

#define VZ_DEFAULT_MAX_BODY (64 * 1024)
#define VZ_MAX_LINKS VZ_ENDPOINTS_MAX //  broker endpoints per worker
#define VZ_BACKOFF_CAP_MS 30000       //  longest extra wait between reconnects
#define S_FLUSH_MAX 4                 //  distinct flush functions per batch
#define S_CALLERS_MAX 64              //  direct callers told BYE at drain
#define S_DIRECT_GRACE_MS 100         //  a drain serves direct calls at least this long after BYE

//  Outcomes counted per method; the index is the order below.
typedef enum {
    S_OK,       //  handler replied with a body
    S_ERROR,    //  handler replied with an error
    S_INTERNAL, //  handler failed or the reply could not be encoded
    S_INVALID,  //  body larger than the method accepts
    S_EXPIRED,  //  deadline passed before dispatch: dropped
    S_OUTCOMES
} s_outcome_t;

static const char *const s_outcome_names[S_OUTCOMES] = {"ok", "error", "internal", "invalid",
                                                        "expired"};

struct vz_reply_t {
    vz_envelope_t env;       //  reply or error envelope being built
    uint8_t *body;           //  owned copy of the reply body
    vz_worker_t *worker;     //  dispatching worker (for vz_reply_defer)
    unsigned flags;          //  the method's VZ_METHOD_* flags
    vz_deferred_t *deferred; //  set by vz_reply_defer: the reply left with it
};

typedef struct {
    vz_worker_t *worker;        //  back pointer for reactor callbacks
    char endpoint[VZ_PATH_MAX]; //  this broker's endpoint
    zsock_t *sock;              //  current DEALER (replaced on reconnect)
    zsock_t *retired;           //  previous DEALER, freed on the next tick
    int64_t expiry_ms;          //  broker is dead if nothing arrived by then
    int backoff_ms;             //  extra patience added after each reconnect
    bool alive;                 //  something arrived since the last (re)connect
    bool bye_done;              //  broker answered our BYE while draining
    unsigned gen;               //  bumped at each new socket
    void *raw;                  //  the direct endpoint's ROUTER (the direct link only), or NULL
} s_link_t;

typedef struct {
    vz_series_t *outcome[S_OUTCOMES]; //  requests_total by outcome
    vz_series_t *duration;            //  handler latency histogram
} s_method_metrics_t;

//  A bundle being answered (vz_batch.h): one slot per item, sent whole
//  when the last slot is filled.
typedef struct {
    s_link_t *link;                       //  broker link it came on
    unsigned gen;                         //  link->gen then
    uint8_t tag[VZ_TAG_SIZE];             //  broker's tag for the reply
    char id[VZ_ID_MAX];                   //  outer envelope's id...
    char service[VZ_NAME_MAX];            //  ...service
    char method[VZ_NAME_MAX];             //  ...method
    char traceparent[VZ_TRACEPARENT_MAX]; //  ...trace context
    size_t n;                             //  items
    size_t pending;                       //  slots not yet filled
    size_t bytes;                         //  encoded replies in the filled slots, with headers
    bool dispatching;                     //  still handing items out: do not send yet
    vz_batch_item_t *slot;                //  encoded reply envelope per item (heap data)
} s_bundle_t;

struct vz_deferred_t {
    vz_worker_t *worker;       //  owner
    s_link_t *link;            //  broker link the request came on
    unsigned gen;              //  link->gen at dispatch: same socket still?
    uint8_t tag[VZ_TAG_SIZE];  //  broker's tag for the reply
    const vz_method_t *method; //  for metrics
    int64_t started;           //  zclock_usecs at dispatch
    vz_reply_t reply;          //  id, service, method, traceparent of the answer
    s_bundle_t *bundle;        //  the bundle the request came in, or NULL
    size_t slot;               //  its item there
    bool early;                //  completed inside its own handler: sent when it returns
    vz_deferred_t *prev;       //  worker's list of open handles
    vz_deferred_t *next;       //  idem
};

struct vz_worker_t {
    char service[VZ_NAME_MAX];       //  announced in RDY
    char broker_key[41];             //  broker public key, Z85
    zcert_t *cert;                   //  our certificate (borrowed)
    int heartbeat_ms;                //  interval of HB and liveness checks
    int credit;                      //  announced in RDY
    char version[VZ_VERSION_MAX];    //  announced in RDY, "" = none (the broker's "0")
    const vz_method_t *methods;      //  method table (borrowed, static const)
    size_t count;                    //  rows in methods
    void *app;                       //  handler argument
    s_link_t links[VZ_MAX_LINKS];    //  one per broker endpoint ("" endpoint: a free slot)
    size_t nlinks;                   //  slots used so far
    vz_resolver_t *resolver;         //  names in the endpoints: brokers come and go
    zloop_t *loop;                   //  reactor we are attached to, or NULL
    int timer_id;                    //  heartbeat timer in loop
    bool draining;                   //  BYE sent: a BYE back means done
    s_method_metrics_t *mm;          //  per-method series, or NULL without metrics
    vz_series_t *unknown;            //  requests for methods we do not have
    vz_series_t *malformed;          //  requests whose envelope did not decode
    vz_series_t *dropped;            //  broker frames that made no sense
    vz_series_t *reconnects;         //  sockets replaced after silence or BYE
    vz_deferred_t *open;             //  deferred replies not yet completed
    size_t nopen;                    //  entries in open
    vz_worker_observe_fn *observe;   //  outcome callback (telemetry), or NULL
    void *observe_arg;               //  its argument
    vz_flush_fn *flush[S_FLUSH_MAX]; //  to call after the current batch
    size_t nflush;                   //  entries in flush

    //  The direct endpoint (docs/protocol.md, "Direct calls"), or none.
    void *dctx;                                  //  its own ZeroMQ context (own ZAP endpoint)
    vz_acl_t *acl;                               //  who may call, as the brokers say
    s_link_t direct;                             //  link whose raw is the ROUTER
    char direct_ep[VZ_ENDPOINT_MAX];             //  announced in RDY, "" = none
    zmq_pollitem_t direct_items[2];              //  ROUTER and ZAP, for the reactor
    uint8_t callers[S_CALLERS_MAX][VZ_TAG_SIZE]; //  who called directly (told at drain)
    size_t ncallers;                             //  entries in callers
    vz_series_t *direct_served;                  //  requests that came directly
    vz_series_t *direct_refused;                 //  direct requests from callers not in the ACL
};

static void s_count(vz_series_t *series)
{
    if (series)
        vz_series_inc(series);
}

int vz_reply_body(vz_reply_t *reply, const void *data, size_t len)
{
    assert(reply);
    assert(data || len == 0);
    uint8_t *copy = NULL;
    if (len) {
        copy = (uint8_t *)malloc(len);
        assert(copy);
        memcpy(copy, data, len);
    }
    free(reply->body);
    reply->body = copy;
    reply->env.kind = VZ_KIND_REPLY;
    reply->env.body = copy;
    reply->env.body_len = len;
    reply->env.error_code[0] = '\0';
    reply->env.error_message[0] = '\0';
    return 0;
}

int vz_reply_error(vz_reply_t *reply, const char *code, const char *message)
{
    assert(reply && code);
    free(reply->body);
    reply->body = NULL;
    reply->env.kind = VZ_KIND_ERROR;
    reply->env.body = NULL;
    reply->env.body_len = 0;
    vz_strlcpy(reply->env.error_code, code, sizeof reply->env.error_code);
    vz_strlcpy(reply->env.error_message, message ? message : "", sizeof reply->env.error_message);
    return 0;
}

int vz_reply_ctx_set(vz_reply_t *reply, const char *key, const char *value)
{
    assert(reply && key && value);
    return vz_envelope_ctx_set(&reply->env, key, value);
}

static void s_metrics_init(vz_worker_t *self, vz_metrics_t *metrics)
{
    const char *help = "Requests handled by this worker, by outcome";
    const char *hhelp = "Time spent in the handler, seconds";
    char labels[3 * VZ_NAME_MAX + 64];
    self->mm =
        (s_method_metrics_t *)zmalloc(sizeof(s_method_metrics_t) * (self->count ? self->count : 1));
    assert(self->mm);
    for (size_t i = 0; i < self->count; i++) {
        for (int o = 0; o < S_OUTCOMES; o++) {
            snprintf(labels, sizeof labels, "service=%s,method=%s,outcome=%s", self->service,
                     self->methods[i].name, s_outcome_names[o]);
            self->mm[i].outcome[o] =
                vz_metrics_counter(metrics, "vz_worker_requests_total", help, labels);
        }
        snprintf(labels, sizeof labels, "service=%s,method=%s", self->service,
                 self->methods[i].name);
        self->mm[i].duration = vz_metrics_histogram(metrics, "vz_worker_request_duration_seconds",
                                                    hhelp, labels, NULL, 0);
    }
    //  Unknown method names come from the network: one fixed label value
    //  keeps the series count bounded.
    snprintf(labels, sizeof labels, "service=%s,method=_unknown,outcome=unknown_method",
             self->service);
    self->unknown = vz_metrics_counter(metrics, "vz_worker_requests_total", help, labels);
    snprintf(labels, sizeof labels, "service=%s,method=_unknown,outcome=malformed", self->service);
    self->malformed = vz_metrics_counter(metrics, "vz_worker_requests_total", help, labels);
    snprintf(labels, sizeof labels, "service=%s", self->service);
    self->dropped = vz_metrics_counter(metrics, "vz_worker_dropped_frames_total",
                                       "Broker frames dropped as malformed", labels);
    self->reconnects = vz_metrics_counter(metrics, "vz_worker_reconnects_total",
                                          "Broker links re-created after silence or BYE", labels);
    self->direct_served =
        vz_metrics_counter(metrics, "vz_worker_direct_requests_total",
                           "Requests that came on the direct endpoint, by outcome of the ACL check",
                           "outcome=admitted");
    self->direct_refused =
        vz_metrics_counter(metrics, "vz_worker_direct_requests_total",
                           "Requests that came on the direct endpoint, by outcome of the ACL check",
                           "outcome=forbidden");
}

static int s_send4(s_link_t *link, const char *cmd, const char *arg1, const char *arg2,
                   const char *arg3, const char *arg4)
{
    if (!link->sock)
        return -ENOTCONN;
    //  Never block the reactor: a full pipe means the broker is gone
    //  anyway and liveness will replace the socket.
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, cmd);
    if (arg1)
        zmsg_addstr(msg, arg1);
    if (arg2)
        zmsg_addstr(msg, arg2);
    if (arg3)
        zmsg_addstr(msg, arg3);
    if (arg3 && arg4)
        zmsg_addstr(msg, arg4);
    int rc = zmsg_send(&msg, link->sock);
    zmsg_destroy(&msg);
    return rc == 0 ? 0 : -EAGAIN;
}

static int s_send(s_link_t *link, const char *cmd, const char *arg1, const char *arg2)
{
    return s_send4(link, cmd, arg1, arg2, NULL, NULL);
}

static int s_on_link(zloop_t *loop, zsock_t *sock, void *arg);

static int s_link_open(s_link_t *link)
{
    vz_worker_t *self = link->worker;
    link->sock = vz_curve_client(ZMQ_DEALER, link->endpoint, self->cert, self->broker_key);
    if (!link->sock)
        return -errno;
    //  Sends must not wait on a pipe that never connects.
    zsock_set_sndtimeo(link->sock, 0);
    //  Reads never block either: a batch takes only what is queued.
    zsock_set_rcvtimeo(link->sock, 0);
    link->gen++;
    link->alive = false;
    link->expiry_ms =
        zclock_mono() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS + link->backoff_ms;
    char credit[16];
    snprintf(credit, sizeof credit, "%d", self->credit);
    //  RDY service credit [version [direct endpoint]]: the version frame
    //  only when there is one or a direct endpoint follows it.
    s_send4(link, VZ_CMD_READY, self->service, credit,
            *self->version ? self->version : (*self->direct_ep ? "0" : NULL),
            *self->direct_ep ? self->direct_ep : NULL);
    if (self->loop) {
        if (zloop_reader(self->loop, link->sock, s_on_link, link) != 0)
            return -EIO;
        zloop_reader_set_tolerant(self->loop, link->sock);
    }
    return 0;
}

//  A new socket rather than a reconnect of the old one: libzmq would keep
//  the old pipe and its queued messages, and the broker would see the same
//  routing id it may already have declared dead. The old socket is kept
//  until the next tick because zloop may still hold it in this iteration.
static void s_link_reconnect(s_link_t *link)
{
    vz_worker_t *self = link->worker;
    if (link->sock) {
        if (self->loop)
            zloop_reader_end(self->loop, link->sock);
        zsock_destroy(&link->retired);
        link->retired = link->sock;
        link->sock = NULL;
    }
    int next = link->backoff_ms ? link->backoff_ms * 2 : self->heartbeat_ms;
    link->backoff_ms = next > VZ_BACKOFF_CAP_MS ? VZ_BACKOFF_CAP_MS : next;
    s_count(self->reconnects);
    s_link_open(link);
}

static s_method_metrics_t *s_mm(vz_worker_t *self, const vz_method_t *method)
{
    return self->mm ? &self->mm[method - self->methods] : NULL;
}

//  Heap msgpack of reply; when it cannot be encoded (too large) an
//  "internal" error answering the same request instead, so the caller still
//  gets an answer. -ENOMEM-like failures of the fallback return -1.
static int s_encode_reply(const vz_envelope_t *reply, uint8_t **buf_p, size_t *len_p)
{
    if (vz_envelope_encode(reply, buf_p, len_p) == 0)
        return 0;
    vz_envelope_t fallback;
    vz_envelope_error_to(&fallback, reply, VZ_ERR_INTERNAL, "reply too large");
    return vz_envelope_encode(&fallback, buf_p, len_p) == 0 ? 0 : -1;
}

//  [routing id] cmd [body] to a direct caller. A caller gone fails the
//  first frame (ZMQ_ROUTER_MANDATORY), and nothing is sent.
static void s_direct_send(void *raw, const void *rid, size_t rid_len, const char *cmd,
                          const void *body, size_t len)
{
    if (zmq_send(raw, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    zmq_send(raw, cmd, strlen(cmd), (body ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    if (body)
        zmq_send(raw, body, len, ZMQ_DONTWAIT);
}

static void s_send_reply(s_link_t *link, const void *tag, const vz_envelope_t *reply)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s_encode_reply(reply, &buf, &len) < 0)
        return;
    if (link->raw) {
        //  A direct caller: its routing id is in the tag.
        const uint8_t *rid = (const uint8_t *)tag;
        s_direct_send(link->raw, rid + 1, rid[0], VZ_CMD_REPLY, buf, len);
        free(buf);
        return;
    }
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REPLY);
    zmsg_addmem(msg, tag, VZ_TAG_SIZE);
    zmsg_addmem(msg, buf, len);
    free(buf);
    if (link->sock)
        zmsg_send(&msg, link->sock);
    zmsg_destroy(&msg);
}

//  Room for the outer envelope's own fields and the array's headers.
#define S_BUNDLE_OVERHEAD (4 * 1024)
#define S_BUNDLE_LIMIT (vz_envelope_limits_default.max_frame - S_BUNDLE_OVERHEAD)
//  Past this much reply, the items not yet dispatched are refused unserved
//  (bundle_overflow), so that a reply dropped after its work was done
//  (reply_dropped) takes one reply larger than the other half.
#define S_BUNDLE_FULL (S_BUNDLE_LIMIT / 2)

//  The last slot is filled: send the bundle's reply (if its broker link is
//  still the same socket) and free it. Replies that together still exceed
//  one frame (deferred ones, or one very large) give way, largest first, to
//  reply_dropped errors: served, but the answer is lost.
static void s_bundle_send(s_bundle_t *bundle)
{
    size_t total = bundle->bytes;
    while (total > S_BUNDLE_LIMIT) {
        size_t big = 0;
        for (size_t i = 1; i < bundle->n; i++)
            if (bundle->slot[i].len > bundle->slot[big].len)
                big = i;
        //  The error answers the same request as the reply it replaces.
        vz_envelope_t dropped, err;
        if (vz_envelope_decode(&dropped, bundle->slot[big].data, bundle->slot[big].len, NULL,
                               NULL) != 0)
            vz_envelope_init(&dropped, VZ_KIND_REPLY);
        vz_envelope_error_to(&err, &dropped, VZ_ERR_REPLY_DROPPED,
                             "served, but the reply did not fit the bundle");
        uint8_t *buf = NULL;
        size_t len = 0;
        if (vz_envelope_encode(&err, &buf, &len) < 0)
            break;
        total -= bundle->slot[big].len;
        free((void *)bundle->slot[big].data);
        bundle->slot[big] = (vz_batch_item_t){.data = buf, .len = len};
        total += len;
    }
    s_link_t *link = bundle->link;
    if (link->gen == bundle->gen && (link->sock || link->raw)) {
        vz_envelope_t reply;
        vz_envelope_init(&reply, VZ_KIND_REPLY);
        vz_strlcpy(reply.id, bundle->id, sizeof reply.id);
        vz_strlcpy(reply.service, bundle->service, sizeof reply.service);
        vz_strlcpy(reply.method, bundle->method, sizeof reply.method);
        vz_strlcpy(reply.traceparent, bundle->traceparent, sizeof reply.traceparent);
        uint8_t *body = vz_batch_request_encode(bundle->slot, bundle->n, &reply.body_len);
        reply.body = body;
        s_send_reply(link, bundle->tag, &reply);
        free(body);
    }
    for (size_t i = 0; i < bundle->n; i++)
        free((void *)bundle->slot[i].data);
    free(bundle->slot);
    free(bundle);
}

//  Item slot of bundle answered with reply; the last one sends the bundle.
static void s_bundle_fill(s_bundle_t *bundle, size_t slot, const vz_envelope_t *reply)
{
    assert(slot < bundle->n && !bundle->slot[slot].data && bundle->pending > 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s_encode_reply(reply, &buf, &len) < 0) {
        //  Not even the small fallback encodes: keep the slot an empty bin
        //  rather than leave the bundle unanswered.
        buf = (uint8_t *)malloc(1);
        assert(buf);
        len = 0;
    }
    bundle->slot[slot] = (vz_batch_item_t){.data = buf, .len = len};
    bundle->bytes += len + 8;
    if (--bundle->pending == 0 && !bundle->dispatching)
        s_bundle_send(bundle);
}

static void s_send_error(s_link_t *link, const void *tag, const vz_envelope_t *req,
                         const char *code, const char *message)
{
    vz_envelope_t reply;
    vz_envelope_error_to(&reply, req, code, message);
    s_send_reply(link, tag, &reply);
}

//  The end of every dispatched request, now or deferred: count, time, and
//  send the reply, or file it in its bundle's slot.
static void s_finish(s_link_t *link, const void *tag, s_bundle_t *bundle, size_t slot,
                     const vz_method_t *method, int64_t started, vz_reply_t *reply, int rc)
{
    s_outcome_t outcome = rc < 0 ? S_INTERNAL : reply->env.kind == VZ_KIND_ERROR ? S_ERROR : S_OK;
    if (rc < 0)
        vz_reply_error(reply, VZ_ERR_INTERNAL, "handler failed");
    s_method_metrics_t *mm = s_mm(link->worker, method);
    int64_t took = zclock_usecs() - started;
    if (mm) {
        vz_series_observe(mm->duration, (double)took / 1e6);
        vz_series_inc(mm->outcome[outcome]);
    }
    if (link->worker->observe)
        link->worker->observe(link->worker->observe_arg, method->name,
                              outcome == S_OK ? NULL : reply->env.error_code, took,
                              reply->env.traceparent);
    if (bundle)
        s_bundle_fill(bundle, slot, &reply->env);
    else
        s_send_reply(link, tag, &reply->env);
    free(reply->body);
    reply->body = NULL;
}

vz_deferred_t *vz_reply_defer(vz_reply_t *reply, vz_flush_fn *flush)
{
    assert(reply && reply->worker);
    assert(reply->flags & VZ_METHOD_DEFERRED); //  only methods declared so
    assert(!reply->deferred);
    vz_worker_t *self = reply->worker;
    vz_deferred_t *handle = (vz_deferred_t *)zmalloc(sizeof *handle);
    assert(handle);
    handle->worker = self;
    handle->reply = *reply; //  moves the body, if any, into the handle
    handle->reply.deferred = NULL;
    reply->body = NULL;
    reply->deferred = handle;
    handle->next = self->open;
    if (self->open)
        self->open->prev = handle;
    self->open = handle;
    self->nopen++;
    if (flush) {
        size_t i = 0;
        while (i < self->nflush && self->flush[i] != flush)
            i++;
        if (i == self->nflush) {
            assert(self->nflush < S_FLUSH_MAX);
            self->flush[self->nflush++] = flush;
        }
    }
    return handle;
}

static int s_complete(vz_deferred_t **handle_p)
{
    assert(handle_p && *handle_p);
    vz_deferred_t *handle = *handle_p;
    vz_worker_t *self = handle->worker;
    if (!handle->link) {
        //  Still inside the handler that deferred (a call that failed at
        //  once, say): where to send is not known yet, s_dispatch sends it.
        assert(!handle->early);
        handle->early = true;
        *handle_p = NULL;
        return 0;
    }
    if (handle->prev)
        handle->prev->next = handle->next;
    else
        self->open = handle->next;
    if (handle->next)
        handle->next->prev = handle->prev;
    self->nopen--;
    //  A replaced socket means a broker that has already written the
    //  request off; its tag would mean nothing on the new one.
    int rc = handle->link->gen == handle->gen && (handle->link->sock || handle->link->raw)
                 ? 0
                 : -ENOTCONN;
    //  A bundle's slot is filled either way, so the bundle is freed; it
    //  checks the socket itself before sending.
    if (rc == 0 || handle->bundle)
        s_finish(handle->link, handle->tag, handle->bundle, handle->slot, handle->method,
                 handle->started, &handle->reply, 0);
    free(handle->reply.body);
    free(handle);
    *handle_p = NULL;
    return rc;
}

int vz_worker_complete(vz_deferred_t **handle_p, const void *body, size_t len)
{
    assert(handle_p && *handle_p);
    vz_reply_body(&(*handle_p)->reply, body, len);
    return s_complete(handle_p);
}

int vz_worker_complete_error(vz_deferred_t **handle_p, const char *code, const char *message)
{
    assert(handle_p && *handle_p);
    vz_reply_error(&(*handle_p)->reply, code, message);
    return s_complete(handle_p);
}

int vz_worker_complete_reply(vz_deferred_t **handle_p)
{
    assert(handle_p && *handle_p);
    return s_complete(handle_p);
}

vz_reply_t *vz_deferred_reply(vz_deferred_t *handle)
{
    assert(handle);
    return &handle->reply;
}

size_t vz_worker_open(const vz_worker_t *self)
{
    assert(self);
    return self->nopen;
}

//  Once per batch, so a deferring app pays its own round trip once.
static void s_flush(vz_worker_t *self)
{
    vz_flush_fn *flush[S_FLUSH_MAX];
    size_t n = self->nflush;
    memcpy(flush, self->flush, n * sizeof flush[0]);
    self->nflush = 0;
    for (size_t i = 0; i < n; i++)
        flush[i](self->app);
}

//  Nobody will complete these any more: answer rather than leave the
//  broker (and its client) waiting for a worker that is going away.
static void s_abandon_open(vz_worker_t *self)
{
    while (self->open) {
        vz_deferred_t *handle = self->open;
        vz_worker_complete_error(&handle, VZ_ERR_INTERNAL, "worker stopped before the reply");
    }
}

static const vz_method_t *s_lookup(vz_worker_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq(self->methods[i].name, name))
            return &self->methods[i];
    return NULL;
}

//  Call the handler for req (checked) and finish or park its reply.
static void s_dispatch(s_link_t *link, const void *tag, s_bundle_t *bundle, size_t slot,
                       const vz_method_t *method, const vz_envelope_t *req)
{
    vz_worker_t *self = link->worker;
    vz_reply_t reply = {.body = NULL, .worker = self, .flags = method->flags};
    vz_envelope_reply_to(&reply.env, req);
    int64_t started = zclock_usecs();
    int rc = method->handler(self->app, req, &reply);
    if (reply.deferred) {
        //  The handle answers later; it needs where and to whom.
        assert(rc == 0); //  a handler that deferred must not also fail
        vz_deferred_t *handle = reply.deferred;
        handle->link = link;
        handle->gen = link->gen;
        memcpy(handle->tag, tag, VZ_TAG_SIZE);
        handle->bundle = bundle;
        handle->slot = slot;
        handle->method = method;
        handle->started = started;
        vz_strlcpy(handle->reply.env.id, req->id, sizeof handle->reply.env.id);
        if (handle->early)
            s_complete(&handle);
        return;
    }
    //  Whatever the handler did, the reply answers this request.
    vz_strlcpy(reply.env.id, req->id, sizeof reply.env.id);
    s_finish(link, tag, bundle, slot, method, started, &reply, rc);
}

//  Answer a bundle item without calling the handler.
static void s_bundle_refuse(s_bundle_t *bundle, size_t slot, const vz_envelope_t *req,
                            const char *code, const char *message)
{
    vz_envelope_t reply;
    vz_envelope_error_to(&reply, req, code, message);
    s_bundle_fill(bundle, slot, &reply);
}

//  A checked outer envelope with VZ_FLAG_BUNDLE (vz_batch.h): each item is
//  checked like a request of its own and dispatched; the reply leaves when
//  the last item is answered.
static void s_on_bundle(s_link_t *link, const void *tag, const vz_envelope_t *outer,
                        const vz_method_t *method)
{
    vz_worker_t *self = link->worker;
    vz_batch_item_t items[VZ_BATCH_MAX];
    size_t n = 0;
    const char *reason = NULL;
    if (vz_batch_request_decode(outer->body, outer->body_len, items, VZ_BATCH_MAX, &n, &reason) <
        0) {
        s_count(self->malformed);
        s_send_error(link, tag, outer, VZ_ERR_MALFORMED, reason ? reason : "bad bundle");
        return;
    }
    s_bundle_t *bundle = (s_bundle_t *)zmalloc(sizeof *bundle);
    assert(bundle);
    bundle->slot = (vz_batch_item_t *)zmalloc(n * sizeof *bundle->slot);
    assert(bundle->slot);
    bundle->link = link;
    bundle->gen = link->gen;
    memcpy(bundle->tag, tag, VZ_TAG_SIZE);
    vz_strlcpy(bundle->id, outer->id, sizeof bundle->id);
    vz_strlcpy(bundle->service, outer->service, sizeof bundle->service);
    vz_strlcpy(bundle->method, outer->method, sizeof bundle->method);
    vz_strlcpy(bundle->traceparent, outer->traceparent, sizeof bundle->traceparent);
    bundle->n = bundle->pending = n;
    bundle->dispatching = true;
    s_method_metrics_t *mm = s_mm(self, method);
    size_t max_body = method->max_body ? method->max_body : VZ_DEFAULT_MAX_BODY;
    vz_envelope_t req;
    for (size_t i = 0; i < n; i++) {
        if (vz_envelope_decode(&req, items[i].data, items[i].len, NULL, &reason) != 0) {
            vz_envelope_init(&req, VZ_KIND_REQUEST);
            s_count(self->malformed);
            s_bundle_refuse(bundle, i, &req, VZ_ERR_MALFORMED,
                            reason ? reason : "undecodable bundle item");
            continue;
        }
        vz_strlcpy(req.caller, outer->caller, sizeof req.caller);
        if (req.kind != VZ_KIND_REQUEST || (req.flags & VZ_FLAG_BUNDLE) ||
            !streq(req.service, outer->service) || !streq(req.method, outer->method)) {
            //  The broker's policy covered outer->method only.
            s_count(self->malformed);
            s_bundle_refuse(bundle, i, &req, VZ_ERR_MALFORMED,
                            "bundle item is not a request to the bundle's service and method");
        } else if (req.body_len > max_body) {
            if (mm)
                vz_series_inc(mm->outcome[S_INVALID]);
            s_bundle_refuse(bundle, i, &req, VZ_ERR_INVALID, "body too large");
        } else if (req.deadline_ms && vz_now_ms() >= req.deadline_ms) {
            //  Read per item: slow handlers before it may have used its time.
            if (mm)
                vz_series_inc(mm->outcome[S_EXPIRED]);
            s_bundle_refuse(bundle, i, &req, VZ_ERR_TIMEOUT, "deadline passed before dispatch");
        } else if (bundle->bytes > S_BUNDLE_FULL)
            s_bundle_refuse(bundle, i, &req, VZ_ERR_BUNDLE_OVERFLOW,
                            "not served: the bundle's reply is full; send it alone");
        else
            s_dispatch(link, tag, bundle, i, method, &req);
    }
    bundle->dispatching = false;
    if (bundle->pending == 0)
        s_bundle_send(bundle);
}

//  The checks every request passes, once, before any handler (dispatch
//  table rule): kind, method, deadline, size; then dispatch. req decoded,
//  its caller set by whoever vouched for it.
static void s_serve(s_link_t *link, const void *tag, vz_envelope_t *req)
{
    vz_worker_t *self = link->worker;
    if (req->kind != VZ_KIND_REQUEST) {
        s_count(self->malformed);
        s_send_error(link, tag, req, VZ_ERR_MALFORMED, "not a request");
        return;
    }
    const vz_method_t *method = s_lookup(self, req->method);
    if (!method) {
        s_count(self->unknown);
        s_send_error(link, tag, req, VZ_ERR_UNKNOWN_METHOD, "no such method");
        return;
    }
    s_method_metrics_t *mm = s_mm(self, method);
    if (req->deadline_ms && vz_now_ms() >= req->deadline_ms) {
        //  Nobody waits any more (for a bundle: the broker has answered
        //  every item "timeout" at the earliest of their deadlines).
        if (mm)
            vz_series_inc(mm->outcome[S_EXPIRED]);
        return;
    }
    if (req->flags & VZ_FLAG_BUNDLE) {
        s_on_bundle(link, tag, req, method);
        return;
    }
    size_t max_body = method->max_body ? method->max_body : VZ_DEFAULT_MAX_BODY;
    if (req->body_len > max_body) {
        if (mm)
            vz_series_inc(mm->outcome[S_INVALID]);
        s_send_error(link, tag, req, VZ_ERR_INVALID, "body too large");
        return;
    }
    s_dispatch(link, tag, NULL, 0, method, req);
}

//  REQ tag caller envelope, from a broker.
static void s_on_request(s_link_t *link, zmsg_t *msg)
{
    vz_worker_t *self = link->worker;
    zframe_t *tag = zmsg_next(msg);
    zframe_t *caller = zmsg_next(msg);
    zframe_t *data = zmsg_next(msg);
    if (zmsg_size(msg) != 4 || zframe_size(tag) != VZ_TAG_SIZE) {
        s_count(self->dropped);
        return;
    }
    vz_envelope_t req;
    const char *reason = NULL;
    if (zframe_size(caller) >= VZ_NAME_MAX ||
        memchr(zframe_data(caller), 0, zframe_size(caller)) != NULL) {
        vz_envelope_init(&req, VZ_KIND_REQUEST);
        s_count(self->malformed);
        s_send_error(link, zframe_data(tag), &req, VZ_ERR_MALFORMED, "bad caller frame");
        return;
    }
    if (vz_envelope_decode(&req, zframe_data(data), zframe_size(data), NULL, &reason) != 0) {
        //  Whatever the decoder left half-filled must not reach the reply.
        vz_envelope_init(&req, VZ_KIND_REQUEST);
        s_count(self->malformed);
        s_send_error(link, zframe_data(tag), &req, VZ_ERR_MALFORMED,
                     reason ? reason : "undecodable envelope");
        return;
    }
    //  The broker's word on identity replaces anything the client wrote.
    memcpy(req.caller, zframe_data(caller), zframe_size(caller));
    req.caller[zframe_size(caller)] = '\0';
    s_serve(link, zframe_data(tag), &req);
}

//  One message from a broker, on the reactor or during drain.
static void s_link_handle(s_link_t *link, zmsg_t *msg)
{
    vz_worker_t *self = link->worker;
    link->alive = true;
    link->backoff_ms = 0;
    link->expiry_ms = zclock_mono() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
    zframe_t *cmd = zmsg_first(msg);
    size_t frames = zmsg_size(msg);
    if (!cmd) {
        s_count(self->dropped);
        return;
    }
    if (zframe_streq(cmd, VZ_CMD_REQUEST))
        s_on_request(link, msg);
    else if (zframe_streq(cmd, VZ_CMD_HEARTBEAT) && frames == 1)
        ;
    else if (zframe_streq(cmd, VZ_CMD_ACL) && self->acl) {
        if (vz_acl_set(self->acl, (int)(link - self->links), msg) < 0)
            s_count(self->dropped);
    } else if (zframe_streq(cmd, VZ_CMD_BYE) && frames == 1) {
        if (self->draining)
            link->bye_done = true;
        else
            s_link_reconnect(link); //  broker forgot us or restarts: announce again
    } else
        s_count(self->dropped);
}

//  Up to VZ_WORKER_BATCH messages already queued on sock, then one flush,
//  so handlers that defer share one round trip of their own per batch.
//  Stops early if a BYE replaced the socket.
static void s_link_batch(s_link_t *link, zsock_t *sock)
{
    for (int i = 0; i < VZ_WORKER_BATCH && sock == link->sock; i++) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            break;
        s_link_handle(link, msg);
        zmsg_destroy(&msg);
    }
    s_flush(link->worker);
}

static int s_on_link(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_link_t *link = (s_link_t *)arg;
    if (sock == link->sock)
        s_link_batch(link, sock);
    else {
        //  A retired socket may still be polled in this iteration: drain it only.
        zmsg_t *msg = zmsg_recv(sock);
        zmsg_destroy(&msg);
    }
    return 0;
}

//  A broker gone from DNS: its link closes (what it dispatched here and
//  is still open can no longer be answered: vz_worker_complete says
//  -ENOTCONN) and the slot is free for a new broker.
static void s_link_close(s_link_t *link)
{
    vz_worker_t *self = link->worker;
    if (link->sock && self->loop)
        zloop_reader_end(self->loop, link->sock);
    zsock_destroy(&link->retired);
    link->retired = link->sock;
    link->sock = NULL;
    link->endpoint[0] = '\0';
    link->alive = false;
    link->backoff_ms = 0;
    link->gen++;
    if (self->acl)
        vz_acl_forget(self->acl, (int)(link - self->links)); //  its word no longer counts
}

//  Follow the resolver: close links of brokers gone, open links to new ones.
static void s_follow_dns(vz_worker_t *self)
{
    vz_endpoints_t set;
    if (!self->resolver || !vz_resolver_take(self->resolver, &set))
        return;
    for (size_t i = 0; i < self->nlinks; i++)
        if (*self->links[i].endpoint && !vz_endpoints_has(&set, self->links[i].endpoint))
            s_link_close(&self->links[i]);
    for (size_t k = 0; k < set.n; k++) {
        s_link_t *free_slot = NULL;
        bool known = false;
        for (size_t i = 0; i < self->nlinks && !known; i++) {
            known = streq(self->links[i].endpoint, set.ep[k]);
            if (!*self->links[i].endpoint && !free_slot)
                free_slot = &self->links[i];
        }
        if (known)
            continue;
        if (!free_slot && self->nlinks < VZ_MAX_LINKS)
            free_slot = &self->links[self->nlinks++];
        if (!free_slot)
            break;
        zsock_destroy(&free_slot->retired);
        free_slot->worker = self;
        vz_strlcpy(free_slot->endpoint, set.ep[k], sizeof free_slot->endpoint);
        s_link_open(free_slot);
    }
}

static void s_tick(vz_worker_t *self)
{
    int64_t now = zclock_mono();
    s_follow_dns(self);
    for (size_t i = 0; i < self->nlinks; i++) {
        s_link_t *link = &self->links[i];
        zsock_destroy(&link->retired);
        if (!*link->endpoint)
            continue; //  a free slot
        if (!link->sock || now >= link->expiry_ms)
            s_link_reconnect(link);
        else
            s_send(link, VZ_CMD_HEARTBEAT, NULL, NULL);
    }
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_tick((vz_worker_t *)arg);
    return 0;
}

//  --------------------------------------------------------------------------
//  The direct endpoint (docs/protocol.md, "Direct calls").

//  This host's IPv4 address as others see it: what the host name resolves
//  to (a pod's or a container's address in /etc/hosts), the first that is
//  not a loopback one, by the resolver brokers' names go through. "" when
//  unknown.
static void s_my_address(char *out, size_t n)
{
    out[0] = '\0';
    char host[256], ep[300];
    if (gethostname(host, sizeof host) != 0)
        return;
    host[sizeof host - 1] = '\0';
    vz_endpoints_t set;
    snprintf(ep, sizeof ep, "tcp://%s:1", host);
    if (vz_endpoints_resolve(ep, &set) < 0)
        return;
    for (size_t i = 0; i < set.n; i++) {
        const char *addr = set.ep[i] + strlen("tcp://");
        const char *colon = strrchr(addr, ':');
        if (strncmp(addr, "127.", 4) != 0 && colon && (size_t)(colon - addr) < n) {
            memcpy(out, addr, (size_t)(colon - addr));
            out[colon - addr] = '\0';
            return;
        }
    }
}

//  Where to bind and what to announce for spec: "auto" binds the loopback
//  when every broker is on it (one host) and every interface otherwise;
//  "tcp://HOST:PORT" binds that (HOST * or 0.0.0.0: every interface,
//  announced by the host's address). 0 or -EINVAL.
static int s_direct_plan(const char *spec, const vz_endpoints_t *brokers, char *bind, char *host,
                         size_t n)
{
    if (streq(spec, "auto")) {
        bool local = brokers->n > 0;
        for (size_t i = 0; i < brokers->n; i++)
            local = local && strncmp(brokers->ep[i], "tcp://127.", 10) == 0;
        vz_strlcpy(bind, local ? "tcp://127.0.0.1:*" : "tcp://0.0.0.0:*", n);
        vz_strlcpy(host, local ? "127.0.0.1" : "0.0.0.0", n);
    } else {
        const char *colon = strrchr(spec, ':');
        if (strncmp(spec, "tcp://", 6) != 0 || !colon || colon <= spec + 6 ||
            (size_t)(colon - spec - 6) >= n)
            return -EINVAL;
        vz_strlcpy(bind, spec, n);
        memcpy(host, spec + 6, (size_t)(colon - spec - 6));
        host[colon - spec - 6] = '\0';
    }
    if (streq(host, "*") || streq(host, "0.0.0.0"))
        s_my_address(host, n);
    return *host ? 0 : -EINVAL;
}

static int s_on_direct(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_zap(zloop_t *loop, zmq_pollitem_t *item, void *arg);

//  Bind the direct endpoint in a context of its own (its own ZAP endpoint,
//  answered by vz_acl from the brokers' ACL). 0 or -errno.
static int s_direct_open(vz_worker_t *self, const char *spec, const vz_endpoints_t *brokers)
{
    char bind[VZ_ENDPOINT_MAX], host[VZ_ENDPOINT_MAX];
    if (s_direct_plan(spec, brokers, bind, host, sizeof bind) < 0)
        return -EINVAL;
    self->dctx = zmq_ctx_new();
    if (!self->dctx || !(self->acl = vz_acl_new(self->dctx)))
        return -EIO;
    void *router = zmq_socket(self->dctx, ZMQ_ROUTER);
    if (!router)
        return -EIO;
    self->direct.raw = router;
    zsock_set_linger(router, 0);
    zsock_set_curve_server(router, 1);
    zcert_apply(self->cert, router);
    zsock_set_zap_domain(router, "vizmesh-direct");
    zsock_set_maxmsgsize(router, (int)(vz_envelope_limits_default.max_frame + 4096));
    zsock_set_router_mandatory(router, 1);
    zsock_set_sndtimeo(router, 0);
    zsock_set_rcvtimeo(router, 0);
    if (zmq_bind(router, bind) != 0)
        return -errno;
    char last[VZ_ENDPOINT_MAX] = "";
    size_t len = sizeof last;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, last, &len);
    const char *port = strrchr(last, ':');
    int w = snprintf(self->direct_ep, sizeof self->direct_ep, "tcp://%s:%s", host,
                     port ? port + 1 : "");
    if (w < 0 || (size_t)w >= sizeof self->direct_ep ||
        !vz_broker_endpoint_valid(self->direct_ep)) {
        self->direct_ep[0] = '\0';
        return -EINVAL;
    }
    self->direct.worker = self;
    self->direct.gen = 1;
    vz_strlcpy(self->direct.endpoint, self->direct_ep, sizeof self->direct.endpoint);
    self->direct_items[0] = (zmq_pollitem_t){.socket = router, .events = ZMQ_POLLIN};
    self->direct_items[1] =
        (zmq_pollitem_t){.socket = vz_acl_sock(self->acl), .events = ZMQ_POLLIN};
    return 0;
}

static void s_direct_close(vz_worker_t *self)
{
    if (self->direct.raw)
        zmq_close(self->direct.raw);
    self->direct.raw = NULL;
    self->direct.gen++;
    vz_acl_destroy(&self->acl);
    if (self->dctx)
        zmq_ctx_term(self->dctx);
    self->dctx = NULL;
}

//  A direct caller, remembered to be told BYE when we drain: the latest
//  S_CALLERS_MAX distinct ones (older ones are usually gone: restarts).
static void s_remember_caller(vz_worker_t *self, const uint8_t *tag)
{
    size_t known = self->ncallers < S_CALLERS_MAX ? self->ncallers : S_CALLERS_MAX;
    for (size_t i = 0; i < known; i++)
        if (memcmp(self->callers[i], tag, VZ_TAG_SIZE) == 0)
            return;
    memcpy(self->callers[self->ncallers++ % S_CALLERS_MAX], tag, VZ_TAG_SIZE);
}

//  [routing id] REQ envelope, from a caller the ACL admitted at its
//  handshake. The caller is the identity our ZAP handler attached; it is
//  checked again against the current ACL, which may have shrunk since.
static void s_direct_handle(vz_worker_t *self, zmsg_t *msg)
{
    s_link_t *link = &self->direct;
    zframe_t *rid = zmsg_first(msg);
    zframe_t *cmd = zmsg_next(msg);
    zframe_t *data = zmsg_next(msg);
    if (zmsg_size(msg) != 3 || !zframe_streq(cmd, VZ_CMD_REQUEST) || zframe_size(rid) == 0) {
        s_count(self->dropped);
        return;
    }
    if (zframe_size(rid) >= VZ_TAG_SIZE) {
        //  Our tags hold routing ids ZeroMQ makes (5 bytes): a caller that
        //  names itself at length is told so, not left waiting.
        vz_envelope_t req, err;
        if (vz_envelope_decode(&req, zframe_data(data), zframe_size(data), NULL, NULL) != 0)
            vz_envelope_init(&req, VZ_KIND_REQUEST);
        vz_envelope_error_to(&err, &req, VZ_ERR_MALFORMED, "routing id longer than 7 bytes");
        uint8_t *buf = NULL;
        size_t len = 0;
        if (s_encode_reply(&err, &buf, &len) == 0)
            s_direct_send(link->raw, zframe_data(rid), zframe_size(rid), VZ_CMD_REPLY, buf, len);
        free(buf);
        s_count(self->malformed);
        return;
    }
    uint8_t tag[VZ_TAG_SIZE] = {(uint8_t)zframe_size(rid)};
    memcpy(tag + 1, zframe_data(rid), zframe_size(rid));
    s_remember_caller(self, tag);
    vz_envelope_t req;
    const char *reason = NULL;
    if (vz_envelope_decode(&req, zframe_data(data), zframe_size(data), NULL, &reason) != 0) {
        vz_envelope_init(&req, VZ_KIND_REQUEST);
        s_count(self->malformed);
        s_send_error(link, tag, &req, VZ_ERR_MALFORMED, reason ? reason : "undecodable envelope");
        return;
    }
    //  Identity and key as our ZAP handler attached them at the handshake,
    //  checked against what the brokers say now.
    char caller[VZ_NAME_MAX];
    if (vz_curve_peer_name(cmd, caller, sizeof caller) < 0 ||
        !vz_acl_allows(self->acl, caller, zframe_meta(cmd, "User-Id"))) {
        s_count(self->direct_refused);
        s_send_error(link, tag, &req, VZ_ERR_FORBIDDEN, "call policy refuses this call");
        return;
    }
    if (!streq(req.service, self->service)) {
        s_count(self->malformed);
        s_send_error(link, tag, &req, VZ_ERR_MALFORMED, "not this worker's service");
        return;
    }
    s_count(self->direct_served);
    vz_strlcpy(req.caller, caller, sizeof req.caller);
    s_serve(link, tag, &req);
}

static void s_direct_batch(vz_worker_t *self)
{
    for (int i = 0; i < VZ_WORKER_BATCH && self->direct.raw; i++) {
        zmsg_t *msg = zmsg_recv_nowait(self->direct.raw);
        if (!msg)
            break;
        s_direct_handle(self, msg);
        zmsg_destroy(&msg);
    }
    s_flush(self);
}

static int s_on_direct(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_direct_batch((vz_worker_t *)arg);
    return 0;
}

static int s_on_zap(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    vz_worker_t *self = (vz_worker_t *)arg;
    vz_acl_handle(self->acl);
    return 0;
}

//  Drain: tell every direct caller to send elsewhere from now on.
static void s_direct_bye(vz_worker_t *self)
{
    size_t known = self->ncallers < S_CALLERS_MAX ? self->ncallers : S_CALLERS_MAX;
    for (size_t i = 0; i < known && self->direct.raw; i++) {
        const uint8_t *tag = self->callers[i];
        s_direct_send(self->direct.raw, tag + 1, tag[0], VZ_CMD_BYE, NULL, 0);
    }
}

const char *vz_worker_direct_endpoint(const vz_worker_t *self)
{
    assert(self);
    return self->direct_ep;
}

vz_worker_t *vz_worker_new(const vz_worker_config_t *config, const vz_method_t *methods,
                           size_t count, void *app)
{
    assert(config && config->cert);
    assert(methods || count == 0);
    if (!config->service || !*config->service || !config->endpoints || !config->broker_key ||
        strlen(config->broker_key) != 40 || config->credit < 0 || config->credit > VZ_CREDIT_MAX ||
        (config->version && *config->version && !vz_version_valid(config->version))) {
        errno = EINVAL;
        return NULL;
    }
    vz_worker_t *self = (vz_worker_t *)zmalloc(sizeof(vz_worker_t));
    assert(self);
    vz_strlcpy(self->service, config->service, sizeof self->service);
    memcpy(self->broker_key, config->broker_key, sizeof self->broker_key);
    self->cert = config->cert;
    self->heartbeat_ms = config->heartbeat_ms > 0 ? config->heartbeat_ms : VZ_HEARTBEAT_MS;
    self->credit = config->credit > 0 ? config->credit : 1;
    if (config->version)
        vz_strlcpy(self->version, config->version, sizeof self->version);
    self->observe = config->observe;
    self->observe_arg = config->observe_arg;
    self->methods = methods;
    self->count = count;
    self->app = app;
    self->timer_id = -1;
    for (size_t i = 0; i < count; i++)
        assert(methods[i].name && methods[i].handler);
    if (config->metrics)
        s_metrics_init(self, config->metrics);

    //  Names stand for every broker they resolve to, now and later.
    vz_endpoints_t set;
    int rc = vz_endpoints_resolve(config->endpoints, &set);
    //  The direct endpoint first: RDY announces it.
    if (rc == 0 && config->direct && *config->direct && !streq(config->direct, "off")) {
        rc = s_direct_open(self, config->direct, &set);
        if (rc < 0 && streq(config->direct, "auto")) {
            //  No address to offer (a host name that does not resolve):
            //  everything still works through the brokers.
            vz_warn(NULL, "no direct endpoint: calls come through the brokers only", "reason",
                    strerror(-rc));
            s_direct_close(self);
            self->direct_ep[0] = '\0';
            rc = 0;
        }
    }
    for (size_t i = 0; i < set.n && rc == 0; i++) {
        s_link_t *link = &self->links[self->nlinks++];
        link->worker = self;
        vz_strlcpy(link->endpoint, set.ep[i], sizeof link->endpoint);
        rc = s_link_open(link);
    }
    if (rc == 0 && set.names && !(self->resolver = vz_resolver_new(config->endpoints, &set)))
        rc = -EAGAIN;
    if (rc == 0 && *self->direct_ep)
        vz_info(NULL, "direct endpoint", "endpoint", self->direct_ep);
    if (rc < 0 || self->nlinks == 0) {
        vz_worker_destroy(&self);
        errno = rc < 0 ? -rc : EINVAL;
        return NULL;
    }
    return self;
}

void vz_worker_destroy(vz_worker_t **self_p)
{
    assert(self_p);
    vz_worker_t *self = *self_p;
    if (!self)
        return;
    s_abandon_open(self);
    s_direct_close(self);
    vz_resolver_destroy(&self->resolver);
    for (size_t i = 0; i < self->nlinks; i++) {
        zsock_destroy(&self->links[i].sock);
        zsock_destroy(&self->links[i].retired);
    }
    free(self->mm);
    free(self);
    *self_p = NULL;
}

int vz_worker_attach(vz_worker_t *self, zloop_t *loop)
{
    assert(self && loop);
    assert(!self->loop);
    self->loop = loop;
    for (size_t i = 0; i < self->nlinks; i++) {
        s_link_t *link = &self->links[i];
        if (link->sock) {
            if (zloop_reader(loop, link->sock, s_on_link, link) != 0)
                return -EIO;
            zloop_reader_set_tolerant(loop, link->sock);
        }
    }
    if (self->direct.raw && (zloop_poller(loop, &self->direct_items[0], s_on_direct, self) != 0 ||
                             zloop_poller(loop, &self->direct_items[1], s_on_zap, self) != 0))
        return -EIO;
    self->timer_id = zloop_timer(loop, (size_t)self->heartbeat_ms, 0, s_on_tick, self);
    return self->timer_id < 0 ? -EIO : 0;
}

bool vz_worker_connected(const vz_worker_t *self)
{
    assert(self);
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->nlinks; i++)
        if (self->links[i].alive && now < self->links[i].expiry_ms)
            return true;
    return false;
}

//  Runs without the reactor (it has stopped), so it polls the links itself
//  and ignores zsys_interrupted: SIGTERM is what brought us here.
void vz_worker_drain(vz_worker_t *self, int timeout_ms)
{
    assert(self);
    self->draining = true;
    if (self->loop) {
        for (size_t i = 0; i < self->nlinks; i++)
            if (self->links[i].sock)
                zloop_reader_end(self->loop, self->links[i].sock);
        if (self->timer_id >= 0)
            zloop_timer_end(self->loop, self->timer_id);
        if (self->direct.raw) {
            zloop_poller_end(self->loop, &self->direct_items[0]);
            zloop_poller_end(self->loop, &self->direct_items[1]);
        }
        self->loop = NULL;
        self->timer_id = -1;
    }
    for (size_t i = 0; i < self->nlinks; i++) {
        s_link_t *link = &self->links[i];
        //  A broker we never heard from has nothing dispatched here.
        link->bye_done = !link->alive || s_send(link, VZ_CMD_BYE, NULL, NULL) < 0;
    }
    s_direct_bye(self);
    int64_t end = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    //  Direct callers may have sent before our BYE reached them.
    int64_t direct_until = self->ncallers ? zclock_mono() + S_DIRECT_GRACE_MS : 0;
    int64_t next_hb = zclock_mono() + self->heartbeat_ms;
    while (true) {
        zmq_pollitem_t items[VZ_MAX_LINKS + 2];
        s_link_t *owners[VZ_MAX_LINKS];
        int n = 0;
        for (size_t i = 0; i < self->nlinks; i++) {
            s_link_t *link = &self->links[i];
            if (link->bye_done || !link->sock)
                continue;
            items[n] = (zmq_pollitem_t){.socket = zsock_resolve(link->sock), .events = ZMQ_POLLIN};
            owners[n++] = link;
        }
        int64_t now = zclock_mono();
        if ((n == 0 && now >= direct_until) || now >= end)
            break;
        if (now >= next_hb) {
            //  Keep the broker from declaring us dead while it finishes.
            for (int k = 0; k < n; k++)
                s_send(owners[k], VZ_CMD_HEARTBEAT, NULL, NULL);
            next_hb = now + self->heartbeat_ms;
        }
        int64_t wait = (end < next_hb ? end : next_hb) - now;
        if (n == 0 && direct_until - now < wait)
            wait = direct_until - now;
        int polled = n;
        if (self->direct.raw) {
            items[polled++] = self->direct_items[0];
            items[polled++] = self->direct_items[1];
        }
        if (zmq_poll(items, polled, (long)(wait > 0 ? wait : 0)) < 0)
            continue; //  EINTR from a second signal: keep the budget
        for (int k = 0; k < n; k++)
            if (items[k].revents & ZMQ_POLLIN)
                s_link_batch(owners[k], owners[k]->sock);
        if (self->direct.raw && (items[n].revents & ZMQ_POLLIN))
            s_direct_batch(self);
        if (self->direct.raw && (items[n + 1].revents & ZMQ_POLLIN))
            vz_acl_handle(self->acl);
    }
    s_abandon_open(self);
}

bool vz_version_valid(const char *version)
{
    //  ASCII ranges, not isalnum: the locale must not widen the set.
    size_t n = 0;
    for (; version && version[n]; n++) {
        char c = version[n];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (n == 0 || !strchr("._+-", c)))
            return false;
    }
    return n > 0 && n < VZ_VERSION_MAX;
}
