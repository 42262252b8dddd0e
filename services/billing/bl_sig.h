/*  bl_sig - Stripe-Signature verification of webhook deliveries (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Checks a webhook the way Stripe's SDKs do (stripe-node
 *  webhooks.constructEvent): the header is "t=<unix seconds>,v1=<hex>[,v1=..]"
 *  (other schemes such as v0 are ignored); the expected signature is
 *  HMAC-SHA256(secret, t + "." + raw body) in lowercase hex, computed with
 *  every configured endpoint secret (several during a rotation), and
 *  compared with every v1 in constant time (CRYPTO_memcmp). The signature is
 *  checked first, then the timestamp, as the SDK does, so a tampered old
 *  delivery is reported as a bad signature.
 *
 *  Stricter than the SDK, on purpose: t must be decimal digits only
 *  (parseInt would take "12abc"), and a timestamp more than tolerance in
 *  the FUTURE is refused too (the SDK only bounds the age): a signed
 *  delivery dated ahead cannot be replayed for longer than the window.
 *
 *  Then the body must be a JSON object with string "id" and "type" and an
 *  integer "created" (Stripe's event envelope); bl_sig_event reads them.
 *
 *  No state, no I/O, time is a parameter: every function may run on any
 *  thread. Secrets are borrowed and never copied or logged.
 */
#ifndef BL_SIG_H
#define BL_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_worker.h"

#define BL_SIG_TOLERANCE_S 300 //  Stripe's default tolerance
#define BL_SIG_SECRETS_MAX 4   //  endpoint secrets checked at once (rotation)
#define BL_SIG_HEADER_MAX 4096 //  longest Stripe-Signature accepted
#define BL_SIG_ID_MAX 128      //  longest event id ("evt_..." is ~30)
#define BL_SIG_TYPE_MAX 96     //  longest event type

//  Outcomes, each with its own refusal code (bl_sig_code) and message.
typedef enum {
    BL_SIG_OK = 0,
    BL_SIG_MISSING = -1,    //  no Stripe-Signature header           signature_missing
    BL_SIG_UNPARSABLE = -2, //  no t=, no v1=, or malformed           signature_unparsable
    BL_SIG_MISMATCH = -3,   //  no v1 matches any configured secret   signature_invalid
    BL_SIG_STALE = -4,      //  |now - t| > tolerance                 timestamp_out_of_tolerance
    BL_SIG_BAD_JSON = -5,   //  body not a Stripe event object        invalid_json
} bl_sig_rc_t;

//  The verification settings (borrowed strings).
typedef struct {
    const char *secrets[BL_SIG_SECRETS_MAX]; //  endpoint secrets ("whsec_..."), NULL-padded
    size_t count;                            //  secrets in use (0: every delivery mismatches)
    int64_t tolerance_s;                     //  allowed |now - t|; <= 0 disables the check
} bl_sig_config_t;

//  Check header (NULL = absent) against body at now_s (Unix seconds).
//  BL_SIG_OK or one of the negative codes above; *t_out (may be NULL) gets
//  the header's timestamp once it parsed.
bl_sig_rc_t bl_sig_verify(const bl_sig_config_t *config, const char *header, const void *body,
                          size_t len, int64_t now_s, int64_t *t_out);

//  The event fields webhooks need, copied out of the body.
typedef struct {
    char id[BL_SIG_ID_MAX];     //  "evt_..."
    char type[BL_SIG_TYPE_MAX]; //  "customer.subscription.updated"
    int64_t created;            //  event creation, Unix seconds
    bool livemode;              //  false when absent
} bl_sig_event_t;

//  Read id, type, created (and livemode) from an event body. BL_SIG_OK or
//  BL_SIG_BAD_JSON (not JSON, not an object, a field missing, wrong type or
//  too long).
bl_sig_rc_t bl_sig_event(const void *body, size_t len, bl_sig_event_t *event);

//  Compute the v1 signature of body at t with secret into hex (65 bytes,
//  NUL-terminated). 0, or -EIO when the HMAC fails. For tests and tools.
int bl_sig_sign(const char *secret, int64_t t, const void *body, size_t len, char hex[65]);

//  The refusal code and message of rc (static text; "" for BL_SIG_OK).
const char *bl_sig_code(bl_sig_rc_t rc);
const char *bl_sig_message(bl_sig_rc_t rc);

//  Reply 400 for a refusal (vz_authctx_reply_error): the refusal's own
//  code (bl_sig_code) and message; http_status 400 in the reply ctx makes
//  the gateway show that code.
int bl_sig_reply(vz_reply_t *reply, bl_sig_rc_t rc);

#endif
