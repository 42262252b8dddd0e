/*  broker - the routing engine: Majordomo-style dispatch over one CURVE ROUTER
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Data layout, chosen so the hot path (REQ in, REQ out, REP in, REP out)
 *  needs no malloc of its own: requests come from a free list and live on
 *  intrusive lists (a service's queue, then a worker's in-flight list), in
 *  a binary heap ordered by deadline, and while in flight in a hash keyed by
 *  tag. Envelope frames are moved, never re-encoded; the frame of an
 *  idempotent request is kept (zmq_msg_copy shares the buffer) for a retry.
 *
 *  The ROUTER is ZMQ_ROUTER_MANDATORY with a send timeout of 0: a send to a
 *  peer whose connection is gone fails with EHOSTUNREACH, and one whose pipe
 *  is full with EAGAIN, instead of being dropped silently or blocking the
 *  reactor. Both fail on the routing-id frame, before anything is queued, so
 *  a request that failed to go out is still whole and goes back to its queue.
 */
#include "broker.h"
#include "keys.h"

#include <string.h>
#include <time.h>

#include "vz_batch.h"
#include "vz_broker_contract.h"
#include "vz_client.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_log.h"
#include "vz_proto.h"
#include "vz_worker.h"

#define S_DEFAULT_TIMEOUT_MS 30000
#define S_KEYS_CHECK_MS 5000 //  how often the allow directory is looked at for new keys
#define S_DEADLINE_TICK_MS 10      //  resolution of deadline expiry
#define S_BATCH 256                //  messages read per wake-up before yielding to timers
#define S_POOL_MAX 4096            //  free requests kept for reuse
#define S_SERVICES_MAX 4096        //  distinct service names remembered
#define S_SERVICES_PER_IDENTITY 16 //  default bound on the services one identity creates
#define S_SAMPLE_MAX 32            //  bytes of a peer's string shown in a log line
#define S_LOGGED_MAX 1024          //  keys remembered for log-once lines (s_first_time)
#define S_LOG_EVERY_MS 10000       //  at most one malformed-input log line per period
#define S_STICKY_SCALE 1000000     //  points a sticky key hashes onto
#define S_UNVERSIONED "0"          //  the version of a worker whose RDY names none

//  Intrusive doubly linked list; a list is a sentinel node.
typedef struct s_node_t {
    struct s_node_t *prev; //  previous node (the sentinel at the front)
    struct s_node_t *next; //  next node (the sentinel at the back)
} s_node_t;

#define s_container(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void s_list_init(s_node_t *list)
{
    list->prev = list->next = list;
}
static bool s_list_empty(const s_node_t *list)
{
    return list->next == list;
}
static bool s_linked(const s_node_t *node)
{
    return node->next != NULL;
}
static void s_list_unlink(s_node_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}
static void s_list_push_back(s_node_t *list, s_node_t *node)
{
    node->prev = list->prev;
    node->next = list;
    list->prev->next = node;
    list->prev = node;
}
static void s_list_push_front(s_node_t *list, s_node_t *node)
{
    s_list_push_back(list->next, node);
}

typedef enum {
    S_OUT_REPLIED,
    S_OUT_NO_WORKER,
    S_OUT_TIMEOUT,
    S_OUT_WORKER_LOST,
    S_OUT_OVERLOADED,
    S_OUT_UNAVAILABLE,
    S_OUT_UNKNOWN_METHOD,
    S_OUT_COUNT
} s_outcome_t;

static const char *const s_outcome_names[S_OUT_COUNT] = {
    "replied", "no_worker", "timeout", "worker_lost", "overloaded", "unavailable", "unknown_method",
};

//  Who a failed send was for, and why it failed (labels of vz_broker_send_failed_total).
typedef enum { S_PEER_CLIENT, S_PEER_WORKER, S_PEER_COUNT } s_peer_t;
typedef enum { S_FAIL_GONE, S_FAIL_FULL, S_FAIL_COUNT } s_fail_t;

static const char *const s_peer_names[S_PEER_COUNT] = {"client", "worker"};
static const char *const s_fail_names[S_FAIL_COUNT] = {"unreachable", "full"};

//  Why a worker's reply was not forwarded (labels of vz_broker_replies_rejected_total).
typedef enum {
    S_REJ_MALFORMED,
    S_REJ_KIND,
    S_REJ_ID,
    S_REJ_SERVICE,
    S_REJ_METHOD,
    S_REJ_COUNT
} s_reject_t;
static const char *const s_reject_names[S_REJ_COUNT] = {"malformed", "kind", "id", "service",
                                                        "method"};

//  Which bound refused a new service (labels of vz_broker_services_refused_total).
typedef enum { S_LIMIT_IDENTITY, S_LIMIT_GLOBAL, S_LIMIT_COUNT } s_limit_t;
static const char *const s_limit_names[S_LIMIT_COUNT] = {"identity_limit", "global_limit"};

typedef struct s_service_t s_service_t;
typedef struct s_worker_t s_worker_t;

//  What became of a request dispatched to a version (vz_broker_version_requests_total).
typedef enum { S_VOUT_REPLIED, S_VOUT_ERROR, S_VOUT_TIMEOUT, S_VOUT_LOST, S_VOUT_COUNT } s_vout_t;
static const char *const s_vout_names[S_VOUT_COUNT] = {"replied", "error", "timeout",
                                                       "worker_lost"};

//  One version of a service: its workers with free credit and the requests
//  the weights gave it. Created by a RDY naming it or by the weights;
//  recycled when it has neither workers, queued requests nor a weight.
typedef struct {
    char name[VZ_VERSION_MAX]; //  version token, S_UNVERSIONED for workers that name none
    s_node_t waiting;          //  its workers with free credit, least recently used first
    s_node_t queue;            //  requests the weights sent here, oldest first
    size_t worker_count;       //  registered workers not draining
    int weight;                //  configured weight, 0 when not listed
    int64_t current;           //  smooth weighted round robin state
    vz_series_t *weight_gauge; //  vz_broker_version_weight{service,version}
    vz_series_t *workers;      //  vz_broker_version_workers{service,version}
    vz_series_t *duration;     //  vz_broker_version_request_duration_seconds{service,version}
    vz_series_t *outcome[S_VOUT_COUNT]; //  vz_broker_version_requests_total{...,outcome}, lazily
} s_version_t;

typedef struct {
    s_node_t node;            //  in a service queue, a worker's in-flight list or the pool
    uint64_t tag;             //  key in the tags hash while in flight
    zframe_t *client;         //  client routing id; NULL for the broker's own (broker_send_self)
    zframe_t *body;           //  original envelope frame; NULL once sent if not retryable
    s_service_t *service;     //  target service
    s_worker_t *worker;       //  worker holding it, NULL while queued
    s_version_t *version;     //  version the weights chose, NULL = any worker
    int64_t deadline_ms;      //  absolute wall-clock deadline
    int64_t start_ms;         //  wall-clock arrival, for no_worker vs timeout
    int64_t start_us;         //  monotonic arrival, for the latency histogram
    size_t heap_index;        //  position in the deadline heap
    int retries;              //  re-dispatches after a worker loss
    bool idempotent;          //  VZ_FLAG_IDEMPOTENT was set
    bool bundle;              //  VZ_FLAG_BUNDLE was set: its reply holds one answer per item
    char caller[VZ_NAME_MAX]; //  CURVE identity of the client
    char id[VZ_ID_MAX];       //  request id, for error replies
    char method[VZ_NAME_MAX]; //  method, for error replies
    char traceparent[VZ_TRACEPARENT_MAX]; //  trace context, for error replies
} s_request_t;

struct s_service_t {
    char name[VZ_NAME_MAX];            //  service name (hash key)
    s_node_t waiting;                  //  workers with free credit, least recently used first
    s_node_t queue;                    //  requests not yet dispatched, oldest first
    size_t queue_size;                 //  entries in queue
    size_t worker_count;               //  registered workers not draining
    int64_t last_worker_ms;            //  wall time a worker was last registered, 0 = never
    vz_series_t *workers_gauge;        //  vz_broker_workers{service}
    vz_series_t *queue_gauge;          //  vz_broker_queue_depth{service}
    vz_series_t *duration;             //  vz_broker_request_duration_seconds{service}
    vz_series_t *queue_wait;           //  vz_broker_queue_wait_seconds{service}
    vz_series_t *outcome[S_OUT_COUNT]; //  vz_broker_requests_total{service,outcome}, lazily

    //  Versions (docs/services/broker.md, "Versions and weights").
    s_version_t *versions[BROKER_VERSIONS_MAX]; //  versions seen, NULL slots free (owned)
    bool weighted;                              //  weights are configured: requests pick a version
    char sticky[VZ_NAME_MAX];                   //  ctx key whose value pins a version, "" = none
    size_t order_count;                         //  entries in order
    char order[BROKER_VERSIONS_MAX]
              [VZ_VERSION_MAX]; //  weighted versions as configured (range order)
};

struct s_worker_t {
    s_node_t node;              //  in service->waiting while it has free credit
    s_node_t inflight;          //  requests dispatched to it
    zframe_t *rid;              //  routing id (also the hash key)
    s_service_t *service;       //  the service it serves
    char identity[VZ_NAME_MAX]; //  CURVE identity, for logs
    int credit;                 //  requests it accepts at once
    int busy;                   //  requests in flight on it
    int64_t expiry;             //  monotonic ms after which it is dead
    bool draining;              //  sent BYE: no new dispatch
    char direct[VZ_ENDPOINT_MAX]; //  its direct endpoint (4th RDY frame), "" = none

    //  Its version: on the version's LRU list while on the service's.
    s_node_t vnode;       //  in version->waiting at the same time as node
    s_version_t *version; //  the version it announced
};

struct broker_t {
    zsock_t *router;              //  the one CURVE ROUTER
    void *handle;                 //  its libzmq handle, for raw sends
    policy_t *policy;             //  current call policy (owned)
    vz_metrics_t *metrics;        //  registry (borrowed)
    int port;                     //  bound TCP port
    int heartbeat_ms;             //  heartbeat interval
    int queue_max;                //  per-service queue bound
    int retry_max;                //  retries of idempotent requests
    int default_timeout_ms;       //  deadline for requests without one
    size_t services_per_identity; //  services one identity may create
    zhashx_t *services;           //  name -> s_service_t (owned)
    zhashx_t *creators;           //  identity -> services it created, as (void *)(uintptr_t)count
    zhashx_t *workers;            //  routing id frame -> s_worker_t (owned)
    zhashx_t *tags;               //  &tag -> s_request_t in flight (borrowed)
    s_request_t **heap;           //  every live request, min-heap on deadline
    size_t heap_size;             //  entries used
    size_t heap_cap;              //  entries allocated
    s_node_t pool;                //  free requests
    size_t pool_size;             //  entries in pool
    uint64_t next_tag;            //  next tag to hand out
    zloop_t *loop;                //  loop we are attached to
    zhashx_t *logged;             //  log-once keys already logged (s_first_time)
    vz_series_t *malformed;       //  vz_broker_malformed_total
    vz_series_t *forbidden;       //  vz_broker_forbidden_total
    vz_series_t *send_failed[S_PEER_COUNT][S_FAIL_COUNT]; //  vz_broker_send_failed_total
    vz_series_t *workers_gone;           //  vz_broker_workers_lost_total{detected="send"}
    vz_series_t *workers_silent;         //  vz_broker_workers_lost_total{detected="silence"}
    vz_series_t *rejected[S_REJ_COUNT];  //  vz_broker_replies_rejected_total{reason}
    vz_series_t *refused[S_LIMIT_COUNT]; //  vz_broker_services_refused_total{reason}
    int64_t malformed_logged_ms;         //  last malformed log line
    uint64_t malformed_quiet;            //  malformed messages since that line
    bool stopping;                       //  draining: accept nothing new
    broker_answer_fn *answer_fn;         //  outcome of the broker's own requests, or NULL
    void *answer_arg;                    //  for answer_fn
    vz_telemetry_t *telemetry;           //  records the broker's own methods (borrowed), or NULL
    keys_t *keys;                        //  identities' public keys, for direct calls (owned)
    int64_t keys_checked_ms;             //  when the allow directory was last looked at
};

//  --------------------------------------------------------------------------
//  Hash keys that are not strings: 8-byte tags and routing-id frames.

static size_t s_tag_hash(const void *key)
{
    uint64_t tag;
    memcpy(&tag, key, sizeof tag);
    return (size_t)(tag * 0x9E3779B97F4A7C15ull >> 16);
}

static int s_tag_compare(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(uint64_t));
}

static size_t s_frame_hash(const void *key)
{
    zframe_t *frame = (zframe_t *)key;
    const byte *data = zframe_data(frame);
    size_t hash = 14695981039346656037ull;
    for (size_t i = 0; i < zframe_size(frame); i++)
        hash = (hash ^ data[i]) * 1099511628211ull;
    return hash;
}

static int s_frame_compare(const void *a, const void *b)
{
    zframe_t *fa = (zframe_t *)a, *fb = (zframe_t *)b;
    if (zframe_size(fa) != zframe_size(fb))
        return zframe_size(fa) < zframe_size(fb) ? -1 : 1;
    return memcmp(zframe_data(fa), zframe_data(fb), zframe_size(fa));
}

//  --------------------------------------------------------------------------
//  Deadline heap.

static bool s_heap_less(broker_t *self, size_t a, size_t b)
{
    return self->heap[a]->deadline_ms < self->heap[b]->deadline_ms;
}

static void s_heap_swap(broker_t *self, size_t a, size_t b)
{
    s_request_t *tmp = self->heap[a];
    self->heap[a] = self->heap[b];
    self->heap[b] = tmp;
    self->heap[a]->heap_index = a;
    self->heap[b]->heap_index = b;
}

static void s_heap_up(broker_t *self, size_t i)
{
    while (i > 0 && s_heap_less(self, i, (i - 1) / 2)) {
        s_heap_swap(self, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void s_heap_down(broker_t *self, size_t i)
{
    while (true) {
        size_t least = i, l = 2 * i + 1, r = l + 1;
        if (l < self->heap_size && s_heap_less(self, l, least))
            least = l;
        if (r < self->heap_size && s_heap_less(self, r, least))
            least = r;
        if (least == i)
            return;
        s_heap_swap(self, i, least);
        i = least;
    }
}

static void s_heap_push(broker_t *self, s_request_t *request)
{
    if (self->heap_size == self->heap_cap) {
        self->heap_cap = self->heap_cap ? self->heap_cap * 2 : 1024;
        self->heap = (s_request_t **)realloc(self->heap, self->heap_cap * sizeof *self->heap);
        assert(self->heap);
    }
    request->heap_index = self->heap_size;
    self->heap[self->heap_size++] = request;
    s_heap_up(self, request->heap_index);
}

static void s_heap_remove(broker_t *self, s_request_t *request)
{
    size_t i = request->heap_index;
    assert(i < self->heap_size && self->heap[i] == request);
    self->heap_size--;
    if (i != self->heap_size) {
        self->heap[i] = self->heap[self->heap_size];
        self->heap[i]->heap_index = i;
        s_heap_down(self, i);
        s_heap_up(self, i);
    }
}

//  --------------------------------------------------------------------------
//  Services and metrics.

static void s_service_destroy(void **item_p)
{
    s_service_t *service = (s_service_t *)*item_p;
    for (int v = 0; v < BROKER_VERSIONS_MAX; v++)
        free(service->versions[v]);
    free(service);
    *item_p = NULL;
}

//  True the first time (kind, key) is seen since the last policy load, as
//  long as there is room to remember it: for log-once lines.
static bool s_first_time(broker_t *self, const char *kind, const char *key)
{
    char full[VZ_NAME_MAX * 2 + 32];
    snprintf(full, sizeof full, "%s:%s", kind, key);
    if (zhashx_size(self->logged) >= S_LOGGED_MAX || zhashx_lookup(self->logged, full))
        return false;
    zhashx_insert(self->logged, full, self);
    return true;
}

//  A new service with its metrics series. name was checked (policy_name_valid).
static s_service_t *s_service_new(broker_t *self, const char *name)
{
    s_service_t *service = (s_service_t *)zmalloc(sizeof *service);
    vz_strlcpy(service->name, name, sizeof service->name);
    s_list_init(&service->waiting);
    s_list_init(&service->queue);
    char labels[VZ_NAME_MAX + 16];
    snprintf(labels, sizeof labels, "service=%s", name);
    service->workers_gauge = vz_metrics_gauge(self->metrics, "vz_broker_workers",
                                              "Workers registered per service", labels);
    service->queue_gauge = vz_metrics_gauge(self->metrics, "vz_broker_queue_depth",
                                            "Requests waiting for a worker", labels);
    service->duration =
        vz_metrics_histogram(self->metrics, "vz_broker_request_duration_seconds",
                             "Time from request arrival to the worker's reply", labels, NULL, 0);
    service->queue_wait =
        vz_metrics_histogram(self->metrics, "vz_broker_queue_wait_seconds",
                             "Time from request arrival to its dispatch to a worker (the "
                             "autoscaling signal, with vz_broker_queue_depth)",
                             labels, NULL, 0);
    zhashx_insert(self->services, service->name, service);
    return service;
}

//  The service called name, created on first use unless a bound refuses it:
//  creator (NULL for the broker's own) may have created only so many, and
//  the broker remembers only so many. NULL then, with *limit set.
static s_service_t *s_service_require(broker_t *self, const char *name, const char *creator,
                                      s_limit_t *limit)
{
    s_service_t *service = (s_service_t *)zhashx_lookup(self->services, name);
    if (service)
        return service;
    size_t created = creator ? (size_t)(uintptr_t)zhashx_lookup(self->creators, creator) : 0;
    if (creator && created >= self->services_per_identity)
        *limit = S_LIMIT_IDENTITY;
    else if (zhashx_size(self->services) >= S_SERVICES_MAX)
        *limit = S_LIMIT_GLOBAL;
    else {
        if (creator)
            zhashx_update(self->creators, creator, (void *)(uintptr_t)(created + 1));
        return s_service_new(self, name);
    }
    vz_series_inc(self->refused[*limit]);
    char bound[24];
    snprintf(bound, sizeof bound, "%zu",
             *limit == S_LIMIT_IDENTITY ? self->services_per_identity : (size_t)S_SERVICES_MAX);
    if (s_first_time(self, s_limit_names[*limit], creator ? creator : ""))
        vz_warn(NULL, "refused to create a service", "identity", creator ? creator : "(none)",
                "service", name, "reason", s_limit_names[*limit], "limit", bound);
    return NULL;
}

static void s_count(broker_t *self, s_service_t *service, s_outcome_t outcome)
{
    if (!service->outcome[outcome]) {
        char labels[VZ_NAME_MAX + 48];
        snprintf(labels, sizeof labels, "service=%s,outcome=%s", service->name,
                 s_outcome_names[outcome]);
        service->outcome[outcome] = vz_metrics_counter(self->metrics, "vz_broker_requests_total",
                                                       "Requests finished, by outcome", labels);
    }
    vz_series_inc(service->outcome[outcome]);
}

//  --------------------------------------------------------------------------
//  Versions and weights (docs/services/broker.md, "Versions and weights").

static s_version_t *s_version_find(s_service_t *service, const char *name)
{
    for (int v = 0; v < BROKER_VERSIONS_MAX; v++)
        if (service->versions[v] && strcmp(service->versions[v]->name, name) == 0)
            return service->versions[v];
    return NULL;
}

//  Whether version is free to be renamed: nothing refers to it.
static bool s_version_idle(broker_t *self, const s_service_t *service, const s_version_t *version)
{
    if (version->worker_count || !s_list_empty(&version->queue) || version->weight)
        return false;
    for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
        if (w->version == version)
            return false; //  a draining worker still points to it
    return true;
}

//  The version called name of service, created in a free slot or in place
//  of an idle one, with its series. NULL when every slot is busy.
static s_version_t *s_version_require(broker_t *self, s_service_t *service, const char *name)
{
    s_version_t *version = s_version_find(service, name);
    if (version)
        return version;
    int slot = -1;
    for (int v = 0; v < BROKER_VERSIONS_MAX && slot < 0; v++)
        if (!service->versions[v])
            slot = v;
    for (int v = 0; v < BROKER_VERSIONS_MAX && slot < 0; v++)
        if (s_version_idle(self, service, service->versions[v]))
            slot = v;
    if (slot < 0)
        return NULL;
    if (!service->versions[slot])
        service->versions[slot] = (s_version_t *)malloc(sizeof(s_version_t));
    version = service->versions[slot];
    assert(version);
    memset(version, 0, sizeof *version);
    vz_strlcpy(version->name, name, sizeof version->name);
    s_list_init(&version->waiting);
    s_list_init(&version->queue);
    char labels[VZ_NAME_MAX + VZ_VERSION_MAX + 32];
    snprintf(labels, sizeof labels, "service=%s,version=%s", service->name, name);
    version->weight_gauge =
        vz_metrics_gauge(self->metrics, "vz_broker_version_weight",
                         "Configured routing weight per service version", labels);
    vz_series_set(version->weight_gauge, 0);
    version->workers = vz_metrics_gauge(self->metrics, "vz_broker_version_workers",
                                        "Workers registered per service version", labels);
    vz_series_set(version->workers, 0);
    version->duration = vz_metrics_histogram(
        self->metrics, "vz_broker_version_request_duration_seconds",
        "Time from request arrival to the reply, per version of the worker", labels, NULL, 0);
    return version;
}

//  Add delta to the workers of version (and its gauge).
static void s_version_workers(s_version_t *version, int delta)
{
    version->worker_count = (size_t)((ssize_t)version->worker_count + delta);
    vz_series_set(version->workers, (double)version->worker_count);
}

//  Count a request a worker of version held, and its latency when answered.
static void s_version_count(broker_t *self, s_version_t *version, s_vout_t outcome,
                            const s_request_t *request)
{
    if (!version->outcome[outcome]) {
        char labels[VZ_NAME_MAX + VZ_VERSION_MAX + 48];
        snprintf(labels, sizeof labels, "service=%s,version=%s,outcome=%s", request->service->name,
                 version->name, s_vout_names[outcome]);
        version->outcome[outcome] =
            vz_metrics_counter(self->metrics, "vz_broker_version_requests_total",
                               "Requests dispatched to a version, by outcome", labels);
    }
    vz_series_inc(version->outcome[outcome]);
    if (outcome == S_VOUT_REPLIED || outcome == S_VOUT_ERROR)
        vz_series_observe(version->duration,
                          (double)(vz_clock_mono_us() - request->start_us) / 1e6);
}

//  A bundle's reply to a weighted service: each item's answer counted for
//  version, as if sent alone (a rollout's error gate must see an item that
//  failed inside a bundle that replied). Unreadable: counted once, replied.
static void s_version_count_items(broker_t *self, s_version_t *version, const s_request_t *request,
                                  const vz_envelope_t *rep)
{
    vz_batch_item_t items[VZ_BATCH_MAX];
    size_t n = 0;
    if (rep->kind != VZ_KIND_REPLY ||
        vz_batch_request_decode(rep->body, rep->body_len, items, VZ_BATCH_MAX, &n, NULL) < 0) {
        s_version_count(self, version, rep->kind == VZ_KIND_ERROR ? S_VOUT_ERROR : S_VOUT_REPLIED,
                        request);
        return;
    }
    vz_envelope_t item;
    for (size_t i = 0; i < n; i++) {
        bool error = vz_envelope_decode(&item, items[i].data, items[i].len, NULL, NULL) < 0 ||
                     item.kind == VZ_KIND_ERROR;
        s_version_count(self, version, error ? S_VOUT_ERROR : S_VOUT_REPLIED, request);
    }
}

//  FNV-1a, for sticky keys: the same value lands on the same point everywhere.
static uint64_t s_hash(const char *text)
{
    uint64_t hash = 14695981039346656037ull;
    for (; *text; text++)
        hash = (hash ^ (uint8_t)*text) * 1099511628211ull;
    return hash;
}

//  The version a new request goes to, or NULL for any worker (no weights,
//  or no weighted version has a worker). Versions count when their weight
//  is above 0 and they have a worker. A request carrying the sticky ctx
//  key takes the range its hash falls in, the ranges laid out in the
//  configured order over [0, S_STICKY_SCALE); any other takes the next
//  turn of a smooth weighted round robin (nginx's), exact over a cycle.
static s_version_t *s_version_choose(s_service_t *service, const vz_envelope_t *env)
{
    if (!service->weighted)
        return NULL;
    s_version_t *live[BROKER_VERSIONS_MAX];
    int64_t total = 0;
    size_t n = 0;
    for (size_t i = 0; i < service->order_count; i++) {
        s_version_t *v = s_version_find(service, service->order[i]);
        if (v && v->weight > 0 && v->worker_count > 0) {
            live[n++] = v;
            total += v->weight;
        }
    }
    if (n == 0)
        return NULL;
    const char *key = *service->sticky ? vz_envelope_ctx_get(env, service->sticky) : NULL;
    if (key && *key) {
        uint64_t point = s_hash(key) % S_STICKY_SCALE;
        int64_t edge = 0;
        for (size_t i = 0; i < n; i++) {
            edge += live[i]->weight;
            if ((int64_t)point * total < edge * S_STICKY_SCALE)
                return live[i];
        }
        return live[n - 1];
    }
    s_version_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        live[i]->current += live[i]->weight;
        if (!best || live[i]->current > best->current)
            best = live[i];
    }
    best->current -= total;
    return best;
}

//  A version that lost its last worker hands its queue to any worker of the
//  service (oldest first, behind nothing): the weights cannot be honoured
//  for requests already admitted, and they must not wait for a worker that
//  may never come.
static void s_version_orphan(s_service_t *service, s_version_t *version)
{
    if (version->worker_count > 0)
        return;
    while (!s_list_empty(&version->queue)) {
        s_node_t *node = version->queue.prev;
        s_list_unlink(node);
        s_container(node, s_request_t, node)->version = NULL;
        s_list_push_front(&service->queue, node);
    }
}

//  Count malformed input; log a sample at most once per period.
static void s_malformed(broker_t *self, const char *what, const char *identity)
{
    vz_series_inc(self->malformed);
    int64_t now = vz_clock_mono_ms();
    if (now - self->malformed_logged_ms >= S_LOG_EVERY_MS || self->malformed_logged_ms == 0) {
        char quiet[24];
        snprintf(quiet, sizeof quiet, "%" PRIu64, self->malformed_quiet);
        vz_warn(NULL, "unable to accept message: malformed", "reason", what, "identity", identity,
                "suppressed", quiet);
        self->malformed_logged_ms = now;
        self->malformed_quiet = 0;
    } else
        self->malformed_quiet++;
}

//  Count a refusal; log it once per identity.
static void s_forbidden(broker_t *self, const char *identity, const char *what, const char *service)
{
    vz_series_inc(self->forbidden);
    //  An unknown identity is logged once; a known one once per refused service.
    char key[VZ_NAME_MAX * 2 + 2];
    if (policy_known(self->policy, identity))
        snprintf(key, sizeof key, "%s/%s", identity, service);
    else
        snprintf(key, sizeof key, "%s", identity);
    if (s_first_time(self, "forbidden", key)) {
        vz_warn(NULL, "refused by call policy", "identity", *identity ? identity : "(none)",
                "action", what, "service", service);
    }
}

//  --------------------------------------------------------------------------
//  Sending. Raw zmq_send copies small frames; envelope frames are moved.

//  Start a message to rid. Returns 0, or -EHOSTUNREACH (the peer's
//  connection is gone) or -EAGAIN (its pipe is at the high-water mark); then
//  nothing was sent and the caller must not send the remaining frames.
static int s_send_head(broker_t *self, zframe_t *rid, const char *cmd, bool more)
{
    if (zmq_send(self->handle, zframe_data(rid), zframe_size(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? -EAGAIN : -EHOSTUNREACH;
    zmq_send(self->handle, cmd, strlen(cmd), more ? ZMQ_SNDMORE : 0);
    return 0;
}

//  Count a message that could not be sent (rc from s_send_head).
static void s_send_failed(broker_t *self, s_peer_t peer, int rc)
{
    vz_series_inc(self->send_failed[peer][rc == -EAGAIN ? S_FAIL_FULL : S_FAIL_GONE]);
}

//  Send an error reply for req to the client.
static void s_send_error(broker_t *self, zframe_t *client, const vz_envelope_t *req,
                         const char *code, const char *message)
{
    vz_envelope_t reply;
    vz_envelope_error_to(&reply, req, code, message);
    vz_strlcpy(reply.caller, VZ_BROKER_SERVICE, sizeof reply.caller);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (vz_envelope_encode(&reply, &buf, &len) < 0)
        return; //  cannot happen with our own short fields; the client times out
    int rc = s_send_head(self, client, VZ_CMD_REPLY, true);
    if (rc == 0)
        zmq_send(self->handle, buf, len, 0);
    else
        s_send_failed(self, S_PEER_CLIENT, rc); //  the client left: nobody to tell
    free(buf);
}

//  The outcome of one of the broker's own requests, to the answer hook.
static void s_answer(broker_t *self, const char *service, const char *code)
{
    if (self->answer_fn)
        self->answer_fn(self->answer_arg, service, code);
}

//  An error for a request not yet tracked: to its client, or to the answer
//  hook when the broker sent it itself (client NULL).
static void s_refuse(broker_t *self, zframe_t *client, const vz_envelope_t *req, const char *code,
                     const char *message)
{
    if (client)
        s_send_error(self, client, req, code, message);
    else
        s_answer(self, req->service, code);
}

//  Answer a tracked request with an error, rebuilding the fields it echoes.
static void s_send_request_error(broker_t *self, s_request_t *request, const char *code,
                                 const char *message)
{
    if (!request->client) {
        s_answer(self, request->service->name, code);
        return;
    }
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, request->service->name, sizeof req.service);
    vz_strlcpy(req.method, request->method, sizeof req.method);
    vz_strlcpy(req.id, request->id, sizeof req.id);
    vz_strlcpy(req.traceparent, request->traceparent, sizeof req.traceparent);
    s_send_error(self, request->client, &req, code, message);
}

//  --------------------------------------------------------------------------
//  Request lifecycle.

static s_request_t *s_request_new(broker_t *self)
{
    s_request_t *request;
    if (!s_list_empty(&self->pool)) {
        s_node_t *node = self->pool.next;
        s_list_unlink(node);
        self->pool_size--;
        request = s_container(node, s_request_t, node);
    } else
        request = (s_request_t *)malloc(sizeof *request);
    assert(request);
    memset(request, 0, offsetof(s_request_t, caller));
    return request;
}

//  Forget a request wherever it is: queue or worker, tag hash, heap.
static void s_request_finish(broker_t *self, s_request_t *request)
{
    if (s_linked(&request->node)) {
        s_list_unlink(&request->node);
        if (!request->worker) {
            request->service->queue_size--;
            vz_series_set(request->service->queue_gauge, (double)request->service->queue_size);
        }
    }
    if (request->worker) {
        zhashx_delete(self->tags, &request->tag);
        request->worker->busy--;
    }
    s_heap_remove(self, request);
    zframe_destroy(&request->client);
    zframe_destroy(&request->body);
    if (self->pool_size < S_POOL_MAX) {
        s_list_push_back(&self->pool, &request->node);
        self->pool_size++;
    } else
        free(request);
}

static void s_worker_forget(broker_t *self, s_worker_t *worker, bool gone);

//  A worker with free credit is on two LRU lists: its service's (requests
//  for any version) and its version's (requests the weights sent there).
static void s_worker_offer(s_worker_t *worker)
{
    s_list_push_back(&worker->service->waiting, &worker->node);
    s_list_push_back(&worker->version->waiting, &worker->vnode);
}

static void s_worker_park(s_worker_t *worker)
{
    if (s_linked(&worker->node)) {
        s_list_unlink(&worker->node);
        s_list_unlink(&worker->vnode);
    }
}

//  After a worker got credit back: make it available again, or finish its drain.
static void s_worker_freed(broker_t *self, s_worker_t *worker)
{
    if (worker->draining) {
        if (worker->busy == 0) {
            s_send_head(self, worker->rid, VZ_CMD_BYE, false); //  gone or not, we are done
            s_worker_forget(self, worker, false);
        }
    } else if (!s_linked(&worker->node) && worker->busy < worker->credit)
        s_worker_offer(worker);
}

static void s_worker_lost(broker_t *self, s_worker_t *worker, bool gone);

//  Hand the head of queue to the head of waiting (a list of worker nodes
//  at offset link). false when the worker could not take it: its pipe is
//  full (it is parked) or its connection is gone (it is forgotten, and the
//  request, which never left, goes back to the head of whatever queue it is
//  in now: the worker's loss may have moved it, see s_version_orphan). Safe
//  even for a request that is not idempotent.
static bool s_send_one(broker_t *self, s_service_t *service, s_node_t *queue, s_node_t *waiting,
                       size_t link)
{
    s_worker_t *worker = (s_worker_t *)((char *)waiting->next - link);
    s_request_t *request = s_container(queue->next, s_request_t, node);
    int rc = s_send_head(self, worker->rid, VZ_CMD_REQUEST, true);
    if (rc < 0) {
        s_send_failed(self, S_PEER_WORKER, rc);
        if (rc == -EAGAIN) {
            s_worker_park(worker);
            return false;
        }
        s_worker_lost(self, worker, true);
        //  The dead worker's idempotent requests went to the front; this one was first.
        s_node_t *home = request->version ? &request->version->queue : &service->queue;
        if (home->next != &request->node) {
            s_list_unlink(&request->node);
            s_list_push_front(home, &request->node);
        }
        return false;
    }
    s_list_unlink(&request->node);
    service->queue_size--;
    s_worker_park(worker);
    if (++worker->busy < worker->credit)
        s_worker_offer(worker);
    s_list_push_back(&worker->inflight, &request->node);
    request->worker = worker;
    zhashx_insert(self->tags, &request->tag, request);

    zmq_send(self->handle, &request->tag, VZ_TAG_SIZE, ZMQ_SNDMORE);
    zmq_send(self->handle, request->caller, strlen(request->caller), ZMQ_SNDMORE);
    //  Keep the body of a retryable request; zmq_msg_copy shares its buffer.
    zframe_send(&request->body, self->router, request->idempotent ? ZFRAME_REUSE : 0);
    if (request->retries == 0)
        vz_series_observe(service->queue_wait,
                          (double)(vz_clock_mono_us() - request->start_us) / 1e6);
    return true;
}

//  Hand queued requests to least-recently-used workers while both exist:
//  first those the weights sent to a version, to that version's workers,
//  then those for any version, to any worker.
static void s_dispatch(broker_t *self, s_service_t *service)
{
    for (int v = 0; v < BROKER_VERSIONS_MAX; v++) {
        s_version_t *version = service->versions[v];
        while (version && !s_list_empty(&version->queue) && !s_list_empty(&version->waiting))
            s_send_one(self, service, &version->queue, &version->waiting,
                       offsetof(s_worker_t, vnode));
    }
    while (!s_list_empty(&service->queue) && !s_list_empty(&service->waiting))
        s_send_one(self, service, &service->queue, &service->waiting, offsetof(s_worker_t, node));
    vz_series_set(service->queue_gauge, (double)service->queue_size);
}

//  --------------------------------------------------------------------------
//  Workers.

static void s_worker_destroy(void **item_p)
{
    s_worker_t *worker = (s_worker_t *)*item_p;
    if (worker) {
        zframe_destroy(&worker->rid);
        free(worker);
        *item_p = NULL;
    }
}

//  Remove a worker whose in-flight list is empty. A worker found gone
//  (its connection closed before we noticed) does not count as "a worker
//  was there" for the no_worker/timeout choice at a request's deadline.
static void s_worker_forget(broker_t *self, s_worker_t *worker, bool gone)
{
    assert(s_list_empty(&worker->inflight));
    s_worker_park(worker);
    s_service_t *service = worker->service;
    if (!worker->draining) {
        service->worker_count--;
        s_version_workers(worker->version, -1);
        s_version_orphan(service, worker->version);
        if (!gone)
            service->last_worker_ms = vz_now_ms();
        vz_series_set(service->workers_gauge, (double)service->worker_count);
    }
    zhashx_delete(self->workers, worker->rid);
}

//  The reply to a request in flight is lost (its worker died, or lied):
//  requeue it at the front if idempotent with retries left, else answer
//  worker_lost. The caller dispatches afterwards.
static void s_request_lost(broker_t *self, s_request_t *request, const char *message)
{
    s_worker_t *worker = request->worker;
    s_service_t *service = request->service;
    if (request->idempotent && request->retries < self->retry_max && request->body &&
        !self->stopping) {
        s_list_unlink(&request->node);
        zhashx_delete(self->tags, &request->tag);
        worker->busy--;
        request->worker = NULL;
        request->retries++;
        request->tag = self->next_tag++;
        //  Its version's queue when that version still has a worker, else any.
        if (request->version && request->version->worker_count == 0)
            request->version = NULL;
        s_list_push_front(request->version ? &request->version->queue : &service->queue,
                          &request->node);
        service->queue_size++;
        s_version_count(self, worker->version, S_VOUT_LOST, request);
    } else {
        s_version_count(self, worker->version, S_VOUT_LOST, request);
        s_send_request_error(self, request, VZ_ERR_WORKER_LOST, message);
        s_count(self, service, S_OUT_WORKER_LOST);
        s_request_finish(self, request);
    }
}

//  A worker died holding requests: each is lost (s_request_lost). gone:
//  found by a failed send rather than by silence.
static void s_worker_lost(broker_t *self, s_worker_t *worker, bool gone)
{
    vz_warn(NULL, "worker lost", "identity", worker->identity, "service", worker->service->name,
            "detected", gone ? "send" : "silence");
    vz_series_inc(gone ? self->workers_gone : self->workers_silent);
    while (!s_list_empty(&worker->inflight))
        s_request_lost(self, s_container(worker->inflight.next, s_request_t, node),
                       "worker lost the request");
    s_worker_forget(self, worker, gone);
}

//  --------------------------------------------------------------------------
//  The broker's own service.

//  The broker's own answer of an error to one of its methods, counted.
static void s_self_error(broker_t *self, s_service_t *me, zframe_t *client,
                         const vz_envelope_t *req, const char *code, const char *message,
                         s_outcome_t outcome, int64_t start_us)
{
    s_send_error(self, client, req, code, message);
    s_count(self, me, outcome);
    if (self->telemetry)
        vz_telemetry_record(self->telemetry, req->method, code, vz_clock_mono_us() - start_us);
}

//  broker.directory: the service's workers that offer a direct endpoint,
//  to a caller the policy lets call that service. NULL after an error
//  answer (sent here).
static uint8_t *s_directory(broker_t *self, s_service_t *me, zframe_t *client,
                            const vz_envelope_t *req, const char *identity, size_t *len_p,
                            int64_t start_us)
{
    char name[VZ_NAME_MAX];
    const char *reason = NULL;
    if (vz_broker_directory_request_decode(req->body, req->body_len, name, sizeof name,
                                           &reason) < 0) {
        s_self_error(self, me, client, req, VZ_ERR_INVALID, reason, S_OUT_REPLIED, start_us);
        return NULL;
    }
    if (!policy_may_call(self->policy, identity, name)) {
        s_forbidden(self, identity, "call", name);
        s_self_error(self, me, client, req, VZ_ERR_FORBIDDEN, "call policy refuses this call",
                     S_OUT_REPLIED, start_us);
        return NULL;
    }
    s_service_t *service = (s_service_t *)zhashx_lookup(self->services, name);
    vz_broker_direct_t list[VZ_BROKER_DIRECT_MAX];
    size_t n = 0;
    //  Weights split the service between versions: only the broker can.
    bool direct = service && !service->weighted && self->keys;
    for (s_worker_t *w = direct ? zhashx_first(self->workers) : NULL;
         w && n < VZ_BROKER_DIRECT_MAX; w = zhashx_next(self->workers)) {
        const char *key = keys_lookup(self->keys, w->identity);
        if (w->service != service || w->draining || !*w->direct || !key)
            continue;
        vz_strlcpy(list[n].endpoint, w->direct, sizeof list[n].endpoint);
        vz_strlcpy(list[n].key, key, sizeof list[n].key);
        n++;
    }
    return vz_broker_directory_encode(direct, list, n, len_p);
}

static void s_serve_self(broker_t *self, zframe_t *client, const vz_envelope_t *req,
                         const char *identity, int64_t start_us)
{
    s_service_t *me = (s_service_t *)zhashx_lookup(self->services, VZ_BROKER_SERVICE);
    vz_envelope_t reply;
    vz_envelope_reply_to(&reply, req);
    vz_strlcpy(reply.caller, VZ_BROKER_SERVICE, sizeof reply.caller);
    uint8_t *body = NULL; //  the services list (vz_broker_contract.h)
    if (strcmp(req->method, "services") == 0) {
        size_t count = 0;
        vz_broker_service_t *list =
            calloc(zhashx_size(self->services) + 1, sizeof(vz_broker_service_t));
        assert(list);
        for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services))
            if (s != me) {
                vz_broker_service_t *entry = &list[count++];
                vz_strlcpy(entry->name, s->name, sizeof entry->name); //  same capacity
                entry->workers = s->worker_count;
                entry->queue = s->queue_size;
            }
        body = vz_broker_services_encode(list, count, &reply.body_len);
        reply.body = body;
        free(list);
    } else if (strcmp(req->method, "directory") == 0) {
        body = s_directory(self, me, client, req, identity, &reply.body_len, start_us);
        if (!body)
            return;
        reply.body = body;
    } else if (strcmp(req->method, "ping") != 0) {
        s_self_error(self, me, client, req, VZ_ERR_UNKNOWN_METHOD,
                     "broker serves ping, services, directory", S_OUT_UNKNOWN_METHOD, start_us);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (vz_envelope_encode(&reply, &buf, &len) == 0) {
        int rc = s_send_head(self, client, VZ_CMD_REPLY, true);
        if (rc == 0)
            zmq_send(self->handle, buf, len, 0);
        else
            s_send_failed(self, S_PEER_CLIENT, rc);
        free(buf);
        s_count(self, me, S_OUT_REPLIED);
        if (self->telemetry)
            vz_telemetry_record(self->telemetry, req->method, NULL, vz_clock_mono_us() - start_us);
    }
    free(body);
}

//  A well-formed request from identity, its envelope frame in *body_p:
//  checked against the policy and the bounds, then queued and dispatched
//  (taking the frame). rid NULL for the broker's own (broker_send_self):
//  refusals then go to the answer hook.
static void s_admit(broker_t *self, zframe_t *rid, const vz_envelope_t *env, zframe_t **body_p,
                    const char *identity, int64_t now)
{
    if (!policy_may_call(self->policy, identity, env->service)) {
        s_forbidden(self, identity, "call", env->service);
        s_refuse(self, rid, env, VZ_ERR_FORBIDDEN, "call policy refuses this call");
        return;
    }
    if (self->stopping) {
        s_refuse(self, rid, env, VZ_ERR_UNAVAILABLE, "broker is shutting down");
        return;
    }
    if (strcmp(env->service, VZ_BROKER_SERVICE) == 0) {
        s_serve_self(self, rid, env, identity, vz_clock_mono_us());
        return;
    }
    s_limit_t limit;
    s_service_t *service = s_service_require(self, env->service, rid ? identity : NULL, &limit);
    if (!service) {
        if (limit == S_LIMIT_IDENTITY)
            s_refuse(self, rid, env, VZ_ERR_FORBIDDEN, "this identity may create no more services");
        else
            s_refuse(self, rid, env, VZ_ERR_OVERLOADED, "too many services");
        return;
    }
    int64_t deadline = env->deadline_ms > 0 ? env->deadline_ms : now + self->default_timeout_ms;
    if (deadline <= now) {
        s_refuse(self, rid, env, VZ_ERR_TIMEOUT, "deadline already passed");
        s_count(self, service, S_OUT_TIMEOUT);
        return;
    }
    if (service->queue_size >= (size_t)self->queue_max) {
        s_refuse(self, rid, env, VZ_ERR_OVERLOADED, "service queue is full");
        s_count(self, service, S_OUT_OVERLOADED);
        return;
    }
    s_request_t *request = s_request_new(self);
    request->tag = self->next_tag++;
    request->client = rid ? zframe_dup(rid) : NULL;
    request->body = *body_p;
    *body_p = NULL;
    request->service = service;
    request->deadline_ms = deadline;
    request->start_ms = now;
    request->start_us = vz_clock_mono_us();
    request->idempotent = (env->flags & VZ_FLAG_IDEMPOTENT) != 0;
    request->bundle = (env->flags & VZ_FLAG_BUNDLE) != 0;
    vz_strlcpy(request->caller, identity, sizeof request->caller);
    vz_strlcpy(request->id, env->id, sizeof request->id);
    vz_strlcpy(request->method, env->method, sizeof request->method);
    vz_strlcpy(request->traceparent, env->traceparent, sizeof request->traceparent);
    request->version = s_version_choose(service, env);
    s_heap_push(self, request);
    s_list_push_back(request->version ? &request->version->queue : &service->queue, &request->node);
    service->queue_size++;
    s_dispatch(self, service);
}

//  --------------------------------------------------------------------------
//  Incoming commands. Each handler gets the routing id, the message after the
//  command frame, the caller identity and the wall clock; arity was checked.

typedef void(s_handler_fn)(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity,
                           int64_t now);

static void s_on_request(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity,
                         int64_t now)
{
    zframe_t *frame = zmsg_first(msg);
    vz_envelope_t env;
    env.id[0] = '\0';
    const char *reason = NULL;
    if (vz_envelope_decode(&env, zframe_data(frame), zframe_size(frame), NULL, &reason) < 0 ||
        env.kind != VZ_KIND_REQUEST || env.service[0] == '\0') {
        s_malformed(self, reason ? reason : "not a request", identity);
        if (env.id[0]) {
            vz_envelope_t head;
            vz_envelope_init(&head, VZ_KIND_REQUEST);
            vz_strlcpy(head.id, env.id, sizeof head.id);
            s_send_error(self, rid, &head, VZ_ERR_MALFORMED, reason ? reason : "not a request");
        }
        return;
    }
    //  Names reach tables, metric labels and logs: check them before anything else.
    if (!policy_name_valid(env.service) || !policy_name_valid(env.method)) {
        const char *what = policy_name_valid(env.service) ? "bad method name" : "bad service name";
        s_malformed(self, what, identity);
        vz_envelope_t head;
        vz_envelope_init(&head, VZ_KIND_REQUEST);
        vz_strlcpy(head.id, env.id, sizeof head.id);
        s_send_error(self, rid, &head, VZ_ERR_MALFORMED, what);
        return;
    }
    zframe_t *body = zmsg_pop(msg);
    s_admit(self, rid, &env, &body, identity, now);
    zframe_destroy(&body);
}

//  Copy at most S_SAMPLE_MAX bytes of a peer's text for a log line, each
//  byte outside the name set shown as '?'.
static void s_sample(char *out, const char *text)
{
    size_t i = 0;
    for (; text[i] && i < S_SAMPLE_MAX; i++) {
        char one[2] = {text[i], '\0'};
        out[i] = policy_name_valid(one) ? text[i] : '?';
    }
    out[i] = '\0';
}

//  Check a worker's reply against the request it was given: the first
//  header field that differs, or S_REJ_COUNT when all match.
static s_reject_t s_reply_check(const s_request_t *request, zframe_t *body, vz_envelope_t *rep)
{
    if (vz_envelope_decode(rep, zframe_data(body), zframe_size(body), NULL, NULL) < 0)
        return S_REJ_MALFORMED;
    if (rep->kind != VZ_KIND_REPLY && rep->kind != VZ_KIND_ERROR)
        return S_REJ_KIND;
    if (strcmp(rep->id, request->id) != 0)
        return S_REJ_ID;
    if (strcmp(rep->service, request->service->name) != 0)
        return S_REJ_SERVICE;
    if (strcmp(rep->method, request->method) != 0)
        return S_REJ_METHOD;
    return S_REJ_COUNT;
}

//  A reply that does not answer its request is dropped, never forwarded,
//  and the request handled as if the worker had lost it: the worker may be
//  buggy or compromised, and the client must not read another's answer.
//  Logged once per worker identity, with a sample of what it sent.
static void s_reply_rejected(broker_t *self, s_request_t *request, s_reject_t why,
                             const vz_envelope_t *rep)
{
    vz_series_inc(self->rejected[why]);
    s_worker_t *worker = request->worker;
    if (s_first_time(self, "rejected", worker->identity)) {
        char want[S_SAMPLE_MAX + 1], got_id[S_SAMPLE_MAX + 1], got_service[S_SAMPLE_MAX + 1],
            got_method[S_SAMPLE_MAX + 1];
        s_sample(want, request->id);
        bool decoded = why != S_REJ_MALFORMED;
        s_sample(got_id, decoded ? rep->id : "");
        s_sample(got_service, decoded ? rep->service : "");
        s_sample(got_method, decoded ? rep->method : "");
        vz_warn(NULL, "worker reply does not match its request: not forwarded", "identity",
                worker->identity, "reason", s_reject_names[why], "service", request->service->name,
                "method", request->method, "id", want, "reply_id", got_id, "reply_service",
                got_service, "reply_method", got_method);
    }
    s_service_t *service = request->service;
    s_request_lost(self, request, "worker reply did not match the request");
    s_worker_freed(self, worker);
    s_dispatch(self, service);
}

static void s_on_reply(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity,
                       int64_t now)
{
    s_worker_t *worker = (s_worker_t *)zhashx_lookup(self->workers, rid);
    zframe_t *tag = zmsg_first(msg);
    if (!worker || zframe_size(tag) != VZ_TAG_SIZE) {
        s_malformed(self, worker ? "bad tag" : "reply from a non-worker", identity);
        return;
    }
    worker->expiry = vz_clock_mono_ms() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
    s_request_t *request = (s_request_t *)zhashx_lookup(self->tags, zframe_data(tag));
    if (!request || request->worker != worker)
        return; //  late reply to a request that timed out: the client has its answer
    zframe_t *body = zmsg_last(msg);
    vz_envelope_t rep;
    s_reject_t why = s_reply_check(request, body, &rep);
    if (why != S_REJ_COUNT) {
        s_reply_rejected(self, request, why, &rep);
        return;
    }
    s_service_t *service = request->service;
    //  Counted before the reply leaves: whoever saw the reply sees the count.
    if (request->bundle && service->weighted)
        s_version_count_items(self, worker->version, request, &rep);
    else
        s_version_count(self, worker->version,
                        rep.kind == VZ_KIND_ERROR ? S_VOUT_ERROR : S_VOUT_REPLIED, request);
    if (!request->client)
        //  The broker's own request: nobody to forward to, the hook hears the outcome.
        s_answer(self, service->name, rep.kind == VZ_KIND_ERROR ? rep.error_code : NULL);
    else {
        zmsg_remove(msg, body);
        //  A client that left (or stopped reading) loses its reply; the worker's work is done.
        int rc = s_send_head(self, request->client, VZ_CMD_REPLY, true);
        if (rc == 0)
            zframe_send(&body, self->router, 0);
        else {
            s_send_failed(self, S_PEER_CLIENT, rc);
            zframe_destroy(&body);
        }
    }
    vz_series_observe(service->duration, (double)(vz_clock_mono_us() - request->start_us) / 1e6);
    s_count(self, service, S_OUT_REPLIED);
    s_request_finish(self, request);
    s_worker_freed(self, worker);
    s_dispatch(self, service);
}

//  ACL name key name key ...: the identities the policy lets call the
//  worker's service and their public keys, which its direct endpoint
//  admits (docs/protocol.md, "Direct calls"). Sent after every RDY of a
//  worker with a direct endpoint, and again to all of them when the policy
//  or the keys change.
static void s_send_acl(broker_t *self, s_worker_t *worker)
{
    if (!*worker->direct || !self->keys)
        return;
    size_t allowed[KEYS_MAX], n = 0;
    for (size_t i = 0; i < keys_count(self->keys); i++)
        if (policy_may_call(self->policy, keys_name(self->keys, i), worker->service->name))
            allowed[n++] = i;
    int rc = s_send_head(self, worker->rid, VZ_CMD_ACL, n > 0);
    if (rc < 0) {
        s_send_failed(self, S_PEER_WORKER, rc);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const char *name = keys_name(self->keys, allowed[k]);
        zmq_send(self->handle, name, strlen(name), ZMQ_SNDMORE);
        zmq_send(self->handle, keys_key(self->keys, allowed[k]), 40, k + 1 < n ? ZMQ_SNDMORE : 0);
    }
}

static void s_send_acl_all(broker_t *self)
{
    for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
        s_send_acl(self, w);
}

static void s_on_ready(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity,
                       int64_t now)
{
    char name[VZ_NAME_MAX];
    zframe_t *sframe = zmsg_first(msg);
    zframe_t *cframe = zmsg_next(msg);
    char digits[8] = "";
    size_t dlen = zframe_size(cframe);
    if (zframe_size(sframe) == 0 || zframe_size(sframe) >= sizeof name || dlen == 0 ||
        dlen >= sizeof digits) {
        s_malformed(self, "bad RDY", identity);
        return;
    }
    memcpy(name, zframe_data(sframe), zframe_size(sframe));
    name[zframe_size(sframe)] = '\0';
    memcpy(digits, zframe_data(cframe), dlen);
    char *end = NULL;
    long credit = strtol(digits, &end, 10);
    if (!isdigit((unsigned char)digits[0]) || *end != '\0' || credit < 1 ||
        credit > VZ_CREDIT_MAX || strlen(name) != zframe_size(sframe)) {
        s_malformed(self, "bad RDY", identity);
        return;
    }
    if (!policy_name_valid(name)) {
        s_malformed(self, "bad service name", identity);
        return;
    }
    //  The optional third frame: the worker's version (absent: S_UNVERSIONED).
    char vname[VZ_VERSION_MAX] = S_UNVERSIONED;
    zframe_t *vframe = zmsg_next(msg);
    if (vframe) {
        size_t vlen = zframe_size(vframe);
        if (vlen == 0 || vlen >= sizeof vname) {
            s_malformed(self, "bad version", identity);
            return;
        }
        memcpy(vname, zframe_data(vframe), vlen);
        vname[vlen] = '\0';
        if (strlen(vname) != vlen || !vz_version_valid(vname)) {
            s_malformed(self, "bad version", identity);
            return;
        }
    }
    //  The optional fourth frame: the worker's direct endpoint.
    char direct[VZ_ENDPOINT_MAX] = "";
    zframe_t *eframe = vframe ? zmsg_next(msg) : NULL;
    if (eframe) {
        size_t elen = zframe_size(eframe);
        if (elen >= sizeof direct) {
            s_malformed(self, "bad direct endpoint", identity);
            return;
        }
        memcpy(direct, zframe_data(eframe), elen);
        direct[elen] = '\0';
        if (!vz_broker_endpoint_valid(direct)) {
            s_malformed(self, "bad direct endpoint", identity);
            return;
        }
    }
    if (self->stopping || strcmp(name, VZ_BROKER_SERVICE) == 0 ||
        !policy_may_serve(self->policy, identity, name)) {
        if (!self->stopping)
            s_forbidden(self, identity, "serve", name);
        s_send_head(self, rid, VZ_CMD_BYE, false);
        return;
    }
    s_worker_t *worker = (s_worker_t *)zhashx_lookup(self->workers, rid);
    if (worker) {
        //  A repeated RDY for the same service updates the credit; another service is a bug.
        if (strcmp(worker->service->name, name) != 0 || worker->draining ||
            strcmp(worker->version->name, vname) != 0) {
            s_malformed(self, "RDY for a second service or version", identity);
            return;
        }
        worker->credit = (int)credit;
    } else {
        s_limit_t limit;
        s_service_t *service = s_service_require(self, name, identity, &limit);
        if (!service) {
            s_send_head(self, rid, VZ_CMD_BYE, false);
            return;
        }
        s_version_t *version = s_version_require(self, service, vname);
        if (!version) {
            if (s_first_time(self, "versions", name))
                vz_warn(NULL, "refused a worker: too many versions of its service", "identity",
                        identity, "service", name, "version", vname);
            s_send_head(self, rid, VZ_CMD_BYE, false);
            return;
        }
        worker = (s_worker_t *)zmalloc(sizeof *worker);
        worker->version = version;
        s_version_workers(version, 1);
        s_list_init(&worker->inflight);
        worker->rid = zframe_dup(rid);
        worker->service = service;
        worker->credit = (int)credit;
        vz_strlcpy(worker->identity, identity, sizeof worker->identity);
        zhashx_insert(self->workers, worker->rid, worker);
        service->worker_count++;
        service->last_worker_ms = now;
        vz_series_set(service->workers_gauge, (double)service->worker_count);
        vz_info(NULL, "worker ready", "identity", identity, "service", name, "version", vname,
                "direct", *direct ? direct : "none");
    }
    worker->expiry = vz_clock_mono_ms() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
    s_send_head(self, rid, VZ_CMD_HEARTBEAT, false);
    vz_strlcpy(worker->direct, direct, sizeof worker->direct);
    s_send_acl(self, worker);
    s_worker_freed(self, worker);
    s_dispatch(self, worker->service);
}

static void s_on_heartbeat(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity,
                           int64_t now)
{
    s_worker_t *worker = (s_worker_t *)zhashx_lookup(self->workers, rid);
    if (!worker) {
        s_send_head(self, rid, VZ_CMD_BYE, false); //  we forgot it: tell it to register again
        return;
    }
    worker->expiry = vz_clock_mono_ms() + (int64_t)self->heartbeat_ms * VZ_HEARTBEAT_LIVENESS;
    //  A worker parked on a full pipe is reading again: offer it work.
    if (!s_linked(&worker->node) && !worker->draining && worker->busy < worker->credit) {
        s_worker_freed(self, worker);
        s_dispatch(self, worker->service);
    }
}

static void s_on_bye(broker_t *self, zframe_t *rid, zmsg_t *msg, const char *identity, int64_t now)
{
    s_worker_t *worker = (s_worker_t *)zhashx_lookup(self->workers, rid);
    if (!worker || worker->draining)
        return;
    vz_info(NULL, "worker draining", "identity", identity, "service", worker->service->name);
    s_worker_park(worker);
    worker->draining = true;
    worker->service->worker_count--;
    s_version_workers(worker->version, -1);
    s_version_orphan(worker->service, worker->version);
    worker->service->last_worker_ms = now;
    vz_series_set(worker->service->workers_gauge, (double)worker->service->worker_count);
    s_worker_freed(self, worker);
}

//  Dispatch table: command, frames after the command (at least, at most), handler.
static const struct {
    const char *command;
    size_t frames;
    size_t frames_max;
    s_handler_fn *handler;
} s_commands[] = {
    {VZ_CMD_REQUEST, 1, 1, s_on_request}, {VZ_CMD_REPLY, 2, 2, s_on_reply},
    {VZ_CMD_READY, 2, 4, s_on_ready},     {VZ_CMD_HEARTBEAT, 0, 0, s_on_heartbeat},
    {VZ_CMD_BYE, 0, 0, s_on_bye},
};

//  One message: routing id, command, arguments. Checks arity and identity
//  centrally, then calls the handler. An identity the policy does not know
//  may only send REQ, which the policy check answers with "forbidden".
static void s_handle(broker_t *self, zmsg_t *msg, int64_t now)
{
    zframe_t *rid = zmsg_pop(msg);
    zframe_t *cmd = zmsg_pop(msg);
    char identity[VZ_NAME_MAX] = "";
    if (!rid || !cmd) {
        s_malformed(self, "empty message", "");
        goto done;
    }
    if (vz_curve_peer_name(cmd, identity, sizeof identity) < 0)
        identity[0] = '\0';
    size_t i;
    for (i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (zframe_streq(cmd, s_commands[i].command))
            break;
    if (i == sizeof s_commands / sizeof s_commands[0])
        s_malformed(self, "unknown command", identity);
    else if (zmsg_size(msg) < s_commands[i].frames || zmsg_size(msg) > s_commands[i].frames_max)
        s_malformed(self, "wrong frame count", identity);
    else if (s_commands[i].handler != s_on_request && !policy_known(self->policy, identity)) {
        if (s_commands[i].handler == s_on_ready)
            s_send_head(self, rid, VZ_CMD_BYE, false);
        s_forbidden(self, identity, "connect", "*");
    } else
        s_commands[i].handler(self, rid, msg, identity, now);
done:
    zframe_destroy(&rid);
    zframe_destroy(&cmd);
    zmsg_destroy(&msg);
}

//  Read what is waiting, up to a batch, so timers still run under load.
static int s_router_readable(zloop_t *loop, zsock_t *sock, void *arg)
{
    broker_t *self = (broker_t *)arg;
    int64_t now = vz_now_ms();
    for (int n = 0; n < S_BATCH; n++) {
        zmsg_t *msg = zmsg_recv(self->router);
        if (!msg)
            break;
        s_handle(self, msg, now);
    }
    return 0;
}

//  Expire requests whose deadline passed, queued or in flight.
static int s_deadline_timer(zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = (broker_t *)arg;
    int64_t now = vz_now_ms();
    while (self->heap_size > 0 && self->heap[0]->deadline_ms <= now) {
        s_request_t *request = self->heap[0];
        s_service_t *service = request->service;
        s_worker_t *worker = request->worker;
        bool no_worker =
            !worker && service->worker_count == 0 && service->last_worker_ms < request->start_ms;
        s_send_request_error(self, request, no_worker ? VZ_ERR_NO_WORKER : VZ_ERR_TIMEOUT,
                             no_worker ? "no worker for the service" : "deadline passed");
        s_count(self, service, no_worker ? S_OUT_NO_WORKER : S_OUT_TIMEOUT);
        if (worker)
            s_version_count(self, worker->version, S_VOUT_TIMEOUT, request);
        //  The worker does not answer expired requests, so its credit comes back now.
        s_request_finish(self, request);
        if (worker) {
            s_worker_freed(self, worker);
            s_dispatch(self, service);
        }
    }
    return 0;
}

//  Heartbeat every worker and forget the silent ones, and those whose
//  connection is gone (the heartbeat cannot be sent): so a worker killed
//  while idle is forgotten within one interval, not VZ_HEARTBEAT_LIVENESS.
//  A full pipe only means the worker is busy; silence decides then.
static int s_heartbeat_timer(zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = (broker_t *)arg;
    int64_t now = vz_clock_mono_ms();
    if (self->keys && now - self->keys_checked_ms >= S_KEYS_CHECK_MS) {
        self->keys_checked_ms = now;
        if (keys_refresh(self->keys))
            s_send_acl_all(self);
    }
    zlistx_t *dead = NULL, *gone = NULL;
    for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers)) {
        zlistx_t **list = NULL;
        if (w->expiry < now)
            list = &dead;
        else {
            int rc = s_send_head(self, w->rid, VZ_CMD_HEARTBEAT, false);
            if (rc < 0)
                s_send_failed(self, S_PEER_WORKER, rc);
            if (rc == -EHOSTUNREACH)
                list = &gone;
        }
        if (list) {
            if (!*list)
                *list = zlistx_new();
            zlistx_add_end(*list, w);
        }
    }
    if (!dead && !gone)
        return 0;
    //  Forget them all first: a dispatch may itself find a listed worker gone.
    zlistx_t *services = zlistx_new();
    for (int pass = 0; pass < 2; pass++) {
        zlistx_t *list = pass == 0 ? dead : gone;
        for (s_worker_t *w = list ? zlistx_first(list) : NULL; w; w = zlistx_next(list)) {
            zlistx_add_end(services, w->service);
            s_worker_lost(self, w, pass == 1);
        }
        zlistx_destroy(&list);
    }
    for (s_service_t *s = zlistx_first(services); s; s = zlistx_next(services))
        s_dispatch(self, s);
    zlistx_destroy(&services);
    return 0;
}

//  --------------------------------------------------------------------------

broker_t *broker_new(const broker_config_t *config, policy_t **policy_p)
{
    assert(config && config->endpoint && config->cert && config->metrics);
    assert(policy_p && *policy_p);
    zsock_t *router = vz_curve_server(ZMQ_ROUTER, config->endpoint, config->cert);
    if (!router)
        return NULL;
    broker_t *self = (broker_t *)zmalloc(sizeof *self);
    self->router = router;
    self->handle = zsock_resolve(router);
    //  ZMQ_MAXMSGSIZE is not set here: libzmq 4.3.4 copies options into the
    //  listener at bind, so only vz_curve_server (before its bind) can set it.
    zsock_set_rcvtimeo(router, 0);
    //  Options that affect sends do apply after bind: fail instead of
    //  dropping silently or blocking the reactor (see the top of this file).
    zsock_set_router_mandatory(router, 1);
    zsock_set_sndtimeo(router, 0);
    self->port = vz_curve_bound_port(router);
    self->keys = keys_new(config->allow_dir);
    self->policy = *policy_p;
    *policy_p = NULL;
    self->metrics = config->metrics;
    self->heartbeat_ms = config->heartbeat_ms > 0 ? config->heartbeat_ms : VZ_HEARTBEAT_MS;
    self->queue_max = config->queue_max > 0 ? config->queue_max : 10000;
    self->retry_max = config->retry_max >= 0 ? config->retry_max : 0;
    self->default_timeout_ms =
        config->default_timeout_ms > 0 ? config->default_timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->services_per_identity = config->services_per_identity > 0
                                      ? (size_t)config->services_per_identity
                                      : S_SERVICES_PER_IDENTITY;
    self->services = zhashx_new();
    zhashx_set_destructor(self->services, s_service_destroy);
    self->creators = zhashx_new();
    self->workers = zhashx_new();
    zhashx_set_key_hasher(self->workers, s_frame_hash);
    zhashx_set_key_comparator(self->workers, s_frame_compare);
    zhashx_set_key_duplicator(self->workers, NULL);
    zhashx_set_key_destructor(self->workers, NULL);
    zhashx_set_destructor(self->workers, s_worker_destroy);
    self->tags = zhashx_new();
    zhashx_set_key_hasher(self->tags, s_tag_hash);
    zhashx_set_key_comparator(self->tags, s_tag_compare);
    zhashx_set_key_duplicator(self->tags, NULL);
    zhashx_set_key_destructor(self->tags, NULL);
    self->logged = zhashx_new();
    s_list_init(&self->pool);
    //  A random start keeps tags of a restarted broker apart from old ones.
    self->next_tag = ((uint64_t)randof(0x7fffffff) << 32) ^ (uint64_t)vz_clock_mono_us();
    self->malformed = vz_metrics_counter(self->metrics, "vz_broker_malformed_total",
                                         "Messages dropped as malformed", NULL);
    self->forbidden = vz_metrics_counter(self->metrics, "vz_broker_forbidden_total",
                                         "Messages refused by the call policy", NULL);
    for (int p = 0; p < S_PEER_COUNT; p++)
        for (int f = 0; f < S_FAIL_COUNT; f++) {
            char labels[64];
            snprintf(labels, sizeof labels, "peer=%s,reason=%s", s_peer_names[p], s_fail_names[f]);
            self->send_failed[p][f] = vz_metrics_counter(
                self->metrics, "vz_broker_send_failed_total",
                "Messages not sent because the peer was gone or its pipe full", labels);
        }
    self->workers_gone = vz_metrics_counter(
        self->metrics, "vz_broker_workers_lost_total",
        "Workers forgotten without a BYE, by how it was noticed", "detected=send");
    self->workers_silent = vz_metrics_counter(
        self->metrics, "vz_broker_workers_lost_total",
        "Workers forgotten without a BYE, by how it was noticed", "detected=silence");
    for (int r = 0; r < S_REJ_COUNT; r++) {
        char labels[32];
        snprintf(labels, sizeof labels, "reason=%s", s_reject_names[r]);
        self->rejected[r] =
            vz_metrics_counter(self->metrics, "vz_broker_replies_rejected_total",
                               "Worker replies dropped because their header did not match the "
                               "request",
                               labels);
    }
    for (int l = 0; l < S_LIMIT_COUNT; l++) {
        char labels[32];
        snprintf(labels, sizeof labels, "reason=%s", s_limit_names[l]);
        self->refused[l] = vz_metrics_counter(self->metrics, "vz_broker_services_refused_total",
                                              "New services refused by a bound", labels);
    }
    //  The broker's own service exists from the start, outside every bound.
    s_service_new(self, VZ_BROKER_SERVICE);
    return self;
}

void broker_destroy(broker_t **self_p)
{
    assert(self_p);
    broker_t *self = *self_p;
    if (!self)
        return;
    //  Release every live request, then the workers and services they point to.
    while (self->heap_size > 0)
        s_request_finish(self, self->heap[0]);
    while (!s_list_empty(&self->pool)) {
        s_node_t *node = self->pool.next;
        s_list_unlink(node);
        free(s_container(node, s_request_t, node));
    }
    free(self->heap);
    keys_destroy(&self->keys);
    zhashx_destroy(&self->tags);
    zhashx_destroy(&self->workers);
    zhashx_destroy(&self->services);
    zhashx_destroy(&self->creators);
    zhashx_destroy(&self->logged);
    policy_destroy(&self->policy);
    //  After a drain, give the farewells a moment on the wire before closing.
    zsock_set_linger(self->router, self->stopping ? 500 : 0);
    zsock_destroy(&self->router);
    free(self);
    *self_p = NULL;
}

int broker_port(broker_t *self)
{
    return self->port;
}

int broker_attach(broker_t *self, zloop_t *loop)
{
    assert(!self->loop);
    self->loop = loop;
    if (zloop_reader(loop, self->router, s_router_readable, self) < 0)
        return -EINVAL;
    zloop_reader_set_tolerant(loop, self->router);
    if (zloop_timer(loop, (size_t)self->heartbeat_ms, 0, s_heartbeat_timer, self) < 0 ||
        zloop_timer(loop, S_DEADLINE_TICK_MS, 0, s_deadline_timer, self) < 0)
        return -ENOMEM;
    return 0;
}

void broker_set_policy(broker_t *self, policy_t **policy_p)
{
    assert(policy_p && *policy_p);
    policy_destroy(&self->policy);
    self->policy = *policy_p;
    *policy_p = NULL;
    zhashx_purge(self->logged);
    s_send_acl_all(self);
}

void broker_on_answer(broker_t *self, broker_answer_fn *fn, void *arg)
{
    assert(self);
    self->answer_fn = fn;
    self->answer_arg = arg;
}

void broker_set_telemetry(broker_t *self, vz_telemetry_t *telemetry)
{
    assert(self);
    self->telemetry = telemetry;
}

int broker_send_self(broker_t *self, const char *service, const char *method, const void *body,
                     size_t len, int timeout_ms)
{
    assert(self && service && method && (body || len == 0));
    if (!policy_name_valid(service) || !policy_name_valid(method) ||
        strcmp(service, VZ_BROKER_SERVICE) == 0)
        return -EINVAL;
    //  The same envelope a client would send, so the worker cannot tell.
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    vz_strlcpy(env.service, service, sizeof env.service);
    vz_strlcpy(env.method, method, sizeof env.method);
    vz_client_new_id(env.id, sizeof env.id);
    int64_t now = vz_now_ms();
    env.deadline_ms = now + (timeout_ms > 0 ? timeout_ms : self->default_timeout_ms);
    env.body = (const uint8_t *)body;
    env.body_len = len;
    uint8_t *buf = NULL;
    size_t buf_len = 0;
    if (vz_envelope_encode(&env, &buf, &buf_len) < 0)
        return -EMSGSIZE;
    zframe_t *frame = zframe_new(buf, buf_len);
    free(buf);
    s_admit(self, NULL, &env, &frame, VZ_BROKER_SERVICE, now);
    zframe_destroy(&frame);
    return 0;
}

void broker_drain(broker_t *self, int timeout_ms)
{
    self->stopping = true;
    //  Queued requests will not be dispatched any more.
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services)) {
        //  Every queued request, whatever version it waits for.
        for (int v = 0; v < BROKER_VERSIONS_MAX; v++)
            while (s->versions[v] && !s_list_empty(&s->versions[v]->queue)) {
                s_node_t *node = s->versions[v]->queue.next;
                s_list_unlink(node);
                s_list_push_back(&s->queue, node);
            }
        while (!s_list_empty(&s->queue)) {
            s_request_t *request = s_container(s->queue.next, s_request_t, node);
            s_send_request_error(self, request, VZ_ERR_UNAVAILABLE, "broker is shutting down");
            s_count(self, s, S_OUT_UNAVAILABLE);
            s_request_finish(self, request);
        }
    }
    //  Let replies in flight come back, refusing new work meanwhile.
    int64_t until = vz_clock_mono_ms() + timeout_ms;
    while (zhashx_size(self->tags) > 0) {
        int64_t left = until - vz_clock_mono_ms();
        if (left <= 0)
            break;
        zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)left) < 0 && errno != EINTR)
            break;
        if (item.revents & ZMQ_POLLIN)
            s_router_readable(NULL, self->router, self);
    }
    while (self->heap_size > 0) {
        s_request_t *request = self->heap[0];
        s_send_request_error(self, request, VZ_ERR_UNAVAILABLE, "broker is shutting down");
        s_count(self, request->service, S_OUT_UNAVAILABLE);
        s_request_finish(self, request);
    }
    //  Every worker is told to go; it reconnects to another broker or waits.
    for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
        s_send_head(self, w->rid, VZ_CMD_BYE, false);
}

int broker_set_weights(broker_t *self, const broker_weights_t *weights, size_t n)
{
    assert(self && (weights || n == 0));
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services)) {
        s->weighted = false;
        s->sticky[0] = '\0';
        s->order_count = 0;
        for (int v = 0; v < BROKER_VERSIONS_MAX; v++)
            if (s->versions[v]) {
                s->versions[v]->weight = 0;
                s->versions[v]->current = 0;
                vz_series_set(s->versions[v]->weight_gauge, 0);
            }
    }
    int skipped = 0;
    for (size_t i = 0; i < n; i++) {
        const broker_weights_t *w = &weights[i];
        s_limit_t limit;
        s_service_t *service =
            policy_name_valid(w->service) && strcmp(w->service, VZ_BROKER_SERVICE) != 0
                ? s_service_require(self, w->service, NULL, &limit)
                : NULL;
        if (!service) {
            vz_warn(NULL, "weights not applied: bad or refused service", "service", w->service);
            skipped++;
            continue;
        }
        service->weighted = true;
        vz_strlcpy(service->sticky, w->sticky, sizeof service->sticky);
        for (size_t k = 0; k < w->count && k < BROKER_VERSIONS_MAX; k++) {
            s_version_t *version = vz_version_valid(w->version[k]) && w->weight[k] >= 0
                                       ? s_version_require(self, service, w->version[k])
                                       : NULL;
            if (!version) {
                vz_warn(NULL, "weight not applied: bad version or no free slot", "service",
                        w->service, "version", w->version[k]);
                skipped++;
                continue;
            }
            version->weight = w->weight[k];
            vz_series_set(version->weight_gauge, w->weight[k]);
            vz_strlcpy(service->order[service->order_count++], version->name, VZ_VERSION_MAX);
        }
    }
    return skipped;
}
