/*  test_auth_contract - auth.api_key_verify and auth.token_introspect bodies
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit_bytes.h"
#include "vz_auth_contract.h"
#include "vz_mp.h"

static void s_fill(char *field, size_t n, char c)
{
    memset(field, c, n - 1);
    field[n - 1] = 0;
}

typedef int (*decode_fn)(void *out, const uint8_t *buf, size_t len, const char **reason);

//  Decode an exact-size copy of bytes (so valgrind/ASan see any overread).
static int s_decode(decode_fn fn, void *out, const void *bytes, size_t len, const char **why)
{
    uint8_t *copy = ut_copy(bytes, len);
    int rc = fn(out, copy, len, why);
    free(copy);
    return rc;
}

static int s_key_verify(void *out, const uint8_t *buf, size_t len, const char **why)
{
    return vz_auth_key_verify_decode(out, buf, len, why);
}

static int s_key_identity(void *out, const uint8_t *buf, size_t len, const char **why)
{
    return vz_auth_key_identity_decode(out, buf, len, why);
}

static int s_introspect(void *out, const uint8_t *buf, size_t len, const char **why)
{
    return vz_auth_introspect_decode(out, buf, len, why);
}

static int s_token_info(void *out, const uint8_t *buf, size_t len, const char **why)
{
    return vz_auth_token_info_decode(out, buf, len, why);
}

//  Every proper prefix of buf is refused by fn.
static void s_prefixes_refused(decode_fn fn, void *out, const uint8_t *buf, size_t len)
{
    for (size_t cut = 0; cut < len; cut += 1 + cut / 256)
        assert_int_equal(s_decode(fn, out, buf, cut, NULL), VZ_EMALFORMED);
}

static void test_key_verify(void **state)
{
    vz_auth_key_verify_t in;
    s_fill(in.key, sizeof in.key, 'k');
    size_t len;
    uint8_t *buf = vz_auth_key_verify_encode(&in, &len);
    vz_auth_key_verify_t out;
    assert_int_equal(s_decode(s_key_verify, &out, buf, len, NULL), 0);
    assert_string_equal(out.key, in.key);
    s_prefixes_refused(s_key_verify, &out, buf, len);
    free(buf);
    //  The gateway's body before this module: {"key": ...} from msgpack-c.
    const char *why = NULL;
    assert_int_equal(s_decode(s_key_verify, &out, "\x81\xa3key\xa8vzk_good", 14, &why), 0);
    assert_string_equal(out.key, "vzk_good");
    assert_int_equal(s_decode(s_key_verify, &out, "\x80", 1, &why), VZ_EMALFORMED);
    assert_string_equal(why, "missing key");
    assert_int_equal(s_decode(s_key_verify, &out, "\x81\xa3key\x01", 6, &why), VZ_EMALFORMED);
    assert_string_equal(why, "wrong type for key");
    assert_int_equal(s_decode(s_key_verify, &out, "not msgpack", 11, &why), VZ_EMALFORMED);
    assert_string_equal(why, "not a map");
    //  One byte over the field: refused, never cut.
    char body[8 + VZ_AUTH_APIKEY_MAX];
    memcpy(body, "\x81\xa3key\xda\x01\x00", 8);
    memset(body + 8, 'k', VZ_AUTH_APIKEY_MAX);
    assert_int_equal(s_decode(s_key_verify, &out, body, sizeof body, &why), VZ_EMALFORMED);
    assert_string_equal(why, "string too long");
}

static void test_key_identity(void **state)
{
    vz_auth_key_identity_t in = {.valid = true};
    s_fill(in.sub, sizeof in.sub, 's');
    s_fill(in.scope, sizeof in.scope, 'c');
    s_fill(in.tier, sizeof in.tier, 't');
    s_fill(in.kid, sizeof in.kid, 'i');
    size_t len;
    uint8_t *buf = vz_auth_key_identity_encode(&in, &len);
    vz_auth_key_identity_t out;
    assert_int_equal(s_decode(s_key_identity, &out, buf, len, NULL), 0);
    assert_true(out.valid);
    assert_string_equal(out.sub, in.sub);
    assert_string_equal(out.scope, in.scope);
    assert_string_equal(out.tier, in.tier);
    assert_string_equal(out.kid, in.kid);
    s_prefixes_refused(s_key_identity, &out, buf, len);
    free(buf);
    //  An invalid answer with empty strings, as the service sends it.
    vz_auth_key_identity_t invalid = {.valid = false};
    buf = vz_auth_key_identity_encode(&invalid, &len);
    assert_int_equal(s_decode(s_key_identity, &out, buf, len, NULL), 0);
    assert_false(out.valid);
    free(buf);
    const char *why = NULL;
    assert_int_equal(s_decode(s_key_identity, &out, "\x81\xa3sub\xa1u", 7, &why), VZ_EMALFORMED);
    assert_string_equal(why, "missing valid");
    assert_int_equal(s_decode(s_key_identity, &out, "\x81\xa5valid\xc3", 8, &why), VZ_EMALFORMED);
    assert_string_equal(why, "a valid key without sub");
    assert_int_equal(s_decode(s_key_identity, &out, "\x81\xa5valid\x01", 8, &why), VZ_EMALFORMED);
    assert_string_equal(why, "wrong type for valid");
    assert_int_equal(s_decode(s_key_identity, &out, "\x82\xa5valid\xc2\xa5valid\xc3", 15, &why),
                     VZ_EMALFORMED);
    assert_string_equal(why, "duplicate key");
    //  A scope one byte longer than the field is refused, never cut.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    vz_mp_pack_kv_bool(&pk, "valid", true);
    vz_mp_pack_kv_str(&pk, "sub", "u");
    char scope[VZ_JWT_SCOPE_MAX + 1];
    s_fill(scope, sizeof scope, 'c');
    vz_mp_pack_kv_str(&pk, "scope", scope);
    assert_int_equal(s_decode(s_key_identity, &out, sb.data, sb.size, &why), VZ_EMALFORMED);
    assert_string_equal(why, "string too long");
    msgpack_sbuffer_destroy(&sb);
}

static void test_introspect(void **state)
{
    vz_auth_introspect_t *in = malloc(sizeof *in), *out = malloc(sizeof *out);
    s_fill(in->token, sizeof in->token, 'j');
    size_t len;
    uint8_t *buf = vz_auth_introspect_encode(in, &len);
    assert_int_equal(s_decode(s_introspect, out, buf, len, NULL), 0);
    assert_int_equal(strlen(out->token), VZ_JWT_TOKEN_MAX);
    s_prefixes_refused(s_introspect, out, buf, len);
    free(buf);
    const char *why = NULL;
    assert_int_equal(s_decode(s_introspect, out, "\x81\xa1x\xc0", 4, &why), VZ_EMALFORMED);
    assert_string_equal(why, "missing token");
    free(in);
    free(out);
}

static void test_token_info(void **state)
{
    vz_auth_token_info_t in = {
        .active = true, .token_type = "Bearer", .exp = 2000000000, .iat = -1};
    s_fill(in.sub, sizeof in.sub, 's');
    s_fill(in.scope, sizeof in.scope, 'c');
    s_fill(in.client_id, sizeof in.client_id, 'i');
    s_fill(in.tier, sizeof in.tier, 't');
    size_t len;
    uint8_t *buf = vz_auth_token_info_encode(&in, &len);
    vz_auth_token_info_t out;
    assert_int_equal(s_decode(s_token_info, &out, buf, len, NULL), 0);
    assert_true(out.active);
    assert_string_equal(out.client_id, in.client_id);
    assert_string_equal(out.token_type, "Bearer");
    assert_true(out.exp == 2000000000 && out.iat == -1);
    s_prefixes_refused(s_token_info, &out, buf, len);
    free(buf);
    //  Inactive: {active: false} alone, and it decodes.
    vz_auth_token_info_t inactive = {.active = false, .exp = 5};
    buf = vz_auth_token_info_encode(&inactive, &len);
    assert_int_equal(len, 9); //  \x81 \xa6 "active" \xc2
    assert_int_equal(s_decode(s_token_info, &out, buf, len, NULL), 0);
    assert_false(out.active);
    assert_true(out.exp == 0);
    free(buf);
    //  Active without the claims is malformed.
    const char *why = NULL;
    assert_int_equal(s_decode(s_token_info, &out,
                              "\x81\xa6"
                              "active\xc3",
                              9, &why),
                     VZ_EMALFORMED);
    assert_string_equal(why, "missing sub");
}

//  Random bytes into every decoder: no crash, strings always terminated.
static void test_random(void **state)
{
    srand(42);
    uint8_t junk[40];
    vz_auth_introspect_t *intro = malloc(sizeof *intro);
    for (int round = 0; round < 100000; round++) {
        size_t len = ut_junk(junk, sizeof junk, round, 0x81, 3);
        vz_auth_key_verify_t kv;
        vz_auth_key_identity_t ki;
        vz_auth_token_info_t ti;
        if (s_decode(s_key_verify, &kv, junk, len, NULL) == 0)
            assert_true(strlen(kv.key) < sizeof kv.key);
        if (s_decode(s_key_identity, &ki, junk, len, NULL) == 0)
            assert_true(!ki.valid || ki.sub[0]);
        (void)s_decode(s_introspect, intro, junk, len, NULL);
        (void)s_decode(s_token_info, &ti, junk, len, NULL);
    }
    free(intro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_verify), cmocka_unit_test(test_key_identity),
        cmocka_unit_test(test_introspect), cmocka_unit_test(test_token_info),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
