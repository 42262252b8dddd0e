/*  codec - msgpack bodies of the ratelimit service (contract D)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "codec.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define S_DEPTH_MAX 8

typedef struct {
    const uint8_t *p;   //  next byte
    const uint8_t *end; //  one past the last byte
} s_cur_t;

static bool s_take(s_cur_t *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return false;
    *out = c->p;
    c->p += n;
    return true;
}

//  Big-endian unsigned of n bytes.
static bool s_be(s_cur_t *c, size_t n, uint64_t *v)
{
    const uint8_t *b;
    if (!s_take(c, n, &b))
        return false;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = (*v << 8) | b[i];
    return true;
}

//  A str header; *len is its byte length. False when the next item is not a str.
static bool s_str(s_cur_t *c, const uint8_t **data, size_t *len)
{
    if (c->p >= c->end)
        return false;
    uint8_t t = *c->p++;
    uint64_t n;
    if ((t & 0xe0) == 0xa0)
        n = t & 0x1f;
    else if (t == 0xd9 || t == 0xda || t == 0xdb) {
        if (!s_be(c, (size_t)1 << (t - 0xd9), &n))
            return false;
    } else
        return false;
    *len = (size_t)n;
    return s_take(c, *len, data);
}

//  Skip one item of any type, nested containers included.
static bool s_skip(s_cur_t *c, int depth)
{
    if (c->p >= c->end || depth > S_DEPTH_MAX)
        return false;
    uint8_t t = *c->p++;
    uint64_t n = 0, items = 0;
    const uint8_t *ignored;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        return true;
    if ((t & 0xe0) == 0xa0)
        return s_take(c, t & 0x1f, &ignored);
    if ((t & 0xf0) == 0x90)
        items = t & 0x0f;
    else if ((t & 0xf0) == 0x80)
        items = 2 * (uint64_t)(t & 0x0f);
    else
        switch (t) {
        case 0xc4:
        case 0xc5:
        case 0xc6: //  bin 8/16/32
            return s_be(c, (size_t)1 << (t - 0xc4), &n) && s_take(c, (size_t)n, &ignored);
        case 0xd9:
        case 0xda:
        case 0xdb: //  str 8/16/32
            return s_be(c, (size_t)1 << (t - 0xd9), &n) && s_take(c, (size_t)n, &ignored);
        case 0xc7:
        case 0xc8:
        case 0xc9: //  ext 8/16/32: length, type, data
            return s_be(c, (size_t)1 << (t - 0xc7), &n) && s_take(c, (size_t)n + 1, &ignored);
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: //  fixext
            return s_take(c, ((size_t)1 << (t - 0xd4)) + 1, &ignored);
        case 0xca:
            return s_take(c, 4, &ignored);
        case 0xcb:
            return s_take(c, 8, &ignored);
        case 0xcc:
        case 0xd0:
            return s_take(c, 1, &ignored);
        case 0xcd:
        case 0xd1:
            return s_take(c, 2, &ignored);
        case 0xce:
        case 0xd2:
            return s_take(c, 4, &ignored);
        case 0xcf:
        case 0xd3:
            return s_take(c, 8, &ignored);
        case 0xdc:
        case 0xdd: //  array 16/32
            if (!s_be(c, t == 0xdc ? 2 : 4, &items))
                return false;
            break;
        case 0xde:
        case 0xdf: //  map 16/32
            if (!s_be(c, t == 0xde ? 2 : 4, &items))
                return false;
            items *= 2;
            break;
        default:
            return false; //  0xc1 never appears in msgpack
        }
    //  Every item takes at least one byte: a count beyond what is left is a lie.
    if (items > (uint64_t)(c->end - c->p))
        return false;
    for (uint64_t i = 0; i < items; i++)
        if (!s_skip(c, depth + 1))
            return false;
    return true;
}

//  A non-negative integer of any encoding.
static bool s_uint(s_cur_t *c, uint64_t *v)
{
    if (c->p >= c->end)
        return false;
    uint8_t t = *c->p++;
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    if (t >= 0xcc && t <= 0xcf)
        return s_be(c, (size_t)1 << (t - 0xcc), v);
    if (t >= 0xd0 && t <= 0xd3) {
        size_t n = (size_t)1 << (t - 0xd0);
        if (!s_be(c, n, v))
            return false;
        //  Signed: refuse when the sign bit of its width is set.
        return !(*v >> (8 * n - 1));
    }
    return false;
}

static int s_copy(char *dst, size_t n, const uint8_t *src, size_t len, const char **reason)
{
    if (len >= n) {
        *reason = "string too long";
        return -EINVAL;
    }
    if (memchr(src, '\0', len)) {
        *reason = "NUL in string";
        return -EINVAL;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int vz_rl_request_decode(vz_rl_request_t *req, const uint8_t *buf, size_t len, const char **reason)
{
    assert(req && reason && (buf || !len));
    memset(req, 0, sizeof *req);
    req->cost = 1;
    s_cur_t c = {buf, buf + len};
    uint64_t pairs = 0;
    if (len == 0)
        ; //  an empty body is an empty map: every field defaulted
    else if ((buf[0] & 0xf0) == 0x80) {
        pairs = buf[0] & 0x0f;
        c.p++;
    } else if (buf[0] == 0xde || buf[0] == 0xdf) {
        c.p++;
        if (!s_be(&c, buf[0] == 0xde ? 2 : 4, &pairs) || pairs > len) {
            *reason = "truncated";
            return -EINVAL;
        }
    } else {
        *reason = "body is not a map";
        return -EINVAL;
    }
    static const struct {
        const char *key; //  field name on the wire
        size_t offset;   //  into vz_rl_request_t
        size_t size;     //  capacity
    } fields[] = {
        {"ip", offsetof(vz_rl_request_t, ip), VZ_RL_IP_MAX},
        {"sub", offsetof(vz_rl_request_t, sub), VZ_RL_SUB_MAX},
        {"key", offsetof(vz_rl_request_t, key), VZ_RL_KEY_MAX},
        {"tier", offsetof(vz_rl_request_t, tier), VZ_RL_TIER_MAX},
        {"route", offsetof(vz_rl_request_t, route), VZ_RL_ROUTE_MAX},
    };
    for (uint64_t i = 0; i < pairs; i++) {
        const uint8_t *k;
        size_t klen;
        if (!s_str(&c, &k, &klen)) {
            *reason = "key is not a string or truncated";
            return -EINVAL;
        }
        size_t f = 0;
        while (f < sizeof fields / sizeof fields[0] &&
               !(strlen(fields[f].key) == klen && memcmp(fields[f].key, k, klen) == 0))
            f++;
        if (f < sizeof fields / sizeof fields[0]) {
            const uint8_t *v;
            size_t vlen;
            if (c.p < c.end && *c.p == 0xc0) //  nil: the field stays empty
                c.p++;
            else if (!s_str(&c, &v, &vlen)) {
                *reason = "wrong type for a string field";
                return -EINVAL;
            } else if (s_copy((char *)req + fields[f].offset, fields[f].size, v, vlen, reason) < 0)
                return -EINVAL;
        } else if (klen == 4 && memcmp(k, "cost", 4) == 0) {
            if (!s_uint(&c, &req->cost) || req->cost > VZ_RL_COST_MAX) {
                *reason = "cost: expected an integer in 0..1000000";
                return -EINVAL;
            }
        } else if (!s_skip(&c, 1)) {
            *reason = "malformed value";
            return -EINVAL;
        }
    }
    if (c.p != c.end) {
        *reason = "trailing bytes";
        return -EINVAL;
    }
    return 0;
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_pack_bool(msgpack_packer *pk, bool b)
{
    if (b)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static uint8_t *s_finish(msgpack_sbuffer *sb, size_t *len_p)
{
    *len_p = sb->size;
    return (uint8_t *)msgpack_sbuffer_release(sb);
}

uint8_t *vz_rl_answer_encode(const vz_rl_answer_t *a, size_t *len_p)
{
    assert(a && len_p);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    s_pack_str(&pk, "allowed");
    s_pack_bool(&pk, a->allowed);
    s_pack_str(&pk, "limit");
    msgpack_pack_uint64(&pk, a->limit);
    s_pack_str(&pk, "remaining");
    msgpack_pack_uint64(&pk, a->remaining);
    s_pack_str(&pk, "reset");
    msgpack_pack_uint64(&pk, a->reset);
    s_pack_str(&pk, "retry_after");
    msgpack_pack_uint64(&pk, a->retry_after);
    s_pack_str(&pk, "policy");
    s_pack_str(&pk, a->policy);
    s_pack_str(&pk, "window");
    msgpack_pack_uint32(&pk, a->window);
    s_pack_str(&pk, "mode");
    s_pack_str(&pk, vz_rl_mode_name(a->mode));
    s_pack_str(&pk, "shadow");
    s_pack_bool(&pk, a->shadow);
    return s_finish(&sb, len_p);
}

uint8_t *vz_rl_policies_encode(const vz_rl_policies_t *limits, size_t *len_p)
{
    assert(limits && len_p);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "shadow");
    s_pack_bool(&pk, vz_rl_policies_shadow(limits));
    s_pack_str(&pk, "policies");
    size_t count = vz_rl_policies_count(limits);
    msgpack_pack_array(&pk, count);
    for (size_t i = 0; i < count; i++) {
        const vz_rl_policy_t *p = vz_rl_policies_at(limits, i);
        msgpack_pack_map(&pk, 9);
        s_pack_str(&pk, "name");
        s_pack_str(&pk, p->name);
        s_pack_str(&pk, "route");
        s_pack_str(&pk, p->routes);
        s_pack_str(&pk, "tier");
        s_pack_str(&pk, p->tiers);
        s_pack_str(&pk, "by");
        s_pack_str(&pk, p->by_text);
        s_pack_str(&pk, "algorithm");
        s_pack_str(&pk, vz_rl_algorithm_name(p->algorithm));
        s_pack_str(&pk, "limit");
        msgpack_pack_uint64(&pk, p->limit);
        s_pack_str(&pk, "window");
        msgpack_pack_uint32(&pk, p->window_s);
        s_pack_str(&pk, "burst");
        msgpack_pack_uint64(&pk, p->burst);
        s_pack_str(&pk, "shadow");
        s_pack_bool(&pk, p->shadow);
    }
    return s_finish(&sb, len_p);
}

const char *vz_rl_mode_name(vz_rl_mode_t mode)
{
    return mode == VZ_RL_MODE_REDIS       ? "redis"
           : mode == VZ_RL_MODE_FAIL_OPEN ? "fail_open"
                                          : "fail_closed";
}
