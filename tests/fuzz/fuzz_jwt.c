/*  fuzz_jwt - libFuzzer target for JWT verification and base64url (vz_jwt.h)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The first input byte picks what the rest is (its value mod 3):
 *    0  a compact token, verified as received against a key set holding
 *       the fixed test key "k1" below;
 *    1  "<header JSON>\n<payload JSON>": the target base64url-encodes both
 *       and signs them with k1 itself, so the fuzzer reaches the claim
 *       checks behind the signature. Such a token never fails as "bad
 *       signature"; one that verifies has claims that fit their fields,
 *       and signing those claims again verifies to the same claims;
 *    2  base64url text: what decodes must encode back to the same text
 *       (only canonical encodings are accepted).
 *  Verification runs at a fixed "now" (2023-11-14) so committed tokens
 *  stay valid.
 */
#include "fuzz.h"
#include "vz_jwt.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define S_NOW 1700000000

//  A test key, nothing else: committed tokens in the corpus are signed with it.
static const char s_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0lmV97kKiSA/jlVN\n"
                            "7W3KXurJN9YVqN0uRKz+KWY7QAahRANCAAQeIOO/+C/GMIS8q9Ny1mb+LAdyr1Bl\n"
                            "lDCAX68yjzbfcvaILjTd18rMZgNb9ArTkPjgklSotFzw5uwoVSmox62j\n"
                            "-----END PRIVATE KEY-----\n";

static EVP_PKEY *s_pkey;         //  k1 for the target's own signatures
static vz_jwt_keyset_t *s_keys;  //  k1 as vz_jwt sees it
static const vz_jwt_key_t *s_k1; //  borrowed from s_keys
static const vz_jwt_verify_opts_t s_opts = {"https://auth.vizmesh.local", "vizmesh", S_NOW, 30};

static void s_init(void)
{
    if (s_keys)
        return;
    BIO *bio = BIO_new_mem_buf(s_pem, -1);
    s_pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    vz_jwt_key_t *key = vz_jwt_key_from_pem("k1", s_pem, strlen(s_pem));
    FZ_CHECK(s_pkey && key);
    s_keys = vz_jwt_keyset_new();
    FZ_CHECK(vz_jwt_keyset_add(s_keys, &key) == 0);
    s_k1 = vz_jwt_keyset_find(s_keys, "k1");
}

//  ES256 signature (R||S, base64url) of in, appended at out.
static size_t s_sign(const char *in, size_t n, char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t der_len = sizeof der;
    FZ_CHECK(md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s_pkey) == 1);
    FZ_CHECK(EVP_DigestSign(md, der, &der_len, (const uint8_t *)in, n) == 1);
    EVP_MD_CTX_free(md);
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    FZ_CHECK(sig);
    uint8_t rs[64];
    FZ_CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) == 32);
    FZ_CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) == 32);
    ECDSA_SIG_free(sig);
    return vz_jwt_b64url_encode(out, rs, sizeof rs);
}

static void s_check_claims(const vz_jwt_claims_t *c)
{
    FZ_CHECK_STR(c->iss, sizeof c->iss);
    FZ_CHECK_STR(c->sub, sizeof c->sub);
    FZ_CHECK_STR(c->aud, sizeof c->aud);
    FZ_CHECK_STR(c->scope, sizeof c->scope);
    FZ_CHECK_STR(c->tier, sizeof c->tier);
    FZ_CHECK_STR(c->jti, sizeof c->jti);
    FZ_CHECK_STR(c->client_id, sizeof c->client_id);
    FZ_CHECK(strcmp(c->kid, "k1") == 0);
    FZ_CHECK(c->exp > 0 && S_NOW - 30 < c->exp);
    FZ_CHECK(strcmp(c->iss, s_opts.issuer) == 0 && strcmp(c->aud, s_opts.audience) == 0);
}

//  Sign the claims again with vz_jwt_sign: they verify to the same claims.
static void s_resign(const vz_jwt_claims_t *c)
{
    char *token = NULL;
    FZ_CHECK(vz_jwt_sign(s_k1, c, &token) == 0);
    vz_jwt_claims_t again;
    FZ_CHECK(vz_jwt_verify(s_keys, token, strlen(token), &s_opts, &again) == 0);
    FZ_CHECK(memcmp(c, &again, sizeof again) == 0);
    free(token);
}

static void s_verify(const char *token, size_t len, bool signed_here)
{
    vz_jwt_claims_t claims;
    int rc = vz_jwt_verify(s_keys, token, len, &s_opts, &claims);
    FZ_CHECK(rc == 0 || rc == VZ_JWT_EMALFORMED || (rc <= VZ_JWT_EALG && rc >= VZ_JWT_EAUD));
    FZ_CHECK(vz_jwt_strerror(rc) != NULL);
    if (signed_here)
        FZ_CHECK(rc != VZ_JWT_ESIG);
    if (rc == 0) {
        s_check_claims(&claims);
        s_resign(&claims);
    }
}

//  header and payload as JSON text: encode, sign with k1, verify.
static void s_signed(const char *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    const char *payload = nl ? nl + 1 : "";
    size_t plen = nl ? size - hlen - 1 : 0;
    char *token = malloc(vz_jwt_b64url_len(hlen) + vz_jwt_b64url_len(plen) + 100);
    FZ_CHECK(token);
    size_t n = vz_jwt_b64url_encode(token, data, hlen);
    token[n++] = '.';
    n += vz_jwt_b64url_encode(token + n, payload, plen);
    size_t signed_len = n;
    token[n++] = '.';
    n += s_sign(token, signed_len, token + n);
    s_verify(token, n, true);
    free(token);
}

//  base64url: accepted text is canonical, so it encodes back unchanged.
static void s_b64url(const char *text, size_t len)
{
    uint8_t *out = malloc(len + 1);
    FZ_CHECK(out);
    long n = vz_jwt_b64url_decode(out, len + 1, text, len);
    if (n >= 0) {
        FZ_CHECK((size_t)n == len * 3 / 4 && vz_jwt_b64url_len((size_t)n) == len);
        char *again = malloc(len + 1);
        FZ_CHECK(again && vz_jwt_b64url_encode(again, out, (size_t)n) == len);
        FZ_CHECK(memcmp(again, text, len) == 0 && again[len] == '\0');
        free(again);
        //  One byte less room than needed is refused, not overrun.
        if (n > 0)
            FZ_CHECK(vz_jwt_b64url_decode(out, (size_t)n - 1, text, len) == -ENOSPC);
    } else
        FZ_CHECK(n == -EINVAL);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    switch (data[0] % 3) {
    case 0:
        s_verify(rest, size - 1, false);
        break;
    case 1:
        s_signed(rest, size - 1);
        break;
    default:
        s_b64url(rest, size - 1);
        break;
    }
    return 0;
}
