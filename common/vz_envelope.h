/*  vz_envelope - the one msgpack message envelope of the mesh (version 1)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Wire form: a msgpack map with short string keys (documented field by
 *  field in docs/protocol.md). Decoding copies every string into the fixed,
 *  NUL-terminated fields below; the body is a borrowed pointer into the
 *  decoded buffer, valid as long as that buffer is.
 *
 *  The decoder never trusts a declared length: every length is checked
 *  against the bytes left and against the limits before anything is read or
 *  allocated; unknown keys are skipped within the same limits (forward
 *  compatibility); a version other than VZ_ENVELOPE_VERSION is malformed.
 */
#ifndef VZ_ENVELOPE_H
#define VZ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include "vz_common.h"

#define VZ_ENVELOPE_VERSION 1

typedef enum {
    VZ_KIND_REQUEST = 1, //  client -> service, expects exactly one reply or error
    VZ_KIND_REPLY = 2,   //  service -> client, success
    VZ_KIND_ERROR = 3,   //  anyone -> client, failure with error_code/error_message
    VZ_KIND_EVENT = 4,   //  fire-and-forget notification, no reply
} vz_kind_t;

//  flags
#define VZ_FLAG_IDEMPOTENT 0x1u //  safe to retry on another worker
#define VZ_FLAG_BUNDLE     0x2u //  body is a bundle of requests to this service.method (vz_batch.h)

//  Field capacities (including the NUL).
#define VZ_TRACEPARENT_MAX 64   //  W3C traceparent is 55 characters
#define VZ_ERRCODE_MAX     48
#define VZ_ERRMSG_MAX      256
#define VZ_CTX_MAX         16   //  auth context entries
#define VZ_CTX_KEY_MAX     32
#define VZ_CTX_VAL_MAX     256

typedef struct {
    char key[VZ_CTX_KEY_MAX];   //  e.g. "sub", "scope", "tier", "kid"
    char value[VZ_CTX_VAL_MAX]; //  its value
} vz_ctx_entry_t;

typedef struct {
    uint32_t version;                     //  always VZ_ENVELOPE_VERSION after decode
    vz_kind_t kind;                       //  request, reply, error or event
    char service[VZ_NAME_MAX];            //  target service, e.g. "auth"
    char method[VZ_NAME_MAX];             //  method within the service, e.g. "login"
    char id[VZ_ID_MAX];                   //  request id, echoed in the reply
    char traceparent[VZ_TRACEPARENT_MAX]; //  W3C trace context, may be empty
    int64_t deadline_ms;                  //  absolute Unix ms after which nobody waits; 0 = none
    uint32_t flags;                       //  VZ_FLAG_*
    char caller[VZ_NAME_MAX];             //  identity from the CURVE key, set by the receiver
    size_t ctx_count;                     //  entries used in ctx
    vz_ctx_entry_t ctx[VZ_CTX_MAX];       //  auth context (subject, scopes, tier, key id)
    char error_code[VZ_ERRCODE_MAX];      //  kind == ERROR: machine code, e.g. "no_worker"
    char error_message[VZ_ERRMSG_MAX];    //  kind == ERROR: human text
    const uint8_t *body;                  //  opaque payload (borrowed), may be NULL
    size_t body_len;                      //  its length
} vz_envelope_t;

typedef struct {
    size_t max_frame;  //  whole encoded envelope, bytes
    size_t max_string; //  any string value, bytes
    size_t max_map;    //  entries in any map (and elements of arrays in unknown values)
    size_t max_depth;  //  nesting depth of skipped unknown values
} vz_envelope_limits_t;

//  Defaults: 1 MiB frame, 4 KiB strings, 64 map entries, depth 8.
extern const vz_envelope_limits_t vz_envelope_limits_default;

//  Zero every field and set version; kind defaults to request.
void vz_envelope_init(vz_envelope_t *self, vz_kind_t kind);

//  vz_envelope_init as a request to service.method with id (NULL = none).
//  Returns 0, or -ENAMETOOLONG when a name does not fit (that field is
//  left empty, so the envelope does not encode).
int vz_envelope_request(vz_envelope_t *self, const char *service, const char *method,
                        const char *id);

//  Add an auth context entry, or replace the value of an existing key;
//  -ENOSPC when full, -ENAMETOOLONG if too long, -EINVAL for an empty key.
//  What does not fit is refused, never cut; a failure changes nothing.
int vz_envelope_ctx_set(vz_envelope_t *self, const char *key, const char *value);
//  The same on a bare entry array with room for VZ_CTX_MAX, *count in use:
//  a context built before its envelope (the gateway's, vz_authctx.h).
int vz_envelope_ctx_put(vz_ctx_entry_t *ctx, size_t *count, const char *key, const char *value);
//  Borrowed value of a context entry, or NULL.
const char *vz_envelope_ctx_get(const vz_envelope_t *self, const char *key);

//  Start a reply (or error) to req: copies id, service, method, traceparent;
//  kind REPLY, no body.
void vz_envelope_reply_to(vz_envelope_t *reply, const vz_envelope_t *req);
void vz_envelope_error_to(vz_envelope_t *reply, const vz_envelope_t *req, const char *code,
                          const char *message);

//  Encode. On success *buf_p is a malloc'd buffer the caller frees and
//  *len_p its length; returns 0, or -EMSGSIZE when larger than
//  vz_envelope_limits_default.max_frame, or -EINVAL for what no decoder
//  accepts (version not 1, kind out of range, negative deadline, request or
//  event without service/method, error without error_code, an empty or
//  repeated ctx key). caller is never encoded.
int vz_envelope_encode(const vz_envelope_t *self, uint8_t **buf_p, size_t *len_p);

//  Decode buf into self. limits NULL = defaults. Returns 0, or VZ_EMALFORMED
//  with *reason (may be NULL) pointing to a static text such as
//  "truncated", "string too long", "unsupported version", "wrong type for kind".
//  Does not allocate. caller is always empty afterwards (a "who" sent by the
//  peer is checked, then dropped): the receiver fills it from CURVE. On
//  success body == NULL exactly when body_len == 0. On failure the fields
//  are valid C strings but otherwise unspecified.
int vz_envelope_decode(vz_envelope_t *self, const uint8_t *buf, size_t len,
                       const vz_envelope_limits_t *limits, const char **reason);

#endif
