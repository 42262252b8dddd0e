/*  vz_envelope - encode with msgpack-c, decode with the bounded vz_mp reader
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Why not msgpack_unpack for decoding: msgpack-c allocates the declared size
 *  of an array or map before it knows the bytes are there, so a 5-byte frame
 *  can ask for gigabytes. vz_mp's reader never allocates; each declared
 *  length is compared with the bytes left and with the limits first.
 *  Wire keys and types are documented in docs/protocol.md.
 */
#include "vz_envelope.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_mp.h"

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

//  A row: the wire key (its length counted here) and what its value is.
#define S_KEY(wire, field, what)                                                                   \
    {                                                                                              \
        wire, sizeof(wire) - 1, field, "wrong type for " what                                      \
    }

static const s_key_t s_keys[] = {
    S_KEY("v", F_VERSION, "version"),
    S_KEY("k", F_KIND, "kind"),
    S_KEY("svc", F_SERVICE, "service"),
    S_KEY("mth", F_METHOD, "method"),
    S_KEY("id", F_ID, "id"),
    S_KEY("tp", F_TRACEPARENT, "traceparent"),
    S_KEY("dl", F_DEADLINE, "deadline"),
    S_KEY("fl", F_FLAGS, "flags"),
    S_KEY("who", F_CALLER, "caller"),
    S_KEY("ctx", F_CTX, "ctx"),
    S_KEY("ec", F_ERRCODE, "error code"),
    S_KEY("em", F_ERRMSG, "error message"),
    S_KEY("b", F_BODY, "body"),
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

//  Copy a name into its fixed field, left empty when it does not fit.
static int s_name(char *dst, size_t size, const char *src)
{
    if (vz_strlcpy(dst, src, size) == 0)
        return 0;
    dst[0] = '\0';
    return -ENAMETOOLONG;
}

int vz_envelope_request(vz_envelope_t *self, const char *service, const char *method,
                        const char *id)
{
    assert(self && service && method);
    vz_envelope_init(self, VZ_KIND_REQUEST);
    int rc = s_name(self->service, sizeof self->service, service);
    if (s_name(self->method, sizeof self->method, method) < 0)
        rc = -ENAMETOOLONG;
    if (id && s_name(self->id, sizeof self->id, id) < 0)
        rc = -ENAMETOOLONG;
    return rc;
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
    vz_mp_sbuffer_init(&sbuf, estimate);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);

    msgpack_pack_map(&pk, entries);
    vz_mp_pack_str(&pk, "v");
    msgpack_pack_uint32(&pk, self->version);
    vz_mp_pack_str(&pk, "k");
    msgpack_pack_uint32(&pk, (uint32_t)self->kind);
    if (svc_len)
        vz_mp_pack_kv_strn(&pk, "svc", self->service, svc_len);
    if (mth_len)
        vz_mp_pack_kv_strn(&pk, "mth", self->method, mth_len);
    if (id_len)
        vz_mp_pack_kv_strn(&pk, "id", self->id, id_len);
    if (tp_len)
        vz_mp_pack_kv_strn(&pk, "tp", self->traceparent, tp_len);
    if (self->deadline_ms) {
        vz_mp_pack_str(&pk, "dl");
        msgpack_pack_int64(&pk, self->deadline_ms);
    }
    if (self->flags) {
        vz_mp_pack_str(&pk, "fl");
        msgpack_pack_uint32(&pk, self->flags);
    }
    //  "who" is never sent: only the receiver knows the caller (CURVE key).
    if (self->ctx_count) {
        vz_mp_pack_str(&pk, "ctx");
        msgpack_pack_map(&pk, self->ctx_count);
        for (size_t i = 0; i < self->ctx_count; i++) {
            const vz_ctx_entry_t *entry = &self->ctx[i];
            size_t klen = s_field_len(entry->key, sizeof(entry->key));
            size_t vlen = s_field_len(entry->value, sizeof(entry->value));
            vz_mp_pack_strn(&pk, entry->key, klen);
            vz_mp_pack_strn(&pk, entry->value, vlen);
        }
    }
    if (ec_len)
        vz_mp_pack_kv_strn(&pk, "ec", self->error_code, ec_len);
    if (em_len)
        vz_mp_pack_kv_strn(&pk, "em", self->error_message, em_len);
    if (self->body_len) {
        vz_mp_pack_str(&pk, "b");
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
//  Decoder: vz_mp's bounded reader over untrusted bytes

static const s_key_t *s_key_lookup(const char *key, uint32_t len)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (s_keys[i].key_len == len && memcmp(s_keys[i].key, key, len) == 0)
            return &s_keys[i];
    return NULL;
}

static int s_read_ctx(vz_mp_reader_t *r, vz_envelope_t *self, const char *type_reason)
{
    uint32_t count;
    if (vz_mp_read_map(r, &count, type_reason) < 0)
        return VZ_EMALFORMED;
    if (count > VZ_CTX_MAX)
        return vz_mp_fail(r, "too many ctx entries");
    for (uint32_t i = 0; i < count; i++) {
        vz_ctx_entry_t *entry = &self->ctx[i];
        if (vz_mp_read_str_copy(r, entry->key, sizeof(entry->key), "wrong type for ctx key") < 0 ||
            vz_mp_read_str_copy(r, entry->value, sizeof(entry->value), "wrong type for ctx value") <
                0)
            return VZ_EMALFORMED;
        if (entry->key[0] == 0)
            return vz_mp_fail(r, "empty ctx key");
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(self->ctx[j].key, entry->key) == 0)
                return vz_mp_fail(r, "duplicate ctx key");
        self->ctx_count = i + 1;
    }
    return 0;
}

//  Decode the value of one known key into self.
static int s_read_field(vz_mp_reader_t *r, vz_envelope_t *self, const s_key_t *key)
{
    const char *why = key->type_reason;
    uint64_t value;
    uint32_t len;
    char scratch[VZ_NAME_MAX];
    switch (key->field) {
    case F_VERSION:
        if (vz_mp_read_uint(r, UINT32_MAX, &value, why, "unsupported version") < 0)
            return VZ_EMALFORMED;
        if (value != VZ_ENVELOPE_VERSION)
            return vz_mp_fail(r, "unsupported version");
        self->version = (uint32_t)value;
        return 0;
    case F_KIND:
        if (vz_mp_read_uint(r, VZ_KIND_EVENT, &value, why, "unknown kind") < 0)
            return VZ_EMALFORMED;
        if (value < VZ_KIND_REQUEST)
            return vz_mp_fail(r, "unknown kind");
        self->kind = (vz_kind_t)value;
        return 0;
    case F_SERVICE:
        return vz_mp_read_str_copy(r, self->service, sizeof(self->service), why);
    case F_METHOD:
        return vz_mp_read_str_copy(r, self->method, sizeof(self->method), why);
    case F_ID:
        return vz_mp_read_str_copy(r, self->id, sizeof(self->id), why);
    case F_TRACEPARENT:
        return vz_mp_read_str_copy(r, self->traceparent, sizeof(self->traceparent), why);
    case F_DEADLINE:
        if (vz_mp_read_uint(r, INT64_MAX, &value, why, "deadline out of range") < 0)
            return VZ_EMALFORMED;
        self->deadline_ms = (int64_t)value;
        return 0;
    case F_FLAGS:
        if (vz_mp_read_uint(r, UINT32_MAX, &value, why, "flags out of range") < 0)
            return VZ_EMALFORMED;
        self->flags = (uint32_t)value;
        return 0;
    case F_CALLER:
        //  Checked like any name, then dropped: the caller is whoever the
        //  receiver's CURVE handshake says, never what the sender claims.
        return vz_mp_read_str_copy(r, scratch, sizeof(scratch), why);
    case F_CTX:
        return s_read_ctx(r, self, why);
    case F_ERRCODE:
        return vz_mp_read_str_copy(r, self->error_code, sizeof(self->error_code), why);
    case F_ERRMSG:
        return vz_mp_read_str_copy(r, self->error_message, sizeof(self->error_message), why);
    case F_BODY:
        //  body is NULL exactly when body_len is 0 (vz_mp_read_bin).
        if (vz_mp_read_bin(r, &self->body, &len, why) < 0)
            return VZ_EMALFORMED;
        self->body_len = len;
        return 0;
    }
    return vz_mp_fail(r, "unknown field"); //  not reached
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

static int s_decode(vz_mp_reader_t *r, vz_envelope_t *self, size_t max_frame)
{
    if (vz_mp_left(r) > max_frame)
        return vz_mp_fail(r, "frame too large");
    uint32_t entries;
    if (vz_mp_read_map(r, &entries, "not a map") < 0)
        return VZ_EMALFORMED;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < entries; i++) {
        const char *name;
        uint32_t name_len;
        if (vz_mp_read_str(r, &name, &name_len, "wrong type for key") < 0)
            return VZ_EMALFORMED;
        const s_key_t *key = s_key_lookup(name, name_len);
        if (vz_mp_left(r) < 1)
            return vz_mp_fail(r, "truncated");
        if (!key) {
            //  Forward compatibility: a newer peer's extra fields are skipped.
            if (vz_mp_skip(r) < 0)
                return VZ_EMALFORMED;
            continue;
        }
        if (seen & (1u << key->field))
            return vz_mp_fail(r, "duplicate key");
        seen |= 1u << key->field;
        if (vz_mp_read_nil(r)) //  nil reads as absent
            continue;
        if (s_read_field(r, self, key) < 0)
            return VZ_EMALFORMED;
    }
    if (vz_mp_finish(r) < 0)
        return VZ_EMALFORMED;
    if (!self->version)
        return vz_mp_fail(r, "missing version");
    if (!self->kind)
        return vz_mp_fail(r, "missing kind");
    if (self->kind == VZ_KIND_REQUEST || self->kind == VZ_KIND_EVENT) {
        if (!self->service[0])
            return vz_mp_fail(r, "missing service");
        if (!self->method[0])
            return vz_mp_fail(r, "missing method");
    }
    if (self->kind == VZ_KIND_ERROR && !self->error_code[0])
        return vz_mp_fail(r, "missing error code");
    return 0;
}

int vz_envelope_decode(vz_envelope_t *self, const uint8_t *buf, size_t len,
                       const vz_envelope_limits_t *limits, const char **reason)
{
    assert(self);
    assert(buf || len == 0);
    if (!limits)
        limits = &vz_envelope_limits_default;
    const vz_mp_limits_t mp_limits = {
        .max_string = limits->max_string,
        .max_count = limits->max_map, //  arrays in unknown values obey it too
        .max_depth = limits->max_depth,
    };
    vz_mp_reader_t reader;
    vz_mp_reader_init(&reader, buf, len, &mp_limits);
    s_reset(self);
    int rc = s_decode(&reader, self, limits->max_frame);
    if (reason)
        *reason = rc < 0 ? reader.reason : NULL;
    return rc;
}
