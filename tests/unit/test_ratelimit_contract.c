/*  test_ratelimit_contract - ratelimit.check / check_batch / policies bodies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Round trips of every message at the field capacities, every proper
 *  prefix refused, the bodies other writers produce (the gateway's key
 *  order, msgpack-c) accepted, hostile bodies refused with a reason.
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
#include "vz_batch.h"
#include "vz_mp.h"
#include "vz_ratelimit_contract.h"

//  Fill a field with n - 1 letters (its capacity).
static void s_fill(char *field, size_t n, char c)
{
    memset(field, c, n - 1);
    field[n - 1] = 0;
}

static int s_check_decode(const void *bytes, size_t len, vz_rl_check_t *out, const char **why)
{
    uint8_t *copy = ut_copy(bytes, len);
    int rc = vz_rl_check_decode(out, copy, len, why);
    free(copy);
    return rc;
}

static int s_decision_decode(const void *bytes, size_t len, vz_rl_decision_t *out, const char **why)
{
    uint8_t *copy = ut_copy(bytes, len);
    int rc = vz_rl_decision_decode(out, copy, len, why);
    free(copy);
    return rc;
}

static void test_check_round_trip(void **state)
{
    vz_rl_check_t in = {.cost = VZ_RL_COST_MAX};
    s_fill(in.ip, sizeof in.ip, '1');
    s_fill(in.sub, sizeof in.sub, 's');
    s_fill(in.key, sizeof in.key, 'k');
    s_fill(in.tier, sizeof in.tier, 't');
    s_fill(in.route, sizeof in.route, 'r');
    size_t len;
    uint8_t *buf = vz_rl_check_encode(&in, &len);
    vz_rl_check_t out;
    const char *why = "unset";
    assert_int_equal(s_check_decode(buf, len, &out, &why), 0);
    assert_null(why);
    assert_string_equal(out.ip, in.ip);
    assert_string_equal(out.sub, in.sub);
    assert_string_equal(out.key, in.key);
    assert_string_equal(out.tier, in.tier);
    assert_string_equal(out.route, in.route);
    assert_true(out.cost == VZ_RL_COST_MAX);
    //  Every proper prefix but the empty one (an empty body) is refused.
    for (size_t cut = 1; cut < len; cut++)
        assert_int_equal(s_check_decode(buf, cut, &out, &why), VZ_EMALFORMED);
    free(buf);
    //  Empty body: every descriptor absent, cost 1.
    assert_int_equal(vz_rl_check_decode(&out, NULL, 0, &why), 0);
    assert_string_equal(out.ip, "");
    assert_true(out.cost == 1);
}

//  The body the gateway wrote before this module (six entries, its order,
//  msgpack-c's packer) and the test's three-key body decode the same.
static void test_check_other_writers(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    vz_mp_pack_kv_str(&pk, "ip", "10.0.0.1");
    vz_mp_pack_kv_str(&pk, "sub", "user-1");
    vz_mp_pack_kv_str(&pk, "key", "");
    vz_mp_pack_kv_str(&pk, "tier", "free");
    vz_mp_pack_kv_str(&pk, "route", "echo");
    vz_mp_pack_kv_uint(&pk, "cost", 3);
    vz_rl_check_t out;
    assert_int_equal(s_check_decode(sb.data, sb.size, &out, NULL), 0);
    assert_string_equal(out.sub, "user-1");
    assert_string_equal(out.route, "echo");
    assert_true(out.cost == 3);
    msgpack_sbuffer_destroy(&sb);
    //  Unknown keys of any shape are skipped (the integration test's bytes).
    const char skip[] = "\x83\xa1x\x92\x81\xa1y\xc0\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
                        "\xa2ip\xa8"
                        "10.1.0.9\xa5route\xa5small";
    assert_int_equal(s_check_decode(skip, sizeof skip - 1, &out, NULL), 0);
    assert_string_equal(out.ip, "10.1.0.9");
    assert_string_equal(out.route, "small");
    //  nil is absent.
    assert_int_equal(s_check_decode("\x81\xa2ip\xc0", 5, &out, NULL), 0);
    assert_string_equal(out.ip, "");
}

static void test_check_hostile(void **state)
{
    char long_ip[4 + VZ_RL_IP_MAX + 2];
    size_t n = 0;
    long_ip[n++] = (char)0x81;
    long_ip[n++] = (char)0xa2;
    long_ip[n++] = 'i';
    long_ip[n++] = 'p';
    long_ip[n++] = (char)0xd9;
    long_ip[n++] = VZ_RL_IP_MAX; //  one byte more than fits with its NUL
    char body[sizeof long_ip + VZ_RL_IP_MAX];
    memcpy(body, long_ip, n);
    memset(body + n, '1', VZ_RL_IP_MAX);
    static const struct {
        const char *bytes; //  body
        size_t len;        //  its length
        const char *why;   //  expected reason (substring)
    } bad[] = {
        {"\x93\x01\x02\x03", 4, "not a map"},
        {"\x81\xa2ip\x05", 5, "wrong type for ip"},
        {"\x81\xa4"
         "cost\xff",
         7, "cost"}, //  negative
        {"\x81\xa4"
         "cost\xce\x7f\xff\xff\xff",
         11, "cost"}, //  too large
        {"\x81\xa4"
         "cost\xa1"
         "1",
         8, "cost"}, //  not an integer
        {"\x81\xa2ip\xa3"
         "a\0b",
         8, "NUL in string"},
        {"\x81\xa1x\xdd\xff\xff\xff\xff", 8, "array too large"},
        {"\x82\xa2ip\xa1"
         "a",
         6, "truncated"},
        {"\x80\x00", 2, "trailing bytes"},
        {"\x81\xa2ip\xd9\xff", 6, "truncated"},
        {"\x82\xa2ip\xa1"
         "a\xa2ip\xa1"
         "b",
         11, "duplicate key"},
        {"\xdf\xff\xff\xff\xff", 5, "map too large"},
    };
    vz_rl_check_t out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_int_equal(s_check_decode(bad[i].bytes, bad[i].len, &out, &why), VZ_EMALFORMED);
        if (!why || !strstr(why, bad[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why ? why : "(null)", bad[i].why);
    }
    const char *why = NULL;
    assert_int_equal(s_check_decode(body, n + VZ_RL_IP_MAX, &out, &why), VZ_EMALFORMED);
    assert_string_equal(why, "string too long");
    //  One byte shorter fits exactly.
    body[5] = VZ_RL_IP_MAX - 1;
    assert_int_equal(s_check_decode(body, n + VZ_RL_IP_MAX - 1, &out, &why), 0);
    assert_int_equal(strlen(out.ip), VZ_RL_IP_MAX - 1);
}

static void test_decision_round_trip(void **state)
{
    for (int mode = VZ_RL_MODE_REDIS; mode <= VZ_RL_MODE_FAIL_CLOSED; mode++) {
        vz_rl_decision_t in = {.allowed = mode == 0,
                               .limit = UINT64_MAX,
                               .remaining = 7,
                               .reset = 60,
                               .retry_after = mode,
                               .window = UINT32_MAX,
                               .mode = (vz_rl_mode_t)mode,
                               .shadow = mode == 2};
        s_fill(in.policy, sizeof in.policy, 'p');
        size_t len;
        uint8_t *buf = vz_rl_decision_encode(&in, &len);
        vz_rl_decision_t out;
        assert_int_equal(s_decision_decode(buf, len, &out, NULL), 0);
        assert_int_equal(out.allowed, in.allowed);
        assert_true(out.limit == UINT64_MAX && out.remaining == 7 && out.reset == 60);
        assert_true(out.retry_after == (uint64_t)mode && out.window == UINT32_MAX);
        assert_int_equal(out.mode, mode);
        assert_int_equal(out.shadow, in.shadow);
        assert_string_equal(out.policy, in.policy);
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(s_decision_decode(buf, cut, &out, NULL), VZ_EMALFORMED);
        free(buf);
    }
    assert_string_equal(vz_rl_mode_name(VZ_RL_MODE_FAIL_OPEN), "fail_open");
}

//  A decision body with one field replaced (value packed by pack) or left out.
static uint8_t *s_decision_with(const char *field, void (*pack)(msgpack_packer *), size_t *len)
{
    static const char *const keys[] = {"allowed", "limit",  "remaining", "reset", "retry_after",
                                       "policy",  "window", "mode",      "shadow"};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, pack ? 9 : 8);
    for (size_t i = 0; i < 9; i++) {
        bool mine = strcmp(keys[i], field) == 0;
        if (mine && !pack)
            continue;
        vz_mp_pack_str(&pk, keys[i]);
        if (mine)
            pack(&pk);
        else if (i == 0 || i == 8)
            msgpack_pack_true(&pk);
        else if (i == 5)
            vz_mp_pack_str(&pk, "small");
        else if (i == 7)
            vz_mp_pack_str(&pk, "redis");
        else
            msgpack_pack_uint32(&pk, 1);
    }
    *len = sb.size;
    return (uint8_t *)msgpack_sbuffer_release(&sb);
}

static void s_pack_bad_name(msgpack_packer *pk)
{
    vz_mp_pack_str(pk, "a b\r\nX-Injected: 1");
}

static void s_pack_good_name(msgpack_packer *pk)
{
    vz_mp_pack_str(pk, "a-b_c.9");
}

static void s_pack_empty(msgpack_packer *pk)
{
    vz_mp_pack_str(pk, "");
}

static void s_pack_negative(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}

static void s_pack_mode(msgpack_packer *pk)
{
    vz_mp_pack_str(pk, "maybe");
}

static void s_pack_big(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
}

static void test_decision_hostile(void **state)
{
    static const struct {
        const char *field;                //  replaced or missing
        void (*pack)(msgpack_packer *pk); //  NULL = left out
        const char *why;                  //  reason (substring)
    } cases[] = {
        {"allowed", NULL, "missing allowed"},  {"policy", NULL, "missing policy"},
        {"mode", NULL, "missing mode"},        {"shadow", NULL, "missing shadow"},
        {"policy", s_pack_bad_name, "policy"}, {"policy", s_pack_empty, "policy"},
        {"limit", s_pack_negative, "limit"},   {"mode", s_pack_mode, "mode"},
        {"window", s_pack_big, "window"},      {"allowed", s_pack_negative, "allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *buf = s_decision_with(cases[i].field, cases[i].pack, &len);
        vz_rl_decision_t out;
        const char *why = NULL;
        assert_int_equal(s_decision_decode(buf, len, &out, &why), VZ_EMALFORMED);
        if (!why || !strstr(why, cases[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why ? why : "(null)", cases[i].why);
        free(buf);
    }
    //  The base with a good value decodes: the cases above fail for their reason.
    size_t len;
    uint8_t *buf = s_decision_with("policy", s_pack_good_name, &len);
    vz_rl_decision_t out;
    assert_int_equal(s_decision_decode(buf, len, &out, NULL), 0);
    assert_string_equal(out.policy, "a-b_c.9");
    free(buf);
}

static void test_policies(void **state)
{
    enum { N = 3 };
    vz_rl_policy_desc_t in[N];
    memset(in, 0, sizeof in);
    for (size_t i = 0; i < N; i++) {
        snprintf(in[i].name, sizeof in[i].name, "p%zu", i);
        s_fill(in[i].route, sizeof in[i].route, 'r');
        s_fill(in[i].tier, sizeof in[i].tier, 't');
        s_fill(in[i].by, sizeof in[i].by, 'b');
        snprintf(in[i].algorithm, sizeof in[i].algorithm, "%s",
                 i % 2 ? "sliding_window" : "token_bucket");
        in[i].limit = 100 + i;
        in[i].window = 60;
        in[i].burst = 200 + i;
        in[i].shadow = i == 1;
    }
    for (size_t count = 0; count <= N; count++) {
        size_t len;
        uint8_t *buf = vz_rl_policies_encode(count == 2, in, count, &len);
        vz_rl_policy_desc_t out[N];
        bool shadow = false;
        size_t n = 99;
        assert_int_equal(vz_rl_policies_decode(buf, len, &shadow, out, N, &n, NULL), 0);
        assert_int_equal(n, count);
        assert_int_equal(shadow, count == 2);
        for (size_t i = 0; i < count; i++) {
            assert_string_equal(out[i].name, in[i].name);
            assert_string_equal(out[i].route, in[i].route);
            assert_string_equal(out[i].by, in[i].by);
            assert_string_equal(out[i].algorithm, in[i].algorithm);
            assert_true(out[i].limit == in[i].limit && out[i].burst == in[i].burst);
            assert_true(out[i].window == 60 && out[i].shadow == in[i].shadow);
        }
        //  Fewer slots than entries is malformed, never a partial list.
        if (count > 0) {
            const char *why = NULL;
            assert_int_equal(vz_rl_policies_decode(buf, len, &shadow, out, count - 1, &n, &why),
                             VZ_EMALFORMED);
            assert_non_null(strstr(why, "more entries"));
        }
        for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
            uint8_t *prefix = ut_copy(buf, cut);
            assert_int_equal(vz_rl_policies_decode(prefix, cut, &shadow, out, N, &n, NULL),
                             VZ_EMALFORMED);
            free(prefix);
        }
        free(buf);
    }
    const char *why = NULL;
    bool shadow;
    size_t n;
    vz_rl_policy_desc_t out[1];
    assert_int_equal(
        vz_rl_policies_decode((const uint8_t *)"\x81\xa6shadow\xc2", 9, &shadow, out, 1, &n, &why),
        VZ_EMALFORMED);
    assert_string_equal(why, "missing policies");
    assert_int_equal(vz_rl_policies_decode((const uint8_t *)"\x82\xa6shadow\xc2\xa6shadow\xc2", 17,
                                           &shadow, out, 1, &n, &why),
                     VZ_EMALFORMED);
    assert_string_equal(why, "duplicate key");
    assert_int_equal(
        vz_rl_policies_decode((const uint8_t *)"\x82\xa6shadow\xc2\xa8policies\x91\x80", 21,
                              &shadow, out, 1, &n, &why),
        VZ_EMALFORMED);
    assert_string_equal(why, "missing name");
}

//  check_batch: the batch convention carries check bodies and decisions.
static void test_check_batch(void **state)
{
    vz_rl_check_t check = {.ip = "10.0.0.9", .route = "r", .cost = 2};
    vz_batch_item_t items[2];
    uint8_t *bodies[2];
    for (int i = 0; i < 2; i++) {
        bodies[i] = vz_rl_check_encode(&check, &items[i].len);
        items[i].data = bodies[i];
    }
    size_t len, n;
    uint8_t *buf = vz_batch_request_encode(items, 2, &len);
    vz_batch_item_t out[2];
    assert_int_equal(vz_batch_request_decode(buf, len, out, 2, &n, NULL), 0);
    vz_rl_check_t back;
    assert_int_equal(vz_rl_check_decode(&back, out[1].data, out[1].len, NULL), 0);
    assert_true(back.cost == 2);
    free(buf);
    free(bodies[0]);
    free(bodies[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_round_trip), cmocka_unit_test(test_check_other_writers),
        cmocka_unit_test(test_check_hostile),    cmocka_unit_test(test_decision_round_trip),
        cmocka_unit_test(test_decision_hostile), cmocka_unit_test(test_policies),
        cmocka_unit_test(test_check_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
