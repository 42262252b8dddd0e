/*  bl_client - calls to Stripe's API: SDK-shaped requests, stored idempotency keys, retries
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One call = one Stripe operation (bl_stripe.h) on the reactor thread,
 *  through the common outbound client (vz_http, driven by the daemon's
 *  zloop; no thread of its own):
 *    - Authorization: Bearer <secret key>, Stripe-Version pinned
 *      (BL_STRIPE_VERSION), form-encoded parameters exactly as the SDK
 *      encodes them (a POST's body, a GET's query);
 *    - a POST carries an Idempotency-Key derived from the logical operation
 *      (bl_stripe_idempotency_key) and stored in Redis ({billing}:idem:<key>,
 *      SET NX, 24 h, Stripe's own key lifetime) BEFORE the first attempt: a
 *      call that cannot store it is not sent; every attempt and every retry
 *      after a crash sends the same key;
 *    - attempts are single vz_http attempts; this module retries network
 *      errors, 409, 429 and 5xx (bl_stripe_retryable: Stripe-Should-Retry
 *      decides when present) after a full-jitter exponential backoff raised
 *      to Retry-After, within max_attempts and budget_ms;
 *    - a non-2xx end is mapped (bl_stripe_error) for the caller.
 *  The secret key is borrowed, sent only in the Authorization header, and
 *  never logged nor returned: vz_http redacts what it reports.
 *  Threads: reactor thread only. Every done callback runs exactly once,
 *  never inside bl_client_call; bl_client_destroy runs the pending ones
 *  with status 0 and error code "unavailable".
 */
#ifndef BL_CLIENT_H
#define BL_CLIENT_H

#include <czmq.h>
#include <stdbool.h>

#include "bl_stripe.h"
#include "vz_http.h"
#include "vz_metrics.h"
#include "vz_redis.h"

typedef struct {
    const char *base_url;   //  "https://api.stripe.com" or a test server (borrowed)
    const char *secret_key; //  "sk_..." or "" when not configured (borrowed)
    int max_attempts;       //  attempts per call (>= 1)
    int backoff_ms;         //  first retry's jitter ceiling
    int backoff_max_ms;     //  largest jitter ceiling
    int budget_ms;          //  whole call, waits included
} bl_client_config_t;

typedef struct {
    bool ok;                     //  a 2xx arrived
    long status;                 //  Stripe's last status, 0 when none arrived
    const char *body;            //  the 2xx body (borrowed for the callback), else ""
    size_t body_len;             //  its length
    bl_stripe_error_t error;     //  when !ok: what to answer our caller
    int attempts;                //  attempts made
    const char *idempotency_key; //  the key sent ("" for GET and DELETE)
} bl_client_result_t;

typedef void(bl_client_done_fn)(void *arg, const bl_client_result_t *result);

typedef struct bl_client_t bl_client_t;

//  loop, redis and metrics are borrowed (redis: where keys are stored;
//  metrics may be NULL). NULL with a reason in err when vz_http cannot start.
bl_client_t *bl_client_new(zloop_t *loop, const vz_http_config_t *http,
                           const bl_client_config_t *config, vz_redis_t *redis,
                           vz_metrics_t *metrics, char *err, size_t errlen);
void bl_client_destroy(bl_client_t **self_p);

//  vz_http's start-up warning (TLS verification off), or NULL: log it once.
const char *bl_client_warning(const bl_client_t *self);

//  True when a secret key is configured.
bool bl_client_configured(const bl_client_t *self);

//  Start op (bl_stripe_op name) on object id (NULL when the operation takes
//  none) with params (an object or NULL); logical names the operation for
//  its Idempotency-Key. 0 (done runs later, once), -EINVAL (unknown
//  operation, missing id, params not an object), -ENOKEY (no secret key),
//  -EAGAIN (Redis did not store the key: nothing was sent).
int bl_client_call(bl_client_t *self, const char *op, const char *id, const vz_json_value_t *params,
                   const char *logical, bl_client_done_fn *done, void *arg);

//  The wait before retry number `retry` (1 = the first): a uniform draw in
//  [0, min(max_ms, base_ms * 2^(retry-1))] (draw in [0, 1)), raised to
//  retry_after_s seconds when the server sent one (> 0). Pure.
int bl_client_backoff(int retry, int base_ms, int max_ms, int retry_after_s, double draw);

#endif
