/*  vz_batch - the batch convention's bodies: exact-size encoders, bounded decoders
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The format is three msgpack types (array, bin, str), so the encoder
 *  writes them by hand into a buffer sized in a first pass: no packer, no
 *  reallocation. The decoder is vz_mp's bounded reader: it refuses any
 *  length past the end before using it.
 */
#include "vz_batch.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vz_mp.h"

typedef enum { S_BIN, S_STR } s_type_t;

static size_t s_head_size(size_t len, s_type_t type)
{
    if (type == S_STR && len < 32)
        return 1;
    return len < 256 ? 2 : len < 65536 ? 3 : 5;
}

static size_t s_array_head_size(size_t n)
{
    return n < 16 ? 1 : 3;
}

static uint8_t *s_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *s_put_array(uint8_t *p, size_t n)
{
    if (n < 16) {
        *p++ = (uint8_t)(0x90 | n);
        return p;
    }
    *p++ = 0xdc;
    return s_be(p, n, 2);
}

static uint8_t *s_put(uint8_t *p, const void *data, size_t len, s_type_t type)
{
    if (type == S_STR && len < 32)
        *p++ = (uint8_t)(0xa0 | len);
    else if (len < 256) {
        *p++ = type == S_STR ? 0xd9 : 0xc4;
        *p++ = (uint8_t)len;
    } else if (len < 65536) {
        *p++ = type == S_STR ? 0xda : 0xc5;
        p = s_be(p, len, 2);
    } else {
        *p++ = type == S_STR ? 0xdb : 0xc6;
        p = s_be(p, len, 4);
    }
    if (len)
        memcpy(p, data, len);
    return p + len;
}

uint8_t *vz_batch_request_encode(const vz_batch_item_t *items, size_t n, size_t *len_p)
{
    assert(items && len_p && n >= 1 && n <= VZ_BATCH_MAX);
    size_t size = s_array_head_size(n);
    for (size_t i = 0; i < n; i++) {
        assert(items[i].len <= UINT32_MAX);
        size += s_head_size(items[i].len, S_BIN) + items[i].len;
    }
    uint8_t *buf = malloc(size), *p = buf;
    assert(buf);
    p = s_put_array(p, n);
    for (size_t i = 0; i < n; i++)
        p = s_put(p, items[i].data, items[i].len, S_BIN);
    assert((size_t)(p - buf) == size);
    *len_p = size;
    return buf;
}

uint8_t *vz_batch_reply_encode(const vz_batch_item_t *items, size_t n, size_t *len_p)
{
    assert(items && len_p && n >= 1 && n <= VZ_BATCH_MAX);
    size_t size = s_array_head_size(n);
    for (size_t i = 0; i < n; i++) {
        const char *code = items[i].code ? items[i].code : "";
        s_type_t type = *code ? S_STR : S_BIN;
        size += 1 + s_head_size(strlen(code), S_STR) + strlen(code) +
                s_head_size(items[i].len, type) + items[i].len;
    }
    uint8_t *buf = malloc(size), *p = buf;
    assert(buf);
    p = s_put_array(p, n);
    for (size_t i = 0; i < n; i++) {
        const char *code = items[i].code ? items[i].code : "";
        p = s_put_array(p, 2);
        p = s_put(p, code, strlen(code), S_STR);
        p = s_put(p, items[i].data, items[i].len, *code ? S_STR : S_BIN);
    }
    assert((size_t)(p - buf) == size);
    *len_p = size;
    return buf;
}

static int s_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max, size_t *n_p,
                    const char **reason, bool reply)
{
    assert(items && n_p);
    //  Bodies are bounded by the frame that carries them, not by a string
    //  limit; a reply's [code, payload] pairs are arrays of 2.
    const vz_mp_limits_t limits = {
        .max_string = UINT32_MAX,
        .max_count = max > 2 ? max : 2,
        .max_depth = 0,
    };
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, &limits);
    uint32_t n;
    int rc = vz_mp_read_array(&r, &n, "batch body is not an array");
    if (rc == 0 && n == 0)
        rc = vz_mp_fail(&r, "batch is empty");
    if (rc == 0 && n > max)
        rc = vz_mp_fail(&r, "batch has too many items");
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        vz_batch_item_t *item = &items[i];
        memset(item, 0, sizeof *item);
        uint32_t item_len = 0, code_len = 0, two = 0;
        if (!reply) {
            rc = vz_mp_read_bin(&r, &item->data, &item_len, "batch item is not a bin");
            item->len = item_len;
            continue;
        }
        const char *shape = "batch result is not [code, payload]";
        rc = vz_mp_read_array(&r, &two, shape);
        if (rc == 0 && two != 2)
            rc = vz_mp_fail(&r, shape);
        if (rc == 0)
            rc = vz_mp_read_str(&r, &item->code, &code_len, shape);
        //  Callers copy the code into a C string: a NUL would cut it short
        //  into another code (the envelope refuses NUL for the same reason).
        if (rc == 0 && code_len > 0 && memchr(item->code, 0, code_len))
            rc = vz_mp_fail(&r, "NUL in batch result code");
        if (rc < 0)
            break;
        item->code_len = code_len;
        //  A body is bin, an error message str: the code says which.
        const char *wrong = "batch result payload has the wrong type";
        if (code_len > 0) {
            const char *message;
            rc = vz_mp_read_str(&r, &message, &item_len, wrong);
            item->data = rc == 0 ? (const uint8_t *)message : NULL;
        } else
            rc = vz_mp_read_bin(&r, &item->data, &item_len, wrong);
        item->len = item_len;
    }
    if (rc == 0)
        rc = vz_mp_finish(&r);
    if (rc < 0) {
        if (reason)
            *reason = r.reason;
        return rc;
    }
    *n_p = n;
    return 0;
}

int vz_batch_request_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                            size_t *n_p, const char **reason)
{
    return s_decode(buf, len, items, max, n_p, reason, false);
}

int vz_batch_reply_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                          size_t *n_p, const char **reason)
{
    return s_decode(buf, len, items, max, n_p, reason, true);
}
