/*  test_batch - the batch convention: round trips, msgpack-c agrees, hostile bodies refused
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit_bytes.h"
#include "vz_batch.h"
#include "vz_common.h"

//  Lengths on both sides of every msgpack header size change.
static const size_t s_lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
#define NLENS (sizeof s_lens / sizeof s_lens[0])

static uint8_t *s_pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 31 + seed);
    return p;
}

static void test_request_round_trip(void **state)
{
    vz_batch_item_t in[NLENS], out[VZ_BATCH_MAX];
    for (size_t i = 0; i < NLENS; i++)
        in[i] = (vz_batch_item_t){.data = s_pattern(s_lens[i], (unsigned)i), .len = s_lens[i]};
    size_t len, n = 0;
    uint8_t *buf = vz_batch_request_encode(in, NLENS, &len);
    const char *reason = NULL;
    assert_int_equal(vz_batch_request_decode(buf, len, out, VZ_BATCH_MAX, &n, &reason), 0);
    assert_int_equal(n, NLENS);
    for (size_t i = 0; i < NLENS; i++) {
        assert_int_equal(out[i].len, s_lens[i]);
        if (s_lens[i])
            assert_memory_equal(out[i].data, in[i].data, s_lens[i]);
    }
    //  An independent reader sees the same: an array of bins.
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, (const char *)buf, len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(msg.data.via.array.size, NLENS);
    for (size_t i = 0; i < NLENS; i++) {
        msgpack_object o = msg.data.via.array.ptr[i];
        assert_int_equal(o.type, MSGPACK_OBJECT_BIN);
        assert_int_equal(o.via.bin.size, s_lens[i]);
    }
    msgpack_unpacked_destroy(&msg);
    //  Every proper prefix is refused, never read past.
    for (size_t cut = 0; cut < len; cut += cut < 600 ? 1 : 997) {
        uint8_t *prefix = ut_copy(buf, cut);
        assert_int_equal(vz_batch_request_decode(prefix, cut, out, VZ_BATCH_MAX, &n, &reason),
                         VZ_EMALFORMED);
        free(prefix);
    }
    free(buf);
    for (size_t i = 0; i < NLENS; i++)
        free((void *)in[i].data);
}

static void test_reply_round_trip(void **state)
{
    //  Bodies and errors mixed; array sizes across the fixarray boundary.
    static const size_t counts[] = {1, 15, 16, VZ_BATCH_MAX};
    for (size_t k = 0; k < 4; k++) {
        size_t count = counts[k];
        vz_batch_item_t in[VZ_BATCH_MAX], out[VZ_BATCH_MAX];
        char msgs[VZ_BATCH_MAX][40];
        uint8_t *bodies[VZ_BATCH_MAX];
        for (size_t i = 0; i < count; i++) {
            bodies[i] = s_pattern(s_lens[i % NLENS], (unsigned)i);
            if (i % 3 == 1) {
                snprintf(msgs[i], sizeof msgs[i], "item %zu refused", i);
                in[i] = (vz_batch_item_t){
                    .code = "invalid_request", .data = (uint8_t *)msgs[i], .len = strlen(msgs[i])};
            } else
                in[i] = (vz_batch_item_t){.code = "", .data = bodies[i], .len = s_lens[i % NLENS]};
        }
        size_t len, n = 0;
        uint8_t *buf = vz_batch_reply_encode(in, count, &len);
        assert_int_equal(vz_batch_reply_decode(buf, len, out, VZ_BATCH_MAX, &n, NULL), 0);
        assert_int_equal(n, count);
        for (size_t i = 0; i < count; i++) {
            assert_int_equal(out[i].code_len, strlen(in[i].code));
            assert_memory_equal(out[i].code, in[i].code, out[i].code_len);
            assert_int_equal(out[i].len, in[i].len);
            if (in[i].len)
                assert_memory_equal(out[i].data, in[i].data, in[i].len);
        }
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        assert_int_equal(msgpack_unpack_next(&msg, (const char *)buf, len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(msg.data.via.array.size, count);
        msgpack_object first = msg.data.via.array.ptr[0];
        assert_int_equal(first.type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(first.via.array.ptr[0].type, MSGPACK_OBJECT_STR);
        assert_int_equal(first.via.array.ptr[1].type, MSGPACK_OBJECT_BIN);
        msgpack_unpacked_destroy(&msg);
        for (size_t cut = 0; cut < len && cut < 400; cut++)
            assert_int_equal(vz_batch_reply_decode(buf, cut, out, VZ_BATCH_MAX, &n, NULL),
                             VZ_EMALFORMED);
        free(buf);
        for (size_t i = 0; i < count; i++)
            free(bodies[i]);
    }
}

static void expect_refused(const uint8_t *buf, size_t len, bool reply, const char *why)
{
    vz_batch_item_t out[4];
    size_t n = 99;
    const char *reason = NULL;
    int rc = reply ? vz_batch_reply_decode(buf, len, out, 4, &n, &reason)
                   : vz_batch_request_decode(buf, len, out, 4, &n, &reason);
    assert_int_equal(rc, VZ_EMALFORMED);
    assert_int_equal(n, 99); //  untouched on failure
    assert_non_null(reason);
    if (!strstr(reason, why))
        fail_msg("reason \"%s\" lacks \"%s\"", reason, why);
}

static void test_hostile(void **state)
{
    expect_refused(NULL, 0, false, "truncated"); //  an empty body
    expect_refused((const uint8_t *)"\x81\xa1k\x01", 4, false, "not an array");
    expect_refused((const uint8_t *)"\x90", 1, false, "empty");
    expect_refused((const uint8_t *)"\x95", 1, false, "array too large"); //  5 > max 4
    //  Declared 4 GiB array: refused by the max, nothing allocated.
    expect_refused((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, false, "array too large");
    //  Within the max but more items than bytes left.
    expect_refused((const uint8_t *)"\x94\xc4\x00", 3, false, "truncated");
    //  A bin claiming 4 GiB in a 6-byte body.
    expect_refused((const uint8_t *)"\x91\xc6\xff\xff\xff\xff", 6, false, "truncated");
    expect_refused((const uint8_t *)"\x91\xa1x", 3, false, "not a bin"); //  str where bin
    expect_refused((const uint8_t *)"\x91\xc4\x00\x00", 4, false, "trailing");
    //  Replies: shape, code type, payload type must match the code.
    expect_refused((const uint8_t *)"\x91\xc4\x00", 3, true, "[code, payload]");
    expect_refused((const uint8_t *)"\x91\x93\xa0\xc4\x00\xc0", 6, true, "[code, payload]");
    expect_refused((const uint8_t *)"\x91\x92\xc4\x00\xc4\x00", 6, true, "[code, payload]");
    expect_refused((const uint8_t *)"\x91\x92\xa0\xa1x", 5, true, "wrong type"); //  body as str
    expect_refused((const uint8_t *)"\x91\x92\xa1"
                                    "e\xc4\x00",
                   6, true, "wrong type");
    //  A code with a NUL would be copied cut short into another code.
    expect_refused((const uint8_t *)"\x91\x92\xa3no\x00\xa1m", 8, true, "NUL");
    //  Random bytes: never a crash, never a success with items past the end.
    srand(7);
    uint8_t junk[64];
    for (int round = 0; round < 100000; round++) {
        size_t len = ut_junk(junk, sizeof junk, round, 0x91, 3);
        vz_batch_item_t out[4];
        size_t n;
        if (vz_batch_request_decode(junk, len, out, 4, &n, NULL) == 0)
            for (size_t i = 0; i < n; i++)
                assert_true(out[i].data + out[i].len <= junk + len);
        if (vz_batch_reply_decode(junk, len, out, 4, &n, NULL) == 0)
            for (size_t i = 0; i < n; i++)
                assert_true(out[i].data + out[i].len <= junk + len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_reply_round_trip),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
