/*  vz_client - the calling side: service.method with a deadline
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Several brokers may serve one mesh: the client keeps one connection per
 *  broker (a ROUTER naming each broker's pipe, so it chooses where a call
 *  goes) and sends each call to the next broker, in turn, whose CURVE
 *  handshake is done and whose link has not dropped since; with none up
 *  it queues on the next one as a single-broker client always did. A
 *  broker that dies drops its link at once; one that stops answering is
 *  dropped by ZMTP heartbeats within heartbeat_ms * VZ_HEARTBEAT_LIVENESS.
 *  The endpoints may name hosts: a name stands for every address it
 *  resolves to (vz_endpoints.h), resolved again every
 *  VZ_ENDPOINTS_RESOLVE_MS on a thread of the client's own, and a broker
 *  that appears or goes away is connected or disconnected on the next send
 *  or vz_client_links, with no restart.
 *  A call never hangs: it ends with a reply, a typed error (error_code of
 *  vz_proto.h) or a local "timeout" error at the deadline. Only calls
 *  flagged idempotent are retried (on vz_retry_code's codes: no_worker,
 *  worker_lost, unavailable, overloaded; with a short backoff, while the
 *  deadline allows) and with the same request id. A reactor that must not
 *  block uses vz_call instead.
 *  Not thread-safe: one client per thread.
 */
#ifndef VZ_CLIENT_H
#define VZ_CLIENT_H

#include <czmq.h>
#include "vz_envelope.h"

typedef struct vz_client_t vz_client_t;

//  Slots: brokers 0..VZ_ENDPOINTS_MAX-1, then workers' direct endpoints.
#define VZ_CLIENT_DIRECT_MAX 32
#define VZ_CLIENT_SLOTS (VZ_ENDPOINTS_MAX + VZ_CLIENT_DIRECT_MAX)

//  A received reply or error: the frame and its decoded envelope, whose
//  body points into the frame.
typedef struct {
    zframe_t *frame;   //  owned
    vz_envelope_t env; //  decoded; kind REPLY or ERROR
} vz_response_t;

void vz_response_destroy(vz_response_t **self_p);

typedef struct {
    const char *endpoints;  //  comma-separated broker endpoints (names: every address)
    const char *broker_key; //  broker public key, Z85 (every broker has the same)
    zcert_t *cert;          //  our certificate (borrowed)
    int heartbeat_ms;       //  0 = VZ_HEARTBEAT_MS; silence for LIVENESS of these drops a broker
    bool direct;            //  send idempotent calls to workers directly when a broker lists them
} vz_client_config_t;

vz_client_t *vz_client_new(const vz_client_config_t *config);
void vz_client_destroy(vz_client_t **self_p);

//  Synchronous call. req must have service, method; id is generated when
//  empty; deadline_ms is set from timeout_ms when 0. Returns 0 and a
//  response (reply or remote error), or -ETIMEDOUT / -EINTR / -EMSGSIZE.
//  On -ETIMEDOUT no response is returned.
int vz_client_call(vz_client_t *self, vz_envelope_t *req, int timeout_ms,
                   vz_response_t **response_p);

//  Asynchronous use from a reactor: send a request without waiting, then
//  when vz_client_sock() is readable, vz_client_recv() the next response
//  (replies to different requests may arrive in any order; match on id).
int vz_client_send(vz_client_t *self, const vz_envelope_t *req);
int vz_client_recv(vz_client_t *self, vz_response_t **response_p);
zsock_t *vz_client_sock(vz_client_t *self);

//  Several brokers. Each broker has a slot number, 0..VZ_ENDPOINTS_MAX-1 (a
//  worker's direct endpoint VZ_ENDPOINTS_MAX..VZ_CLIENT_SLOTS-1),
//  kept while it is known (a slot freed by a broker gone from DNS may be
//  reused by a new one).
//  The slot the last successful send went to: file it with the call
//  (vz_pending_entry_t.broker) to know what a lost link took with it.
int vz_client_last_broker(const vz_client_t *self);

//  Readable when the links changed (a handshake done, a link dropped).
zsock_t *vz_client_links_sock(vz_client_t *self);

//  Apply link events and resolved names; call lost(arg, slot) once for
//  each broker whose link dropped (or that left DNS) since the last call:
//  what was sent to it and not answered is lost. Returns brokers up.
typedef void(vz_client_lost_fn)(void *arg, int broker);
int vz_client_links(vz_client_t *self, vz_client_lost_fn *lost, void *arg);

//  True when broker was sent a call more than a heartbeat ago, has
//  answered nothing since, and another broker is up and answering: a
//  caller may send that broker's idempotent calls again elsewhere (they
//  go to the other broker) instead of waiting for its link to drop.
bool vz_client_suspect(const vz_client_t *self, int broker);

//  Brokers known (connected or trying) and up.
size_t vz_client_brokers(const vz_client_t *self);
size_t vz_client_brokers_up(const vz_client_t *self);

//  Direct calls (config.direct; docs/protocol.md, "Direct calls"). An
//  idempotent call to a service that is not pinned to a version (ctx
//  route.version) goes straight to one of its workers, in
//  turn, when a broker's directory lists workers with a direct endpoint and
//  the link to one is up: no broker hop, the same envelope, the same
//  answers. The client follows the directory of each service it calls so
//  (up to 16), asking a broker again every second while calls flow.
//  Direct links are slots too (VZ_ENDPOINTS_MAX and up): a worker that
//  dies drops its link, reported by vz_client_links like a broker's; one
//  that drains says BYE and gets no new calls; one silent for a heartbeat
//  with calls out is suspect. Other calls, and every call while no direct
//  link is up or while weights split the service between versions, go
//  through a broker as before.

//  Fill a fresh random request id (32 hex chars) into id (size >= 33).
void vz_client_new_id(char *id, size_t n);

#endif
