/*  test_envelope - round trips, every malformed shape, and seeded random input
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Hostile frames are built by hand, either with msgpack-c's packer (to put a
 *  wrong type where a field goes) or as raw bytes (to declare lengths that
 *  msgpack-c would never write). Random inputs use a fixed-seed xorshift so
 *  a failure reproduces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "vz_envelope.h"
#include "vz_proto.h"

//  ---------------------------------------------------------------------------
//  Helpers

//  A frame under construction with msgpack-c's packer.
typedef struct {
    msgpack_sbuffer sbuf; //  bytes so far
    msgpack_packer pk;    //  packer writing into sbuf
} frame_t;

static void frame_begin(frame_t *f, uint32_t entries)
{
    msgpack_sbuffer_init(&f->sbuf);
    msgpack_packer_init(&f->pk, &f->sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&f->pk, entries);
}

static void frame_str(frame_t *f, const char *s, size_t len)
{
    msgpack_pack_str(&f->pk, len);
    msgpack_pack_str_body(&f->pk, s, len);
}

static void frame_key(frame_t *f, const char *key)
{
    frame_str(f, key, strlen(key));
}

static void frame_kv_str(frame_t *f, const char *key, const char *value)
{
    frame_key(f, key);
    frame_key(f, value);
}

static void frame_kv_int(frame_t *f, const char *key, int64_t value)
{
    frame_key(f, key);
    msgpack_pack_int64(&f->pk, value);
}

//  Decode the frame, free it, return the rc and the reason.
static int frame_decode(frame_t *f, vz_envelope_t *env, const char **reason)
{
    int rc = vz_envelope_decode(env, (const uint8_t *)f->sbuf.data, f->sbuf.size, NULL, reason);
    msgpack_sbuffer_destroy(&f->sbuf);
    return rc;
}

static void expect_malformed(const uint8_t *buf, size_t len, const char *why)
{
    vz_envelope_t env;
    const char *reason = NULL;
    int rc = vz_envelope_decode(&env, buf, len, NULL, &reason);
    if (rc != VZ_EMALFORMED || !reason || (why && strcmp(reason, why) != 0))
        fail_msg("expected malformed (%s), got rc=%d reason=%s", why ? why : "any", rc,
                 reason ? reason : "(null)");
}

//  The fields every request needs, then `extra` more entries follow.
static void frame_request(frame_t *f, uint32_t extra)
{
    frame_begin(f, 4 + extra);
    frame_kv_int(f, "v", 1);
    frame_kv_int(f, "k", VZ_KIND_REQUEST);
    frame_kv_str(f, "svc", "auth");
    frame_kv_str(f, "mth", "login");
}

//  Deterministic xorshift64*.
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fill(char *dst, size_t len, char c)
{
    memset(dst, c, len);
    dst[len] = 0;
}

//  A request with every field at its largest.
static void make_full(vz_envelope_t *env, const uint8_t *body, size_t body_len)
{
    vz_envelope_init(env, VZ_KIND_REQUEST);
    fill(env->service, VZ_NAME_MAX - 1, 's');
    fill(env->method, VZ_NAME_MAX - 1, 'm');
    fill(env->id, VZ_ID_MAX - 1, 'i');
    fill(env->traceparent, VZ_TRACEPARENT_MAX - 1, 't');
    env->deadline_ms = INT64_MAX;
    env->flags = UINT32_MAX;
    fill(env->caller, VZ_NAME_MAX - 1, 'c');
    for (int i = 0; i < VZ_CTX_MAX; i++) {
        char key[VZ_CTX_KEY_MAX], value[VZ_CTX_VAL_MAX];
        fill(key, VZ_CTX_KEY_MAX - 1, 'k');
        key[0] = (char)('A' + i); //  keys must differ
        fill(value, VZ_CTX_VAL_MAX - 1, (char)('a' + i));
        assert_int_equal(vz_envelope_ctx_set(env, key, value), 0);
    }
    fill(env->error_code, VZ_ERRCODE_MAX - 1, 'e');
    fill(env->error_message, VZ_ERRMSG_MAX - 1, 'x');
    env->body = body;
    env->body_len = body_len;
}

static void assert_same(const vz_envelope_t *a, const vz_envelope_t *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->service, b->service);
    assert_string_equal(a->method, b->method);
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->traceparent, b->traceparent);
    assert_true(a->deadline_ms == b->deadline_ms);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->ctx_count, b->ctx_count);
    for (size_t i = 0; i < a->ctx_count; i++) {
        assert_string_equal(a->ctx[i].key, b->ctx[i].key);
        assert_string_equal(a->ctx[i].value, b->ctx[i].value);
    }
    assert_string_equal(a->error_code, b->error_code);
    assert_string_equal(a->error_message, b->error_message);
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
}

//  What any successful decode must satisfy, whatever the input was.
static void check_invariants(const vz_envelope_t *env, const uint8_t *buf, size_t len)
{
    assert_int_equal(env->version, VZ_ENVELOPE_VERSION);
    assert_true(env->kind >= VZ_KIND_REQUEST && env->kind <= VZ_KIND_EVENT);
    assert_true(strnlen(env->service, sizeof(env->service)) < sizeof(env->service));
    assert_true(strnlen(env->method, sizeof(env->method)) < sizeof(env->method));
    assert_true(strnlen(env->id, sizeof(env->id)) < sizeof(env->id));
    assert_true(strnlen(env->traceparent, sizeof(env->traceparent)) < sizeof(env->traceparent));
    assert_string_equal(env->caller, "");
    assert_true(strnlen(env->error_code, sizeof(env->error_code)) < sizeof(env->error_code));
    assert_true(strnlen(env->error_message, sizeof(env->error_message)) <
                sizeof(env->error_message));
    assert_true(env->deadline_ms >= 0);
    assert_true(env->ctx_count <= VZ_CTX_MAX);
    for (size_t i = 0; i < env->ctx_count; i++) {
        assert_true(strnlen(env->ctx[i].key, VZ_CTX_KEY_MAX) < VZ_CTX_KEY_MAX);
        assert_true(strnlen(env->ctx[i].value, VZ_CTX_VAL_MAX) < VZ_CTX_VAL_MAX);
    }
    if (env->kind == VZ_KIND_REQUEST || env->kind == VZ_KIND_EVENT)
        assert_true(env->service[0] && env->method[0]);
    if (env->kind == VZ_KIND_ERROR)
        assert_true(env->error_code[0]);
    assert_true((env->body == NULL) == (env->body_len == 0));
    if (env->body) {
        assert_true(env->body >= buf && env->body + env->body_len <= buf + len);
    }
    //  And what decoded must encode and decode to the same thing.
    uint8_t *again;
    size_t again_len;
    assert_int_equal(vz_envelope_encode(env, &again, &again_len), 0);
    vz_envelope_t twice;
    assert_int_equal(vz_envelope_decode(&twice, again, again_len, NULL, NULL), 0);
    assert_same(env, &twice);
    free(again);
}

//  ---------------------------------------------------------------------------
//  Round trips

//  Encode in and decode it into out, which was filled with stale bytes
//  first (none may show through). Returns the encoding (out points into
//  it; the caller frees) and its length in *len_p.
static uint8_t *s_round_trip(const vz_envelope_t *in, vz_envelope_t *out, size_t *len_p)
{
    uint8_t *buf;
    assert_int_equal(vz_envelope_encode(in, &buf, len_p), 0);
    memset(out, 0x5a, sizeof *out);
    const char *reason = "unset";
    assert_int_equal(vz_envelope_decode(out, buf, *len_p, NULL, &reason), 0);
    assert_null(reason);
    return buf;
}

static void test_roundtrip_full(void **state)
{
    static const uint8_t body[] = {0, 1, 2, 0xc1, 0xff, 'x'};
    vz_envelope_t env;
    make_full(&env, body, sizeof(body));
    for (int kind = VZ_KIND_REQUEST; kind <= VZ_KIND_EVENT; kind++) {
        env.kind = (vz_kind_t)kind;
        vz_envelope_t out;
        size_t len;
        uint8_t *buf = s_round_trip(&env, &out, &len);
        assert_same(&env, &out);
        //  The sender's claim about the caller never survives decoding.
        assert_string_equal(out.caller, "");
        assert_true(out.body >= buf && out.body < buf + len);
        check_invariants(&out, buf, len);
        free(buf);
    }
}

static void test_roundtrip_minimal(void **state)
{
    //  Each kind with only its required fields: absent fields decode empty.
    for (int kind = VZ_KIND_REQUEST; kind <= VZ_KIND_EVENT; kind++) {
        vz_envelope_t env;
        vz_envelope_init(&env, (vz_kind_t)kind);
        if (kind == VZ_KIND_REQUEST || kind == VZ_KIND_EVENT) {
            strcpy(env.service, "a");
            strcpy(env.method, "b");
        }
        if (kind == VZ_KIND_ERROR)
            strcpy(env.error_code, "timeout");
        vz_envelope_t out;
        size_t len;
        uint8_t *buf = s_round_trip(&env, &out, &len);
        assert_same(&env, &out);
        assert_null(out.body);
        assert_int_equal(out.body_len, 0);
        free(buf);
    }
}

static void test_reply_has_no_service(void **state)
{
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REPLY);
    strcpy(env.id, "r1");
    vz_envelope_t out;
    size_t len;
    uint8_t *buf = s_round_trip(&env, &out, &len);
    assert_int_equal(out.kind, VZ_KIND_REPLY);
    assert_string_equal(out.id, "r1");
    assert_string_equal(out.service, "");
    free(buf);
}

static void test_empty_body_forms(void **state)
{
    //  Absent, nil and zero-length bin all mean "no body".
    vz_envelope_t env;
    frame_t f;
    frame_request(&f, 1);
    frame_key(&f, "b");
    msgpack_pack_nil(&f.pk);
    assert_int_equal(frame_decode(&f, &env, NULL), 0);
    assert_null(env.body);
    frame_request(&f, 1);
    frame_key(&f, "b");
    msgpack_pack_bin(&f.pk, 0);
    assert_int_equal(frame_decode(&f, &env, NULL), 0);
    assert_null(env.body);
    assert_int_equal(env.body_len, 0);
}

static void test_body_at_frame_limit(void **state)
{
    const size_t max_frame = vz_envelope_limits_default.max_frame;
    uint8_t *body = malloc(max_frame + 1);
    assert_non_null(body);
    for (size_t i = 0; i <= max_frame; i++)
        body[i] = (uint8_t)(i * 7);
    vz_envelope_t env;
    assert_int_equal(vz_envelope_request(&env, "billing", "upload", "abc"), 0);
    env.body = body;
    //  Learn the overhead with a bin32-sized body, then hit the limit exactly.
    env.body_len = 100000;
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    size_t overhead = len - env.body_len;
    free(buf);

    env.body_len = max_frame - overhead;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    assert_int_equal(len, max_frame);
    vz_envelope_t out;
    assert_int_equal(vz_envelope_decode(&out, buf, len, NULL, NULL), 0);
    assert_int_equal(out.body_len, env.body_len);
    assert_memory_equal(out.body, body, out.body_len);

    //  One byte more is refused by the decoder, with its limit.
    uint8_t *big = malloc(len + 1);
    assert_non_null(big);
    memcpy(big, buf, len);
    big[len] = 0;
    expect_malformed(big, len + 1, "frame too large");
    free(big);
    free(buf);

    //  ... and by the encoder.
    env.body_len = max_frame - overhead + 1;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EMSGSIZE);
    env.body_len = max_frame + 1;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EMSGSIZE);
    free(body);
}

static void test_custom_limits(void **state)
{
    vz_envelope_t env;
    assert_int_equal(vz_envelope_request(&env, "auth", "login", NULL), 0);
    strcpy(env.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    vz_envelope_limits_t limits = vz_envelope_limits_default;
    const char *reason;
    limits.max_frame = len - 1;
    assert_int_equal(vz_envelope_decode(&env, buf, len, &limits, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "frame too large");
    limits = vz_envelope_limits_default;
    limits.max_string = 20; //  the traceparent is longer
    assert_int_equal(vz_envelope_decode(&env, buf, len, &limits, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "string too long");
    limits = vz_envelope_limits_default;
    limits.max_map = 3; //  the envelope has 5 entries
    assert_int_equal(vz_envelope_decode(&env, buf, len, &limits, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "map too large");
    free(buf);
}

//  ---------------------------------------------------------------------------
//  Malformed frames

static void test_every_truncation(void **state)
{
    static const uint8_t body[200] = {1, 2, 3};
    vz_envelope_t env;
    make_full(&env, body, sizeof(body));
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        //  A copy of exactly the prefix, so ASan sees any read past it.
        uint8_t *prefix = malloc(cut ? cut : 1);
        assert_non_null(prefix);
        memcpy(prefix, buf, cut);
        expect_malformed(prefix, cut, NULL);
        free(prefix);
    }
    expect_malformed(NULL, 0, "truncated");
    free(buf);
}

//  One field given a value of the wrong msgpack type.
typedef enum { W_INT, W_STR, W_ARRAY, W_FLOAT, W_BOOL, W_MAP_INT } wrong_t;

static void test_wrong_types(void **state)
{
    static const struct {
        const char *key; //  field under test
        wrong_t wrong;   //  what goes there
        const char *why; //  expected reason
    } cases[] = {
        {"v", W_STR, "wrong type for version"},     {"v", W_FLOAT, "wrong type for version"},
        {"k", W_STR, "wrong type for kind"},        {"k", W_BOOL, "wrong type for kind"},
        {"svc", W_INT, "wrong type for service"},   {"mth", W_ARRAY, "wrong type for method"},
        {"id", W_INT, "wrong type for id"},         {"tp", W_BOOL, "wrong type for traceparent"},
        {"dl", W_STR, "wrong type for deadline"},   {"dl", W_FLOAT, "wrong type for deadline"},
        {"fl", W_STR, "wrong type for flags"},      {"who", W_INT, "wrong type for caller"},
        {"ctx", W_ARRAY, "wrong type for ctx"},     {"ctx", W_MAP_INT, "wrong type for ctx value"},
        {"ec", W_INT, "wrong type for error code"}, {"em", W_ARRAY, "wrong type for error message"},
        {"b", W_STR, "wrong type for body"},        {"b", W_INT, "wrong type for body"},
    };
    static const char *base[] = {"v", "k", "svc", "mth"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame_t f;
        uint32_t n = 1;
        for (size_t j = 0; j < 4; j++)
            n += strcmp(base[j], cases[i].key) != 0;
        frame_begin(&f, n);
        for (size_t j = 0; j < 4; j++) {
            if (strcmp(base[j], cases[i].key) == 0)
                continue;
            if (j < 2)
                frame_kv_int(&f, base[j], 1);
            else
                frame_kv_str(&f, base[j], "x");
        }
        frame_key(&f, cases[i].key);
        switch (cases[i].wrong) {
        case W_INT:
            msgpack_pack_int(&f.pk, 7);
            break;
        case W_STR:
            frame_key(&f, "1");
            break;
        case W_ARRAY:
            msgpack_pack_array(&f.pk, 0);
            break;
        case W_FLOAT:
            msgpack_pack_double(&f.pk, 1.0);
            break;
        case W_BOOL:
            msgpack_pack_true(&f.pk);
            break;
        case W_MAP_INT:
            msgpack_pack_map(&f.pk, 1);
            frame_key(&f, "sub");
            msgpack_pack_int(&f.pk, 1);
            break;
        }
        vz_envelope_t env;
        const char *reason = NULL;
        assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
        if (strcmp(reason, cases[i].why) != 0)
            fail_msg("key %s: reason %s, expected %s", cases[i].key, reason, cases[i].why);
    }
}

static void test_integer_ranges(void **state)
{
    static const struct {
        const char *key; //  integer field
        int64_t value;   //  value sent as a signed int
        int ok;          //  1 when accepted
    } cases[] = {
        {"dl", -1, 0}, {"dl", -100000, 0},    {"dl", INT64_MIN, 0},
        {"dl", 0, 1},  {"dl", 127, 1},        {"dl", INT64_MAX, 1},
        {"fl", -1, 0}, {"fl", UINT32_MAX, 1}, {"fl", (int64_t)UINT32_MAX + 1, 0},
        {"k", 0, 0},   {"k", 5, 0},           {"k", -1, 0},
        {"k", 4, 1},   {"v", 2, 0},           {"v", 0, 0},
        {"v", -1, 0},  {"v", 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame_t f;
        int replaces = !strcmp(cases[i].key, "v") || !strcmp(cases[i].key, "k");
        frame_begin(&f, replaces ? 4 : 5);
        if (strcmp(cases[i].key, "v") != 0)
            frame_kv_int(&f, "v", 1);
        if (strcmp(cases[i].key, "k") != 0)
            frame_kv_int(&f, "k", 1);
        frame_kv_str(&f, "svc", "a");
        frame_kv_str(&f, "mth", "b");
        frame_kv_int(&f, cases[i].key, cases[i].value);
        vz_envelope_t env;
        const char *reason = NULL;
        int rc = frame_decode(&f, &env, &reason);
        if (cases[i].ok != (rc == 0))
            fail_msg("%s=%lld: rc %d (%s)", cases[i].key, (long long)cases[i].value, rc,
                     reason ? reason : "-");
        if (!cases[i].ok && !strcmp(cases[i].key, "v"))
            assert_string_equal(reason, "unsupported version");
        if (!cases[i].ok && !strcmp(cases[i].key, "k"))
            assert_string_equal(reason, "unknown kind");
    }
    //  Unsigned encodings beyond int64 for the deadline.
    frame_t f;
    frame_request(&f, 1);
    frame_key(&f, "dl");
    msgpack_pack_uint64(&f.pk, (uint64_t)INT64_MAX + 1);
    vz_envelope_t env;
    const char *reason;
    assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "deadline out of range");
    //  Every positive integer encoding is accepted for the deadline.
    static const uint8_t forms[][10] = {
        {0x05},
        {0xcc, 0x05},
        {0xcd, 0, 5},
        {0xce, 0, 0, 0, 5},
        {0xcf, 0, 0, 0, 0, 0, 0, 0, 5},
        {0xd0, 5},
        {0xd1, 0, 5},
        {0xd2, 0, 0, 0, 5},
        {0xd3, 0, 0, 0, 0, 0, 0, 0, 5},
    };
    static const size_t form_len[] = {1, 2, 3, 5, 9, 2, 3, 5, 9};
    for (size_t i = 0; i < 9; i++) {
        frame_request(&f, 1);
        frame_key(&f, "dl");
        msgpack_sbuffer_write(&f.sbuf, (const char *)forms[i], form_len[i]);
        assert_int_equal(frame_decode(&f, &env, NULL), 0);
        assert_true(env.deadline_ms == 5);
    }
}

static void test_huge_declared_lengths(void **state)
{
    //  Prefix: {"v":1,"k":1,"svc":"a","mth":"b", <key>: <head>} with a 5-entry map.
    static const uint8_t prefix[] = {0x85, 0xa1, 'v', 0x01, 0xa1, 'k', 0x01, 0xa3, 's', 'v',
                                     'c',  0xa1, 'a', 0xa3, 'm',  't', 'h',  0xa1, 'b'};
    static const struct {
        const char *key; //  the fifth key
        uint8_t head;    //  a 32-bit-length type byte, followed by 0xFFFFFFFF
    } cases[] = {
        {"zz", 0xdb}, {"zz", 0xc6}, {"zz", 0xdd},  {"zz", 0xdf}, {"zz", 0xc9},
        {"id", 0xdb}, {"b", 0xc6},  {"ctx", 0xdf}, {"em", 0xdb},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t frame[64];
        size_t len = sizeof(prefix);
        memcpy(frame, prefix, len);
        size_t klen = strlen(cases[i].key);
        frame[len++] = (uint8_t)(0xa0 | klen);
        memcpy(frame + len, cases[i].key, klen);
        len += klen;
        frame[len++] = cases[i].head;
        memset(frame + len, 0xff, 4);
        len += 4;
        frame[len++] = 0; //  a few bytes, far from 4 GiB
        expect_malformed(frame, len, NULL);
    }
    //  A top-level map32 and a key str32 declaring 4 GiB.
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 1};
    expect_malformed(map32, sizeof(map32), "map too large");
    static const uint8_t key32[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'v', 1};
    expect_malformed(key32, sizeof(key32), "string too long");
    //  A length within the limits but past the end is "truncated".
    static const uint8_t short_bin[] = {0x83, 0xa1, 'v',  1,    0xa1, 'k', 2,
                                        0xa1, 'b',  0xc5, 0x10, 0,    1};
    expect_malformed(short_bin, sizeof(short_bin), "truncated");
}

//  A request with one unknown key "x" whose value is `depth` nested arrays
//  (or maps) around an integer.
static int decode_nested(size_t depth, bool maps)
{
    frame_t f;
    frame_request(&f, 1);
    frame_key(&f, "x");
    for (size_t i = 0; i < depth; i++) {
        if (maps) {
            msgpack_pack_map(&f.pk, 1);
            frame_key(&f, "n");
        } else
            msgpack_pack_array(&f.pk, 1);
    }
    msgpack_pack_int(&f.pk, 42);
    vz_envelope_t env;
    const char *reason = NULL;
    int rc = frame_decode(&f, &env, &reason);
    if (rc < 0)
        assert_string_equal(reason, "nesting too deep");
    else
        assert_string_equal(env.method, "login");
    return rc;
}

static void test_nesting_depth(void **state)
{
    size_t max = vz_envelope_limits_default.max_depth;
    assert_int_equal(decode_nested(max, false), 0);
    assert_int_equal(decode_nested(max + 1, false), VZ_EMALFORMED);
    assert_int_equal(decode_nested(max, true), 0);
    assert_int_equal(decode_nested(max + 1, true), VZ_EMALFORMED);
    assert_int_equal(decode_nested(1000, false), VZ_EMALFORMED);
}

static void test_map_entries(void **state)
{
    size_t max = vz_envelope_limits_default.max_map;
    vz_envelope_t env;
    const char *reason;
    //  Top level: max entries (4 known, the rest unknown) decode, one more does not.
    for (size_t total = max; total <= max + 1; total++) {
        frame_t f;
        frame_request(&f, (uint32_t)(total - 4));
        for (size_t i = 0; i < total - 4; i++) {
            char key[32];
            snprintf(key, sizeof(key), "u%zu", i);
            frame_kv_int(&f, key, (int64_t)i);
        }
        int rc = frame_decode(&f, &env, &reason);
        assert_int_equal(rc, total == max ? 0 : VZ_EMALFORMED);
        if (rc < 0)
            assert_string_equal(reason, "map too large");
    }
    //  Inside an unknown value: a map and an array one past the limit.
    for (int as_array = 0; as_array <= 1; as_array++) {
        frame_t f;
        frame_request(&f, 1);
        frame_key(&f, "x");
        if (as_array)
            msgpack_pack_array(&f.pk, max + 1);
        else
            msgpack_pack_map(&f.pk, max + 1);
        for (size_t i = 0; i < (max + 1) * (as_array ? 1 : 2); i++)
            msgpack_pack_int(&f.pk, 1);
        assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
        assert_string_equal(reason, as_array ? "array too large" : "map too large");
    }
    //  ctx: VZ_CTX_MAX entries fit, one more does not.
    for (int n = VZ_CTX_MAX; n <= VZ_CTX_MAX + 1; n++) {
        frame_t f;
        frame_request(&f, 1);
        frame_key(&f, "ctx");
        msgpack_pack_map(&f.pk, (size_t)n);
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", i);
            frame_kv_str(&f, key, "v");
        }
        int rc = frame_decode(&f, &env, &reason);
        assert_int_equal(rc, n == VZ_CTX_MAX ? 0 : VZ_EMALFORMED);
        if (rc == 0) {
            assert_int_equal(env.ctx_count, VZ_CTX_MAX);
            assert_string_equal(vz_envelope_ctx_get(&env, "k15"), "v");
        } else
            assert_string_equal(reason, "too many ctx entries");
    }
}

static void test_missing_required(void **state)
{
    static const struct {
        int64_t kind;     //  k
        const char *drop; //  key left out, NULL for none
        const char *why;  //  expected reason, NULL for success
    } cases[] = {
        {1, "svc", "missing service"},
        {1, "mth", "missing method"},
        {4, "svc", "missing service"},
        {4, "mth", "missing method"},
        {2, "svc", NULL},
        {3, NULL, "missing error code"},
        {1, "v", "missing version"},
        {1, "k", "missing kind"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame_t f;
        frame_begin(&f, cases[i].drop ? 3 : 4);
        if (!cases[i].drop || strcmp(cases[i].drop, "v"))
            frame_kv_int(&f, "v", 1);
        if (!cases[i].drop || strcmp(cases[i].drop, "k"))
            frame_kv_int(&f, "k", cases[i].kind);
        if (!cases[i].drop || strcmp(cases[i].drop, "svc"))
            frame_kv_str(&f, "svc", "a");
        if (!cases[i].drop || strcmp(cases[i].drop, "mth"))
            frame_kv_str(&f, "mth", "b");
        vz_envelope_t env;
        const char *reason = NULL;
        int rc = frame_decode(&f, &env, &reason);
        if (cases[i].why) {
            assert_int_equal(rc, VZ_EMALFORMED);
            assert_string_equal(reason, cases[i].why);
        } else
            assert_int_equal(rc, 0);
    }
    //  A nil required field counts as missing.
    frame_t f;
    frame_begin(&f, 4);
    frame_kv_int(&f, "v", 1);
    frame_kv_int(&f, "k", 1);
    frame_key(&f, "svc");
    msgpack_pack_nil(&f.pk);
    frame_kv_str(&f, "mth", "b");
    vz_envelope_t env;
    const char *reason;
    assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "missing service");
}

static void test_duplicate_keys(void **state)
{
    vz_envelope_t env;
    const char *reason;
    static const char *keys[] = {"v", "k", "svc", "mth", "id", "tp", "who", "b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        frame_t f;
        frame_request(&f, 2);
        for (int twice = 0; twice < 2; twice++) {
            frame_key(&f, keys[i]);
            //  The second copy is nil: even that is a duplicate.
            if (twice)
                msgpack_pack_nil(&f.pk);
            else if (i < 2)
                msgpack_pack_int(&f.pk, 1);
            else if (!strcmp(keys[i], "b"))
                msgpack_pack_bin(&f.pk, 0);
            else
                frame_key(&f, "x");
        }
        assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
        assert_string_equal(reason, "duplicate key");
    }
    frame_t f;
    frame_request(&f, 1);
    frame_key(&f, "ctx");
    msgpack_pack_map(&f.pk, 2);
    frame_kv_str(&f, "sub", "u1");
    frame_kv_str(&f, "sub", "u2");
    assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "duplicate ctx key");
}

static void test_strings(void **state)
{
    vz_envelope_t env;
    const char *reason;
    static const char *keys[] = {"svc", "mth", "id", "tp", "who", "ec", "em"};
    static const size_t caps[] = {VZ_NAME_MAX, VZ_NAME_MAX,    VZ_ID_MAX,    VZ_TRACEPARENT_MAX,
                                  VZ_NAME_MAX, VZ_ERRCODE_MAX, VZ_ERRMSG_MAX};
    char text[VZ_ERRMSG_MAX + 1];
    memset(text, 'q', sizeof(text));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        //  cap - 1 bytes fit, cap bytes are refused rather than cut.
        for (size_t len = caps[i] - 1; len <= caps[i]; len++) {
            frame_t f;
            frame_begin(&f, 3); //  a reply needs neither service nor method
            frame_kv_int(&f, "v", 1);
            frame_kv_int(&f, "k", VZ_KIND_REPLY);
            frame_key(&f, keys[i]);
            frame_str(&f, text, len);
            int rc = frame_decode(&f, &env, &reason);
            if (len < caps[i])
                assert_int_equal(rc, 0);
            else {
                assert_int_equal(rc, VZ_EMALFORMED);
                assert_string_equal(reason, "string too long");
            }
        }
        //  A NUL inside would cut the string silently.
        frame_t f;
        frame_begin(&f, 3);
        frame_kv_int(&f, "v", 1);
        frame_kv_int(&f, "k", 2);
        frame_key(&f, keys[i]);
        frame_str(&f, "ab\0cd", 5);
        assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
        assert_string_equal(reason, "NUL in string");
    }
    //  Same for both halves of a ctx entry, and an empty ctx key.
    static const char *bad_ctx[][2] = {{"s\0b", "v"}, {"sub", "u\0"}, {"", "v"}};
    static const size_t bad_len[][2] = {{3, 1}, {3, 2}, {0, 1}};
    for (size_t i = 0; i < 3; i++) {
        frame_t f;
        frame_request(&f, 1);
        frame_key(&f, "ctx");
        msgpack_pack_map(&f.pk, 1);
        frame_str(&f, bad_ctx[i][0], bad_len[i][0]);
        frame_str(&f, bad_ctx[i][1], bad_len[i][1]);
        assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
    }
    //  Long ctx key and value.
    frame_t f;
    frame_request(&f, 1);
    frame_key(&f, "ctx");
    msgpack_pack_map(&f.pk, 1);
    frame_str(&f, text, VZ_CTX_KEY_MAX);
    frame_str(&f, "v", 1);
    assert_int_equal(frame_decode(&f, &env, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "string too long");
}

static void test_framing(void **state)
{
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_EVENT);
    strcpy(env.service, "telemetry");
    strcpy(env.method, "span");
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    //  Trailing garbage, even a single nil, is refused.
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    longer[len] = 0xc0;
    expect_malformed(longer, len + 1, "trailing bytes");
    //  A second whole envelope is trailing bytes too.
    uint8_t *two = malloc(len * 2);
    assert_non_null(two);
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    expect_malformed(two, len * 2, "trailing bytes");
    free(two);
    free(longer);
    free(buf);

    //  Top levels that are not maps.
    static const uint8_t array[] = {0x92, 0x01, 0x01};
    static const uint8_t str[] = {0xa1, 'v'};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t num[] = {0x01};
    static const uint8_t bin[] = {0xc4, 0x00};
    expect_malformed(array, sizeof(array), "not a map");
    expect_malformed(str, sizeof(str), "not a map");
    expect_malformed(nil, sizeof(nil), "not a map");
    expect_malformed(num, sizeof(num), "not a map");
    expect_malformed(bin, sizeof(bin), "not a map");
    //  Keys must be strings.
    static const uint8_t int_key[] = {0x83, 0xa1, 'v', 1, 0xa1, 'k', 2, 0x07, 0x01};
    expect_malformed(int_key, sizeof(int_key), "wrong type for key");
    //  An empty map has neither version nor kind.
    static const uint8_t empty[] = {0x80};
    expect_malformed(empty, sizeof(empty), "missing version");
    //  0xc1 is never valid, even in a skipped value.
    static const uint8_t never[] = {0x84, 0xa1, 'v',  1,    0xa1, 'k', 2,
                                    0xa1, 'x',  0xc1, 0xa1, 'y',  0};
    expect_malformed(never, sizeof(never), "invalid type byte");
}

static void test_unknown_keys_skipped(void **state)
{
    frame_t f;
    frame_request(&f, 14);
    frame_kv_int(&f, "future", -5);
    frame_key(&f, "f32");
    msgpack_pack_float(&f.pk, 1.5f);
    frame_key(&f, "f64");
    msgpack_pack_double(&f.pk, 2.5);
    frame_key(&f, "ext");
    msgpack_pack_ext(&f.pk, 300, 7);
    {
        char pad[300];
        memset(pad, 'p', sizeof(pad));
        msgpack_pack_ext_body(&f.pk, pad, sizeof(pad));
    }
    frame_key(&f, "fixext");
    msgpack_pack_ext(&f.pk, 16, 1);
    msgpack_pack_ext_body(&f.pk, "0123456789abcdef", 16);
    frame_key(&f, "bin");
    msgpack_pack_bin(&f.pk, 70000);
    {
        char *blob = calloc(1, 70000);
        assert_non_null(blob);
        msgpack_pack_bin_body(&f.pk, blob, 70000);
        free(blob);
    }
    frame_key(&f, "nest");
    msgpack_pack_map(&f.pk, 2);
    msgpack_pack_int(&f.pk, 1); //  non-string keys are fine inside unknown values
    msgpack_pack_array(&f.pk, 3);
    msgpack_pack_true(&f.pk);
    msgpack_pack_false(&f.pk);
    msgpack_pack_nil(&f.pk);
    frame_key(&f, "svc"); //  a known key name inside an unknown value is just data
    frame_key(&f, "evil");
    frame_kv_int(&f, "u64", INT64_MIN);
    frame_key(&f, "u");
    msgpack_pack_uint64(&f.pk, UINT64_MAX);
    frame_kv_str(&f, "str", "hello");
    frame_key(&f, "nul\0key"); //  not "nul": compared by length
    msgpack_pack_nil(&f.pk);
    frame_kv_str(&f, "id", "req-7");
    frame_key(&f, "b");
    msgpack_pack_bin(&f.pk, 3);
    msgpack_pack_bin_body(&f.pk, "abc", 3);
    frame_kv_str(&f, "tp", "00-1-2-01");
    //  Decoded in place: the body points into the frame, so keep it alive.
    vz_envelope_t env;
    assert_int_equal(
        vz_envelope_decode(&env, (const uint8_t *)f.sbuf.data, f.sbuf.size, NULL, NULL), 0);
    assert_string_equal(env.service, "auth");
    assert_string_equal(env.method, "login");
    assert_string_equal(env.id, "req-7");
    assert_string_equal(env.traceparent, "00-1-2-01");
    assert_int_equal(env.body_len, 3);
    assert_memory_equal(env.body, "abc", 3);
    msgpack_sbuffer_destroy(&f.sbuf);
}

static void test_caller_ignored(void **state)
{
    frame_t f;
    frame_request(&f, 1);
    frame_kv_str(&f, "who", "admin");
    vz_envelope_t env;
    assert_int_equal(frame_decode(&f, &env, NULL), 0);
    assert_string_equal(env.caller, "");
    //  And the encoder never writes it.
    strcpy(env.caller, "admin");
    uint8_t *buf;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    assert_null(memmem(buf, len, "admin", 5));
    free(buf);
}

//  ---------------------------------------------------------------------------
//  Random input

#define RANDOM_RUNS 100000

static void try_decode(const uint8_t *buf, size_t len)
{
    vz_envelope_t env;
    const char *reason = NULL;
    int rc = vz_envelope_decode(&env, buf, len, NULL, &reason);
    if (rc == 0) {
        assert_null(reason);
        check_invariants(&env, buf, len);
    } else {
        assert_int_equal(rc, VZ_EMALFORMED);
        assert_non_null(reason);
    }
}

static void test_random_bytes(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint8_t buf[256];
    for (int run = 0; run < RANDOM_RUNS; run++) {
        size_t len = rng_next(&seed) % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next(&seed);
        //  Half of them start like a map, to get past the first check.
        if (len && (run & 1))
            buf[0] = (uint8_t)(0x80 | (buf[0] & 0x0f));
        try_decode(buf, len);
    }
}

static void test_random_mutations(void **state)
{
    static const uint8_t body[40] = {9, 8, 7};
    vz_envelope_t env;
    assert_int_equal(
        vz_envelope_request(&env, "ratelimit", "check", "0123456789abcdef0123456789abcdef"), 0);
    strcpy(env.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    env.deadline_ms = 1700000000000;
    env.flags = VZ_FLAG_IDEMPOTENT;
    assert_int_equal(vz_envelope_ctx_set(&env, "sub", "user-42"), 0);
    assert_int_equal(vz_envelope_ctx_set(&env, "tier", "pro"), 0);
    env.body = body;
    env.body_len = sizeof(body);
    uint8_t *frame;
    size_t len;
    assert_int_equal(vz_envelope_encode(&env, &frame, &len), 0);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    uint64_t seed = 42;
    int decoded = 0;
    for (int run = 0; run < RANDOM_RUNS; run++) {
        memcpy(copy, frame, len);
        copy[rng_next(&seed) % len] = (uint8_t)rng_next(&seed);
        vz_envelope_t out;
        if (vz_envelope_decode(&out, copy, len, NULL, NULL) == 0)
            decoded++;
        try_decode(copy, len);
    }
    //  Most mutations land in strings or the body and still decode; if none
    //  did, the mutation loop would be testing nothing.
    assert_true(decoded > RANDOM_RUNS / 4);
    free(copy);
    free(frame);
}

//  ---------------------------------------------------------------------------
//  Helpers of the header

static void test_ctx_helpers(void **state)
{
    vz_envelope_t env;
    vz_envelope_init(&env, 0);
    assert_int_equal(env.kind, VZ_KIND_REQUEST);
    assert_int_equal(env.version, VZ_ENVELOPE_VERSION);
    assert_null(vz_envelope_ctx_get(&env, "sub"));
    assert_int_equal(vz_envelope_ctx_set(&env, "sub", "u1"), 0);
    assert_int_equal(vz_envelope_ctx_set(&env, "sub", "u2"), 0); //  replaces
    assert_int_equal(env.ctx_count, 1);
    assert_string_equal(vz_envelope_ctx_get(&env, "sub"), "u2");
    assert_int_equal(vz_envelope_ctx_set(&env, "", "x"), -EINVAL);
    char long_key[VZ_CTX_KEY_MAX + 1];
    fill(long_key, VZ_CTX_KEY_MAX, 'k');
    assert_int_equal(vz_envelope_ctx_set(&env, long_key, "x"), -ENAMETOOLONG);
    long_key[VZ_CTX_KEY_MAX - 1] = 0;
    assert_int_equal(vz_envelope_ctx_set(&env, long_key, "x"), 0);
    char long_value[VZ_CTX_VAL_MAX + 1];
    fill(long_value, VZ_CTX_VAL_MAX, 'v');
    assert_int_equal(vz_envelope_ctx_set(&env, "scope", long_value), -ENAMETOOLONG);
    for (int i = (int)env.ctx_count; i < VZ_CTX_MAX; i++) {
        char key[16];
        snprintf(key, sizeof(key), "e%d", i);
        assert_int_equal(vz_envelope_ctx_set(&env, key, "x"), 0);
    }
    assert_int_equal(vz_envelope_ctx_set(&env, "one-more", "x"), -ENOSPC);
    assert_int_equal(vz_envelope_ctx_set(&env, "sub", "u3"), 0); //  replacing still works
}

static void test_request_helper(void **state)
{
    vz_envelope_t req;
    memset(&req, 0x77, sizeof req);
    assert_int_equal(vz_envelope_request(&req, "auth", "login", NULL), 0);
    assert_int_equal(req.kind, VZ_KIND_REQUEST);
    assert_int_equal(req.version, VZ_ENVELOPE_VERSION);
    assert_string_equal(req.service, "auth");
    assert_string_equal(req.method, "login");
    assert_string_equal(req.id, "");
    assert_int_equal(req.ctx_count, 0);
    //  A name that does not fit leaves its field empty: no cut name goes out.
    char long_name[VZ_NAME_MAX + 8];
    fill(long_name, sizeof(long_name) - 1, 'n');
    assert_int_equal(vz_envelope_request(&req, long_name, "login", "r-1"), -ENAMETOOLONG);
    assert_string_equal(req.service, "");
    assert_string_equal(req.method, "login");
    assert_string_equal(req.id, "r-1");
    assert_int_equal(vz_envelope_request(&req, "auth", long_name, NULL), -ENAMETOOLONG);
    assert_string_equal(req.method, "");
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_true(vz_envelope_encode(&req, &buf, &len) < 0);
    free(buf);
}

static void test_reply_helpers(void **state)
{
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "auth", "login", "r-1"), 0);
    strcpy(req.traceparent, "00-aa-bb-01");
    strcpy(req.caller, "gateway");
    req.deadline_ms = 99;
    req.body = (const uint8_t *)"x";
    req.body_len = 1;
    assert_int_equal(vz_envelope_ctx_set(&req, "sub", "u"), 0);

    vz_envelope_t rep;
    memset(&rep, 0x77, sizeof(rep));
    vz_envelope_reply_to(&rep, &req);
    assert_int_equal(rep.kind, VZ_KIND_REPLY);
    assert_int_equal(rep.version, VZ_ENVELOPE_VERSION);
    assert_string_equal(rep.id, "r-1");
    assert_string_equal(rep.service, "auth");
    assert_string_equal(rep.method, "login");
    assert_string_equal(rep.traceparent, "00-aa-bb-01");
    assert_string_equal(rep.caller, "");
    assert_null(rep.body);
    assert_int_equal(rep.ctx_count, 0);
    assert_true(rep.deadline_ms == 0);

    char long_message[600];
    fill(long_message, sizeof(long_message) - 1, 'm');
    vz_envelope_error_to(&rep, &req, VZ_ERR_FORBIDDEN, long_message);
    assert_int_equal(rep.kind, VZ_KIND_ERROR);
    assert_string_equal(rep.error_code, VZ_ERR_FORBIDDEN);
    assert_int_equal(strlen(rep.error_message), VZ_ERRMSG_MAX - 1);
    assert_string_equal(rep.id, "r-1");
    vz_envelope_error_to(&rep, &req, "timeout", NULL);
    assert_string_equal(rep.error_message, "");
    vz_envelope_t out;
    size_t len;
    uint8_t *buf = s_round_trip(&rep, &out, &len);
    assert_same(&rep, &out);
    free(buf);
}

static void test_encode_refuses(void **state)
{
    vz_envelope_t env;
    uint8_t *buf = NULL;
    size_t len = 0;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL); //  no service
    strcpy(env.service, "a");
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL); //  no method
    strcpy(env.method, "b");
    env.deadline_ms = -1;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL);
    env.deadline_ms = 0;
    env.kind = (vz_kind_t)9;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL);
    env.kind = VZ_KIND_ERROR;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL); //  no code
    env.version = 2;
    strcpy(env.error_code, "x");
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL);
    //  ctx filled by hand with what the decoder refuses.
    env.version = VZ_ENVELOPE_VERSION;
    env.ctx_count = 2;
    strcpy(env.ctx[0].key, "sub");
    strcpy(env.ctx[0].value, "a");
    strcpy(env.ctx[1].key, "sub");
    strcpy(env.ctx[1].value, "b");
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL); //  duplicate key
    env.ctx[1].key[0] = 0;
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), -EINVAL); //  empty key
    strcpy(env.ctx[1].key, "tier");
    assert_int_equal(vz_envelope_encode(&env, &buf, &len), 0);
    free(buf);
    buf = NULL;
    assert_null(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_reply_has_no_service),
        cmocka_unit_test(test_empty_body_forms),
        cmocka_unit_test(test_body_at_frame_limit),
        cmocka_unit_test(test_custom_limits),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_huge_declared_lengths),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_map_entries),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_unknown_keys_skipped),
        cmocka_unit_test(test_caller_ignored),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_ctx_helpers),
        cmocka_unit_test(test_request_helper),
        cmocka_unit_test(test_reply_helpers),
        cmocka_unit_test(test_encode_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
