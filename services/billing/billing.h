/*  billing - the billing service's application object, webhook intake and consumer
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One bl_t per process, used only on the reactor thread. Every piece of
 *  state lives in Redis under "billing:" (docs/services/billing.md, "Redis
 *  keys"), so any replica answers any request and applies any event.
 *
 *  Flow of a webhook: the gateway forwards POST /v1/webhooks/stripe as
 *  billing.webhook with the raw body and ctx header.stripe-signature;
 *  bl_h_webhook verifies it (bl_sig, no I/O) and defers the reply; after
 *  the worker's batch, vz_intake queues every delivery in one pipelined
 *  round trip (SET {billing}:seen:<event id> NX EX ttl and XADD
 *  {billing}:events, atomically), and only then answers 200 {"received":
 *  true, "duplicate": bool}. A zloop timer runs bl_poll: the stream consumer
 *  (vz_stream) hands each queued event to the apply script, which stores
 *  the object unless a newer event already did (bl_event ordering),
 *  appends its history, queues the notifier's side effect, marks the event
 *  applied and XACKs it, all in one script: exactly once across crashes.
 *
 *  Modules: bl_sig (signature, pure), bl_event (event meaning, pure),
 *  bl_revenue (figures, pure),
 *  bl_store (the Redis scripts and the revenue loader), bl_stripe and
 *  bl_client (calls to Stripe), bl_notify (the outbox to the notifier),
 *  billing.c (life cycle, intake, the apply consumer), bl_admin.c
 *  (revenue, reconciliation, gauges), bl_api.c (the user-facing calls);
 *  bl_app.h holds the bl_t they share.
 */
#ifndef BILLING_H
#define BILLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bl_revenue.h"
#include "bl_sig.h"
#include "bl_client.h"
#include "bl_notify.h"
#include "vz_stream.h"
#include "vz_authctx.h"
#include "vz_common.h"
#include "vz_metrics.h"
#include "vz_redis.h"
#include "vz_worker.h"

#define BL_SERVICE "billing"
#define BL_PREFIX "{billing}:"       //  every Redis key
#define BL_STREAM BL_PREFIX "events" //  queued webhook events
#define BL_GROUP "apply"             //  the consumer group that applies them
#define BL_OUTBOX BL_PREFIX "outbox" //  side effects for the notifier

typedef struct {
    char webhook_secrets[1024]; //  comma-separated endpoint secrets (whsec_...), never logged
    int tolerance_s;            //  Stripe-Signature timestamp tolerance
    int dedup_ttl_s;            //  how long an event id is remembered (>= Stripe's 3 days)
    int poll_ms;                //  consumer poll interval
    int claim_idle_ms;          //  a dead replica's events are claimed after this idle time
    int max_deliveries;         //  attempts before an event goes to {billing}:events:dead
    char consumer[128];         //  consumer name; "" = <hostname>-<replica>
    int redis_timeout_ms;       //  Redis command timeout
    int trend;                  //  previous periods in a revenue answer
    char readers[256];          //  in-mesh identities that may read revenue (space-separated)
    //  Outbound calls to Stripe (bl_client.h).
    char stripe_base[256];             //  API base URL
    char stripe_key[256];              //  secret key, or "" (never logged)
    char stripe_key_file[VZ_PATH_MAX]; //  file holding the secret key, or ""
    int stripe_attempts;               //  attempts per call
    int stripe_budget_ms;              //  one call, retries and waits included
    vz_http_config_t http;             //  the common outbound client's settings
    int reconcile_ms;                  //  reconciliation period, 0 = only on request
    int reconcile_lookback_s;          //  how far back it lists events
    int gauges_ms;                     //  revenue gauges refresh period, 0 = off
    int notify_retry_ms;               //  wait before the notifier is offered an entry again
    char gauge_currencies[64];         //  currencies whose MRR/ARR gauges exist from the start
} bl_config_t;

typedef struct bl_t bl_t;

//  Build the application: Redis handle, scripts, secrets parsed from the
//  config, the stream consumer named consumer, metrics (may be NULL).
//  NULL on failure (bad URL, out of memory).
bl_t *bl_new(const bl_config_t *config, const char *redis_url, const char *consumer,
             vz_metrics_t *metrics);
void bl_destroy(bl_t **self_p);

//  One consumer pass (from a timer). Settled entries or -errno.
int bl_poll(bl_t *self);

//  Start the Stripe client on loop (the key from stripe_key, else the
//  first line of stripe_key_file). 0, or -1 with the reason in err (an
//  unreadable key file, vz_http failing). Without a key the client runs
//  unconfigured: calls answer billing_not_configured.
int bl_client_start(bl_t *self, zloop_t *loop, char *err, size_t errlen);
//  End the client (vz_daemon_on_stop hook): pending calls are answered
//  "unavailable" while the worker can still send them.
void bl_client_stop(void *self);

//  Method handlers.
int bl_h_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_revenue(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_payment_intent_create(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_reconcile(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_checkout(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_subscriptions_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_invoices_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_payments_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_subscription_update(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_subscription_cancel(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_subscription_create(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int bl_h_portal(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  Reconciliation (from a timer): list the events of the lookback window
//  from Stripe (GET /v1/events, newest first, up to 10 pages of 100) and
//  queue those no webhook delivered, through the intake's own script (so
//  de-duplicated like webhooks). One run at a time per replica, and one
//  replica at a time ({billing}:reconcile:lock, SET NX PX). 0 when a run
//  started, -EBUSY, -ENOKEY (no Stripe key) or -EAGAIN (another replica).
int bl_reconcile(bl_t *self);

//  Start delivering {billing}:outbox through the notifier over calls
//  (borrowed; destroy it before bl_destroy). 0 or -1.
int bl_notify_start(bl_t *self, vz_call_t *calls, const char *consumer);

//  Refresh the revenue gauges (this month, from the stored state):
//  vz_billing_mrr{currency}, vz_billing_arr{currency},
//  vz_billing_paying_subscriptions, vz_billing_new_subscriptions,
//  vz_billing_churned_subscriptions. 0 or -EIO (Redis).
int bl_gauges(bl_t *self);
//  Create the gauges at 0 (MRR and ARR of each VZ_BILLING_GAUGE_CURRENCIES
//  currency, the counts), so dashboards and alerts find them from the start.
void bl_gauges_init(bl_t *self);
//  True when list is empty or lowercase three-letter codes joined by commas.
bool bl_currencies_ok(const char *list);

// --------------------------------------------------------------------------
//  bl_store.c: the Redis side

//  Lua sources.
extern const char bl_lua_apply[];
extern const char bl_lua_dump[];
extern const char bl_lua_list[];

//  The stored data the revenue figures read, loaded in one script call.
//  Strings point into the object; free with bl_store_input_free.
typedef struct {
    bl_rev_input_t input; //  what bl_rev_compute takes
    bl_rev_sub_t *subs;   //  owned arrays behind input
    bl_rev_point_t *points;
    bl_rev_payment_t *payments;
    bl_rev_refund_t *refunds;
    char *text; //  one buffer holding every string
} bl_store_input_t;

//  Load from Redis (script is bl_lua_dump's). 0 or -EIO / -EPROTO.
int bl_store_load(vz_redis_t *redis, vz_redis_script_t *script, bl_store_input_t *out);
void bl_store_input_free(bl_store_input_t *in);

#endif
