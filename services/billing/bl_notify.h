/*  bl_notify - billing's side effects ({billing}:outbox) delivered through the notifier
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The apply script queues a side effect in {billing}:outbox atomically with
 *  the event it comes from (kind receipt | dunning | dispute_alert, event,
 *  object). This consumer (vz_outbox: vz_stream group "notify", vz_call)
 *  turns each into a notifier call through the broker, never blocking the
 *  reactor:
 *    receipt, dunning -> notifier.send {"channel": "email", "template":
 *        "receipt" | "dunning", "idempotency_key": "billing-<event>-<kind>",
 *        "to": [{name, address}] (the invoice's customer_name/_email),
 *        "data": {name, amount, invoice, url}}
 *    dispute_alert    -> notifier.alert {"name": "billing_dispute",
 *        "severity": "critical", "status": "firing", "summary", "source":
 *        "billing", "key": "dispute-<id>"}
 *  An entry is acknowledged when the notifier accepted it. While the
 *  notifier is away (no_worker, unavailable, timeout, overloaded) it stays
 *  pending and is offered again after the retry wait: nothing is lost, and
 *  the idempotency key makes a repeat harmless. A refusal (the notifier
 *  says the message is wrong) is logged, counted and acknowledged: it would
 *  never pass. An invoice without an e-mail address has nobody to write to:
 *  acknowledged and counted as skipped.
 *  Reactor thread only.
 */
#ifndef BL_NOTIFY_H
#define BL_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "vz_call.h"
#include "vz_metrics.h"
#include "vz_redis.h"

typedef struct bl_notify_t bl_notify_t;

//  redis, calls and metrics are borrowed (metrics may be NULL). NULL on
//  failure.
bl_notify_t *bl_notify_new(vz_redis_t *redis, vz_call_t *calls, const char *consumer, int retry_ms,
                           vz_metrics_t *metrics);
void bl_notify_destroy(bl_notify_t **self_p);

//  One pass over the outbox at now_ms (monotonic; from a timer). Settled
//  entries or -errno.
int bl_notify_poll(bl_notify_t *self, int64_t now_ms);

//  The notifier call for one side effect (pure): kind, event id, and the
//  stored object's newest event JSON (the invoice or the dispute). The
//  method ("send" or "alert") in *method, the body as a heap string; NULL
//  with *method NULL when there is nobody to notify (no e-mail address) or
//  the kind is unknown.
char *bl_notify_message(const char *kind, const char *event, const char *stored, size_t len,
                        const char **method);

#endif
