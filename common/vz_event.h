/*  vz_event - fire-and-forget messages to a service: never block, count drops
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  For what needs no answer (telemetry, notifications): vz_event_send
 *  encodes one envelope and hands it to ZeroMQ without waiting
 *  (ZMQ_DONTWAIT). At most queue_max events wait for the broker on this
 *  socket; when the queue is full (broker slow or gone) the event is
 *  dropped and counted (vz_event_dropped_total), and the call still
 *  returns at once. A telemetry push must never cost a request its latency.
 *
 *  On the wire an event is an ordinary request (docs/protocol.md): the
 *  broker routes it under its call policy and the same CURVE identity as
 *  the daemon's worker; it carries a deadline ttl_ms ahead, so a broker
 *  with no worker for the service forgets it then. The answers that come
 *  back are read and thrown away: by each vz_event_send (a bounded number
 *  per call) and, once attached, by the loop as they arrive.
 *  Not thread-safe: one owner thread (the reactor's, when attached).
 */
#ifndef VZ_EVENT_H
#define VZ_EVENT_H

#include <czmq.h>
#include "vz_client.h"
#include "vz_daemon.h"
#include "vz_metrics.h"

typedef struct vz_event_t vz_event_t;

typedef struct {
    vz_client_config_t broker; //  endpoints, key, our certificate
    int queue_max;             //  events waiting for the broker at most; 0 = 1000
    int ttl_ms;                //  deadline of each event from its send; 0 = 10000
    vz_metrics_t *metrics;     //  optional (borrowed): vz_event_sent_total, _dropped_total
} vz_event_config_t;

//  NULL (errno set) when the socket cannot be made.
vz_event_t *vz_event_new(const vz_event_config_t *config);
//  The daemon's certificate, broker key, endpoints and metrics.
vz_event_t *vz_event_new_daemon(vz_daemon_t *daemon);
//  Events still queued are dropped (linger 0). Takes its socket off the
//  loop it was attached to: destroy it before zloop_destroy.
void vz_event_destroy(vz_event_t **self_p);

//  Optional: read and discard answers on loop as they arrive.
int vz_event_attach(vz_event_t *self, zloop_t *loop);

//  Queue service.method with body (copied) and return at once: 0 queued,
//  -EAGAIN dropped (queue full; counted), -EMSGSIZE too large (counted as
//  dropped too). service and method must fit VZ_NAME_MAX (assert).
int vz_event_send(vz_event_t *self, const char *service, const char *method, const void *body,
                  size_t len);

//  Optional: told of each answer read (the service's reply: code "";
//  or an error such as the broker's no_worker or forbidden: its code),
//  on the owner thread. The telemetry reporter's auto mode uses it to
//  learn whether a sink takes its snapshots.
typedef void(vz_event_answer_fn)(void *arg, const char *service, const char *code);
void vz_event_on_answer(vz_event_t *self, vz_event_answer_fn *fn, void *arg);

//  Events dropped and queued so far (also in the metrics when given).
uint64_t vz_event_dropped(const vz_event_t *self);
uint64_t vz_event_sent(const vz_event_t *self);

#endif
