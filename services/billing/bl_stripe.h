/*  bl_stripe - Stripe API requests as the official SDKs build them (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The request side of billing's outbound calls, with no I/O so that it can
 *  be compared byte for byte with the stripe npm SDK
 *  (tests/peers/stripe_request.mjs; test_bl_stripe):
 *    - the operations billing performs, with their method and path;
 *    - form encoding of nested parameters exactly as stripe-node does
 *      (qs, arrayFormat "indices", RFC 3986 percent-encoding, then "[" and
 *      "]" left literal): items[0][price]=p&metadata[k]=v, booleans as
 *      true/false, null as "" (unset), empty arrays and objects omitted,
 *      integer-like object keys first in ascending order (JavaScript's
 *      property order), then the others in document order; a GET carries
 *      the same text as its query string;
 *    - the Idempotency-Key of a POST, derived from the logical operation
 *      (the same operation on the same object always gets the same key, so
 *      a retry after a crash sends it again);
 *    - the retry rule (network errors, 409, 429, 5xx; Stripe-Should-Retry
 *      overrides) and the mapping of Stripe's error types to our answers.
 *  No state: any thread.
 */
#ifndef BL_STRIPE_H
#define BL_STRIPE_H

#include <stdbool.h>
#include <stddef.h>

#include "vz_json.h"

#define BL_STRIPE_VERSION "2024-11-20.acacia" //  Stripe-Version pinned (the 2024-11-20 release)
#define BL_STRIPE_BASE_URL "https://api.stripe.com"
#define BL_STRIPE_IDEM_MAX 48 //  "vzb-" + 32 hex + NUL, with room

typedef struct {
    const char *name;   //  "subscription_create"
    const char *method; //  "POST" | "GET" | "DELETE"
    const char *path;   //  "/v1/subscriptions" (+ "/<id>" when with_id)
    bool with_id;       //  the object id follows the path
} bl_stripe_op_t;

//  The operation called name, or NULL.
const bl_stripe_op_t *bl_stripe_op(const char *name);
//  Operation i of the table, NULL past its end (metrics made at start).
const bl_stripe_op_t *bl_stripe_op_at(size_t i);

//  Form-encode params (an object, or NULL for none) into *out (heap,
//  NUL-terminated, *len without the NUL; "" for no parameters). 0, -EINVAL
//  when params is not an object, -ENOMEM.
int bl_stripe_form(const vz_json_value_t *params, char **out, size_t *len);

//  The request line's target of op: path, "/<id>" when the operation takes
//  one (id percent-encoded), "?<form>" for a GET with parameters. 0,
//  -EINVAL (no id for an operation that needs one), -ENAMETOOLONG.
int bl_stripe_target(const bl_stripe_op_t *op, const char *id, const char *form, char *out,
                     size_t n);

//  The Idempotency-Key of op on logical (the object or request it is
//  about, e.g. "u_1/checkout/7"): "vzb-" + 32 hex of SHA-256(op "\n"
//  logical). 0 or -EIO.
int bl_stripe_idempotency_key(const char *op, const char *logical, char out[BL_STRIPE_IDEM_MAX]);

//  Whether an attempt that ended with rc (0: a response with status;
//  negative: a network error) should be retried. should_retry is the
//  Stripe-Should-Retry header or NULL: "true" / "false" decide alone.
bool bl_stripe_retryable(int rc, long status, const char *should_retry);

//  What a Stripe error becomes for our caller.
typedef struct {
    int status;          //  HTTP status for our caller
    const char *code;    //  our error code (static)
    bool retry_after;    //  answer with Retry-After (rate limited)
    bool operator_alert; //  log for the operator (our key is wrong or revoked)
    char message[256];   //  Stripe's message (safe to show: it never holds the key)
} bl_stripe_error_t;

//  Map a non-2xx Stripe response: error.type card_error -> 402
//  card_declined, invalid_request_error -> 400 invalid_request (404
//  not_found for resource_missing), idempotency_error -> 409 conflict,
//  authentication_error / permission_error -> 502 bad_gateway with an
//  operator alert, rate_limit_error (or 429) -> 503 unavailable with
//  Retry-After, anything else -> 502 bad_gateway.
void bl_stripe_error(long status, const char *body, size_t len, bl_stripe_error_t *out);

#endif
