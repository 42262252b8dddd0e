/*  vz_mp - the one bounded msgpack reader and the pack helpers of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Type bytes follow the msgpack specification (github.com/msgpack/msgpack
 *  spec.md, "Formats"). Every length is read big-endian and compared with
 *  the bytes left before the cursor moves over it.
 */
#include "vz_mp.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const vz_mp_limits_t vz_mp_limits_default = {
    .max_string = 1024 * 1024,
    .max_count = 1024,
    .max_depth = 8,
};

void vz_mp_reader_init(vz_mp_reader_t *self, const void *buf, size_t len,
                       const vz_mp_limits_t *limits)
{
    assert(self);
    assert(buf || len == 0);
    static const uint8_t empty[1] = {0};
    //  NULL + 0 is undefined behaviour: an empty input points somewhere valid.
    self->p = buf ? buf : empty;
    self->end = self->p + len;
    self->limits = limits ? *limits : vz_mp_limits_default;
    self->reason = NULL;
}

int vz_mp_fail(vz_mp_reader_t *self, const char *reason)
{
    if (!self->reason)
        self->reason = reason;
    return VZ_EMALFORMED;
}

//  The n-byte (n <= 8) big-endian unsigned number at the cursor.
static int s_read_be(vz_mp_reader_t *self, size_t n, uint64_t *out)
{
    if (vz_mp_left(self) < n)
        return vz_mp_fail(self, "truncated");
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | self->p[i];
    self->p += n;
    *out = value;
    return 0;
}

//  The header of a map (is_map) or an array: fix, 16- or 32-bit count.
static int s_read_container(vz_mp_reader_t *self, bool is_map, uint32_t *count,
                            const char *type_reason)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p;
    uint8_t fix = is_map ? 0x80 : 0x90, wide = is_map ? 0xde : 0xdc;
    uint64_t n;
    if ((tag & 0xf0) == fix) {
        self->p++;
        n = tag & 0x0f;
    } else if (tag == wide || tag == wide + 1) {
        self->p++;
        if (s_read_be(self, tag == wide ? 2 : 4, &n) < 0)
            return VZ_EMALFORMED;
    } else
        return vz_mp_fail(self, type_reason ? type_reason : "wrong type");
    if (n > self->limits.max_count)
        return vz_mp_fail(self, is_map ? "map too large" : "array too large");
    //  Every value takes at least one byte: a count beyond that is a lie.
    if (n > vz_mp_left(self) / (is_map ? 2 : 1))
        return vz_mp_fail(self, "truncated");
    *count = (uint32_t)n;
    return 0;
}

int vz_mp_read_map(vz_mp_reader_t *self, uint32_t *count, const char *type_reason)
{
    return s_read_container(self, true, count, type_reason);
}

int vz_mp_read_array(vz_mp_reader_t *self, uint32_t *count, const char *type_reason)
{
    return s_read_container(self, false, count, type_reason);
}

int vz_mp_read_str_slow(vz_mp_reader_t *self, const char **data, uint32_t *len,
                        const char *type_reason)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p;
    uint64_t n;
    if (tag >= 0xa0 && tag <= 0xbf) {
        self->p++;
        n = tag & 0x1f;
    } else if (tag >= 0xd9 && tag <= 0xdb) {
        self->p++;
        if (s_read_be(self, (size_t)1 << (tag - 0xd9), &n) < 0)
            return VZ_EMALFORMED;
    } else
        return vz_mp_fail(self, type_reason ? type_reason : "wrong type");
    if (n > self->limits.max_string)
        return vz_mp_fail(self, "string too long");
    if (n > vz_mp_left(self))
        return vz_mp_fail(self, "truncated");
    *data = (const char *)self->p;
    *len = (uint32_t)n;
    self->p += n;
    return 0;
}

int vz_mp_read_bin(vz_mp_reader_t *self, const uint8_t **data, uint32_t *len,
                   const char *type_reason)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p;
    if (tag < 0xc4 || tag > 0xc6)
        return vz_mp_fail(self, type_reason ? type_reason : "wrong type");
    self->p++;
    uint64_t n;
    if (s_read_be(self, (size_t)1 << (tag - 0xc4), &n) < 0)
        return VZ_EMALFORMED;
    if (n > vz_mp_left(self))
        return vz_mp_fail(self, "truncated");
    *data = n ? self->p : NULL;
    *len = (uint32_t)n;
    self->p += n;
    return 0;
}

//  Any integer as a sign and a magnitude: *negative and *magnitude (for a
//  negative value, -value as unsigned, so INT64_MIN fits).
static int s_read_integer(vz_mp_reader_t *self, bool *negative, uint64_t *magnitude,
                          const char *type_reason)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p++;
    uint64_t value;
    *negative = false;
    if (tag <= 0x7f)
        value = tag;
    else if (tag >= 0xe0) { //  negative fixint, -32..-1
        *negative = true;
        value = (uint64_t)(256 - tag);
    } else if (tag >= 0xcc && tag <= 0xcf) {
        if (s_read_be(self, (size_t)1 << (tag - 0xcc), &value) < 0)
            return VZ_EMALFORMED;
    } else if (tag >= 0xd0 && tag <= 0xd3) {
        size_t n = (size_t)1 << (tag - 0xd0);
        if (s_read_be(self, n, &value) < 0)
            return VZ_EMALFORMED;
        //  Two's complement of n bytes: the top bit is the sign.
        unsigned bits = (unsigned)(n * 8);
        if (value >> (bits - 1)) {
            *negative = true;
            uint64_t mask = bits == 64 ? UINT64_MAX : (((uint64_t)1 << bits) - 1);
            value = ((~value) & mask) + 1;
        }
    } else {
        self->p--; //  nothing consumed: the reason names the value's key
        return vz_mp_fail(self, type_reason ? type_reason : "wrong type");
    }
    *magnitude = value;
    return 0;
}

int vz_mp_read_uint_slow(vz_mp_reader_t *self, uint64_t max, uint64_t *out, const char *type_reason,
                         const char *range_reason)
{
    bool negative;
    uint64_t value;
    if (s_read_integer(self, &negative, &value, type_reason) < 0)
        return VZ_EMALFORMED;
    if (negative || value > max)
        return vz_mp_fail(self, range_reason ? range_reason : "integer out of range");
    *out = value;
    return 0;
}

int vz_mp_read_int(vz_mp_reader_t *self, int64_t min, int64_t max, int64_t *out,
                   const char *type_reason, const char *range_reason)
{
    assert(min <= max);
    bool negative;
    uint64_t value;
    if (s_read_integer(self, &negative, &value, type_reason) < 0)
        return VZ_EMALFORMED;
    const char *why = range_reason ? range_reason : "integer out of range";
    int64_t result;
    if (!negative) {
        if (value > (uint64_t)INT64_MAX)
            return vz_mp_fail(self, why);
        result = (int64_t)value;
    } else {
        //  Magnitudes up to 2^63 are representable; 2^63 is INT64_MIN.
        if (value > (uint64_t)INT64_MAX + 1)
            return vz_mp_fail(self, why);
        result = value == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)value;
    }
    if (result < min || result > max)
        return vz_mp_fail(self, why);
    *out = result;
    return 0;
}

int vz_mp_read_bool(vz_mp_reader_t *self, bool *out, const char *type_reason)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p;
    if (tag != 0xc2 && tag != 0xc3)
        return vz_mp_fail(self, type_reason ? type_reason : "wrong type");
    self->p++;
    *out = tag == 0xc3;
    return 0;
}

//  Skip one value. depth counts the containers around it inside the value
//  being skipped; recursion is bounded by max_depth.
static int s_skip(vz_mp_reader_t *self, size_t depth)
{
    if (self->p == self->end)
        return vz_mp_fail(self, "truncated");
    uint8_t tag = *self->p++;
    uint64_t n = 0;         //  payload bytes, or container entries
    bool container = false; //  n counts values to skip, not bytes
    bool is_map = false;    //  a map entry is two values
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
        return 0; //  fixints, nil, false, true
    if (tag >= 0x80 && tag <= 0x9f) {
        n = tag & 0x0f;
        container = true;
        is_map = tag <= 0x8f;
    } else if (tag >= 0xa0 && tag <= 0xbf) {
        n = tag & 0x1f;
        if (n > self->limits.max_string)
            return vz_mp_fail(self, "string too long");
    } else if (tag >= 0xc4 && tag <= 0xc6) { //  bin 8/16/32
        if (s_read_be(self, (size_t)1 << (tag - 0xc4), &n) < 0)
            return VZ_EMALFORMED;
    } else if (tag >= 0xc7 && tag <= 0xc9) { //  ext 8/16/32: length, then type byte
        if (s_read_be(self, (size_t)1 << (tag - 0xc7), &n) < 0)
            return VZ_EMALFORMED;
        n += 1;
    } else if (tag == 0xca || tag == 0xcb)
        n = tag == 0xca ? 4 : 8;
    else if (tag >= 0xcc && tag <= 0xd3)
        n = (uint64_t)1 << ((tag - 0xcc) & 3);
    else if (tag >= 0xd4 && tag <= 0xd8) //  fixext: type byte + 1..16
        n = 1 + ((uint64_t)1 << (tag - 0xd4));
    else if (tag >= 0xd9 && tag <= 0xdb) {
        if (s_read_be(self, (size_t)1 << (tag - 0xd9), &n) < 0)
            return VZ_EMALFORMED;
        if (n > self->limits.max_string)
            return vz_mp_fail(self, "string too long");
    } else if (tag >= 0xdc && tag <= 0xdf) { //  array 16/32, map 16/32
        if (s_read_be(self, (tag & 1) ? 4 : 2, &n) < 0)
            return VZ_EMALFORMED;
        container = true;
        is_map = tag >= 0xde;
    } else
        return vz_mp_fail(self, "invalid type byte"); //  0xc1, never used

    if (!container) {
        if (n > vz_mp_left(self))
            return vz_mp_fail(self, "truncated");
        self->p += n;
        return 0;
    }
    if (n > self->limits.max_count)
        return vz_mp_fail(self, is_map ? "map too large" : "array too large");
    if (depth + 1 > self->limits.max_depth)
        return vz_mp_fail(self, "nesting too deep");
    uint64_t items = is_map ? n * 2 : n;
    if (items > vz_mp_left(self))
        return vz_mp_fail(self, "truncated");
    for (uint64_t i = 0; i < items; i++)
        if (s_skip(self, depth + 1) < 0)
            return VZ_EMALFORMED;
    return 0;
}

int vz_mp_skip(vz_mp_reader_t *self)
{
    return s_skip(self, 0);
}

int vz_mp_done(const vz_mp_reader_t *self, int rc, const char **reason)
{
    if (reason)
        *reason = rc < 0 ? self->reason : NULL;
    return rc;
}

int vz_mp_finish(vz_mp_reader_t *self)
{
    return self->p == self->end ? 0 : vz_mp_fail(self, "trailing bytes");
}

bool vz_mp_key_is(const char *key, uint32_t len, const char *name)
{
    size_t n = strlen(name);
    return len == n && memcmp(key, name, n) == 0;
}

// --------------------------------------------------------------------------
//  Field tables

//  Read the value of field f into out.
static int s_read_field(vz_mp_reader_t *self, void *out, const vz_mp_field_t *f)
{
    uint8_t *member = (uint8_t *)out + f->offset;
    uint64_t u;
    int64_t i;
    switch (f->type) {
    case VZ_MP_F_STR:
        return vz_mp_read_str_copy(self, (char *)member, f->size, f->reason);
    case VZ_MP_F_UINT:
        if (vz_mp_read_uint(self, f->max, &u, f->reason, f->reason) < 0)
            return VZ_EMALFORMED;
        if (f->size == sizeof(uint32_t))
            *(uint32_t *)member = (uint32_t)u;
        else
            *(uint64_t *)member = u;
        return 0;
    case VZ_MP_F_INT:
        if (vz_mp_read_int(self, -(int64_t)f->max, (int64_t)f->max, &i, f->reason, f->reason) < 0)
            return VZ_EMALFORMED;
        *(int64_t *)member = i;
        return 0;
    case VZ_MP_F_BOOL:
        return vz_mp_read_bool(self, (bool *)member, f->reason);
    case VZ_MP_F_ENUM: {
        const char *name;
        uint32_t len;
        if (vz_mp_read_str(self, &name, &len, f->reason) < 0)
            return VZ_EMALFORMED;
        for (size_t k = 0; k < f->count; k++)
            if (vz_mp_key_is(name, len, f->names[k])) {
                *(int *)member = (int)k;
                return 0;
            }
        return vz_mp_fail(self, f->reason);
    }
    }
    return vz_mp_fail(self, "unknown field type"); //  not reached
}

int vz_mp_read_fields(vz_mp_reader_t *self, void *out, const vz_mp_field_t *fields, size_t n,
                      bool empty_ok, uint64_t *seen)
{
    assert(self && out && fields && n <= 64);
    uint64_t got = 0;
    uint32_t entries = 0;
    if (!(empty_ok && vz_mp_left(self) == 0) && vz_mp_read_map(self, &entries, "not a map") < 0)
        return VZ_EMALFORMED;
    for (uint32_t e = 0; e < entries; e++) {
        const char *key;
        uint32_t key_len;
        if (vz_mp_read_str(self, &key, &key_len, "wrong type for key") < 0)
            return VZ_EMALFORMED;
        size_t k = 0;
        while (k < n && !vz_mp_key_is(key, key_len, fields[k].key))
            k++;
        if (k == n) {
            //  Forward compatibility: a newer peer's extra fields are skipped.
            if (vz_mp_skip(self) < 0)
                return VZ_EMALFORMED;
            continue;
        }
        //  Two values for one key could be read differently by two parties.
        if (got & ((uint64_t)1 << k))
            return vz_mp_fail(self, "duplicate key");
        got |= (uint64_t)1 << k;
        if (vz_mp_read_nil(self))
            continue;
        if (s_read_field(self, out, &fields[k]) < 0)
            return VZ_EMALFORMED;
    }
    if (seen)
        *seen = got;
    return 0;
}

const char *vz_mp_missing(const vz_mp_field_t *fields, size_t n, uint64_t required, uint64_t seen)
{
    static _Thread_local char text[64];
    for (size_t k = 0; k < n; k++)
        if ((required & ((uint64_t)1 << k)) && !(seen & ((uint64_t)1 << k))) {
            snprintf(text, sizeof text, "missing %s", fields[k].key);
            return text;
        }
    return NULL;
}

int vz_mp_decode_message(const vz_mp_message_t *msg, void *out, const uint8_t *buf, size_t len,
                         uint64_t *seen, const char **reason)
{
    assert(msg && out);
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, msg->limits);
    uint64_t got = 0;
    int rc = vz_mp_read_fields(&r, out, msg->fields, msg->count, msg->empty_ok, &got);
    if (rc == 0)
        rc = vz_mp_finish(&r);
    const char *missing =
        rc == 0 ? vz_mp_missing(msg->fields, msg->count, msg->required, got) : NULL;
    if (missing)
        rc = vz_mp_fail(&r, missing);
    if (seen)
        *seen = got;
    return vz_mp_done(&r, rc, reason);
}

uint8_t *vz_mp_encode_message(const vz_mp_message_t *msg, const void *in, size_t *len_p)
{
    assert(msg);
    return vz_mp_pack_fields(in, msg->fields, msg->count, len_p);
}

//  The value of an ENUM member, checked against its table.
static const char *s_enum_name(const void *in, const vz_mp_field_t *f)
{
    int value = *(const int *)((const uint8_t *)in + f->offset);
    assert(value >= 0 && (size_t)value < f->count);
    return f->names[value];
}

void vz_mp_pack_fields_to(msgpack_packer *pk, const void *in, const vz_mp_field_t *fields, size_t n)
{
    msgpack_pack_map(pk, n);
    for (size_t k = 0; k < n; k++) {
        const vz_mp_field_t *f = &fields[k];
        const uint8_t *member = (const uint8_t *)in + f->offset;
        vz_mp_pack_str(pk, f->key);
        switch (f->type) {
        case VZ_MP_F_STR:
            //  A member without its NUL is a caller bug.
            assert(memchr(member, 0, f->size));
            vz_mp_pack_str(pk, (const char *)member);
            break;
        case VZ_MP_F_UINT:
            msgpack_pack_uint64(pk, f->size == sizeof(uint32_t) ? *(const uint32_t *)member
                                                                : *(const uint64_t *)member);
            break;
        case VZ_MP_F_INT:
            msgpack_pack_int64(pk, *(const int64_t *)member);
            break;
        case VZ_MP_F_BOOL:
            vz_mp_pack_bool(pk, *(const bool *)member);
            break;
        case VZ_MP_F_ENUM:
            vz_mp_pack_str(pk, s_enum_name(in, f));
            break;
        }
    }
}

uint8_t *vz_mp_pack_fields(const void *in, const vz_mp_field_t *fields, size_t n, size_t *len_p)
{
    assert(in && fields && len_p);
    //  Upper bound: map header, then per field a key, a header of at most
    //  5 bytes and the value (strings as long as they are, numbers 9).
    size_t cap = 5;
    for (size_t k = 0; k < n; k++) {
        const vz_mp_field_t *f = &fields[k];
        const uint8_t *member = (const uint8_t *)in + f->offset;
        cap += 5 + strlen(f->key) + 5;
        cap += f->type == VZ_MP_F_STR    ? strnlen((const char *)member, f->size)
               : f->type == VZ_MP_F_ENUM ? strlen(s_enum_name(in, f))
                                         : 9;
    }
    msgpack_sbuffer sb;
    vz_mp_sbuffer_init(&sb, cap);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vz_mp_pack_fields_to(&pk, in, fields, n);
    assert(sb.alloc == cap); //  never reallocated
    return vz_mp_sbuffer_take(&sb, len_p);
}

// --------------------------------------------------------------------------
//  Pack helpers

void vz_mp_sbuffer_init(msgpack_sbuffer *sb, size_t cap)
{
    assert(sb && cap > 0);
    msgpack_sbuffer_init(sb);
    sb->data = malloc(cap);
    if (!sb->data)
        abort(); //  out of memory
    sb->alloc = cap;
}

uint8_t *vz_mp_sbuffer_take(msgpack_sbuffer *sb, size_t *len_p)
{
    assert(sb && len_p);
    *len_p = sb->size;
    return (uint8_t *)msgpack_sbuffer_release(sb);
}
