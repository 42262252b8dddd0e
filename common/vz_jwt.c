/*  vz_jwt - ES256 JSON Web Tokens (RFC 7519/7515/7518) and JWKS (RFC 7517)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  OpenSSL speaks DER ECDSA signatures; JWS wants the fixed 64-byte R||S.
 *  s_der_to_raw and s_raw_to_der convert at the boundary, so a signature of
 *  any other shape never reaches OpenSSL.
 */
#include "vz_jwt.h"
#include "vz_clock.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "vz_common.h"
#include "vz_json.h"

#define KEYSET_MAX 64
#define P256_COORD 32
#define P256_POINT 65 //  0x04 || X || Y
#define SIG_RAW 64

struct vz_jwt_key_t {
    char kid[VZ_JWT_KID_MAX]; //  key id
    EVP_PKEY *pkey;           //  P-256 key (owned)
    bool priv;                //  holds the private half
};

struct vz_jwt_keyset_t {
    size_t count;                   //  keys used
    vz_jwt_key_t *keys[KEYSET_MAX]; //  owned
};

const char *vz_jwt_strerror(int rc)
{
    //  Only the wording of a malformed token differs from vz_strerror.
    return rc == VZ_JWT_EMALFORMED ? "malformed token" : rc < 0 ? vz_strerror(rc) : "ok";
}

// --------------------------------------------------------------------------
//  base64url

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t vz_jwt_b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t vz_jwt_b64url_encode(char *out, const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = s_b64[(v >> 6) & 63];
        out[o++] = s_b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = s_b64[v >> 18];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = s_b64[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long vz_jwt_b64url_decode(void *out, size_t cap, const char *text, size_t len)
{
    if (len % 4 == 1)
        return -EINVAL;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return -ENOSPC;
    uint8_t *o = out;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64_value(text[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
        }
    }
    //  Leftover bits must be zero, so each byte string has one encoding.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -EINVAL;
    return (long)n;
}

// --------------------------------------------------------------------------
//  Keys

static bool s_is_p256(EVP_PKEY *pkey)
{
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return false;
    char group[64] = "";
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1)
        return false;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static vz_jwt_key_t *s_key_wrap(const char *kid, EVP_PKEY *pkey, bool priv)
{
    vz_jwt_key_t *self = calloc(1, sizeof *self);
    if (!self || !kid || !*kid || vz_strlcpy(self->kid, kid, sizeof self->kid) < 0) {
        free(self);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    self->pkey = pkey;
    self->priv = priv;
    return self;
}

vz_jwt_key_t *vz_jwt_key_generate(const char *kid)
{
    if (!kid || !*kid || strlen(kid) >= VZ_JWT_KID_MAX)
        return NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (!pkey)
        return NULL;
    return s_key_wrap(kid, pkey, true);
}

static bool s_has_private(EVP_PKEY *pkey)
{
    BIGNUM *d = NULL;
    bool has = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 && d;
    BN_clear_free(d);
    return has;
}

vz_jwt_key_t *vz_jwt_key_from_pem(const char *kid, const char *pem, size_t len)
{
    if (!kid || !*kid || strlen(kid) >= VZ_JWT_KID_MAX || !pem || len == 0 || len > 16384)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!pkey) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)len);
        pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    }
    BIO_free(bio);
    if (!pkey || !s_is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return s_key_wrap(kid, pkey, s_has_private(pkey));
}

//  A public-only key from an uncompressed point; OpenSSL refuses points
//  that are not on the curve.
static EVP_PKEY *s_pkey_from_point(const uint8_t point[P256_POINT])
{
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, P256_POINT),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    if (pkey) {
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!ctx || EVP_PKEY_public_check(ctx) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    return pkey;
}

static int s_point(const vz_jwt_key_t *self, uint8_t point[P256_POINT])
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(self->pkey, OSSL_PKEY_PARAM_PUB_KEY, point, P256_POINT,
                                        &len) != 1 ||
        len != P256_POINT || point[0] != 0x04)
        return -EIO;
    return 0;
}

vz_jwt_key_t *vz_jwt_key_public(const vz_jwt_key_t *self)
{
    assert(self);
    uint8_t point[P256_POINT];
    if (s_point(self, point) < 0)
        return NULL;
    EVP_PKEY *pkey = s_pkey_from_point(point);
    return pkey ? s_key_wrap(self->kid, pkey, false) : NULL;
}

void vz_jwt_key_destroy(vz_jwt_key_t **self_p)
{
    assert(self_p);
    vz_jwt_key_t *self = *self_p;
    if (!self)
        return;
    EVP_PKEY_free(self->pkey);
    free(self);
    *self_p = NULL;
}

const char *vz_jwt_key_kid(const vz_jwt_key_t *self)
{
    assert(self);
    return self->kid;
}

bool vz_jwt_key_has_private(const vz_jwt_key_t *self)
{
    assert(self);
    return self->priv;
}

static char *s_bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (out) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    return out;
}

char *vz_jwt_key_private_pem(const vz_jwt_key_t *self)
{
    assert(self);
    if (!self->priv)
        return NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_PrivateKey(bio, self->pkey, NULL, NULL, 0, NULL, NULL) == 1)
        out = s_bio_string(bio);
    BIO_free(bio);
    return out;
}

char *vz_jwt_key_public_pem(const vz_jwt_key_t *self)
{
    assert(self);
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_PUBKEY(bio, self->pkey) == 1)
        out = s_bio_string(bio);
    BIO_free(bio);
    return out;
}

static void s_write_jwk(vz_json_writer_t *w, const vz_jwt_key_t *self, const uint8_t *point)
{
    char x[48], y[48];
    vz_jwt_b64url_encode(x, point + 1, P256_COORD);
    vz_jwt_b64url_encode(y, point + 1 + P256_COORD, P256_COORD);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "kty", "EC");
    vz_json_write_kv_string(w, "crv", "P-256");
    vz_json_write_kv_string(w, "x", x);
    vz_json_write_kv_string(w, "y", y);
    vz_json_write_kv_string(w, "kid", self->kid);
    vz_json_write_kv_string(w, "alg", "ES256");
    vz_json_write_kv_string(w, "use", "sig");
    vz_json_write_object_end(w);
}

char *vz_jwt_key_jwk(const vz_jwt_key_t *self)
{
    assert(self);
    uint8_t point[P256_POINT];
    if (s_point(self, point) < 0)
        return NULL;
    vz_json_writer_t *w = vz_json_writer_new(0);
    if (!w)
        return NULL;
    s_write_jwk(w, self, point);
    char *out = vz_json_writer_take(w, NULL);
    vz_json_writer_destroy(&w);
    return out;
}

// --------------------------------------------------------------------------
//  Key sets

vz_jwt_keyset_t *vz_jwt_keyset_new(void)
{
    return calloc(1, sizeof(vz_jwt_keyset_t));
}

void vz_jwt_keyset_destroy(vz_jwt_keyset_t **self_p)
{
    assert(self_p);
    vz_jwt_keyset_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        vz_jwt_key_destroy(&self->keys[i]);
    free(self);
    *self_p = NULL;
}

int vz_jwt_keyset_add(vz_jwt_keyset_t *self, vz_jwt_key_t **key_p)
{
    assert(self && key_p && *key_p);
    if (vz_jwt_keyset_find(self, (*key_p)->kid)) {
        vz_jwt_key_destroy(key_p);
        return -EEXIST;
    }
    if (self->count == KEYSET_MAX) {
        vz_jwt_key_destroy(key_p);
        return -ENOSPC;
    }
    self->keys[self->count++] = *key_p;
    *key_p = NULL;
    return 0;
}

size_t vz_jwt_keyset_size(const vz_jwt_keyset_t *self)
{
    assert(self);
    return self->count;
}

const vz_jwt_key_t *vz_jwt_keyset_find(const vz_jwt_keyset_t *self, const char *kid)
{
    assert(self);
    for (size_t i = 0; kid && i < self->count; i++)
        if (strcmp(self->keys[i]->kid, kid) == 0)
            return self->keys[i];
    return NULL;
}

const vz_jwt_key_t *vz_jwt_keyset_at(const vz_jwt_keyset_t *self, size_t i)
{
    assert(self);
    return i < self->count ? self->keys[i] : NULL;
}

static bool s_optional_is(const vz_json_value_t *jwk, const char *name, const char *want)
{
    const vz_json_value_t *v = vz_json_get(jwk, name);
    if (!v)
        return true;
    const char *text = vz_json_string(v, NULL);
    return text && strcmp(text, want) == 0;
}

//  One JWK: 1 added, 0 skipped (not ours), -1 invalid.
static int s_jwk_add(vz_jwt_keyset_t *self, const vz_json_value_t *jwk)
{
    if (vz_json_type(jwk) != VZ_JSON_OBJECT)
        return -1;
    const char *kty = vz_json_get_string(jwk, "kty", NULL);
    if (!kty)
        return -1;
    const char *crv = vz_json_get_string(jwk, "crv", NULL);
    const char *kid = vz_json_get_string(jwk, "kid", NULL);
    if (strcmp(kty, "EC") != 0 || !crv || strcmp(crv, "P-256") != 0 || !kid || !*kid ||
        !s_optional_is(jwk, "alg", "ES256") || !s_optional_is(jwk, "use", "sig"))
        return 0;
    size_t xlen = 0, ylen = 0;
    const char *x = vz_json_get_string(jwk, "x", &xlen);
    const char *y = vz_json_get_string(jwk, "y", &ylen);
    uint8_t point[P256_POINT] = {0x04};
    if (!x || !y || strlen(kid) >= VZ_JWT_KID_MAX ||
        vz_jwt_b64url_decode(point + 1, P256_COORD, x, xlen) != P256_COORD ||
        vz_jwt_b64url_decode(point + 1 + P256_COORD, P256_COORD, y, ylen) != P256_COORD)
        return -1;
    EVP_PKEY *pkey = s_pkey_from_point(point);
    if (!pkey)
        return -1;
    vz_jwt_key_t *key = s_key_wrap(kid, pkey, false);
    if (!key || vz_jwt_keyset_add(self, &key) < 0)
        return -1;
    return 1;
}

vz_jwt_keyset_t *vz_jwt_keyset_from_jwks(const char *json, size_t len)
{
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = 256 * 1024;
    limits.max_depth = 4;
    limits.max_string = 8192;
    vz_json_t *doc = vz_json_parse(json, len, &limits, NULL);
    if (!doc)
        return NULL;
    const vz_json_value_t *keys = vz_json_get(vz_json_root(doc), "keys");
    vz_jwt_keyset_t *self = NULL;
    if (vz_json_type(keys) == VZ_JSON_ARRAY) {
        self = vz_jwt_keyset_new();
        for (size_t i = 0; self && i < vz_json_size(keys); i++)
            if (s_jwk_add(self, vz_json_at(keys, i)) < 0)
                vz_jwt_keyset_destroy(&self);
    }
    vz_json_destroy(&doc);
    return self;
}

char *vz_jwt_keyset_jwks(const vz_jwt_keyset_t *self, size_t *len_p)
{
    assert(self);
    vz_json_writer_t *w = vz_json_writer_new(0);
    if (!w)
        return NULL;
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "keys");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->count; i++) {
        uint8_t point[P256_POINT];
        if (s_point(self->keys[i], point) < 0) {
            vz_json_writer_destroy(&w);
            return NULL;
        }
        s_write_jwk(w, self->keys[i], point);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    char *out = vz_json_writer_take(w, len_p);
    vz_json_writer_destroy(&w);
    return out;
}

// --------------------------------------------------------------------------
//  Signing

static int s_der_to_raw(const uint8_t *der, size_t len, uint8_t raw[SIG_RAW])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -EIO;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    int rc = BN_bn2binpad(r, raw, P256_COORD) == P256_COORD &&
                     BN_bn2binpad(s, raw + P256_COORD, P256_COORD) == P256_COORD
                 ? 0
                 : -EIO;
    ECDSA_SIG_free(sig);
    return rc;
}

//  DER of raw R||S into *der_p (OPENSSL_free), its length, or -1.
static int s_raw_to_der(const uint8_t raw[SIG_RAW], unsigned char **der_p)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, P256_COORD, NULL);
    BIGNUM *s = BN_bin2bn(raw + P256_COORD, P256_COORD, NULL);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }
    *der_p = NULL;
    int len = i2d_ECDSA_SIG(sig, der_p);
    ECDSA_SIG_free(sig);
    return len;
}

static char *s_b64_dup(const void *data, size_t n)
{
    char *out = malloc(vz_jwt_b64url_len(n) + 1);
    if (out)
        vz_jwt_b64url_encode(out, data, n);
    return out;
}

int vz_jwt_sign(const vz_jwt_key_t *key, const vz_jwt_claims_t *claims, char **token_p)
{
    assert(key && claims && token_p);
    *token_p = NULL;
    if (!key->priv || claims->exp <= 0)
        return -EINVAL;
    vz_json_writer_t *w = vz_json_writer_new(0);
    if (!w)
        return -ENOMEM;
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "alg", "ES256");
    vz_json_write_kv_string(w, "typ", "JWT");
    vz_json_write_kv_string(w, "kid", key->kid);
    vz_json_write_object_end(w);
    size_t hlen = 0;
    char *header = vz_json_writer_take(w, &hlen);

    vz_json_write_object_begin(w);
    const struct {
        const char *name;
        const char *value;
    } strings[] = {{"iss", claims->iss},     {"sub", claims->sub},
                   {"aud", claims->aud},     {"scope", claims->scope},
                   {"tier", claims->tier},   {"client_id", claims->client_id},
                   {"jti", claims->jti}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strings[i].value[0])
            vz_json_write_kv_string(w, strings[i].name, strings[i].value);
    if (claims->iat)
        vz_json_write_kv_int(w, "iat", claims->iat);
    if (claims->nbf)
        vz_json_write_kv_int(w, "nbf", claims->nbf);
    vz_json_write_kv_int(w, "exp", claims->exp);
    vz_json_write_object_end(w);
    size_t plen = 0;
    char *payload = vz_json_writer_take(w, &plen);
    vz_json_writer_destroy(&w);

    char *h64 = header ? s_b64_dup(header, hlen) : NULL;
    char *p64 = payload ? s_b64_dup(payload, plen) : NULL;
    free(header);
    free(payload);
    char *input = NULL;
    int rc = -ENOMEM;
    if (h64 && p64 && asprintf(&input, "%s.%s", h64, p64) > 0) {
        size_t ilen = strlen(input);
        uint8_t der[128], raw[SIG_RAW];
        size_t dlen = sizeof der;
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        rc = -EIO;
        if (mctx && EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
            EVP_DigestSign(mctx, der, &dlen, (const unsigned char *)input, ilen) == 1 &&
            s_der_to_raw(der, dlen, raw) == 0) {
            char sig64[96];
            vz_jwt_b64url_encode(sig64, raw, SIG_RAW);
            char *token = NULL;
            if (asprintf(&token, "%s.%s", input, sig64) > 0) {
                *token_p = token;
                rc = 0;
            } else
                rc = -ENOMEM;
        }
        EVP_MD_CTX_free(mctx);
    } else
        input = NULL;
    free(input);
    free(h64);
    free(p64);
    return rc;
}

// --------------------------------------------------------------------------
//  Verification

//  Decode one base64url part of a JSON object into a parsed document.
static vz_json_t *s_part_json(const char *text, size_t len)
{
    size_t cap = len / 4 * 3 + 3;
    char *raw = malloc(cap);
    if (!raw)
        return NULL;
    long n = vz_jwt_b64url_decode(raw, cap, text, len);
    vz_json_t *doc = NULL;
    if (n > 0) {
        vz_json_limits_t limits = vz_json_limits_default;
        limits.max_depth = 4;
        limits.max_string = VZ_JWT_TOKEN_MAX;
        limits.max_members = 64;
        doc = vz_json_parse(raw, (size_t)n, &limits, NULL);
        if (doc && vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT)
            vz_json_destroy(&doc);
    }
    free(raw);
    return doc;
}

static bool s_verify_sig(const vz_jwt_key_t *key, const char *input, size_t ilen,
                         const char *sig64, size_t slen)
{
    uint8_t raw[SIG_RAW + 3];
    if (vz_jwt_b64url_decode(raw, sizeof raw, sig64, slen) != SIG_RAW)
        return false;
    unsigned char *der = NULL;
    int dlen = s_raw_to_der(raw, &der);
    if (dlen <= 0)
        return false;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    bool ok = mctx && EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
              EVP_DigestVerify(mctx, der, (size_t)dlen, (const unsigned char *)input, ilen) == 1;
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    return ok;
}

//  Copy an optional string claim; false when present but not a fitting string.
static bool s_claim_str(const vz_json_value_t *payload, const char *name, char *out, size_t n)
{
    const vz_json_value_t *v = vz_json_get(payload, name);
    out[0] = '\0';
    if (!v)
        return true;
    const char *text = vz_json_string(v, NULL);
    return text && vz_strlcpy(out, text, n) == 0;
}

static bool s_claim_time(const vz_json_value_t *payload, const char *name, int64_t *out)
{
    const vz_json_value_t *v = vz_json_get(payload, name);
    *out = 0;
    if (!v)
        return true;
    return vz_json_int(v, out) == 0 && *out > 0;
}

//  aud: one string or an array of strings. Fills the first (or the matching)
//  member into out; *match says whether want was among them.
static bool s_claim_aud(const vz_json_value_t *payload, const char *want, char *out, size_t n,
                        bool *match)
{
    const vz_json_value_t *aud = vz_json_get(payload, "aud");
    out[0] = '\0';
    *match = false;
    if (!aud)
        return true;
    if (vz_json_type(aud) == VZ_JSON_STRING) {
        *match = want && strcmp(vz_json_string(aud, NULL), want) == 0;
        return vz_strlcpy(out, vz_json_string(aud, NULL), n) == 0;
    }
    if (vz_json_type(aud) != VZ_JSON_ARRAY)
        return false;
    for (size_t i = 0; i < vz_json_size(aud); i++) {
        const char *one = vz_json_string(vz_json_at(aud, i), NULL);
        if (!one)
            return false;
        if (want && strcmp(one, want) == 0 && !*match) {
            *match = true;
            if (vz_strlcpy(out, one, n) < 0)
                return false;
        } else if (i == 0 && !*match && vz_strlcpy(out, one, n) < 0)
            return false;
    }
    return true;
}

int vz_jwt_verify(const vz_jwt_keyset_t *keys, const char *token, size_t len,
                  const vz_jwt_verify_opts_t *opts, vz_jwt_claims_t *claims)
{
    assert(keys && opts);
    vz_jwt_claims_t local;
    if (!claims)
        claims = &local;
    memset(claims, 0, sizeof *claims);
    if (!token || len == 0 || len > VZ_JWT_TOKEN_MAX)
        return VZ_JWT_EMALFORMED;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
        dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len)
        return VZ_JWT_EMALFORMED;

    vz_json_t *header = s_part_json(token, (size_t)(dot1 - token));
    if (!header)
        return VZ_JWT_EMALFORMED;
    const vz_json_value_t *h = vz_json_root(header);
    const char *alg = vz_json_get_string(h, "alg", NULL);
    const char *kid = vz_json_get_string(h, "kid", NULL);
    int rc = 0;
    const vz_jwt_key_t *key = NULL;
    if (!alg || strcmp(alg, "ES256") != 0 || vz_json_get(h, "crit"))
        rc = VZ_JWT_EALG;
    else if (!kid || !(key = vz_jwt_keyset_find(keys, kid)))
        rc = VZ_JWT_EKID;
    else
        vz_strlcpy(claims->kid, kid, sizeof claims->kid);
    vz_json_destroy(&header);
    if (rc < 0)
        return rc;

    //  The signature covers the first two parts exactly as received.
    if (!s_verify_sig(key, token, (size_t)(dot2 - token), dot2 + 1,
                      len - (size_t)(dot2 + 1 - token)))
        return VZ_JWT_ESIG;

    vz_json_t *payload = s_part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload)
        return VZ_JWT_EMALFORMED;
    const vz_json_value_t *p = vz_json_root(payload);
    bool aud_match = false;
    bool ok = s_claim_str(p, "iss", claims->iss, sizeof claims->iss) &&
              s_claim_str(p, "sub", claims->sub, sizeof claims->sub) &&
              s_claim_str(p, "scope", claims->scope, sizeof claims->scope) &&
              s_claim_str(p, "tier", claims->tier, sizeof claims->tier) &&
              s_claim_str(p, "jti", claims->jti, sizeof claims->jti) &&
              s_claim_str(p, "client_id", claims->client_id, sizeof claims->client_id) &&
              s_claim_aud(p, opts->audience, claims->aud, sizeof claims->aud, &aud_match) &&
              s_claim_time(p, "iat", &claims->iat) && s_claim_time(p, "nbf", &claims->nbf) &&
              s_claim_time(p, "exp", &claims->exp);
    vz_json_destroy(&payload);
    if (!ok)
        return VZ_JWT_EMALFORMED;

    int64_t now = opts->now ? opts->now : vz_clock_now_ms() / 1000;
    int64_t leeway = opts->leeway_s > 0 ? opts->leeway_s : 0;
    if (claims->exp == 0 || now - leeway >= claims->exp) //  exp + leeway could overflow
        return VZ_JWT_EEXPIRED;
    if ((claims->nbf && now + leeway < claims->nbf) || (claims->iat && claims->iat > now + leeway))
        return VZ_JWT_ENOTYET;
    if (opts->issuer && strcmp(claims->iss, opts->issuer) != 0)
        return VZ_JWT_EISS;
    if (opts->audience && !aud_match)
        return VZ_JWT_EAUD;
    return 0;
}
