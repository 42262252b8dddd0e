/*  test_jwt - ES256 tokens, JWKS and the attacks a verifier must refuse
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/hmac.h>

#include "vz_jwt.h"

#define ISS "http://127.0.0.1:8080"
#define AUD "vizmesh"
#define NOW 1700000000

typedef struct {
    vz_jwt_key_t *key;      //  signing key "k1"
    vz_jwt_keyset_t *set;   //  public half of k1
    vz_jwt_verify_opts_t opts;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->key = vz_jwt_key_generate("k1");
    assert_non_null(f->key);
    f->set = vz_jwt_keyset_new();
    vz_jwt_key_t *pub = vz_jwt_key_public(f->key);
    assert_non_null(pub);
    assert_false(vz_jwt_key_has_private(pub));
    assert_int_equal(vz_jwt_keyset_add(f->set, &pub), 0);
    assert_null(pub);
    f->opts = (vz_jwt_verify_opts_t){.issuer = ISS, .audience = AUD, .now = NOW, .leeway_s = 30};
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    vz_jwt_key_destroy(&f->key);
    vz_jwt_keyset_destroy(&f->set);
    free(f);
    return 0;
}

static vz_jwt_claims_t s_claims(void)
{
    vz_jwt_claims_t c = {.iat = NOW, .nbf = NOW, .exp = NOW + 900};
    strcpy(c.iss, ISS);
    strcpy(c.aud, AUD);
    strcpy(c.sub, "u_1234");
    strcpy(c.scope, "user admin");
    strcpy(c.tier, "free");
    strcpy(c.jti, "jti-1");
    return c;
}

//  Not inlined: GCC 12 at -O2 then takes the returned heap token for a
//  pointer to this frame's local (a false -Wdangling-pointer).
__attribute__((noinline)) static char *s_sign(const fixture_t *f, const vz_jwt_claims_t *c)
{
    char *token = NULL;
    int rc = vz_jwt_sign(f->key, c, &token);
    assert_int_equal(rc, 0);
    return token;
}

static int s_verify(const fixture_t *f, const char *token, vz_jwt_claims_t *out)
{
    return vz_jwt_verify(f->set, token, strlen(token), &f->opts, out);
}

//  Sign c and expect verification to return want.
static void s_expect_verify(const fixture_t *f, const vz_jwt_claims_t *c, int want)
{
    char *token = s_sign(f, c);
    assert_int_equal(s_verify(f, token, NULL), want);
    free(token);
}

//  "<b64(header)>.<b64(payload)>." + signature part given.
static char *s_forge(const char *header, const char *payload, const char *sig64)
{
    char h[1024], p[2048];
    vz_jwt_b64url_encode(h, header, strlen(header));
    vz_jwt_b64url_encode(p, payload, strlen(payload));
    char *out = NULL;
    assert_true(asprintf(&out, "%s.%s.%s", h, p, sig64) > 0);
    return out;
}

static void test_b64url(void **state)
{
    char out[64];
    assert_int_equal(vz_jwt_b64url_encode(out, "\xfb\xff", 2), 3);
    assert_string_equal(out, "-_8");
    assert_int_equal(vz_jwt_b64url_encode(out, "abc", 3), 4);
    assert_string_equal(out, "YWJj");
    assert_int_equal(vz_jwt_b64url_len(1), 2);
    uint8_t raw[16];
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "-_8", 3), 2);
    assert_memory_equal(raw, "\xfb\xff", 2);
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "YWJj", 4), 3);
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "YQ==", 4), -EINVAL); //  padding
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "Y+E", 3), -EINVAL);  //  '+' is base64
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "Y", 1), -EINVAL);
    assert_int_equal(vz_jwt_b64url_decode(raw, sizeof raw, "YR", 2), -EINVAL); //  unused bits set
    assert_int_equal(vz_jwt_b64url_decode(raw, 2, "YWJj", 4), -ENOSPC);
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    vz_jwt_claims_t c = s_claims();
    char *token = s_sign(f, &c);
    vz_jwt_claims_t out;
    assert_int_equal(s_verify(f, token, &out), 0);
    assert_string_equal(out.sub, "u_1234");
    assert_string_equal(out.scope, "user admin");
    assert_string_equal(out.tier, "free");
    assert_string_equal(out.kid, "k1");
    assert_string_equal(out.aud, AUD);
    assert_true(out.exp == NOW + 900);
    //  The private key verifies too; the real clock says it is long expired.
    vz_jwt_verify_opts_t clock = f->opts;
    clock.now = 0;
    assert_int_equal(vz_jwt_verify(f->set, token, strlen(token), &clock, NULL), VZ_JWT_EEXPIRED);
    free(token);
    //  Signing needs a private key and an exp.
    c.exp = 0;
    assert_int_equal(vz_jwt_sign(f->key, &c, &token), -EINVAL);
    c.exp = NOW + 1;
    assert_int_equal(vz_jwt_sign(vz_jwt_keyset_find(f->set, "k1"), &c, &token), -EINVAL);
    assert_null(token);
}

static void test_attacks_alg(void **state)
{
    fixture_t *f = *state;
    const char *payload = "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"admin\","
                          "\"scope\":\"admin\",\"exp\":1700000900}";
    //  alg none, with and without a signature part.
    char *t = s_forge("{\"alg\":\"none\",\"kid\":\"k1\"}", payload, "");
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_EMALFORMED); //  empty signature part
    free(t);
    t = s_forge("{\"alg\":\"none\",\"kid\":\"k1\"}", payload, "AAAA");
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_EALG);
    free(t);
    t = s_forge("{\"alg\":\"es256\",\"kid\":\"k1\"}", payload, "AAAA");
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_EALG);
    free(t);
    t = s_forge("{\"alg\":\"ES256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}", payload, "AAAA");
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_EALG);
    free(t);

    //  HS256 keyed with the public key (PEM and JWK forms): the classic confusion.
    char *pem = vz_jwt_key_public_pem(f->key);
    char *jwk = vz_jwt_key_jwk(f->key);
    const char *secrets[] = {pem, jwk};
    for (int i = 0; i < 2; i++) {
        char *unsigned_tok = s_forge("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", payload, "");
        size_t ilen = strlen(unsigned_tok) - 1; //  without the final '.'
        unsigned char mac[32];
        unsigned maclen = 0;
        HMAC(EVP_sha256(), secrets[i], (int)strlen(secrets[i]), (unsigned char *)unsigned_tok, ilen,
             mac, &maclen);
        char mac64[64];
        vz_jwt_b64url_encode(mac64, mac, maclen);
        char *forged = NULL;
        assert_true(asprintf(&forged, "%s%s", unsigned_tok, mac64) > 0);
        assert_int_equal(s_verify(f, forged, NULL), VZ_JWT_EALG);
        free(forged);
        free(unsigned_tok);
    }
    free(pem);
    free(jwk);
}

static void test_attacks_claims(void **state)
{
    fixture_t *f = *state;
    vz_jwt_claims_t c = s_claims();
    c.exp = NOW - 31; //  beyond the 30 s leeway
    s_expect_verify(f, &c, VZ_JWT_EEXPIRED);
    c.exp = NOW - 10; //  within the leeway
    s_expect_verify(f, &c, 0);
    //  Found by fuzz_jwt: exp + leeway overflowed int64 (UB; wrapped, "expired").
    c.exp = INT64_MAX;
    s_expect_verify(f, &c, 0);

    c = s_claims();
    c.nbf = NOW + 60;
    s_expect_verify(f, &c, VZ_JWT_ENOTYET);
    c = s_claims();
    c.iat = NOW + 3600;
    s_expect_verify(f, &c, VZ_JWT_ENOTYET);

    c = s_claims();
    strcpy(c.aud, "someone-else");
    s_expect_verify(f, &c, VZ_JWT_EAUD);
    c = s_claims();
    c.aud[0] = '\0';
    s_expect_verify(f, &c, VZ_JWT_EAUD);
    c = s_claims();
    strcpy(c.iss, "http://evil");
    s_expect_verify(f, &c, VZ_JWT_EISS);
}

static void test_attacks_tamper(void **state)
{
    fixture_t *f = *state;
    vz_jwt_claims_t c = s_claims();
    strcpy(c.scope, "user");
    char *t = s_sign(f, &c);
    //  Swap the payload for one granting admin, keep header and signature.
    int dot1 = (int)(strchr(t, '.') - t);
    int dot2 = (int)(strchr(t + dot1 + 1, '.') - t);
    char p64[512];
    const char *evil = "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u_1234\","
                       "\"scope\":\"user admin\",\"exp\":1700000900}";
    vz_jwt_b64url_encode(p64, evil, strlen(evil));
    char *forged = NULL;
    assert_true(asprintf(&forged, "%.*s.%s%s", dot1, t, p64, t + dot2) > 0);
    assert_int_equal(s_verify(f, forged, NULL), VZ_JWT_ESIG);
    free(forged);
    //  One flipped signature bit.
    char *copy = strdup(t);
    size_t last = strlen(copy) - 2;
    copy[last] = copy[last] == 'A' ? 'B' : 'A';
    assert_int_equal(s_verify(f, copy, NULL), VZ_JWT_ESIG);
    //  A DER signature (what OpenSSL emits natively) instead of R||S.
    free(copy);
    assert_true(asprintf(&copy, "%.*s.MEUCIQ", dot2, t) > 0);
    assert_int_equal(s_verify(f, copy, NULL), VZ_JWT_ESIG);
    free(copy);
    //  Structure: extra part, missing part, padding, too long.
    assert_true(asprintf(&copy, "%s.x", t) > 0);
    assert_int_equal(s_verify(f, copy, NULL), VZ_JWT_EMALFORMED);
    free(copy);
    assert_int_equal(vz_jwt_verify(f->set, t, (size_t)dot2, &f->opts, NULL),
                     VZ_JWT_EMALFORMED);
    assert_true(asprintf(&copy, "%s=", t) > 0);
    assert_int_equal(s_verify(f, copy, NULL), VZ_JWT_ESIG);
    free(copy);
    char *huge = calloc(1, VZ_JWT_TOKEN_MAX + 2);
    memset(huge, 'A', VZ_JWT_TOKEN_MAX + 1);
    assert_int_equal(s_verify(f, huge, NULL), VZ_JWT_EMALFORMED);
    free(huge);
    free(t);
}

static void test_unknown_kid(void **state)
{
    fixture_t *f = *state;
    vz_jwt_key_t *other = vz_jwt_key_generate("k2");
    vz_jwt_claims_t c = s_claims();
    char *t = NULL;
    assert_int_equal(vz_jwt_sign(other, &c, &t), 0);
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_EKID);
    free(t);
    //  A token from k2 that claims kid k1 fails the signature.
    vz_jwt_key_t *liar = NULL;
    char *pem = vz_jwt_key_private_pem(other);
    liar = vz_jwt_key_from_pem("k1", pem, strlen(pem));
    assert_non_null(liar);
    assert_true(vz_jwt_key_has_private(liar));
    assert_int_equal(vz_jwt_sign(liar, &c, &t), 0);
    assert_int_equal(s_verify(f, t, NULL), VZ_JWT_ESIG);
    free(t);
    free(pem);
    vz_jwt_key_destroy(&liar);
    vz_jwt_key_destroy(&other);
    assert_string_equal(vz_jwt_strerror(VZ_JWT_EKID), "unknown key");
}

static void test_pem_and_jwks(void **state)
{
    fixture_t *f = *state;
    char *pem = vz_jwt_key_private_pem(f->key);
    assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
    vz_jwt_key_t *copy = vz_jwt_key_from_pem("k1", pem, strlen(pem));
    assert_non_null(copy);
    free(pem);
    vz_jwt_claims_t c = s_claims();
    char *t = NULL;
    assert_int_equal(vz_jwt_sign(copy, &c, &t), 0);
    assert_int_equal(s_verify(f, t, NULL), 0); //  same key after the PEM round trip
    vz_jwt_key_destroy(&copy);

    //  JWKS out and back in, with foreign keys that must be skipped.
    vz_jwt_keyset_t *set = vz_jwt_keyset_new();
    vz_jwt_key_t *k2 = vz_jwt_key_generate("k2");
    vz_jwt_key_t *k1 = vz_jwt_key_public(f->key);
    assert_int_equal(vz_jwt_keyset_add(set, &k1), 0);
    assert_int_equal(vz_jwt_keyset_add(set, &k2), 0);
    k1 = vz_jwt_key_public(f->key);
    assert_int_equal(vz_jwt_keyset_add(set, &k1), -EEXIST);
    assert_null(k1);
    size_t len = 0;
    char *jwks = vz_jwt_keyset_jwks(set, &len);
    assert_non_null(strstr(jwks, "\"kty\":\"EC\",\"crv\":\"P-256\""));
    assert_null(strstr(jwks, "\"d\""));
    vz_jwt_keyset_t *parsed = vz_jwt_keyset_from_jwks(jwks, len);
    assert_non_null(parsed);
    assert_int_equal(vz_jwt_keyset_size(parsed), 2);
    assert_int_equal(vz_jwt_verify(parsed, t, strlen(t), &f->opts, NULL), 0);
    vz_jwt_keyset_destroy(&parsed);

    char *mixed = NULL;
    assert_true(asprintf(&mixed,
                         "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
                         "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\"},"
                         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"hs\",\"alg\":\"HS256\"},%s",
                         jwks + strlen("{\"keys\":[")) > 0);
    parsed = vz_jwt_keyset_from_jwks(mixed, strlen(mixed));
    assert_non_null(parsed);
    assert_int_equal(vz_jwt_keyset_size(parsed), 2);
    assert_non_null(vz_jwt_keyset_find(parsed, "k2"));
    vz_jwt_keyset_destroy(&parsed);
    free(mixed);

    //  A point off the curve, a short coordinate, a repeated kid, junk.
    char *bad = strdup(jwks);
    char *x = strstr(bad, "\"x\":\"") + 5;
    x[0] = x[0] == 'A' ? 'B' : 'A';
    assert_null(vz_jwt_keyset_from_jwks(bad, strlen(bad)));
    free(bad);
    const char *junk[] = {"", "{}", "{\"keys\":{}}", "[]",
                          "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                          "{\"keys\":[1]}"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_null(vz_jwt_keyset_from_jwks(junk[i], strlen(junk[i])));
    char *twice = NULL;
    const char *k1jwk = strstr(jwks, "{\"kty\"");
    const char *k1end = strstr(k1jwk, "}");
    assert_true(asprintf(&twice, "{\"keys\":[%.*s},%.*s}]}", (int)(k1end - k1jwk), k1jwk,
                         (int)(k1end - k1jwk), k1jwk) > 0);
    assert_null(vz_jwt_keyset_from_jwks(twice, strlen(twice)));
    free(twice);
    free(jwks);
    free(t);
    vz_jwt_keyset_destroy(&set);

    //  Wrong curves and junk PEM are refused.
    assert_null(vz_jwt_key_from_pem("x", "junk", 4));
    assert_null(vz_jwt_key_generate(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attacks_alg, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attacks_claims, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_attacks_tamper, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pem_and_jwks, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
