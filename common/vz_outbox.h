/*  vz_outbox - an outbox stream delivered through the notifier (vz_stream + vz_call)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A daemon queues its side effects (receipts, partner notifications) in a
 *  Redis stream atomically with what caused them; this module reads that
 *  stream (vz_stream, group "notify") and calls notifier.<method> for each
 *  entry through the broker (vz_call, never blocking the reactor):
 *    - fn turns an entry into the call (method and heap body); NULL from fn
 *      means nobody to notify: the entry is acknowledged, counted skipped.
 *      Without fn the entry carries the call itself: fields "method" and
 *      "body" (a vz_notifier_contract body, e.g. from vz_nt_send_encode).
 *    - the notifier accepted it: acknowledged (delivered);
 *    - the notifier is away (no_worker, unavailable, timeout, overloaded,
 *      worker_lost, or no answer): the entry stays pending and is offered
 *      again after retry_ms (retried). Nothing is lost, and the message's
 *      idempotency key makes a repeat harmless;
 *    - the notifier refused it (the message is wrong and would never pass):
 *      logged as a warning, acknowledged (refused).
 *  At most VZ_OUTBOX_INFLIGHT calls are in flight; poll reads nothing more
 *  until answers come back. Results are counted in config.metric{result}.
 *
 *  Ownership: redis, calls and metrics are borrowed and must outlive the
 *  outbox (metrics may be NULL); config strings are copied by vz_stream or
 *  must be static (metric, help, what). Destroy the outbox only after
 *  vz_call is destroyed or drained: a call in flight holds the outbox.
 *  Threads: the reactor thread only (that of redis and calls).
 *  Timeouts: each notifier call VZ_OUTBOX_CALL_MS; Redis calls are bounded
 *  by the vz_redis_t timeout.
 *  Errors: poll returns -errno when Redis failed (entries stay pending).
 */
#ifndef VZ_OUTBOX_H
#define VZ_OUTBOX_H

#include <stdint.h>

#include "vz_call.h"
#include "vz_metrics.h"
#include "vz_redis.h"
#include "vz_stream.h"

#define VZ_OUTBOX_CALL_MS 5000 //  one notifier call
#define VZ_OUTBOX_INFLIGHT 32  //  calls in flight before the outbox is read again

typedef struct {
    const char *stream;   //  the outbox stream key ("{billing}:outbox")
    const char *consumer; //  this replica's consumer name (stable per replica)
    int retry_ms;         //  wait before a pending entry is offered again; 0 = 1000
    const char *metric;   //  counter name, e.g. "vz_billing_notifications" (static)
    const char *help;     //  its help line (static)
    const char *what;     //  names the entries in the refusal log (static)
} vz_outbox_config_t;

//  The notifier call for one entry: the method (static) in *method, the
//  body as a heap string the outbox frees; NULL when there is nothing to
//  send (the entry is acknowledged and counted skipped).
typedef char *(vz_outbox_fn)(void *arg, const vz_stream_entry_t *entry, const char **method);

typedef struct vz_outbox_t vz_outbox_t;

//  fn may be NULL (entries carry "method" and "body"). NULL on failure.
vz_outbox_t *vz_outbox_new(vz_redis_t *redis, vz_call_t *calls, const vz_outbox_config_t *config,
                           vz_metrics_t *metrics, vz_outbox_fn *fn, void *arg);
void vz_outbox_destroy(vz_outbox_t **self_p);

//  One pass over the outbox at now_ms (monotonic; from a timer). Entries
//  settled, 0 while VZ_OUTBOX_INFLIGHT calls are in flight, or -errno.
int vz_outbox_poll(vz_outbox_t *self, int64_t now_ms);

#endif
