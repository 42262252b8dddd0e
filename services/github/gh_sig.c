/*  gh_sig - X-Hub-Signature-256 verification of GitHub webhook deliveries (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_sig.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_proto.h"

#define PREFIX "sha256="
#define PREFIX_LEN 7

size_t gh_sig_parse(char *list, gh_sig_config_t *config)
{
    memset(config, 0, sizeof *config);
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && config->count < GH_SIG_SECRETS_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (*tok)
            config->secrets[config->count++] = tok;
    }
    return config->count;
}

//  The raw HMAC-SHA256 of body with secret; 0 or -EIO.
static int s_hmac(const char *secret, const void *body, size_t len, unsigned char mac[32])
{
    unsigned int n = 0;
    static const unsigned char empty = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), len ? body : &empty, len, mac, &n) ||
        n != 32)
        return -EIO;
    return 0;
}

int gh_sig_sign(const char *secret, const void *body, size_t len, char *out)
{
    unsigned char mac[32];
    if (s_hmac(secret, body, len, mac) < 0)
        return -EIO;
    memcpy(out, PREFIX, PREFIX_LEN);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + PREFIX_LEN + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

gh_sig_rc_t gh_sig_verify(const gh_sig_config_t *config, const char *header, const void *body,
                          size_t len)
{
    if (!header || !*header)
        return GH_SIG_MISSING;
    if (strlen(header) != GH_SIG_HEADER_LEN || strncmp(header, PREFIX, PREFIX_LEN) != 0)
        return GH_SIG_UNPARSABLE;
    unsigned char want[32];
    for (size_t i = 0; i < 32; i++) {
        int hi = s_nibble(header[PREFIX_LEN + 2 * i]),
            lo = s_nibble(header[PREFIX_LEN + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return GH_SIG_UNPARSABLE;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    //  Every secret is tried, whatever matched before: no early exit.
    bool match = false;
    for (size_t i = 0; i < config->count; i++) {
        unsigned char mac[32];
        if (s_hmac(config->secrets[i], body, len, mac) == 0)
            match |= CRYPTO_memcmp(mac, want, sizeof mac) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
    }
    return match ? GH_SIG_OK : GH_SIG_MISMATCH;
}

const char *gh_sig_code(gh_sig_rc_t rc)
{
    switch (rc) {
    case GH_SIG_OK:
        return "";
    case GH_SIG_MISSING:
        return "signature_missing";
    case GH_SIG_UNPARSABLE:
        return "signature_unparsable";
    case GH_SIG_MISMATCH:
        return "signature_invalid";
    case GH_SIG_BAD_JSON:
        return "invalid_json";
    }
    return "signature_invalid";
}

const char *gh_sig_message(gh_sig_rc_t rc)
{
    switch (rc) {
    case GH_SIG_OK:
        return "";
    case GH_SIG_MISSING:
        return "no X-Hub-Signature-256 header";
    case GH_SIG_UNPARSABLE:
        return "X-Hub-Signature-256 must be sha256= and 64 hex digits";
    case GH_SIG_MISMATCH:
        return "the signature does not match the payload with any webhook secret";
    case GH_SIG_BAD_JSON:
        return "body is not a JSON object";
    }
    return "no valid signature";
}

int gh_sig_reply(vz_reply_t *reply, gh_sig_rc_t rc)
{
    char message[160];
    snprintf(message, sizeof message, "%s: %s", gh_sig_code(rc), gh_sig_message(rc));
    if (rc == GH_SIG_BAD_JSON)
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, message);
    return vz_authctx_reply_error(reply, 401, VZ_AUTHCTX_ERR_UNAUTHORIZED, message);
}
