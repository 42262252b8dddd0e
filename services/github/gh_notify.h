/*  gh_notify - github:outbox (partner notifications) delivered through the notifier
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The apply script queues each notification a rule produced (gh_rules)
 *  in github:outbox atomically with the delivery it comes from: fields
 *  method ("send") and body (a notifier.send body, vz_notifier_contract,
 *  with idempotency key "github-<delivery>-<rule>"). This consumer
 *  (bl_stream, group "notify") calls notifier.<method> through the broker
 *  (vz_call, never blocking the reactor). An entry is acknowledged when the
 *  notifier accepted it; while the notifier is away (no_worker,
 *  unavailable, timeout, overloaded, worker_lost) it stays pending and is
 *  offered again after retry_ms: nothing is lost, and the idempotency key
 *  makes a repeat harmless. A refusal (the message is wrong: unknown
 *  template, bad address) is logged, counted and acknowledged.
 *  Metric: vz_github_notifications{result}. Reactor thread only.
 */
#ifndef GH_NOTIFY_H
#define GH_NOTIFY_H

#include "vz_call.h"
#include "vz_metrics.h"
#include "vz_redis.h"

typedef struct gh_notify_t gh_notify_t;

//  redis, calls and metrics are borrowed (metrics may be NULL). NULL on failure.
gh_notify_t *gh_notify_new(vz_redis_t *redis, vz_call_t *calls, const char *outbox,
                           const char *consumer, int retry_ms, vz_metrics_t *metrics);
void gh_notify_destroy(gh_notify_t **self_p);

//  One pass over the outbox (from a timer). Settled entries or -errno.
int gh_notify_poll(gh_notify_t *self);

#endif
