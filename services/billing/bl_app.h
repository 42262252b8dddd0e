/*  bl_app - the billing application object, shared by its modules (private)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  billing.c (life cycle, webhook intake, the apply consumer, the Stripe
 *  client's start), bl_admin.c (revenue, reconciliation, gauges) and
 *  bl_api.c (the user-facing calls to Stripe) share the one bl_t and the
 *  helpers below. Reactor thread only, like everything in billing.
 */
#ifndef BL_APP_H
#define BL_APP_H

#include "billing.h"
#include "vz_intake.h"

#define BL_REPLY_MAX (64 * 1024) //  largest JSON answer
//  503 for a call that needs a setting not given (the message names it).
#define BL_ERR_NOT_CONFIGURED "billing_not_configured"

struct bl_t {
    bl_config_t config;
    char secrets[sizeof((bl_config_t *)0)->webhook_secrets]; //  split copy of the secrets
    bl_sig_config_t sig;                                     //  points into secrets
    char ttl[16];                                            //  dedup ttl as text
    vz_redis_t *redis;                                       //  shared state
    vz_intake_t *intake;                                     //  webhooks: dedup + XADD
    vz_redis_script_t *apply;                                //  consumer: store + ack
    vz_redis_script_t *dump;                                 //  revenue input
    vz_redis_script_t *list;                                 //  a customer's objects
    vz_stream_t *stream;                                     //  the consumer group
    int64_t backlog_due;   //  next queue depth refresh (monotonic ms)
    vz_metrics_t *metrics; //  borrowed, may be NULL
    vz_series_t *backlog;  //  queue depth gauge
    vz_series_t *dead;     //  entries moved dead
    uint64_t dead_seen;    //  vz_stream's count already reported
    bl_client_t *client;   //  Stripe's API (NULL before start and after stop)
    bool reconciling;      //  a reconciliation run is in flight
    bl_notify_t *notify;   //  the outbox's delivery (NULL until started)
    char missing[160];     //  which setting a Stripe call lacks, "" when none
};

//  Complete handle with an error whose HTTP status the gateway shows
//  (http_status in the reply ctx: billing's own codes are not contract C's).
void bl_complete_error(vz_deferred_t **handle_p, int status, const char *code, const char *message);
//  Reply 503 billing_not_configured (no Stripe key) or unavailable (the
//  client is stopping) when Stripe cannot be called. true when it replied.
bool bl_stripe_unusable(bl_t *self, vz_reply_t *reply);

//  The caller's customer id ({billing}:customer_of:<user>): 0 and id,
//  -ENOENT, -EIO (Redis).
int bl_customer_of(bl_t *self, const char *sub, char *id, size_t n);
//  Record id as sub's customer. 0 or -EIO.
int bl_customer_remember(bl_t *self, const char *sub, const char *id);

#endif
