/*  test_mp - the bounded msgpack reader: every type, every bound, hostile input
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  msgpack-c's packer is the independent writer: what it writes, vz_mp must
 *  read back; every proper prefix must be refused; declared lengths past
 *  the end or past the limits must be refused before anything is read.
 *  Inputs live in exact-size heap copies so valgrind/ASan see any overread.
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
#include "vz_mp.h"

typedef struct {
    msgpack_sbuffer sb; //  bytes written so far
    msgpack_packer pk;  //  writes into sb
} writer_t;

static void w_init(writer_t *w)
{
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
}

//  A reader over an exact-size copy of bytes; the copy is returned for free().
static uint8_t *s_reader(vz_mp_reader_t *r, const void *bytes, size_t len,
                         const vz_mp_limits_t *limits)
{
    uint8_t *copy = ut_copy(bytes, len);
    vz_mp_reader_init(r, copy, len, limits);
    return copy;
}

static void test_integers(void **state)
{
    static const uint64_t uvals[] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    static const int64_t ivals[] = {0,         -1,        -32,    -33,       -128,
                                    -129,      -32768,    -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
                                    INT64_MIN, INT64_MAX, 127,    1000000};
    for (size_t i = 0; i < sizeof uvals / sizeof uvals[0]; i++) {
        writer_t w;
        w_init(&w);
        msgpack_pack_uint64(&w.pk, uvals[i]);
        vz_mp_reader_t r;
        uint8_t *buf = s_reader(&r, w.sb.data, w.sb.size, NULL);
        uint64_t out = 1;
        assert_int_equal(vz_mp_read_uint(&r, UINT64_MAX, &out, NULL, NULL), 0);
        assert_true(out == uvals[i]);
        assert_int_equal(vz_mp_finish(&r), 0);
        //  One below the value is out of range.
        if (uvals[i] > 0) {
            vz_mp_reader_init(&r, buf, w.sb.size, NULL);
            assert_int_equal(vz_mp_read_uint(&r, uvals[i] - 1, &out, NULL, "too big"),
                             VZ_EMALFORMED);
            assert_string_equal(r.reason, "too big");
        }
        free(buf);
        msgpack_sbuffer_destroy(&w.sb);
    }
    for (size_t i = 0; i < sizeof ivals / sizeof ivals[0]; i++) {
        writer_t w;
        w_init(&w);
        msgpack_pack_int64(&w.pk, ivals[i]);
        vz_mp_reader_t r;
        uint8_t *buf = s_reader(&r, w.sb.data, w.sb.size, NULL);
        int64_t out = 1;
        assert_int_equal(vz_mp_read_int(&r, INT64_MIN, INT64_MAX, &out, NULL, NULL), 0);
        assert_true(out == ivals[i]);
        //  A negative value is never a uint.
        vz_mp_reader_init(&r, buf, w.sb.size, NULL);
        uint64_t u;
        int rc = vz_mp_read_uint(&r, UINT64_MAX, &u, NULL, "negative");
        if (ivals[i] < 0) {
            assert_int_equal(rc, VZ_EMALFORMED);
            assert_string_equal(r.reason, "negative");
        } else {
            assert_int_equal(rc, 0);
            assert_true(u == (uint64_t)ivals[i]);
        }
        //  Narrow ranges: min and max are inclusive.
        vz_mp_reader_init(&r, buf, w.sb.size, NULL);
        assert_int_equal(vz_mp_read_int(&r, ivals[i], ivals[i], &out, NULL, NULL), 0);
        if (ivals[i] != INT64_MAX) {
            vz_mp_reader_init(&r, buf, w.sb.size, NULL);
            assert_int_equal(vz_mp_read_int(&r, ivals[i] + 1, INT64_MAX, &out, NULL, NULL),
                             VZ_EMALFORMED);
            assert_string_equal(r.reason, "integer out of range");
        }
        free(buf);
        msgpack_sbuffer_destroy(&w.sb);
    }
    //  A uint64 above INT64_MAX is out of any int range.
    vz_mp_reader_t r;
    uint8_t *buf = s_reader(&r, "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, NULL);
    int64_t out;
    assert_int_equal(vz_mp_read_int(&r, INT64_MIN, INT64_MAX, &out, NULL, NULL), VZ_EMALFORMED);
    free(buf);
}

static void test_strings_and_bins(void **state)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *text = malloc(lens[i] + 1);
        for (size_t k = 0; k < lens[i]; k++)
            text[k] = (char)('a' + k % 26);
        text[lens[i]] = 0;
        writer_t w;
        w_init(&w);
        vz_mp_pack_str(&w.pk, text);
        msgpack_pack_bin(&w.pk, lens[i]);
        msgpack_pack_bin_body(&w.pk, text, lens[i]);
        vz_mp_reader_t r;
        uint8_t *buf = s_reader(&r, w.sb.data, w.sb.size, NULL);
        const char *data;
        uint32_t len;
        assert_int_equal(vz_mp_read_str(&r, &data, &len, NULL), 0);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(data, text, len);
        const uint8_t *bin;
        assert_int_equal(vz_mp_read_bin(&r, &bin, &len, NULL), 0);
        assert_int_equal(len, lens[i]);
        assert_true(lens[i] ? bin && memcmp(bin, text, len) == 0 : bin == NULL);
        assert_int_equal(vz_mp_finish(&r), 0);

        //  Copied: fits in len + 1, "string too long" in len.
        char *dst = malloc(lens[i] + 1);
        vz_mp_reader_init(&r, buf, w.sb.size, NULL);
        assert_int_equal(vz_mp_read_str_copy(&r, dst, lens[i] + 1, NULL), 0);
        assert_string_equal(dst, text);
        if (lens[i]) {
            vz_mp_reader_init(&r, buf, w.sb.size, NULL);
            assert_int_equal(vz_mp_read_str_copy(&r, dst, lens[i], NULL), VZ_EMALFORMED);
            assert_string_equal(r.reason, "string too long");
            //  And the limit refuses before reading.
            vz_mp_limits_t small = vz_mp_limits_default;
            small.max_string = lens[i] - 1;
            vz_mp_reader_init(&r, buf, w.sb.size, &small);
            assert_int_equal(vz_mp_read_str(&r, &data, &len, NULL), VZ_EMALFORMED);
            assert_string_equal(r.reason, "string too long");
        }
        free(dst);
        //  Every proper prefix is refused as truncated.
        size_t str_end = w.sb.size - lens[i] - (lens[i] < 256 ? 2 : lens[i] < 65536 ? 3 : 5);
        for (size_t cut = 0; cut < str_end; cut += cut < 300 ? 1 : 4099) {
            uint8_t *prefix = s_reader(&r, w.sb.data, cut, NULL);
            assert_int_equal(vz_mp_read_str(&r, &data, &len, NULL), VZ_EMALFORMED);
            assert_string_equal(r.reason, "truncated");
            free(prefix);
        }
        free(buf);
        free(text);
        msgpack_sbuffer_destroy(&w.sb);
    }
    //  An embedded NUL would cut a C string: refused when copying.
    vz_mp_reader_t r;
    char dst[8];
    uint8_t *buf = s_reader(&r,
                            "\xa3"
                            "a\0b",
                            4, NULL);
    assert_int_equal(vz_mp_read_str_copy(&r, dst, sizeof dst, NULL), VZ_EMALFORMED);
    assert_string_equal(r.reason, "NUL in string");
    free(buf);
    //  Lengths that claim gigabytes in a few bytes.
    static const struct {
        const char *bytes; //  input
        size_t len;        //  its length
        bool bin;          //  read as bin
    } lies[] = {
        {"\xdb\xff\xff\xff\xff", 5, false},
        {"\xda\xff\xff", 3, false},
        {"\xd9\x05"
         "abc",
         5, false},
        {"\xc6\xff\xff\xff\xff", 5, true},
        {"\xc5\x01\x00", 3, true},
        {"\xc4\x02\x00", 3, true},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        buf = s_reader(&r, lies[i].bytes, lies[i].len, NULL);
        const char *data;
        const uint8_t *bin;
        uint32_t len;
        int rc = lies[i].bin ? vz_mp_read_bin(&r, &bin, &len, NULL)
                             : vz_mp_read_str(&r, &data, &len, NULL);
        assert_int_equal(rc, VZ_EMALFORMED);
        assert_true(strcmp(r.reason, "truncated") == 0 || strcmp(r.reason, "string too long") == 0);
        free(buf);
    }
}

//  One value of each type; reads of each type on each value.
static void test_wrong_types(void **state)
{
    static const struct {
        const char *bytes; //  one value
        size_t len;        //  its length
        int type;          //  0 nil 1 bool 2 uint 3 str 4 bin 5 map 6 array 7 float 8 negative
    } values[] = {
        {"\xc0", 1, 0},  {"\xc3", 1, 1},         {"\x05", 1, 2},
        {"\xa1x", 2, 3}, {"\xc4\x01x", 3, 4},    {"\x80", 1, 5},
        {"\x90", 1, 6},  {"\xca\0\0\0\0", 5, 7}, {"\xff", 1, 8},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        for (int read = 1; read <= 6; read++) {
            vz_mp_reader_t r;
            uint8_t *buf = s_reader(&r, values[i].bytes, values[i].len, NULL);
            bool b;
            uint64_t u;
            const char *s;
            const uint8_t *bin;
            uint32_t n;
            int rc = read == 1   ? vz_mp_read_bool(&r, &b, "want")
                     : read == 2 ? vz_mp_read_uint(&r, UINT64_MAX, &u, "want", "range")
                     : read == 3 ? vz_mp_read_str(&r, &s, &n, "want")
                     : read == 4 ? vz_mp_read_bin(&r, &bin, &n, "want")
                     : read == 5 ? vz_mp_read_map(&r, &n, "want")
                                 : vz_mp_read_array(&r, &n, "want");
            if (read == values[i].type)
                assert_int_equal(rc, 0);
            else {
                assert_int_equal(rc, VZ_EMALFORMED);
                //  A negative int read as uint is out of range, not the wrong type.
                assert_string_equal(r.reason, read == 2 && values[i].type == 8 ? "range" : "want");
            }
            free(buf);
        }
        vz_mp_reader_t r;
        uint8_t *buf = s_reader(&r, values[i].bytes, values[i].len, NULL);
        assert_int_equal(vz_mp_read_nil(&r), values[i].type == 0);
        //  Whatever it is, it can be skipped, and then the input is done.
        if (values[i].type != 0)
            assert_int_equal(vz_mp_skip(&r), 0);
        assert_int_equal(vz_mp_finish(&r), 0);
        free(buf);
    }
    //  Reads at the end are "truncated"; a default reason is "wrong type".
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, NULL, 0, NULL);
    bool b;
    assert_int_equal(vz_mp_read_bool(&r, &b, NULL), VZ_EMALFORMED);
    assert_string_equal(r.reason, "truncated");
    assert_false(vz_mp_read_nil(&r));
    uint8_t *buf = s_reader(&r, "\x01", 1, NULL);
    assert_int_equal(vz_mp_read_bool(&r, &b, NULL), VZ_EMALFORMED);
    assert_string_equal(r.reason, "wrong type");
    //  The first reason is kept.
    assert_int_equal(vz_mp_fail(&r, "later"), VZ_EMALFORMED);
    assert_string_equal(r.reason, "wrong type");
    free(buf);
}

static void test_counts(void **state)
{
    vz_mp_limits_t limits = {.max_string = 64, .max_count = 4, .max_depth = 8};
    static const struct {
        const char *bytes; //  a container header (and maybe entries)
        size_t len;        //  its length
        bool map;          //  read as map
        const char *why;   //  expected reason, NULL = accepted
    } cases[] = {
        {"\x84\1\1\1\1\1\1\1\1", 9, true, NULL},
        {"\x85", 1, true, "map too large"},
        {"\xdf\xff\xff\xff\xff", 5, true, "map too large"},
        {"\xde\x00\x04\1\1\1\1\1\1\1", 10, true, "truncated"}, //  4 entries need 8 bytes
        {"\xde\x00", 2, true, "truncated"},
        {"\x94\1\1\1\1", 5, false, NULL},
        {"\x95", 1, false, "array too large"},
        {"\xdd\xff\xff\xff\xff", 5, false, "array too large"},
        {"\xdc\x00\x03\1\1", 5, false, "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vz_mp_reader_t r;
        uint8_t *buf = s_reader(&r, cases[i].bytes, cases[i].len, &limits);
        uint32_t n = 99;
        int rc = cases[i].map ? vz_mp_read_map(&r, &n, NULL) : vz_mp_read_array(&r, &n, NULL);
        if (!cases[i].why)
            assert_int_equal(rc, 0);
        else {
            assert_int_equal(rc, VZ_EMALFORMED);
            assert_string_equal(r.reason, cases[i].why);
            assert_int_equal(n, 99); //  untouched
        }
        //  skip applies the same limits to the whole value.
        vz_mp_reader_init(&r, buf, cases[i].len, &limits);
        rc = vz_mp_skip(&r);
        assert_int_equal(rc, cases[i].why ? VZ_EMALFORMED : 0);
        if (cases[i].why)
            assert_string_equal(r.reason, cases[i].why);
        free(buf);
    }
}

//  depth nested one-element arrays around a nil.
static uint8_t *s_nested(size_t depth, bool maps, size_t *len_p)
{
    uint8_t *buf = malloc(depth * 2 + 1);
    size_t len = 0;
    for (size_t i = 0; i < depth; i++) {
        buf[len++] = maps ? 0x81 : 0x91;
        if (maps)
            buf[len++] = 0x01; //  the key
    }
    buf[len++] = 0xc0;
    *len_p = len;
    return buf;
}

static void test_depth(void **state)
{
    size_t max = vz_mp_limits_default.max_depth;
    for (int maps = 0; maps <= 1; maps++)
        for (size_t depth = 0; depth <= max + 2; depth++) {
            size_t len;
            uint8_t *buf = s_nested(depth, maps, &len);
            vz_mp_reader_t r;
            vz_mp_reader_init(&r, buf, len, NULL);
            int rc = vz_mp_skip(&r);
            if (depth <= max) {
                assert_int_equal(rc, 0);
                assert_int_equal(vz_mp_finish(&r), 0);
            } else {
                assert_int_equal(rc, VZ_EMALFORMED);
                assert_string_equal(r.reason, "nesting too deep");
            }
            free(buf);
        }
    //  A million levels: refused at the limit, the stack never grows past it.
    size_t len;
    uint8_t *deep = s_nested(1000000, false, &len);
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, deep, len, NULL);
    assert_int_equal(vz_mp_skip(&r), VZ_EMALFORMED);
    free(deep);
}

static void test_skip_every_type(void **state)
{
    writer_t w;
    w_init(&w);
    msgpack_pack_array(&w.pk, 14);
    msgpack_pack_nil(&w.pk);
    msgpack_pack_true(&w.pk);
    msgpack_pack_int64(&w.pk, -5);
    msgpack_pack_int64(&w.pk, INT64_MIN);
    msgpack_pack_uint64(&w.pk, UINT64_MAX);
    msgpack_pack_float(&w.pk, 1.5f);
    msgpack_pack_double(&w.pk, 2.5);
    vz_mp_pack_str(&w.pk, "text");
    msgpack_pack_bin(&w.pk, 300);
    for (int i = 0; i < 300; i++)
        msgpack_pack_bin_body(&w.pk, "x", 1);
    msgpack_pack_ext(&w.pk, 4, 7); //  fixext 4
    msgpack_pack_ext_body(&w.pk, "abcd", 4);
    msgpack_pack_ext(&w.pk, 3, 7); //  ext 8
    msgpack_pack_ext_body(&w.pk, "abc", 3);
    msgpack_pack_map(&w.pk, 1);
    vz_mp_pack_kv_int(&w.pk, "k", -1);
    msgpack_pack_array(&w.pk, 20); //  array 16
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&w.pk, i);
    msgpack_pack_map(&w.pk, 17); //  map 16
    for (int i = 0; i < 17; i++)
        vz_mp_pack_kv_bool(&w.pk, "b", i % 2);
    uint8_t *buf = ut_copy(w.sb.data, w.sb.size);
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, w.sb.size, NULL);
    assert_int_equal(vz_mp_skip(&r), 0);
    assert_int_equal(vz_mp_finish(&r), 0);
    //  Every proper prefix is refused, never read past.
    for (size_t cut = 0; cut < w.sb.size; cut++) {
        uint8_t *prefix = s_reader(&r, w.sb.data, cut, NULL);
        assert_int_equal(vz_mp_skip(&r), VZ_EMALFORMED);
        free(prefix);
    }
    //  Trailing bytes after a whole value are noticed.
    uint8_t two[] = {0x01, 0x02};
    vz_mp_reader_init(&r, two, 2, NULL);
    assert_int_equal(vz_mp_skip(&r), 0);
    assert_int_equal(vz_mp_finish(&r), VZ_EMALFORMED);
    assert_string_equal(r.reason, "trailing bytes");
    //  0xc1 is never valid.
    uint8_t never[] = {0xc1};
    vz_mp_reader_init(&r, never, 1, NULL);
    assert_int_equal(vz_mp_skip(&r), VZ_EMALFORMED);
    assert_string_equal(r.reason, "invalid type byte");
    free(buf);
    msgpack_sbuffer_destroy(&w.sb);
}

typedef enum { COLOR_RED, COLOR_GREEN } color_t;

typedef struct {
    char name[8];   //  str
    uint32_t small; //  uint32
    uint64_t big;   //  uint64
    int64_t delta;  //  int
    bool flag;      //  bool
    color_t color;  //  enum
} fields_t;

static const char *const s_colors[] = {"red", "green"};
static const vz_mp_field_t s_fields[] = {
    VZ_MP_STR(fields_t, name, "name"),
    VZ_MP_UINT(fields_t, small, "small", 1000),
    VZ_MP_UINT(fields_t, big, "big", UINT64_MAX),
    VZ_MP_INT(fields_t, delta, "delta", 5),
    VZ_MP_BOOL(fields_t, flag, "flag"),
    {.key = "color",
     .type = VZ_MP_F_ENUM,
     .offset = offsetof(fields_t, color),
     .size = sizeof(color_t),
     .names = s_colors,
     .count = 2,
     .reason = "bad color"},
};
static const vz_mp_message_t s_message = {s_fields, 6, 0x3f, false, NULL};

//  Decode bytes through s_message; returns the code, *why the reason.
static int s_decode_fields(const void *bytes, size_t len, fields_t *out, const char **why)
{
    uint8_t *copy = ut_copy(bytes, len);
    memset(out, 0, sizeof *out);
    int rc = vz_mp_decode_message(&s_message, out, copy, len, NULL, why);
    free(copy);
    return rc;
}

static void test_fields(void **state)
{
    fields_t in = {.name = "seven",
                   .small = 1000,
                   .big = UINT64_MAX,
                   .delta = -5,
                   .flag = true,
                   .color = COLOR_GREEN};
    size_t len;
    uint8_t *buf = vz_mp_encode_message(&s_message, &in, &len);
    fields_t out;
    const char *why = "unset";
    assert_int_equal(s_decode_fields(buf, len, &out, &why), 0);
    assert_null(why);
    assert_string_equal(out.name, in.name);
    assert_int_equal(out.small, in.small);
    assert_true(out.big == in.big && out.delta == in.delta);
    assert_true(out.flag && out.color == COLOR_GREEN);
    //  msgpack-c reads the same map.
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, (const char *)buf, len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(msg.data.via.map.size, 6);
    msgpack_unpacked_destroy(&msg);
    //  Truncation at every byte.
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(s_decode_fields(buf, cut, &out, &why), VZ_EMALFORMED);
    free(buf);

    static const struct {
        const char *bytes; //  body
        size_t len;        //  its length
        const char *why;   //  reason
    } bad[] = {
        {"\x81\xa4name\xa8"
         "12345678",
         15, "string too long"},
        {"\x81\xa5small\xcd\x03\xe9", 10, "small: expected an unsigned integer in range"},
        {"\x81\xa5"
         "delta\x06",
         8, "delta: expected an integer in range"},
        {"\x81\xa5"
         "delta\xfa",
         8, "delta: expected an integer in range"},
        {"\x81\xa4"
         "flag\x01",
         7, "wrong type for flag"},
        {"\x81\xa5"
         "color\xa4"
         "blue",
         12, "bad color"},
        {"\x82\xa4"
         "flag\xc2\xa4"
         "flag\xc3",
         13, "duplicate key"},
        {"\x81\x01\x01", 3, "wrong type for key"},
        {"\x91\x01", 2, "not a map"},
        {"\x80", 1, "missing name"},
        {"", 0, "truncated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_decode_fields(bad[i].bytes, bad[i].len, &out, &why), VZ_EMALFORMED);
        if (strcmp(why, bad[i].why) != 0)
            fail_msg("case %zu: \"%s\", expected \"%s\"", i, why, bad[i].why);
    }
    //  Unknown keys of any shape are skipped; nil is absent; a field
    //  missing from required is fine.
    vz_mp_message_t loose = s_message;
    loose.required = 1; //  name only
    const char body[] = "\x84\xa1x\x92\x81\xa1y\xc0\xa1z\xa4name\xa2hi\xa4"
                        "flag\xc0\xa2zz\xc3";
    uint8_t *copy = ut_copy(body, sizeof body - 1);
    memset(&out, 0, sizeof out);
    out.small = 7; //  a default survives
    uint64_t seen = 0;
    assert_int_equal(vz_mp_decode_message(&loose, &out, copy, sizeof body - 1, &seen, &why), 0);
    assert_string_equal(out.name, "hi");
    assert_int_equal(out.small, 7);
    assert_false(out.flag);
    assert_int_equal(seen, 1 | 16); //  name and flag (nil) were there
    free(copy);
    //  An empty body is an empty map only when the message says so.
    loose.required = 0;
    assert_int_equal(vz_mp_decode_message(&loose, &out, NULL, 0, NULL, &why), VZ_EMALFORMED);
    loose.empty_ok = true;
    assert_int_equal(vz_mp_decode_message(&loose, &out, NULL, 0, NULL, &why), 0);
    assert_string_equal(vz_mp_missing(s_fields, 6, 0x3f, 0x3f & ~4u), "missing big");
    assert_null(vz_mp_missing(s_fields, 6, 0x3f, 0x3f));
}

static void test_pack_helpers(void **state)
{
    msgpack_sbuffer sb;
    vz_mp_sbuffer_init(&sb, 64);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    vz_mp_pack_kv_str(&pk, "s", "text");
    vz_mp_pack_kv_strn(&pk, "n", "texts", 4);
    vz_mp_pack_kv_uint(&pk, "u", 300);
    vz_mp_pack_kv_int(&pk, "i", -300);
    vz_mp_pack_kv_bool(&pk, "b", true);
    assert_int_equal(sb.alloc, 64); //  reserved once, never grown
    size_t len;
    uint8_t *buf = vz_mp_sbuffer_take(&sb, &len);
    static const uint8_t want[] = {0x85, 0xa1, 's',  0xa4, 't',  'e',  'x', 't',  0xa1, 'n',
                                   0xa4, 't',  'e',  'x',  't',  0xa1, 'u', 0xcd, 0x01, 0x2c,
                                   0xa1, 'i',  0xd1, 0xfe, 0xd4, 0xa1, 'b', 0xc3};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, len);
    //  Read back through the reader, keys compared by length.
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, NULL);
    uint32_t n;
    const char *key;
    uint32_t key_len;
    assert_int_equal(vz_mp_read_map(&r, &n, NULL), 0);
    assert_int_equal(vz_mp_read_str(&r, &key, &key_len, NULL), 0);
    assert_true(vz_mp_key_is(key, key_len, "s"));
    assert_false(vz_mp_key_is(key, key_len, "ss"));
    assert_false(vz_mp_key_is(key, key_len, ""));
    free(buf);
}

//  Random bytes through every entry point: no crash, no read past the end
//  (valgrind and ASan watch the exact-size copies).
static void test_random(void **state)
{
    srand(15);
    uint8_t junk[48];
    for (int round = 0; round < 200000; round++) {
        size_t len = ut_junk(junk, sizeof junk, round, 0x80, 4); //  small maps, often
        fields_t out;
        const char *why;
        if (s_decode_fields(junk, len, &out, &why) == 0)
            assert_non_null(memchr(out.name, 0, sizeof out.name));
        vz_mp_reader_t r;
        uint8_t *copy = s_reader(&r, junk, len, NULL);
        while (vz_mp_left(&r) && vz_mp_skip(&r) == 0)
            ;
        assert_true(r.p <= r.end);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),    cmocka_unit_test(test_strings_and_bins),
        cmocka_unit_test(test_wrong_types), cmocka_unit_test(test_counts),
        cmocka_unit_test(test_depth),       cmocka_unit_test(test_skip_every_type),
        cmocka_unit_test(test_fields),      cmocka_unit_test(test_pack_helpers),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
