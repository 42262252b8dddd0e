/*  vz_mp - the one bounded msgpack reader and the pack helpers of the mesh
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Reader: a cursor over untrusted bytes. Every read checks the bytes left
 *  before it touches them and every declared length or count against the
 *  bytes left and the limits before it is used; nothing is allocated, so a
 *  5-byte input can never ask for gigabytes (msgpack-c's unpacker would
 *  allocate the declared size first). Strings and bins are read either as
 *  borrowed slices into the buffer or copied into a caller's fixed field.
 *
 *  Errors: each read returns 0, or VZ_EMALFORMED after recording the first
 *  failure's static reason in the reader ("truncated", "string too long",
 *  or the type_reason the caller passed, e.g. "wrong type for kind"). A
 *  failed read leaves the cursor somewhere inside the value: stop reading.
 *  Single reader per thread; the buffer must outlive the borrowed slices.
 *
 *  Pack helpers: thin wrappers over msgpack-c's packer for the shapes every
 *  codec writes (a str from a C string, a "key": value pair, a sbuffer
 *  allocated once at an upper bound), so no module defines them again.
 */
#ifndef VZ_MP_H
#define VZ_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vz_common.h"

typedef struct {
    size_t max_string; //  bytes of any str or bin
    size_t max_count;  //  entries of any map or array (a map entry is one key + one value)
    size_t max_depth;  //  containers nested inside a value vz_mp_skip skips
} vz_mp_limits_t;

//  Defaults: 1 MiB strings, 1024 entries, depth 8.
extern const vz_mp_limits_t vz_mp_limits_default;

typedef struct {
    const uint8_t *p;      //  next byte to read
    const uint8_t *end;    //  one past the last byte
    vz_mp_limits_t limits; //  copied at init
    const char *reason;    //  first failure (static text), NULL while all is well
} vz_mp_reader_t;

//  Start reading len bytes at buf (NULL with len 0 is an empty input).
//  limits NULL = vz_mp_limits_default.
void vz_mp_reader_init(vz_mp_reader_t *self, const void *buf, size_t len,
                       const vz_mp_limits_t *limits);
//  Record reason (unless one is recorded already) and return VZ_EMALFORMED:
//  codecs use it for their own checks ("missing service", ...).
int vz_mp_fail(vz_mp_reader_t *self, const char *reason);

//  Containers: *count is at most limits.max_count ("map too large" /
//  "array too large") and no more than the bytes left could hold. The
//  entries follow; read or skip each of them.
int vz_mp_read_map(vz_mp_reader_t *self, uint32_t *count, const char *type_reason);
int vz_mp_read_array(vz_mp_reader_t *self, uint32_t *count, const char *type_reason);

//  A str as a borrowed slice (not NUL-terminated): *data, *len. (Inline
//  below, with vz_mp_read_str_copy.)
//  A bin as a borrowed slice; *data is NULL exactly when *len is 0.
int vz_mp_read_bin(vz_mp_reader_t *self, const uint8_t **data, uint32_t *len,
                   const char *type_reason);

//  Any integer encoding whose value is in 0..max ("out of range" reason
//  range_reason, NULL = "integer out of range").
//  (Inline below.)
//  Any integer encoding whose value is in min..max.
int vz_mp_read_int(vz_mp_reader_t *self, int64_t min, int64_t max, int64_t *out,
                   const char *type_reason, const char *range_reason);
int vz_mp_read_bool(vz_mp_reader_t *self, bool *out, const char *type_reason);

//  Skip one value of any type (unknown keys: forward compatibility).
//  Containers count against max_count and nest at most max_depth deep
//  ("nesting too deep"); strings and bins obey max_string. The work is
//  linear in the input: every skipped value consumes at least one byte.
int vz_mp_skip(vz_mp_reader_t *self);

//  A decoder's last step: *reason (may be NULL) = the reader's reason when
//  rc < 0, else NULL; returns rc.
int vz_mp_done(const vz_mp_reader_t *self, int rc, const char **reason);

//  0 when every byte was read, else "trailing bytes".
int vz_mp_finish(vz_mp_reader_t *self);

//  True when the borrowed key (from vz_mp_read_str) spells name.
bool vz_mp_key_is(const char *key, uint32_t len, const char *name);

// --------------------------------------------------------------------------
//  Field tables: one table describes a flat map message (a contract's
//  request or reply) and drives both its decoder and its encoder, so the
//  key names, types and capacities are written once.

typedef enum {
    VZ_MP_F_STR,  //  char[size] in the struct, NUL-terminated; str on the wire
    VZ_MP_F_UINT, //  uint32_t or uint64_t (size), 0..max; uint on the wire
    VZ_MP_F_INT,  //  int64_t, -max..max; int on the wire
    VZ_MP_F_BOOL, //  bool; bool on the wire
    VZ_MP_F_ENUM, //  int-sized enum, 0..count-1; the str names[value] on the wire
} vz_mp_ftype_t;

typedef struct {
    const char *key;          //  wire key
    vz_mp_ftype_t type;       //  how it is stored and sent
    size_t offset;            //  offsetof the struct member
    size_t size;              //  sizeof the struct member
    uint64_t max;             //  UINT/INT: largest magnitude accepted
    const char *const *names; //  ENUM: wire names, index = value
    size_t count;             //  ENUM: entries in names
    const char *reason;       //  text for a value of the wrong type, range or name
} vz_mp_field_t;

//  Table rows for a member of struct T sent as wire key K.
#define VZ_MP_STR(T, member, K)                                                                    \
    {                                                                                              \
        .key = K, .type = VZ_MP_F_STR, .offset = offsetof(T, member),                              \
        .size = sizeof(((T *)0)->member), .reason = "wrong type for " K,                           \
    }
#define VZ_MP_UINT(T, member, K, maximum)                                                          \
    {                                                                                              \
        .key = K, .type = VZ_MP_F_UINT, .offset = offsetof(T, member),                             \
        .size = sizeof(((T *)0)->member), .max = maximum,                                          \
        .reason = K ": expected an unsigned integer in range",                                     \
    }
#define VZ_MP_INT(T, member, K, maximum)                                                           \
    {                                                                                              \
        .key = K, .type = VZ_MP_F_INT, .offset = offsetof(T, member),                              \
        .size = sizeof(((T *)0)->member), .max = maximum,                                          \
        .reason = K ": expected an integer in range",                                              \
    }
#define VZ_MP_BOOL(T, member, K)                                                                   \
    {                                                                                              \
        .key = K, .type = VZ_MP_F_BOOL, .offset = offsetof(T, member), .size = sizeof(bool),       \
        .reason = "wrong type for " K,                                                             \
    }

//  Read a map into out through fields (at most 64). Known keys fill their
//  member, nil reads as absent (the member keeps what out held), unknown
//  keys are skipped, a key given twice is "duplicate key". Bit i of *seen
//  (may be NULL) is set when fields[i] was present; the caller checks what
//  is required. An empty input is an empty map when empty_ok.
int vz_mp_read_fields(vz_mp_reader_t *self, void *out, const vz_mp_field_t *fields, size_t n,
                      bool empty_ok, uint64_t *seen);
//  "missing <key>" for the first field in required (a bit mask) not in
//  seen, or NULL when every one was there. The text lives in a
//  thread-local buffer until the next call on this thread.
const char *vz_mp_missing(const vz_mp_field_t *fields, size_t n, uint64_t required, uint64_t seen);

//  Rows in a field table, and the mask that makes every one of them required.
#define VZ_MP_COUNT(table) (sizeof(table) / sizeof((table)[0]))
#define VZ_MP_ALL(table) (((uint64_t)1 << VZ_MP_COUNT(table)) - 1)

//  A whole message: one flat map, described once, decoded and encoded.
typedef struct {
    const vz_mp_field_t *fields;  //  its table
    size_t count;                 //  rows in it
    uint64_t required;            //  bit i: fields[i] must be present
    bool empty_ok;                //  an empty input is an empty map
    const vz_mp_limits_t *limits; //  NULL = vz_mp_limits_default
} vz_mp_message_t;

//  Decode buf, which must hold exactly one such map, into out. out keeps
//  what the caller put there for absent fields (its defaults). 0, or
//  VZ_EMALFORMED with *reason (may be NULL). *seen (may be NULL) as for
//  vz_mp_read_fields.
int vz_mp_decode_message(const vz_mp_message_t *msg, void *out, const uint8_t *buf, size_t len,
                         uint64_t *seen, const char **reason);
//  Encode every field of in (heap buffer the caller frees, exact capacity).
uint8_t *vz_mp_encode_message(const vz_mp_message_t *msg, const void *in, size_t *len_p);

//  Pack in as a map of every field, in table order. Heap buffer of exactly
//  the right capacity (caller frees), *len_p its length.
uint8_t *vz_mp_pack_fields(const void *in, const vz_mp_field_t *fields, size_t n, size_t *len_p);
//  Append the map of every field to a packer (a message nested in another).
void vz_mp_pack_fields_to(msgpack_packer *pk, const void *in, const vz_mp_field_t *fields,
                          size_t n);

// --------------------------------------------------------------------------
//  Fast paths, inline: the envelope decoder makes about 40 reads per frame,
//  and as calls into vz_mp.c they cost it a quarter more time
//  (bench_envelope). The common case (a fixstr, a positive fixint) is
//  decided here; everything else goes to the out-of-line reader.

int vz_mp_read_str_slow(vz_mp_reader_t *self, const char **data, uint32_t *len,
                        const char *type_reason);
int vz_mp_read_uint_slow(vz_mp_reader_t *self, uint64_t max, uint64_t *out, const char *type_reason,
                         const char *range_reason);

//  Bytes not read yet.
static inline size_t vz_mp_left(const vz_mp_reader_t *self)
{
    return (size_t)(self->end - self->p);
}

//  A nil is next: consume it and return true. False (nothing consumed) for
//  anything else or at the end. Codecs read a nil value as "absent".
static inline bool vz_mp_read_nil(vz_mp_reader_t *self)
{
    if (self->p == self->end || *self->p != 0xc0)
        return false;
    self->p++;
    return true;
}

static inline int vz_mp_read_str(vz_mp_reader_t *self, const char **data, uint32_t *len,
                                 const char *type_reason)
{
    if (self->p != self->end && (*self->p & 0xe0) == 0xa0) {
        uint32_t n = *self->p & 0x1f;
        //  The header byte and n bytes are there, and n is within the limit.
        if (n < vz_mp_left(self) && n <= self->limits.max_string) {
            *data = (const char *)self->p + 1;
            *len = n;
            self->p += 1 + n;
            return 0;
        }
    }
    return vz_mp_read_str_slow(self, data, len, type_reason);
}

//  A str copied into dst of cap bytes with its NUL. Longer than cap - 1 is
//  "string too long" and an embedded NUL "NUL in string": never truncated.
static inline int vz_mp_read_str_copy(vz_mp_reader_t *self, char *dst, size_t cap,
                                      const char *type_reason)
{
    const char *data;
    uint32_t len;
    if (vz_mp_read_str(self, &data, &len, type_reason) < 0)
        return VZ_EMALFORMED;
    if (len >= cap)
        return vz_mp_fail(self, "string too long");
    //  An embedded NUL would cut the C string silently.
    if (memchr(data, 0, len))
        return vz_mp_fail(self, "NUL in string");
    memcpy(dst, data, len);
    dst[len] = 0;
    return 0;
}

//  Any integer encoding whose value is in 0..max (else range_reason, NULL =
//  "integer out of range").
static inline int vz_mp_read_uint(vz_mp_reader_t *self, uint64_t max, uint64_t *out,
                                  const char *type_reason, const char *range_reason)
{
    if (self->p != self->end && *self->p <= 0x7f && *self->p <= max) {
        *out = *self->p++;
        return 0;
    }
    return vz_mp_read_uint_slow(self, max, out, type_reason, range_reason);
}

// --------------------------------------------------------------------------
//  Pack helpers (msgpack-c packer; out of memory aborts inside msgpack-c's
//  sbuffer only if the caller did not reserve with vz_mp_sbuffer_init)

//  A sbuffer whose first cap bytes are allocated now (out of memory
//  aborts). msgpack_sbuffer starts at 8 KiB otherwise; with cap an upper
//  bound of the body the packer never reallocates.
void vz_mp_sbuffer_init(msgpack_sbuffer *sb, size_t cap);
//  The sbuffer's bytes as a heap buffer the caller frees; *len_p its size.
uint8_t *vz_mp_sbuffer_take(msgpack_sbuffer *sb, size_t *len_p);

//  Inline like msgpack-c's own pack functions: the envelope encoder calls
//  them about 25 times per frame, and a call each cost it a third more time
//  (bench_envelope). strlen of a literal key then folds to a constant.

//  A str from len bytes, or from a NUL-terminated text.
static inline void vz_mp_pack_strn(msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, text, len);
}

static inline void vz_mp_pack_str(msgpack_packer *pk, const char *text)
{
    vz_mp_pack_strn(pk, text, strlen(text));
}

static inline void vz_mp_pack_bool(msgpack_packer *pk, bool value)
{
    if (value)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

//  One map entry: a str key and its value.
static inline void vz_mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
    vz_mp_pack_str(pk, key);
    vz_mp_pack_str(pk, value);
}

static inline void vz_mp_pack_kv_strn(msgpack_packer *pk, const char *key, const char *value,
                                      size_t len)
{
    vz_mp_pack_str(pk, key);
    vz_mp_pack_strn(pk, value, len);
}

static inline void vz_mp_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value)
{
    vz_mp_pack_str(pk, key);
    msgpack_pack_uint64(pk, value);
}

static inline void vz_mp_pack_kv_int(msgpack_packer *pk, const char *key, int64_t value)
{
    vz_mp_pack_str(pk, key);
    msgpack_pack_int64(pk, value);
}

static inline void vz_mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value)
{
    vz_mp_pack_str(pk, key);
    vz_mp_pack_bool(pk, value);
}

#endif
