/*  bl_sig - Stripe-Signature verification of webhook deliveries (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_sig.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_json.h"
#include "vz_proto.h"

#define HEX_LEN 64 //  SHA-256 in hex

int bl_sig_sign(const char *secret, int64_t t, const void *body, size_t len, char hex[65])
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    unsigned char digest[32];
    size_t dlen = 0;
    //  The key is the secret's text as Stripe's SDKs use it ("whsec_..." whole).
    int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) &&
             EVP_MAC_update(ctx, body, len) && EVP_MAC_final(ctx, digest, &dlen, sizeof digest) &&
             dlen == sizeof digest;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (!ok)
        return -EIO;
    for (size_t i = 0; i < sizeof digest; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

//  Strict decimal seconds of [p, p+n): 0 or -1.
static int s_parse_t(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 15)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

bl_sig_rc_t bl_sig_verify(const bl_sig_config_t *config, const char *header, const void *body,
                          size_t len, int64_t now_s, int64_t *t_out)
{
    if (!header || !*header)
        return BL_SIG_MISSING;
    size_t hlen = strlen(header);
    if (hlen > BL_SIG_HEADER_MAX)
        return BL_SIG_UNPARSABLE;
    //  First pass: the timestamp and whether any v1 is there. Items are
    //  "key=value" split at the first '=' (as the SDK splits them); a
    //  repeated t is ambiguous and refused.
    int64_t t = -1;
    size_t v1_count = 0;
    for (const char *p = header; p < header + hlen;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq && eq - p == 1 && p[0] == 't') {
            if (t >= 0 || s_parse_t(eq + 1, n - 2, &t) < 0)
                return BL_SIG_UNPARSABLE;
        } else if (eq && eq - p == 2 && p[0] == 'v' && p[1] == '1')
            v1_count++;
        p += n + (end ? 1 : 0);
    }
    if (t < 0 || v1_count == 0)
        return BL_SIG_UNPARSABLE;
    if (t_out)
        *t_out = t;

    //  The expected signature for each secret, then every v1 against each.
    char expected[BL_SIG_SECRETS_MAX][HEX_LEN + 1];
    size_t count = config->count < BL_SIG_SECRETS_MAX ? config->count : BL_SIG_SECRETS_MAX;
    for (size_t s = 0; s < count; s++)
        if (bl_sig_sign(config->secrets[s], t, body, len, expected[s]) < 0)
            return BL_SIG_MISMATCH;
    bool match = false;
    for (const char *p = header; p < header + hlen;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        //  Only a 64-character value can match; its length is no secret.
        if (n == 3 + HEX_LEN && memcmp(p, "v1=", 3) == 0)
            for (size_t s = 0; s < count; s++)
                match |= CRYPTO_memcmp(p + 3, expected[s], HEX_LEN) == 0;
        p += n + (end ? 1 : 0);
    }
    OPENSSL_cleanse(expected, sizeof expected);
    if (!match)
        return BL_SIG_MISMATCH;
    int64_t age = now_s - t;
    if (config->tolerance_s > 0 && (age > config->tolerance_s || -age > config->tolerance_s))
        return BL_SIG_STALE;
    return BL_SIG_OK;
}

//  Copy a string member of at most max-1 bytes; 0 or -1.
static int s_copy(const vz_json_value_t *obj, const char *key, char *out, size_t max)
{
    size_t n = 0;
    const char *text = vz_json_get_string(obj, key, &n);
    if (!text || n == 0 || n >= max)
        return -1;
    memcpy(out, text, n + 1);
    return 0;
}

bl_sig_rc_t bl_sig_event(const void *body, size_t len, bl_sig_event_t *event)
{
    memset(event, 0, sizeof *event);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    int rc = vz_json_type(root) == VZ_JSON_OBJECT ? 0 : -1;
    if (rc == 0)
        rc = s_copy(root, "id", event->id, sizeof event->id) |
             s_copy(root, "type", event->type, sizeof event->type) |
             vz_json_int(vz_json_get(root, "created"), &event->created);
    const vz_json_value_t *live = vz_json_get(root, "livemode");
    if (rc == 0 && live)
        rc = vz_json_bool(live, &event->livemode);
    vz_json_destroy(&doc);
    if (rc != 0 || event->created < 0) {
        memset(event, 0, sizeof *event);
        return BL_SIG_BAD_JSON;
    }
    return BL_SIG_OK;
}

const char *bl_sig_code(bl_sig_rc_t rc)
{
    switch (rc) {
    case BL_SIG_OK:
        return "";
    case BL_SIG_MISSING:
        return "signature_missing";
    case BL_SIG_UNPARSABLE:
        return "signature_unparsable";
    case BL_SIG_MISMATCH:
        return "signature_invalid";
    case BL_SIG_STALE:
        return "timestamp_out_of_tolerance";
    case BL_SIG_BAD_JSON:
        return "invalid_json";
    }
    return "signature_invalid";
}

const char *bl_sig_message(bl_sig_rc_t rc)
{
    switch (rc) {
    case BL_SIG_OK:
        return "";
    case BL_SIG_MISSING:
        return "no Stripe-Signature header";
    case BL_SIG_UNPARSABLE:
        return "Stripe-Signature needs one t= and at least one v1=";
    case BL_SIG_MISMATCH:
        return "no v1 signature matches the payload with any endpoint secret";
    case BL_SIG_STALE:
        return "timestamp outside the tolerance zone";
    case BL_SIG_BAD_JSON:
        return "body is not a Stripe event (JSON object with id, type, created)";
    }
    return "no valid signature";
}

int bl_sig_reply(vz_reply_t *reply, bl_sig_rc_t rc)
{
    return vz_authctx_reply_error(reply, 400, bl_sig_code(rc), bl_sig_message(rc));
}
