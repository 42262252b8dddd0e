/*  vz_worker - the service side: method table, broker link, heartbeats
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A service declares its methods in a static const table. The worker keeps
 *  one DEALER per broker endpoint (so every broker learns of it; a name in
 *  the endpoints is every address it resolves to, followed as it changes:
 *  vz_endpoints.h), sends
 *  RDY <service> <credit> [<version>], heartbeats, reconnects with a new socket when a
 *  broker is silent for VZ_HEARTBEAT_LIVENESS intervals, and dispatches
 *  each REQ to its handler on the reactor thread. Before calling a handler
 *  it checks: envelope decodes, method exists (else unknown_method), body
 *  within the method's max_body (else invalid_request), deadline not passed
 *  (then nothing is sent: the caller has stopped waiting).
 *  The caller field of the request is the identity the broker vouched for.
 */
#ifndef VZ_WORKER_H
#define VZ_WORKER_H

#include <czmq.h>
#include "vz_envelope.h"
#include "vz_metrics.h"

typedef struct vz_worker_t vz_worker_t;
typedef struct vz_reply_t vz_reply_t;

//  A handler fills reply (body or error) and returns 0; a negative return
//  sends an "internal" error. It runs on the reactor thread.
typedef int(vz_handler_fn)(void *app, const vz_envelope_t *req, vz_reply_t *reply);

#define VZ_METHOD_IDEMPOTENT 0x1u //  callers may retry it
#define VZ_METHOD_DEFERRED 0x2u   //  the handler may answer later (vz_reply_defer)

typedef struct {
    const char *name;       //  method name, e.g. "ping"
    vz_handler_fn *handler; //  called with the app pointer
    unsigned flags;         //  VZ_METHOD_*
    size_t max_body;        //  largest accepted body; 0 = 64 KiB
} vz_method_t;

//  Called on the reactor thread as each dispatched request is answered
//  (telemetry, vz_telemetry.h): the method, NULL when the handler replied
//  with a body or else the error code sent, the time from dispatch, and
//  the request's W3C traceparent ("" when it came without one).
typedef void(vz_worker_observe_fn)(void *arg, const char *method, const char *code,
                                   int64_t duration_us, const char *traceparent);

typedef struct {
    const char *service;    //  service name announced in RDY
    const char *endpoints;  //  comma-separated broker endpoints (names: every address)
    const char *broker_key; //  broker public key, Z85
    zcert_t *cert;          //  our certificate (borrowed)
    int heartbeat_ms;       //  0 = VZ_HEARTBEAT_MS
    int credit;             //  requests the broker may have outstanding here; 0 = 1
    vz_metrics_t *metrics;  //  optional (borrowed): requests/errors/latency per method
    vz_worker_observe_fn *observe; //  optional: told each dispatched request's outcome
    void *observe_arg;             //  its argument
    const char *version;           //  optional: announced in RDY (vz_version_valid); NULL/"" = none
    const char *direct;            //  direct endpoint: NULL/""/"off" none, "auto", or tcp://HOST:PORT
} vz_worker_config_t;

//  A version token of RDY: 1..VZ_VERSION_MAX-1 bytes of [A-Za-z0-9._+-],
//  starting with a letter or digit ("1.4.0", "2.0.0-rc.1+build.7").
bool vz_version_valid(const char *version);

//  Reply builders; the body is copied. The last call wins.
int vz_reply_body(vz_reply_t *reply, const void *data, size_t len);
int vz_reply_error(vz_reply_t *reply, const char *code, const char *message);
//  Attach a context entry to the reply (e.g. "http_status" = "201" or
//  "http_location" for the gateway). 0, -ENOSPC or -ENAMETOOLONG.
int vz_reply_ctx_set(vz_reply_t *reply, const char *key, const char *value);

//  Deferred replies, for handlers that do their work for several requests
//  at once (one pipelined Redis round trip for a batch of checks).
//  When a broker socket is readable the worker takes up to VZ_WORKER_BATCH
//  queued requests and dispatches each in turn. A handler of a method
//  flagged VZ_METHOD_DEFERRED may call vz_reply_defer and return 0: nothing
//  is sent yet, and the returned handle (owned by the worker) stays open
//  until the app completes it. After the batch, the worker calls each
//  distinct flush function named by vz_reply_defer in that batch, once,
//  with the app pointer; flush (or any later code on the reactor thread)
//  completes every handle with vz_worker_complete/_error, which sends the
//  reply and frees the handle. Metrics count the outcome and the latency up
//  to completion. vz_worker_drain flushes batches too; a handle still open
//  when drain ends, or at vz_worker_destroy, is answered "internal" and
//  freed by the worker: the app must not keep handles past its flush then.
#define VZ_WORKER_BATCH 64 //  requests taken from one socket per wake-up

typedef struct vz_deferred_t vz_deferred_t;
typedef void(vz_flush_fn)(void *app);

//  Keep reply open; flush may be NULL (the app completes on its own).
//  Reactor thread only; at most 4 distinct flush functions per batch.
vz_deferred_t *vz_reply_defer(vz_reply_t *reply, vz_flush_fn *flush);
//  Send the reply (body copied) or an error and free *handle_p (nulled).
//  0, or -ENOTCONN when the broker link was replaced meanwhile (the reply
//  is dropped: that broker has already given up on it). Called inside the
//  handler that deferred (a call that ended at once), it is sent as soon
//  as that handler returns.
int vz_worker_complete(vz_deferred_t **handle_p, const void *body, size_t len);
int vz_worker_complete_error(vz_deferred_t **handle_p, const char *code, const char *message);
//  The reply a handle holds (borrowed, until it is completed): ctx set on
//  it travels with the completion, e.g. an error's http_status
//  (vz_authctx_reply_error) before vz_worker_complete_error.
vz_reply_t *vz_deferred_reply(vz_deferred_t *handle);
//  Send what vz_deferred_reply(handle) holds (built with the reply
//  builders, e.g. by code shared with synchronous handlers) and free
//  *handle_p (nulled). Returns what vz_worker_complete does.
int vz_worker_complete_reply(vz_deferred_t **handle_p);
//  Handles deferred and not yet completed.
size_t vz_worker_open(const vz_worker_t *self);

//  Connects and sends RDY at once (before attach). NULL with errno EINVAL
//  for a bad config (no service, key not 40 characters, credit out of range,
//  no endpoint). vz_worker_destroy does not touch the loop: stop the loop
//  first; zloop_destroy may come before or after.
vz_worker_t *vz_worker_new(const vz_worker_config_t *config, const vz_method_t *methods,
                           size_t count, void *app);
void vz_worker_destroy(vz_worker_t **self_p);

//  Direct calls (docs/protocol.md, "Direct calls"). With config.direct the
//  worker also binds a CURVE ROUTER of its own ("auto": the loopback when
//  every broker is on it, else every interface announced by the host
//  name's address; "tcp://HOST:PORT": that, HOST * meaning every
//  interface), announces it in RDY, and serves callers there as if a
//  broker had dispatched to it: the same checks, handlers and replies. The
//  brokers are the policy authority: each sends the identities and keys
//  the policy lets call this service (ACL, vz_acl.h), and the endpoint
//  admits only those, by key at the handshake and by identity on every
//  request ("forbidden" otherwise). A request for another service is
//  malformed. At drain every direct caller is told BYE and the endpoint
//  serves S_DIRECT_GRACE_MS more (what was already on the way).
//  The endpoint announced ("" = none).
const char *vz_worker_direct_endpoint(const vz_worker_t *self);

//  Register sockets and the heartbeat timer with loop.
int vz_worker_attach(vz_worker_t *self, zloop_t *loop);

//  True once at least one broker has acknowledged RDY and is alive.
bool vz_worker_connected(const vz_worker_t *self);

//  Ask every broker to stop dispatching here (BYE) and keep serving what is
//  already dispatched until each broker answers BYE or timeout_ms passes.
//  Blocking; call after the loop has stopped.
void vz_worker_drain(vz_worker_t *self, int timeout_ms);

#endif
