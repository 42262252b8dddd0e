/*  vz_call - call another service from a worker's reactor, without blocking it
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A handler that needs another service's answer defers its own reply
 *  (vz_reply_defer), starts a call here and returns; the worker's loop goes
 *  on with heartbeats and other requests. When the answer, an error or the
 *  deadline arrives, done runs on the same reactor thread and completes the
 *  deferred reply (vz_worker_complete). Sketch (the echo worker's "relay"):
 *
 *      static int s_relay(void *app, const vz_envelope_t *req, vz_reply_t *reply) {
 *          vz_call_req_t call = {.service = "other", .method = "get", .body = req->body,
 *                                .body_len = req->body_len, .timeout_ms = 500,
 *                                .idempotent = true, .parent = req};
 *          return vz_call_start(app->calls, &call, vz_call_complete,
 *                               vz_reply_defer(reply, NULL));
 *      }
 *
 *  (vz_call_complete answers the deferred reply with the call's outcome; a
 *  handler that needs to look at the answer first passes its own done.)
 *
 *  One DEALER to the broker, with the daemon's own certificate: the callee
 *  sees the daemon's identity and the broker's call policy applies to it.
 *  The child's deadline is the earlier of the parent request's deadline and
 *  now + timeout_ms, and travels in the envelope; its traceparent is the
 *  parent's. Each call gets a fresh request id, kept across retries.
 *  Idempotent calls that fail with no_worker, worker_lost, unavailable or
 *  overloaded go again after one tick under vz_retry's budget.
 *  A callee that is away ends as the broker's no_worker at the deadline;
 *  a broker that is away ends as a local timeout at deadline + grace_ms.
 *  No call waits without a bound.
 *
 *  done is called exactly once for every call, on the reactor thread, and
 *  never from inside vz_call_start while open (a failure found at start
 *  waits for the next tick). Shutdown: vz_call_close (the daemon calls it
 *  when its loop stops, before the worker drains, see vz_call_new_daemon)
 *  ends every call still pending with a local "unavailable", so their
 *  requests are answered before the worker gives up on open deferred
 *  replies; a call started after that (a request the worker dispatches
 *  while draining) ends at once, inside vz_call_start, the same way, which
 *  vz_worker_complete accepts inside the deferring handler.
 *  Reactor thread only.
 */
#ifndef VZ_CALL_H
#define VZ_CALL_H

#include <czmq.h>
#include <stdbool.h>
#include "vz_client.h"
#include "vz_daemon.h"
#include "vz_envelope.h"
#include "vz_metrics.h"

typedef struct vz_call_t vz_call_t;

typedef enum {
    VZ_CALL_REPLY,  //  the service answered: body, body_len, env
    VZ_CALL_REMOTE, //  the service or the broker answered an error: code, message, env
    VZ_CALL_LOCAL,  //  no answer: code is timeout (deadline + grace passed), unavailable
                    //  (send failed, or closed) or invalid_request (does not fit an envelope)
} vz_call_outcome_t;

//  Borrowed by done for its duration only.
typedef struct {
    vz_call_outcome_t outcome; //  which of the three
    const char *code;          //  "" for a reply, else a vz_proto.h code (or the callee's own)
    const char *message;       //  "" for a reply, else human text
    const uint8_t *body;       //  reply body (NULL unless REPLY)
    size_t body_len;           //  its length
    const vz_envelope_t *env;  //  reply or error envelope (its ctx too); NULL when LOCAL
    int attempts;              //  envelopes sent (retries + 1; 0 when none could be)
} vz_call_result_t;

typedef void(vz_call_done_fn)(void *arg, const vz_call_result_t *result);

//  A done for calls whose answer is the deferred reply's: arg is the
//  vz_deferred_t; a reply completes it with the body, an error (remote or
//  local) with the code and message; the callee's reply ctx (http_status,
//  http_location) goes along.
void vz_call_complete(void *arg, const vz_call_result_t *result);

typedef struct {
    const char *service;         //  callee service
    const char *method;          //  callee method
    const void *body;            //  request body (copied), may be NULL
    size_t body_len;             //  its length
    int timeout_ms;              //  the call's own budget; 0 = what the parent has left
    bool idempotent;             //  retry-safe: flagged so, and retried here
    const vz_envelope_t *parent; //  request being served (deadline, traceparent), or NULL
} vz_call_req_t;

typedef struct {
    vz_client_config_t broker; //  endpoints, key, our certificate (the identity the policy sees)
    int grace_ms;              //  local wait past the deadline for the broker's verdict; 0 = 250
    int retry_budget_pct;      //  retries as a share of calls; 0 = 20, -1 = no retries
    int retry_min;             //  retries always allowed in a burst; 0 = 10
    vz_metrics_t *metrics;     //  optional (borrowed): vz_call_total{outcome}, retries
} vz_call_config_t;

#define VZ_CALL_TICK_MS 25 //  deadline sweep and retry period

//  NULL (errno set) when the socket cannot be made (EINVAL: bad key).
vz_call_t *vz_call_new(const vz_call_config_t *config);

//  The usual form for a worker daemon: the daemon's certificate, broker
//  key, endpoints and metrics, attached to loop (pass the same loop to
//  vz_daemon_serve), and closed by the daemon when its loop stops. Destroy
//  it after vz_daemon_serve returns. NULL (errno) on failure.
vz_call_t *vz_call_new_daemon(vz_daemon_t *daemon, zloop_t *loop);

//  Closes (done runs for every call still pending), takes its socket and
//  timer off the loop, then frees: destroy it before zloop_destroy.
void vz_call_destroy(vz_call_t **self_p);

//  Register the socket and the tick timer with loop (once).
int vz_call_attach(vz_call_t *self, zloop_t *loop);

//  Start a call; returns 0 (so a handler may `return vz_call_start(...)`).
//  done runs exactly once: later, or at once after vz_call_close. Service
//  or method too long, no deadline at all (timeout_ms 0 and no parent
//  deadline) or a call before vz_call_attach is misuse (assert). A deadline
//  already passed, a body too large or a failed send end in done (LOCAL)
//  on the next tick.
int vz_call_start(vz_call_t *self, const vz_call_req_t *req, vz_call_done_fn *done, void *arg);

//  End every call not yet done with LOCAL "unavailable" (done runs for
//  each, now) and refuse new ones. Idempotent.
void vz_call_close(vz_call_t *self);

//  Calls started and not yet done.
size_t vz_call_pending(const vz_call_t *self);

#endif
