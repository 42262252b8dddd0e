/*  vz_client - the calling side: service.method with a deadline
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One DEALER connected to every broker endpoint over CURVE. A call never
 *  hangs: it ends with a reply, a typed error (error_code of vz_proto.h) or
 *  a local "timeout" error at the deadline. Only calls flagged idempotent
 *  are retried (on vz_retry_code's codes: no_worker, worker_lost,
 *  unavailable, overloaded; with a short backoff, while the deadline
 *  allows) and with the same request id. A reactor that must not block
 *  uses vz_call instead.
 *  Not thread-safe: one client per thread.
 */
#ifndef VZ_CLIENT_H
#define VZ_CLIENT_H

#include <czmq.h>
#include "vz_envelope.h"

typedef struct vz_client_t vz_client_t;

//  A received reply or error: the frame and its decoded envelope, whose
//  body points into the frame.
typedef struct {
    zframe_t *frame;  //  owned
    vz_envelope_t env; //  decoded; kind REPLY or ERROR
} vz_response_t;

void vz_response_destroy(vz_response_t **self_p);

typedef struct {
    const char *endpoints;  //  comma-separated broker endpoints
    const char *broker_key; //  broker public key, Z85
    zcert_t *cert;          //  our certificate (borrowed)
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

//  Fill a fresh random request id (32 hex chars) into id (size >= 33).
void vz_client_new_id(char *id, size_t n);

#endif
