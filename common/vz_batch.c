/*  vz_batch - the batch convention's bodies: exact-size encoders, bounded decoders
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The format is three msgpack types (array, bin, str), so the encoder
 *  writes them by hand into a buffer sized in a first pass: no packer, no
 *  reallocation. The decoder is a cursor that refuses any length past the
 *  end before using it.
 */
#include "vz_batch.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

//  Bounded cursor over the received bytes.
typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} s_cursor_t;

static bool s_uint(s_cursor_t *c, int bytes, size_t *out)
{
    if (c->end - c->p < bytes)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | *c->p++;
    *out = (size_t)v;
    return true;
}

static bool s_array(s_cursor_t *c, size_t *n)
{
    if (c->p == c->end)
        return false;
    uint8_t b = *c->p++;
    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
        return true;
    }
    if (b == 0xdc)
        return s_uint(c, 2, n);
    if (b == 0xdd)
        return s_uint(c, 4, n);
    return false;
}

//  A str (if str_ok) or a bin (if bin_ok); its bytes stay in place.
static bool s_bytes(s_cursor_t *c, bool str_ok, bool bin_ok, const uint8_t **data, size_t *len)
{
    if (c->p == c->end)
        return false;
    uint8_t b = *c->p++;
    bool ok;
    if ((b & 0xe0) == 0xa0) {
        *len = b & 0x1f;
        ok = str_ok;
    } else if (b == 0xd9 || b == 0xda || b == 0xdb)
        ok = str_ok && s_uint(c, b == 0xd9 ? 1 : b == 0xda ? 2 : 4, len);
    else if (b == 0xc4 || b == 0xc5 || b == 0xc6)
        ok = bin_ok && s_uint(c, b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4, len);
    else
        ok = false;
    if (!ok || (size_t)(c->end - c->p) < *len)
        return false;
    *data = c->p;
    c->p += *len;
    return true;
}

static int s_fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return -EINVAL;
}

static int s_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                    size_t *n_p, const char **reason, bool reply)
{
    assert(items && n_p);
    s_cursor_t c = {buf, buf + len};
    size_t n;
    if (!buf || !s_array(&c, &n))
        return s_fail(reason, "batch body is not an array");
    if (n == 0)
        return s_fail(reason, "batch is empty");
    if (n > max)
        return s_fail(reason, "batch has too many items");
    for (size_t i = 0; i < n; i++) {
        vz_batch_item_t *item = &items[i];
        memset(item, 0, sizeof *item);
        if (!reply) {
            if (!s_bytes(&c, false, true, &item->data, &item->len))
                return s_fail(reason, "batch item is not a bin");
            continue;
        }
        size_t two;
        const uint8_t *code;
        if (!s_array(&c, &two) || two != 2 || !s_bytes(&c, true, false, &code, &item->code_len))
            return s_fail(reason, "batch result is not [code, payload]");
        item->code = (const char *)code;
        //  A body is bin, an error message str: the code says which.
        bool error = item->code_len > 0;
        if (!s_bytes(&c, error, !error, &item->data, &item->len))
            return s_fail(reason, "batch result payload has the wrong type");
    }
    if (c.p != c.end)
        return s_fail(reason, "trailing bytes after the batch");
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
