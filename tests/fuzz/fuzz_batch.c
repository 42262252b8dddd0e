/*  fuzz_batch - libFuzzer target for the batch request and reply decoders (vz_batch.h)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every input goes through both decoders. What one accepts must be
 *  msgpack that msgpack-c reads as one array using every byte (the two
 *  readers agree), every item must point inside the input, and encoding
 *  the items again must decode to the same items.
 */
#include "fuzz.h"
#include "vz_batch.h"

#include <msgpack.h>

//  msgpack-c reads buf as exactly one array.
static void s_check_msgpack(const uint8_t *buf, size_t len, size_t n)
{
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    size_t off = 0;
    FZ_CHECK(msgpack_unpack_next(&msg, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS);
    FZ_CHECK(off == len && msg.data.type == MSGPACK_OBJECT_ARRAY && msg.data.via.array.size == n);
    msgpack_unpacked_destroy(&msg);
}

static void s_check_inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    FZ_CHECK(n == 0 || (p >= buf && p + n <= buf + len));
}

//  vz_batch_request_decode or vz_batch_reply_decode.
typedef int(s_decode_fn)(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                         size_t *n, const char **reason);

//  Decode data with decode into items (*n of them); false when it was
//  refused, with a reason. What it accepts is one msgpack array of
//  1..VZ_BATCH_MAX items, each inside the input.
static bool s_decoded(s_decode_fn *decode, const uint8_t *data, size_t size, vz_batch_item_t *items,
                      size_t *n)
{
    const char *reason = NULL;
    *n = 0;
    if (decode(data, size, items, VZ_BATCH_MAX, n, &reason) != 0) {
        FZ_CHECK(reason != NULL);
        return false;
    }
    FZ_CHECK(*n >= 1 && *n <= VZ_BATCH_MAX);
    s_check_msgpack(data, size, *n);
    for (size_t i = 0; i < *n; i++)
        s_check_inside(items[i].data, items[i].len, data, size);
    return true;
}

//  The encoded items (buf) decode with decode to the same n bodies, in again
//  (pointing into buf).
static void s_check_again(s_decode_fn *decode, const uint8_t *buf, size_t len,
                          const vz_batch_item_t *items, vz_batch_item_t *again, size_t n)
{
    size_t m = 0;
    const char *reason = NULL;
    FZ_CHECK(decode(buf, len, again, VZ_BATCH_MAX, &m, &reason) == 0 && m == n);
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(again[i].len == items[i].len);
        FZ_CHECK(items[i].len == 0 || memcmp(again[i].data, items[i].data, items[i].len) == 0);
    }
}

static void s_request(const uint8_t *data, size_t size)
{
    static vz_batch_item_t items[VZ_BATCH_MAX], again[VZ_BATCH_MAX];
    size_t n;
    if (!s_decoded(vz_batch_request_decode, data, size, items, &n))
        return;
    //  A smaller max refuses what does not fit.
    size_t m = 0;
    const char *reason = NULL;
    if (n > 1)
        FZ_CHECK(vz_batch_request_decode(data, size, again, n - 1, &m, &reason) == VZ_EMALFORMED);
    size_t len;
    uint8_t *buf = vz_batch_request_encode(items, n, &len);
    s_check_again(vz_batch_request_decode, buf, len, items, again, n);
    free(buf);
}

static void s_reply(const uint8_t *data, size_t size)
{
    static vz_batch_item_t items[VZ_BATCH_MAX], again[VZ_BATCH_MAX];
    static char codes[VZ_BATCH_MAX][256];
    size_t n;
    if (!s_decoded(vz_batch_reply_decode, data, size, items, &n))
        return;
    bool round_trip = true;
    for (size_t i = 0; i < n; i++) {
        s_check_inside((const uint8_t *)items[i].code, items[i].code_len, data, size);
        //  The encoder takes the code as a C string: round trip the ones it can say.
        FZ_CHECK(!memchr(items[i].code, 0, items[i].code_len));
        if (items[i].code_len >= sizeof codes[i])
            round_trip = false;
        else {
            memcpy(codes[i], items[i].code, items[i].code_len);
            codes[i][items[i].code_len] = '\0';
            items[i].code = codes[i];
        }
    }
    if (!round_trip)
        return;
    size_t len;
    uint8_t *buf = vz_batch_reply_encode(items, n, &len);
    s_check_again(vz_batch_reply_decode, buf, len, items, again, n);
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(again[i].code_len == items[i].code_len);
        FZ_CHECK(memcmp(again[i].code, items[i].code, items[i].code_len) == 0);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_request(data, size);
    s_reply(data, size);
    return 0;
}
