/*  upstream - the gateway's reactor side: owns the broker client and Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  HTTP threads never touch a ZeroMQ socket. They fill a gw_upcall_t and
 *  gw_upstream_submit() it (thread-safe: a mutex-guarded queue plus an
 *  eventfd that wakes the reactor). The reactor thread, which runs the zloop
 *  this object is attached to, sends the request, keeps the pending table
 *  (request id -> call), matches replies, enforces deadlines and finally
 *  calls call->done on the reactor thread exactly once. After done returns
 *  the reactor never touches the call again.
 *
 *  Idempotent calls that fail with unavailable, overloaded or worker_lost
 *  are sent again (next tick, same deadline, at most twice) while a retry
 *  budget allows: every first attempt earns retry_budget_pct/100 of a
 *  token (capped at 10), every retry spends one, so retries stay a bounded
 *  share of the traffic when an upstream is failing for everyone.
 *
 *  The reactor also pings the broker every heartbeat so readiness can say
 *  whether the link is up (gw_upstream_link_up, readable from any thread).
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <czmq.h>
#include <stdbool.h>
#include "vz_envelope.h"
#include "vz_metrics.h"
#include "vz_pending.h"

typedef struct gw_upstream_t gw_upstream_t;
typedef struct gw_upcall_t gw_upcall_t;

typedef enum {
    GW_UPCALL_FORWARD, //  service.method with the body
    GW_UPCALL_HEALTH,  //  Redis PING, then broker.services (reply body = its msgpack map)
    GW_UPCALL_BATCH,   //  reactor-internal: one <method>_batch envelope carrying several calls
    GW_UPCALL_BUNDLE,  //  reactor-internal: one bundle envelope carrying several whole requests
} gw_upcall_kind_t;

typedef enum {
    GW_UPCALL_REPLY, //  the service answered; reply/reply_len hold the body
    GW_UPCALL_ERROR, //  remote or local error; error_code/error_message say which
} gw_upcall_result_t;

typedef void(gw_upcall_done_fn)(gw_upcall_t *call);

struct gw_upcall_t {
    //  Set by the submitter, read-only afterwards.
    gw_upcall_kind_t kind;                //  what to do
    char service[VZ_NAME_MAX];            //  target service
    char method[VZ_NAME_MAX];             //  target method
    char id[VZ_ID_MAX];                   //  request id (X-Request-Id)
    char traceparent[VZ_TRACEPARENT_MAX]; //  W3C trace context to propagate
    int timeout_ms;                       //  budget from submission
    bool idempotent;                      //  flag the envelope as retry-safe
    bool alone;                           //  FORWARD: never in a bundle (slow handlers)
    const uint8_t *body;                  //  request body, borrowed until done
    size_t body_len;                      //  its length
    const vz_ctx_entry_t *ctx;            //  envelope ctx (auth context, path params, headers),
                                          //  borrowed until done; NULL = none
    size_t ctx_count;                     //  entries in ctx
    gw_upcall_done_fn *done;              //  completion, on the reactor thread
    void *arg;                            //  for done
    //  Set by the reactor before done.
    gw_upcall_result_t result;       //  reply or error
    char error_code[VZ_ERRCODE_MAX]; //  VZ_ERR_* or a worker's code
    uint8_t *reply;                  //  reply body (heap, caller frees), may be NULL
    size_t reply_len;                //  its length
    int http_status;                 //  reply ctx "http_status" (0 = absent or invalid)
    int attempts;                    //  envelopes sent for this call (retries + 1)
    bool redis_ok;                   //  HEALTH: Redis answered PING
    //  Reactor-private.
    int64_t deadline_ms;      //  envelope deadline, kept across retries
    vz_pending_entry_t entry; //  pending-table entry: id = envelope id (differs on id
                              //  collision), expires_ms = envelope deadline + grace
    gw_upcall_t *next;        //  submission queue link
    gw_upcall_t **members;    //  BATCH, BUNDLE: the calls it carries, in item order
    size_t nmembers;          //  BATCH, BUNDLE: how many
    uint8_t *owned_body;      //  BATCH, BUNDLE: the encoded items (heap)
    //  The large buffers last: gw_upcall_reset clears everything above and
    //  only the first byte of these.
    char error_message[VZ_ERRMSG_MAX];  //  reactor: human text
    char http_location[VZ_CTX_VAL_MAX]; //  reactor: reply ctx "http_location" ("" = absent)
    char http_ctype[64];   //  reactor: reply ctx "http_content_type" ("" = the route's)
    char redis_error[128]; //  reactor, HEALTH: why Redis failed
};

//  Make call as new (all fields zero or empty) without writing its ~1 KB of
//  buffers: a request resets two calls, and memset of both was 3 % of the
//  machine's cycles under load. Does not free call->reply.
void gw_upcall_reset(gw_upcall_t *call);

//  Calls of service.method queued together are sent as one
//  service.batch_method envelope (the batch convention, vz_batch.h) when
//  they carry no ctx. A lone call still goes alone, so an idle gateway
//  waits for nothing. If the service answers unknown_method, the rule is
//  turned off and the calls go one by one.
typedef struct {
    const char *service;      //  e.g. "ratelimit"
    const char *method;       //  e.g. "check"
    const char *batch_method; //  e.g. "check_batch"
} gw_upstream_batch_t;

#define GW_UPSTREAM_BATCH_RULES 4 //  rules at most

//  Forwards to the same service.method (same timeout and idempotency)
//  queued together travel as one bundle envelope (vz_batch.h) of at most
//  bundle_max requests and GW_UPSTREAM_BUNDLE_BYTES: each keeps its own
//  ctx, id and deadline, and each gets its own answer, retry and failure.
//  A lone forward still goes alone. bundle_max 0 or 1: no bundles.
#define GW_UPSTREAM_BUNDLE_BYTES (256 * 1024)

typedef struct {
    const char *endpoints;            //  broker endpoints
    const char *broker_key;           //  broker public key, Z85
    zcert_t *cert;                    //  our certificate (borrowed)
    const char *redis_url;            //  redis://host:port[/db]
    int heartbeat_ms;                 //  broker ping interval
    int grace_ms;                     //  extra local wait past the envelope deadline
    int retry_budget_pct;             //  retries allowed as a share of first attempts (e.g. 20)
    vz_metrics_t *metrics;            //  optional (borrowed): retry counters
    const gw_upstream_batch_t *batch; //  batching rules (copied), may be NULL
    size_t batch_count;               //  rules, at most GW_UPSTREAM_BATCH_RULES
    size_t bundle_max;                //  forwards per bundle envelope, at most VZ_BATCH_MAX
    bool direct;                      //  idempotent calls straight to workers (vz_client.h)
} gw_upstream_config_t;

//  NULL when the client socket cannot be made. Any thread may then submit.
gw_upstream_t *gw_upstream_new(const gw_upstream_config_t *config);
//  Fails every call still queued or pending with "unavailable" (calling
//  done), then frees. Call on the reactor thread after the loop stopped.
void gw_upstream_destroy(gw_upstream_t **self_p);

//  Register the client socket, the wake-up fd and the timers with loop.
int gw_upstream_attach(gw_upstream_t *self, zloop_t *loop);

//  Hand a call to the reactor. Thread-safe. The call must stay valid until
//  its done runs. Returns 0, or -ESHUTDOWN after gw_upstream_close.
int gw_upstream_submit(gw_upstream_t *self, gw_upcall_t *call);

//  Refuse new submissions and fail what is queued or pending ("unavailable").
//  Reactor thread only.
void gw_upstream_close(gw_upstream_t *self);

//  True while the broker answered a ping within the liveness window.
bool gw_upstream_link_up(const gw_upstream_t *self);
//  Calls submitted and not yet done (any thread).
int gw_upstream_pending(const gw_upstream_t *self);

#endif
