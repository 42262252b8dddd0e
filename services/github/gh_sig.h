/*  gh_sig - X-Hub-Signature-256 verification of GitHub webhook deliveries (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  GitHub signs each delivery with the webhook secret: the header is
 *  "sha256=" + lowercase hex of HMAC-SHA256(secret, raw body) (GitHub's
 *  "Validating webhook deliveries"; @octokit/webhooks-methods verify()).
 *  gh_sig_verify computes it with every configured secret (several during a
 *  rotation) and compares each in constant time (CRYPTO_memcmp), always
 *  over all of them, so the time taken does not tell which one matched.
 *  Hex digits of the header are accepted in either case.
 *
 *  No state, no I/O: any thread. Secrets are borrowed, never copied or
 *  logged.
 */
#ifndef GH_SIG_H
#define GH_SIG_H

#include <stddef.h>

#include "vz_worker.h"

#define GH_SIG_SECRETS_MAX 4 //  secrets checked at once (rotation)
#define GH_SIG_HEADER_LEN 71 //  "sha256=" + 64 hex digits

typedef enum {
    GH_SIG_OK = 0,
    GH_SIG_MISSING = -1,    //  no X-Hub-Signature-256          401 signature_missing
    GH_SIG_UNPARSABLE = -2, //  not sha256= and 64 hex digits    401 signature_unparsable
    GH_SIG_MISMATCH = -3,   //  no secret gives that signature   401 signature_invalid
    GH_SIG_BAD_JSON = -4,   //  verified body is not an object   400 invalid_json
} gh_sig_rc_t;

typedef struct {
    const char *secrets[GH_SIG_SECRETS_MAX]; //  borrowed, NULL-padded
    size_t count;                            //  in use (0: every delivery mismatches)
} gh_sig_config_t;

//  Split a comma-separated list in place (blanks around each dropped) into
//  config, at most GH_SIG_SECRETS_MAX. The number kept.
size_t gh_sig_parse(char *list, gh_sig_config_t *config);

//  Check header (NULL = absent) against the raw body.
gh_sig_rc_t gh_sig_verify(const gh_sig_config_t *config, const char *header, const void *body,
                          size_t len);

//  "sha256=<hex>" of body with secret into out (GH_SIG_HEADER_LEN + 1
//  bytes). 0, or -EIO when the HMAC fails. For tests and tools.
int gh_sig_sign(const char *secret, const void *body, size_t len, char *out);

//  The refusal code and message (static; "" for GH_SIG_OK).
const char *gh_sig_code(gh_sig_rc_t rc);
const char *gh_sig_message(gh_sig_rc_t rc);

//  Reply to a refusal: 401 unauthorized for a signature, 400
//  invalid_request for JSON, the refusal code leading the message.
int gh_sig_reply(vz_reply_t *reply, gh_sig_rc_t rc);

#endif
