/*  vz_envelope - encode with msgpack-c, decode with a bounds-checked cursor
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Why not msgpack_unpack for decoding: msgpack-c allocates the declared size
 *  of an array or map before it knows the bytes are there, so a 5-byte frame
 *  can ask for gigabytes. The reader below never allocates; each declared
 *  length is compared with the bytes left and with the limits first.
 *  Wire keys and types are documented in docs/protocol.md.
 */
#include "vz_envelope.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const vz_envelope_limits_t vz_envelope_limits_default = {
    .max_frame = 1024 * 1024,
    .max_string = 4096,
    .max_map = 64,
    .max_depth = 8,
};

//  Known keys. The bit of each field marks it seen, to refuse duplicates.
typedef enum {
    F_VERSION,
    F_KIND,
    F_SERVICE,
    F_METHOD,
    F_ID,
    F_TRACEPARENT,
    F_DEADLINE,
    F_FLAGS,
    F_CALLER,
    F_CTX,
    F_ERRCODE,
    F_ERRMSG,
    F_BODY,
} s_field_t;

typedef struct {
    const char *key;         //  wire key
    size_t key_len;          //  its length
    s_field_t field;         //  which field it fills
    const char *type_reason; //  reason text for a value of the wrong type
} s_key_t;

static const s_key_t s_keys[] = {
    {"v", 1, F_VERSION, "wrong type for version"},
    {"k", 1, F_KIND, "wrong type for kind"},
    {"svc", 3, F_SERVICE, "wrong type for service"},
    {"mth", 3, F_METHOD, "wrong type for method"},
    {"id", 2, F_ID, "wrong type for id"},
    {"tp", 2, F_TRACEPARENT, "wrong type for traceparent"},
    {"dl", 2, F_DEADLINE, "wrong type for deadline"},
    {"fl", 2, F_FLAGS, "wrong type for flags"},
    {"who", 3, F_CALLER, "wrong type for caller"},
    {"ctx", 3, F_CTX, "wrong type for ctx"},
    {"ec", 2, F_ERRCODE, "wrong type for error code"},
    {"em", 2, F_ERRMSG, "wrong type for error message"},
    {"b", 1, F_BODY, "wrong type for body"},
};
#define S_KEY_COUNT (sizeof(s_keys) / sizeof(s_keys[0]))

//  ---------------------------------------------------------------------------
//  Helpers

void vz_envelope_init(vz_envelope_t *self, vz_kind_t kind)
{
    assert(self);
    memset(self, 0, sizeof(*self));
    self->version = VZ_ENVELOPE_VERSION;
    self->kind = kind ? kind : VZ_KIND_REQUEST;
}

int vz_envelope_ctx_set(vz_envelope_t *self, const char *key, const char *value)
{
    assert(self);
    return vz_envelope_ctx_put(self->ctx, &self->ctx_count, key, value);
}

int vz_envelope_ctx_put(vz_ctx_entry_t *ctx, size_t *count, const char *key, const char *value)
{
    assert(ctx && count && *count <= VZ_CTX_MAX && key && value);
    size_t klen = strlen(key);
    size_t vlen = strlen(value);
    if (klen == 0)
        return -EINVAL;
    //  Refused, never cut: a cut scope list can spell a scope never granted.
    if (klen >= VZ_CTX_KEY_MAX || vlen >= VZ_CTX_VAL_MAX)
        return -ENAMETOOLONG;
    //  Setting an existing key replaces it: the decoder refuses duplicates.
    vz_ctx_entry_t *entry = NULL;
    for (size_t i = 0; i < *count; i++)
        if (strcmp(ctx[i].key, key) == 0)
            entry = &ctx[i];
    if (!entry) {
        if (*count >= VZ_CTX_MAX)
            return -ENOSPC;
        entry = &ctx[(*count)++];
        memcpy(entry->key, key, klen + 1);
    }
    memcpy(entry->value, value, vlen + 1);
    return 0;
}

const char *vz_envelope_ctx_get(const vz_envelope_t *self, const char *key)
{
    assert(self && key);
    for (size_t i = 0; i < self->ctx_count && i < VZ_CTX_MAX; i++)
        if (strcmp(self->ctx[i].key, key) == 0)
            return self->ctx[i].value;
    return NULL;
}

void vz_envelope_reply_to(vz_envelope_t *reply, const vz_envelope_t *req)
{
    assert(reply && req && reply != req);
    vz_envelope_init(reply, VZ_KIND_REPLY);
    //  Same capacities on both sides, so whole-field copies cannot truncate.
    memcpy(reply->id, req->id, sizeof(reply->id));
    memcpy(reply->service, req->service, sizeof(reply->service));
    memcpy(reply->method, req->method, sizeof(reply->method));
    memcpy(reply->traceparent, req->traceparent, sizeof(reply->traceparent));
}

void vz_envelope_error_to(vz_envelope_t *reply, const vz_envelope_t *req, const char *code,
                          const char *message)
{
    assert(code && *code);
    vz_envelope_reply_to(reply, req);
    reply->kind = VZ_KIND_ERROR;
    //  Codes come from vz_proto.h and fit; a long human message is cut.
    snprintf(reply->error_code, sizeof(reply->error_code), "%s", code);
    snprintf(reply->error_message, sizeof(reply->error_message), "%s", message ? message : "");
}

//  ---------------------------------------------------------------------------
//  Encoder

//  Length of a fixed string field; a field without its NUL is a caller bug.
static size_t s_field_len(const char *field, size_t cap)
{
    size_t len = strnlen(field, cap);
    assert(len < cap);
    return len;
}

static void s_pack_key(msgpack_packer *pk, const char *key)
{
    size_t len = strlen(key);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, key, len);
}

static void s_pack_str(msgpack_packer *pk, const char *key, const char *value, size_t len)
{
    s_pack_key(pk, key);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, value, len);
}

int vz_envelope_encode(const vz_envelope_t *self, uint8_t **buf_p, size_t *len_p)
{
    assert(self && buf_p && len_p);
    assert(self->ctx_count <= VZ_CTX_MAX);
    assert(self->body || self->body_len == 0);
    const size_t max_frame = vz_envelope_limits_default.max_frame;
    size_t svc_len = s_field_len(self->service, sizeof(self->service));
    size_t mth_len = s_field_len(self->method, sizeof(self->method));
    size_t id_len = s_field_len(self->id, sizeof(self->id));
    size_t tp_len = s_field_len(self->traceparent, sizeof(self->traceparent));
    size_t ec_len = s_field_len(self->error_code, sizeof(self->error_code));
    size_t em_len = s_field_len(self->error_message, sizeof(self->error_message));

    //  Refuse what every decoder would refuse, rather than send it.
    if (self->version != VZ_ENVELOPE_VERSION || self->kind < VZ_KIND_REQUEST ||
        self->kind > VZ_KIND_EVENT || self->deadline_ms < 0)
        return -EINVAL;
    if ((self->kind == VZ_KIND_REQUEST || self->kind == VZ_KIND_EVENT) &&
        (svc_len == 0 || mth_len == 0))
        return -EINVAL;
    if (self->kind == VZ_KIND_ERROR && ec_len == 0)
        return -EINVAL;
    for (size_t i = 0; i < self->ctx_count; i++) {
        if (self->ctx[i].key[0] == 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(self->ctx[i].key, self->ctx[j].key) == 0)
                return -EINVAL;
    }
    if (self->body_len > max_frame)
        return -EMSGSIZE;

    //  Empty and zero fields are left out: absent decodes to the same value.
    uint32_t entries = 2 + (svc_len > 0) + (mth_len > 0) + (id_len > 0) + (tp_len > 0) +
                       (self->deadline_ms != 0) + (self->flags != 0) + (self->ctx_count > 0) +
                       (ec_len > 0) + (em_len > 0) + (self->body_len > 0);

    //  Reserve an upper bound up front (keys, headers and fixed-size values
    //  take under 128 bytes, a ctx entry under its capacities + 8), so the
    //  packer never reallocates: msgpack_sbuffer would start at 8 KiB and
    //  double its way up to a large body, and a failed realloc would
    //  silently drop bytes.
    size_t estimate = 128 + svc_len + mth_len + id_len + tp_len + ec_len + em_len + self->body_len +
                      self->ctx_count * (VZ_CTX_KEY_MAX + VZ_CTX_VAL_MAX + 8);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    sbuf.data = malloc(estimate);
    if (!sbuf.data)
        abort(); //  out of memory
    sbuf.alloc = estimate;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);

    msgpack_pack_map(&pk, entries);
    s_pack_key(&pk, "v");
    msgpack_pack_uint32(&pk, self->version);
    s_pack_key(&pk, "k");
    msgpack_pack_uint32(&pk, (uint32_t)self->kind);
    if (svc_len)
        s_pack_str(&pk, "svc", self->service, svc_len);
    if (mth_len)
        s_pack_str(&pk, "mth", self->method, mth_len);
    if (id_len)
        s_pack_str(&pk, "id", self->id, id_len);
    if (tp_len)
        s_pack_str(&pk, "tp", self->traceparent, tp_len);
    if (self->deadline_ms) {
        s_pack_key(&pk, "dl");
        msgpack_pack_int64(&pk, self->deadline_ms);
    }
    if (self->flags) {
        s_pack_key(&pk, "fl");
        msgpack_pack_uint32(&pk, self->flags);
    }
    //  "who" is never sent: only the receiver knows the caller (CURVE key).
    if (self->ctx_count) {
        s_pack_key(&pk, "ctx");
        msgpack_pack_map(&pk, self->ctx_count);
        for (size_t i = 0; i < self->ctx_count; i++) {
            const vz_ctx_entry_t *entry = &self->ctx[i];
            size_t klen = s_field_len(entry->key, sizeof(entry->key));
            size_t vlen = s_field_len(entry->value, sizeof(entry->value));
            msgpack_pack_str(&pk, klen);
            msgpack_pack_str_body(&pk, entry->key, klen);
            msgpack_pack_str(&pk, vlen);
            msgpack_pack_str_body(&pk, entry->value, vlen);
        }
    }
    if (ec_len)
        s_pack_str(&pk, "ec", self->error_code, ec_len);
    if (em_len)
        s_pack_str(&pk, "em", self->error_message, em_len);
    if (self->body_len) {
        s_pack_key(&pk, "b");
        msgpack_pack_bin(&pk, self->body_len);
        msgpack_pack_bin_body(&pk, self->body, self->body_len);
    }
    assert(sbuf.size <= estimate && sbuf.alloc == estimate);
    if (sbuf.size > max_frame) {
        msgpack_sbuffer_destroy(&sbuf);
        return -EMSGSIZE;
    }
    *buf_p = (uint8_t *)sbuf.data;
    *len_p = sbuf.size;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Decoder: a cursor over untrusted bytes

typedef struct {
    const uint8_t *p;                   //  next byte to read
    const uint8_t *end;                 //  one past the last byte
    const vz_envelope_limits_t *limits; //  caller's limits
    const char *reason;                 //  first failure, static text
} s_cursor_t;

//  Record why decoding failed and return VZ_EMALFORMED.
static int s_fail(s_cursor_t *c, const char *reason)
{
    if (!c->reason)
        c->reason = reason;
    return VZ_EMALFORMED;
}

static size_t s_left(const s_cursor_t *c)
{
    return (size_t)(c->end - c->p);
}

//  Read an n-byte big-endian unsigned number (n <= 8).
static int s_read_be(s_cursor_t *c, size_t n, uint64_t *out)
{
    if (s_left(c) < n)
        return s_fail(c, "truncated");
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | c->p[i];
    c->p += n;
    *out = value;
    return 0;
}

//  Read any msgpack integer that is >= 0 and <= max. Negative values and
//  values above max are out of range; other types are the wrong type.
static int s_read_uint(s_cursor_t *c, uint64_t max, uint64_t *out, const char *type_reason,
                       const char *range_reason)
{
    if (s_left(c) < 1)
        return s_fail(c, "truncated");
    uint8_t tag = *c->p++;
    uint64_t value;
    if (tag <= 0x7f)
        value = tag;
    else if (tag >= 0xe0)
        return s_fail(c, range_reason); //  negative fixint
    else if (tag >= 0xcc && tag <= 0xcf) {
        if (s_read_be(c, (size_t)1 << (tag - 0xcc), &value) < 0)
            return VZ_EMALFORMED;
    } else if (tag >= 0xd0 && tag <= 0xd3) {
        size_t n = (size_t)1 << (tag - 0xd0);
        if (s_read_be(c, n, &value) < 0)
            return VZ_EMALFORMED;
        //  Signed: the top bit of the n-byte number is the sign.
        if (value >> (n * 8 - 1))
            return s_fail(c, range_reason);
    } else
        return s_fail(c, type_reason);
    if (value > max)
        return s_fail(c, range_reason);
    *out = value;
    return 0;
}

//  Read the header of a str; *len is checked against max_string and against
//  the bytes left, so the caller may read len bytes at c->p.
static int s_read_str_head(s_cursor_t *c, uint32_t *len, const char *type_reason)
{
    if (s_left(c) < 1)
        return s_fail(c, "truncated");
    uint8_t tag = *c->p;
    uint64_t n;
    if (tag >= 0xa0 && tag <= 0xbf) {
        c->p++;
        n = tag & 0x1f;
    } else if (tag >= 0xd9 && tag <= 0xdb) {
        c->p++;
        if (s_read_be(c, (size_t)1 << (tag - 0xd9), &n) < 0)
            return VZ_EMALFORMED;
    } else
        return s_fail(c, type_reason);
    if (n > c->limits->max_string)
        return s_fail(c, "string too long");
    if (n > s_left(c))
        return s_fail(c, "truncated");
    *len = (uint32_t)n;
    return 0;
}

//  Copy a str into a fixed field of cap bytes (with its NUL). Too long is
//  malformed, never truncated; an embedded NUL would cut it silently.
static int s_read_str(s_cursor_t *c, char *dst, size_t cap, const char *type_reason)
{
    uint32_t len;
    if (s_read_str_head(c, &len, type_reason) < 0)
        return VZ_EMALFORMED;
    if (len >= cap)
        return s_fail(c, "string too long");
    if (memchr(c->p, 0, len))
        return s_fail(c, "NUL in string");
    memcpy(dst, c->p, len);
    dst[len] = 0;
    c->p += len;
    return 0;
}

//  Read a map header whose entry count fits max_map and the bytes left
//  (each entry takes at least two bytes).
static int s_read_map_head(s_cursor_t *c, uint32_t *count, const char *type_reason)
{
    if (s_left(c) < 1)
        return s_fail(c, "truncated");
    uint8_t tag = *c->p;
    uint64_t n;
    if (tag >= 0x80 && tag <= 0x8f) {
        c->p++;
        n = tag & 0x0f;
    } else if (tag == 0xde || tag == 0xdf) {
        c->p++;
        if (s_read_be(c, tag == 0xde ? 2 : 4, &n) < 0)
            return VZ_EMALFORMED;
    } else
        return s_fail(c, type_reason);
    if (n > c->limits->max_map)
        return s_fail(c, "map too large");
    if (n > s_left(c) / 2)
        return s_fail(c, "truncated");
    *count = (uint32_t)n;
    return 0;
}

//  Skip one value of any type. depth counts the containers around it
//  inside the unknown value; containers beyond max_depth are malformed.
//  Recursion is bounded by max_depth, and every value consumes at least
//  one byte, so the work is linear in the frame size.
static int s_skip(s_cursor_t *c, size_t depth)
{
    if (s_left(c) < 1)
        return s_fail(c, "truncated");
    uint8_t tag = *c->p++;
    uint64_t n = 0;         //  payload bytes, or container entries
    bool container = false; //  n counts values to skip, not bytes
    if (tag <= 0x7f || tag >= 0xe0 || (tag >= 0xc0 && tag <= 0xc3 && tag != 0xc1))
        return 0; //  fixints, nil, false, true
    if (tag >= 0x80 && tag <= 0x8f) {
        n = tag & 0x0f;
        container = true;
    } else if (tag >= 0x90 && tag <= 0x9f) {
        n = tag & 0x0f;
        container = true;
    } else if (tag >= 0xa0 && tag <= 0xbf) {
        n = tag & 0x1f;
        if (n > c->limits->max_string)
            return s_fail(c, "string too long");
    } else if (tag >= 0xc4 && tag <= 0xc6) { //  bin 8/16/32
        if (s_read_be(c, (size_t)1 << (tag - 0xc4), &n) < 0)
            return VZ_EMALFORMED;
    } else if (tag >= 0xc7 && tag <= 0xc9) { //  ext 8/16/32: length, then type byte
        if (s_read_be(c, (size_t)1 << (tag - 0xc7), &n) < 0)
            return VZ_EMALFORMED;
        n += 1;
    } else if (tag == 0xca || tag == 0xcb)
        n = tag == 0xca ? 4 : 8;
    else if (tag >= 0xcc && tag <= 0xd3)
        n = (uint64_t)1 << ((tag - 0xcc) & 3);
    else if (tag >= 0xd4 && tag <= 0xd8) //  fixext: type byte + 1..16
        n = 1 + ((uint64_t)1 << (tag - 0xd4));
    else if (tag >= 0xd9 && tag <= 0xdb) {
        if (s_read_be(c, (size_t)1 << (tag - 0xd9), &n) < 0)
            return VZ_EMALFORMED;
        if (n > c->limits->max_string)
            return s_fail(c, "string too long");
    } else if (tag == 0xdc || tag == 0xdd) {
        if (s_read_be(c, tag == 0xdc ? 2 : 4, &n) < 0)
            return VZ_EMALFORMED;
        container = true;
    } else if (tag == 0xde || tag == 0xdf) {
        if (s_read_be(c, tag == 0xde ? 2 : 4, &n) < 0)
            return VZ_EMALFORMED;
        container = true;
    } else
        return s_fail(c, "invalid type byte"); //  0xc1, never used

    if (!container) {
        if (n > s_left(c))
            return s_fail(c, "truncated");
        c->p += n;
        return 0;
    }
    //  Arrays obey max_map too: a count is a count, whatever holds it.
    if (n > c->limits->max_map)
        return s_fail(c, "map too large");
    if (depth + 1 > c->limits->max_depth)
        return s_fail(c, "nesting too deep");
    bool is_map = (tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf;
    uint64_t items = is_map ? n * 2 : n;
    if (items > s_left(c))
        return s_fail(c, "truncated");
    for (uint64_t i = 0; i < items; i++)
        if (s_skip(c, depth + 1) < 0)
            return VZ_EMALFORMED;
    return 0;
}

static const s_key_t *s_key_lookup(const uint8_t *key, uint32_t len)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (s_keys[i].key_len == len && memcmp(s_keys[i].key, key, len) == 0)
            return &s_keys[i];
    return NULL;
}

static int s_read_ctx(s_cursor_t *c, vz_envelope_t *self, const char *type_reason)
{
    uint32_t count;
    if (s_read_map_head(c, &count, type_reason) < 0)
        return VZ_EMALFORMED;
    if (count > VZ_CTX_MAX)
        return s_fail(c, "too many ctx entries");
    for (uint32_t i = 0; i < count; i++) {
        vz_ctx_entry_t *entry = &self->ctx[i];
        if (s_read_str(c, entry->key, sizeof(entry->key), "wrong type for ctx key") < 0 ||
            s_read_str(c, entry->value, sizeof(entry->value), "wrong type for ctx value") < 0)
            return VZ_EMALFORMED;
        if (entry->key[0] == 0)
            return s_fail(c, "empty ctx key");
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(self->ctx[j].key, entry->key) == 0)
                return s_fail(c, "duplicate ctx key");
        self->ctx_count = i + 1;
    }
    return 0;
}

static int s_read_body(s_cursor_t *c, vz_envelope_t *self, const char *type_reason)
{
    uint8_t tag = *c->p; //  the caller checked a byte is there
    if (tag < 0xc4 || tag > 0xc6)
        return s_fail(c, type_reason);
    c->p++;
    uint64_t n;
    if (s_read_be(c, (size_t)1 << (tag - 0xc4), &n) < 0)
        return VZ_EMALFORMED;
    if (n > s_left(c))
        return s_fail(c, "truncated");
    //  body is NULL exactly when body_len is 0.
    self->body = n ? c->p : NULL;
    self->body_len = (size_t)n;
    c->p += n;
    return 0;
}

//  Decode the value of one known key into self.
static int s_read_field(s_cursor_t *c, vz_envelope_t *self, const s_key_t *key)
{
    const char *why = key->type_reason;
    uint64_t value;
    char scratch[VZ_NAME_MAX];
    switch (key->field) {
    case F_VERSION:
        if (s_read_uint(c, UINT32_MAX, &value, why, "unsupported version") < 0)
            return VZ_EMALFORMED;
        if (value != VZ_ENVELOPE_VERSION)
            return s_fail(c, "unsupported version");
        self->version = (uint32_t)value;
        return 0;
    case F_KIND:
        if (s_read_uint(c, VZ_KIND_EVENT, &value, why, "unknown kind") < 0)
            return VZ_EMALFORMED;
        if (value < VZ_KIND_REQUEST)
            return s_fail(c, "unknown kind");
        self->kind = (vz_kind_t)value;
        return 0;
    case F_SERVICE:
        return s_read_str(c, self->service, sizeof(self->service), why);
    case F_METHOD:
        return s_read_str(c, self->method, sizeof(self->method), why);
    case F_ID:
        return s_read_str(c, self->id, sizeof(self->id), why);
    case F_TRACEPARENT:
        return s_read_str(c, self->traceparent, sizeof(self->traceparent), why);
    case F_DEADLINE:
        if (s_read_uint(c, INT64_MAX, &value, why, "deadline out of range") < 0)
            return VZ_EMALFORMED;
        self->deadline_ms = (int64_t)value;
        return 0;
    case F_FLAGS:
        if (s_read_uint(c, UINT32_MAX, &value, why, "flags out of range") < 0)
            return VZ_EMALFORMED;
        self->flags = (uint32_t)value;
        return 0;
    case F_CALLER:
        //  Checked like any name, then dropped: the caller is whoever the
        //  receiver's CURVE handshake says, never what the sender claims.
        return s_read_str(c, scratch, sizeof(scratch), why);
    case F_CTX:
        return s_read_ctx(c, self, why);
    case F_ERRCODE:
        return s_read_str(c, self->error_code, sizeof(self->error_code), why);
    case F_ERRMSG:
        return s_read_str(c, self->error_message, sizeof(self->error_message), why);
    case F_BODY:
        return s_read_body(c, self, why);
    }
    return s_fail(c, "unknown field"); //  not reached
}

//  Reset what decode fills. Cheaper than zeroing the ~5 KiB struct, and
//  leaves every string field a valid empty string.
static void s_reset(vz_envelope_t *self)
{
    self->version = 0;
    self->kind = 0;
    self->service[0] = self->method[0] = self->id[0] = self->traceparent[0] = 0;
    self->caller[0] = self->error_code[0] = self->error_message[0] = 0;
    self->deadline_ms = 0;
    self->flags = 0;
    self->ctx_count = 0;
    self->body = NULL;
    self->body_len = 0;
}

static int s_decode(s_cursor_t *c, vz_envelope_t *self)
{
    if (s_left(c) > c->limits->max_frame)
        return s_fail(c, "frame too large");
    uint32_t entries;
    if (s_read_map_head(c, &entries, "not a map") < 0)
        return VZ_EMALFORMED;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < entries; i++) {
        uint32_t key_len;
        if (s_read_str_head(c, &key_len, "wrong type for key") < 0)
            return VZ_EMALFORMED;
        const s_key_t *key = s_key_lookup(c->p, key_len);
        c->p += key_len;
        if (s_left(c) < 1)
            return s_fail(c, "truncated");
        if (!key) {
            //  Forward compatibility: a newer peer's extra fields are skipped.
            if (s_skip(c, 0) < 0)
                return VZ_EMALFORMED;
            continue;
        }
        if (seen & (1u << key->field))
            return s_fail(c, "duplicate key");
        seen |= 1u << key->field;
        if (*c->p == 0xc0) { //  nil reads as absent
            c->p++;
            continue;
        }
        if (s_read_field(c, self, key) < 0)
            return VZ_EMALFORMED;
    }
    if (c->p != c->end)
        return s_fail(c, "trailing bytes");
    if (!self->version)
        return s_fail(c, "missing version");
    if (!self->kind)
        return s_fail(c, "missing kind");
    if (self->kind == VZ_KIND_REQUEST || self->kind == VZ_KIND_EVENT) {
        if (!self->service[0])
            return s_fail(c, "missing service");
        if (!self->method[0])
            return s_fail(c, "missing method");
    }
    if (self->kind == VZ_KIND_ERROR && !self->error_code[0])
        return s_fail(c, "missing error code");
    return 0;
}

int vz_envelope_decode(vz_envelope_t *self, const uint8_t *buf, size_t len,
                       const vz_envelope_limits_t *limits, const char **reason)
{
    assert(self);
    assert(buf || len == 0);
    static const uint8_t empty[1] = {0};
    if (!buf)
        buf = empty; //  NULL + 0 is undefined behaviour
    s_cursor_t cursor = {
        .p = buf,
        .end = buf + len,
        .limits = limits ? limits : &vz_envelope_limits_default,
        .reason = NULL,
    };
    s_reset(self);
    int rc = s_decode(&cursor, self);
    if (reason)
        *reason = rc < 0 ? cursor.reason : NULL;
    return rc;
}
