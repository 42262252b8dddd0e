/*  vz_worker - the service side: method table, broker link, heartbeats
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A service declares its methods in a static const table. The worker keeps
 *  one DEALER per broker endpoint (so every broker learns of it), sends
 *  RDY <service> <credit>, heartbeats, reconnects with a new socket when a
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

typedef struct {
    const char *name;       //  method name, e.g. "ping"
    vz_handler_fn *handler; //  called with the app pointer
    unsigned flags;         //  VZ_METHOD_*
    size_t max_body;        //  largest accepted body; 0 = 64 KiB
} vz_method_t;

typedef struct {
    const char *service;    //  service name announced in RDY
    const char *endpoints;  //  comma-separated broker endpoints
    const char *broker_key; //  broker public key, Z85
    zcert_t *cert;          //  our certificate (borrowed)
    int heartbeat_ms;       //  0 = VZ_HEARTBEAT_MS
    int credit;             //  requests the broker may have outstanding here; 0 = 1
    vz_metrics_t *metrics;  //  optional (borrowed): requests/errors/latency per method
} vz_worker_config_t;

//  Reply builders; the body is copied. The last call wins.
int vz_reply_body(vz_reply_t *reply, const void *data, size_t len);
int vz_reply_error(vz_reply_t *reply, const char *code, const char *message);
//  Attach a context entry to the reply (e.g. "http_status" = "201" or
//  "http_location" for the gateway). 0, -ENOSPC or -ENAMETOOLONG.
int vz_reply_ctx_set(vz_reply_t *reply, const char *key, const char *value);

//  Connects and sends RDY at once (before attach). NULL with errno EINVAL
//  for a bad config (no service, key not 40 characters, credit out of range,
//  no endpoint). vz_worker_destroy does not touch the loop: stop the loop
//  first; zloop_destroy may come before or after.
vz_worker_t *vz_worker_new(const vz_worker_config_t *config, const vz_method_t *methods,
                           size_t count, void *app);
void vz_worker_destroy(vz_worker_t **self_p);

//  Register sockets and the heartbeat timer with loop.
int vz_worker_attach(vz_worker_t *self, zloop_t *loop);

//  True once at least one broker has acknowledged RDY and is alive.
bool vz_worker_connected(const vz_worker_t *self);

//  Ask every broker to stop dispatching here (BYE) and keep serving what is
//  already dispatched until each broker answers BYE or timeout_ms passes.
//  Blocking; call after the loop has stopped.
void vz_worker_drain(vz_worker_t *self, int timeout_ms);

#endif
