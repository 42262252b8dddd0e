/*  gw_codec - msgpack bodies of the two contracts the gateway calls itself
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gw_codec.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_common.h"

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static uint8_t *s_release(msgpack_sbuffer *sb, size_t *len_p)
{
    *len_p = sb->size;
    return (uint8_t *)msgpack_sbuffer_release(sb);
}

//  An sbuffer holding cap bytes before its first write. msgpack_sbuffer
//  would start at 8 KiB, and these bodies live as long as their request:
//  64 requests in flight held half a MB for bodies of ~100 bytes. cap is
//  an upper bound, so the packer never reallocates.
static void s_sbuffer_init(msgpack_sbuffer *sb, size_t cap)
{
    msgpack_sbuffer_init(sb);
    sb->data = malloc(cap);
    if (!sb->data)
        abort(); //  out of memory
    sb->alloc = cap;
}

uint8_t *gw_codec_apikey_request(const char *key, size_t *len_p)
{
    msgpack_sbuffer sb;
    s_sbuffer_init(&sb, 16 + strlen(key)); //  map, "key", str header
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    s_pack_str(&pk, "key");
    s_pack_str(&pk, key);
    return s_release(&sb, len_p);
}

uint8_t *gw_codec_rate_request(const char *ip, const char *sub, const char *key, const char *tier,
                               const char *route, uint64_t cost, size_t *len_p)
{
    const char *pairs[][2] = {
        {"ip", ip}, {"sub", sub}, {"key", key}, {"tier", tier}, {"route", route}};
    size_t cap = 32; //  map, "cost" and a uint64
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        cap += 16 + (pairs[i][1] ? strlen(pairs[i][1]) : 0); //  two str headers, the key
    msgpack_sbuffer sb;
    s_sbuffer_init(&sb, cap);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        s_pack_str(&pk, pairs[i][0]);
        s_pack_str(&pk, pairs[i][1] ? pairs[i][1] : "");
    }
    s_pack_str(&pk, "cost");
    msgpack_pack_uint64(&pk, cost);
    return s_release(&sb, len_p);
}

//  The root map of a reply, or NULL: one object, nothing after it.
static const msgpack_object_map *s_root_map(msgpack_unpacked *msg, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    if (!buf || msgpack_unpack_next(msg, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || msg->data.type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &msg->data.via.map;
}

static bool s_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

//  A str value into out; false for another type, an embedded NUL or no room.
static bool s_str_into(const msgpack_object *v, char *out, size_t n)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= n ||
        memchr(v->via.str.ptr, '\0', v->via.str.size))
        return false;
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = '\0';
    return true;
}

int gw_codec_apikey_decode(const uint8_t *buf, size_t len, bool *valid, vz_edge_identity_t *id)
{
    assert(valid && id);
    memset(id, 0, sizeof *id);
    id->auth = VZ_AUTHCTX_BY_API_KEY;
    *valid = false;
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    const msgpack_object_map *map = s_root_map(&msg, buf, len);
    bool ok = map != NULL, seen_valid = false;
    for (uint32_t i = 0; ok && i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
        if (s_key_is(k, "valid")) {
            ok = v->type == MSGPACK_OBJECT_BOOLEAN;
            *valid = ok && v->via.boolean;
            seen_valid = ok;
        } else if (s_key_is(k, "sub"))
            ok = s_str_into(v, id->sub, sizeof id->sub);
        else if (s_key_is(k, "scope"))
            ok = s_str_into(v, id->scope, sizeof id->scope);
        else if (s_key_is(k, "tier"))
            ok = s_str_into(v, id->tier, sizeof id->tier);
        else if (s_key_is(k, "kid"))
            ok = s_str_into(v, id->kid, sizeof id->kid);
    }
    msgpack_unpacked_destroy(&msg);
    if (!ok || !seen_valid || (*valid && !id->sub[0])) {
        *valid = false;
        return -EINVAL;
    }
    if (strcmp(id->tier, VZ_AUTHCTX_TIER_PREMIUM) != 0)
        vz_strlcpy(id->tier, VZ_AUTHCTX_TIER_FREE, sizeof id->tier);
    return 0;
}

int gw_codec_rate_decode(const uint8_t *buf, size_t len, vz_edge_rate_t *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    const msgpack_object_map *map = s_root_map(&msg, buf, len);
    bool ok = map != NULL, seen_allowed = false;
    for (uint32_t i = 0; ok && i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
        uint64_t *field = s_key_is(k, "limit")         ? &out->limit
                          : s_key_is(k, "remaining")   ? &out->remaining
                          : s_key_is(k, "reset")       ? &out->reset
                          : s_key_is(k, "retry_after") ? &out->retry_after
                          : s_key_is(k, "window")      ? &out->window
                                                       : NULL;
        if (field) {
            ok = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
            *field = ok ? v->via.u64 : 0;
        } else if (s_key_is(k, "allowed")) {
            ok = v->type == MSGPACK_OBJECT_BOOLEAN;
            out->allowed = ok && v->via.boolean;
            seen_allowed = ok;
        } else if (s_key_is(k, "policy"))
            ok = s_str_into(v, out->policy, sizeof out->policy);
    }
    msgpack_unpacked_destroy(&msg);
    //  The policy name goes into a header: only a safe spelling.
    size_t n = strlen(out->policy);
    if (!ok || !seen_allowed ||
        strspn(out->policy, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            n) {
        memset(out, 0, sizeof *out);
        return -EINVAL;
    }
    return 0;
}
