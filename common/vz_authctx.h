/*  vz_authctx - the auth context: who may set it, its keys, scopes, worker replies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  "Auth context" is this code's name for an envelope's ctx map (vz_envelope.h,
 *  docs/protocol.md, contract B). The gateway turns an HTTP request into an
 *  envelope and attaches who the caller is (auth, sub, scope, tier, kid),
 *  where it came from (client_ip) and what a service may need of the HTTP
 *  request (content_type, path.<param>, header.<name>). A worker's reply
 *  carries the HTTP answer back in its own ctx (http_status, http_location,
 *  contract C). This module is both ends of that contract, so that neither
 *  side spells a key, a trust rule or a scope rule of its own:
 *
 *  - the key and value constants, for the gateway that writes them and for
 *    the workers that read them;
 *  - the trust decision: ctx entries count only when the broker vouches that
 *    the caller is one of the identities in the static const table of
 *    vz_authctx.c (today only the gateway). Anyone allowed to call a service
 *    may put anything in ctx, so a daemon never compares identity strings: it
 *    reads through vz_authctx_get/_read, which see nothing from others;
 *  - writers that refuse a key or a value that does not fit, never cut it:
 *    a cut scope list can spell a scope that was never granted
 *    ("admin:read" cut after five bytes is "admin");
 *  - the one parser of scope lists (RFC 6749 §3.3: scopes separated by
 *    spaces) with has / missing / subset / normalize;
 *  - JSON reply helpers for HTTP-facing workers (200, 201 with Location,
 *    errors with their HTTP status).
 *
 *  Threads: no state; every function may run on any thread, on objects that
 *  thread owns. Errors: 0 or a negative errno, nothing is logged. Strings
 *  returned are borrowed from the envelope (or list) they came from.
 */
#ifndef VZ_AUTHCTX_H
#define VZ_AUTHCTX_H

#include <stdbool.h>
#include <stddef.h>

#include "vz_envelope.h"
#include "vz_json.h"
#include "vz_worker.h"

//  Request ctx the gateway sets (contract B).
#define VZ_AUTHCTX_AUTH "auth"                 //  how the caller proved itself: VZ_AUTHCTX_BY_*
#define VZ_AUTHCTX_SUB "sub"                   //  subject: user id "u_...", OAuth client "c_..."
#define VZ_AUTHCTX_SCOPE "scope"               //  granted scopes, space-separated
#define VZ_AUTHCTX_TIER "tier"                 //  VZ_AUTHCTX_TIER_*
#define VZ_AUTHCTX_KID "kid"                   //  API key id (auth api_key only)
#define VZ_AUTHCTX_CLIENT_IP "client_ip"       //  the HTTP client's address
#define VZ_AUTHCTX_CONTENT_TYPE "content_type" //  the request's Content-Type, when sent
#define VZ_AUTHCTX_PATH_PREFIX "path."         //  + route parameter name (contract E)
#define VZ_AUTHCTX_HEADER_PREFIX "header."     //  + lowercase name of a forwarded header
#define VZ_AUTHCTX_QUERY_PREFIX "query."       //  + name of a forwarded query parameter
//  The worker version a route names (its "version" option), when it names one.
#define VZ_AUTHCTX_ROUTE_VERSION "route.version"

//  Values of VZ_AUTHCTX_AUTH.
#define VZ_AUTHCTX_BY_NONE "none"       //  no credential (or an untrusted caller)
#define VZ_AUTHCTX_BY_JWT "jwt"         //  a user's access token
#define VZ_AUTHCTX_BY_OAUTH "oauth"     //  a client-credentials token (client_id claim)
#define VZ_AUTHCTX_BY_API_KEY "api_key" //  an API key

//  Values of VZ_AUTHCTX_TIER.
#define VZ_AUTHCTX_TIER_ANONYMOUS "anonymous" //  no credential
#define VZ_AUTHCTX_TIER_FREE "free"           //  default of every credential
#define VZ_AUTHCTX_TIER_PREMIUM "premium"     //  the paid tier

//  Reply ctx a worker sets for the gateway (contract C).
#define VZ_AUTHCTX_HTTP_STATUS "http_status"     //  decimal; replies 200..399, errors 400..599
#define VZ_AUTHCTX_HTTP_LOCATION "http_location" //  the Location header of the answer
#define VZ_AUTHCTX_HTTP_CONTENT_TYPE "http_content_type" //  its Content-Type, over the route's

//  Error codes of HTTP-facing workers (contract C), with the status the
//  contract gives each (vz_authctx_error_status).
#define VZ_AUTHCTX_ERR_UNAUTHORIZED "unauthorized"    //  401: no or bad credential
#define VZ_AUTHCTX_ERR_DENIED "access_denied"         //  403: credential lacks a right
#define VZ_AUTHCTX_ERR_NOT_FOUND "not_found"          //  404
#define VZ_AUTHCTX_ERR_CONFLICT "conflict"            //  409
#define VZ_AUTHCTX_ERR_VALIDATION "validation_failed" //  422: a field is wrong
#define VZ_AUTHCTX_ERR_TOO_MANY "too_many_requests"   //  429

//  Longest value of any entry, in bytes: a scope list longer than this can
//  never travel, so whoever grants scopes keeps lists within it.
#define VZ_AUTHCTX_VALUE_MAX (VZ_CTX_VAL_MAX - 1)

// --------------------------------------------------------------------------
//  Trust and reading (workers)

//  True when caller, the identity the broker vouched for (vz_envelope_t
//  caller), may set the auth context. NULL or "" is never trusted.
bool vz_authctx_trusted(const char *caller);

//  The value of key in req's ctx when req->caller is trusted; NULL when it
//  is not, or the key is absent.
const char *vz_authctx_get(const vz_envelope_t *req, const char *key);
//  Path parameter name ("path." + name), forwarded header (name in any
//  case; "header." + its lowercase) and query parameter ("query." + name),
//  same rules. NULL also when the name cannot make a key.
const char *vz_authctx_param(const vz_envelope_t *req, const char *name);
const char *vz_authctx_header(const vz_envelope_t *req, const char *name);
const char *vz_authctx_query(const vz_envelope_t *req, const char *name);

//  The caller as the gateway described it. Read: no field is NULL. Written
//  (vz_authctx_write): a NULL field is left out.
typedef struct {
    bool trusted;          //  read only: the caller may set the auth context
    const char *auth;      //  VZ_AUTHCTX_BY_*; read: "none" when untrusted, absent or empty
    const char *sub;       //  subject; read: "" when absent
    const char *scope;     //  granted scopes; read: "" when absent
    const char *tier;      //  VZ_AUTHCTX_TIER_*; read: "" when absent
    const char *kid;       //  API key id; read: "" when absent
    const char *client_ip; //  the HTTP client's address; read: "" when absent
} vz_authctx_t;

//  Fill ctx from req. Strings are borrowed from req, valid while it is;
//  from an untrusted caller every one is "" (auth "none").
void vz_authctx_read(const vz_envelope_t *req, vz_authctx_t *ctx);

// --------------------------------------------------------------------------
//  Writing (the gateway). ctx is an entry array with room for VZ_CTX_MAX,
//  *count of them used (vz_envelope_ctx_put). Each returns 0, or -EINVAL
//  (empty key), -ENAMETOOLONG (key or value does not fit: refused, never
//  cut), -ENOSPC (no room); after a failure the entries written before it
//  stay, and the caller must not forward the request.

//  Write who's non-NULL fields: auth, sub, scope, tier, kid, client_ip.
int vz_authctx_write(vz_ctx_entry_t *ctx, size_t *count, const vz_authctx_t *who);
//  "path." + name = value.
int vz_authctx_set_param(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value);
//  "header." + lowercase name = value.
int vz_authctx_set_header(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value);
//  "query." + name = value.
int vz_authctx_set_query(vz_ctx_entry_t *ctx, size_t *count, const char *name, const char *value);

// --------------------------------------------------------------------------
//  Scope lists: scopes separated by one or more spaces (RFC 6749 §3.3).
//  Every other byte belongs to a scope, so "read,write" is one scope and
//  "admin\t" is not "admin": a malformed list grants less, never more.
//  Matching is exact and case-sensitive.

//  The next scope at *cursor: its first byte, *len its length, and *cursor
//  moved past it; NULL at the end. Iterate with
//      const char *p = list, *s; size_t n;
//      while ((s = vz_authctx_scope_next(&p, &n))) ...
const char *vz_authctx_scope_next(const char **cursor, size_t *len);
//  True when list has scope (a non-empty word without spaces).
bool vz_authctx_scope_has(const char *list, const char *scope);
//  The first scope of want that have lacks (borrowed from want, *len its
//  length), or NULL when have has every one (also when want is empty).
const char *vz_authctx_scope_missing(const char *want, const char *have, size_t *len);
//  True when have has every scope of want.
bool vz_authctx_scope_subset(const char *want, const char *have);
//  list in canonical form into out (size n): single spaces, each scope once,
//  in first-seen order. 0, -EINVAL when a scope has a byte outside RFC 6749's
//  scope-token (%x21 / %x23-5B / %x5D-7E), -ENAMETOOLONG when the result
//  does not fit n (never cut). out is "" after a failure.
int vz_authctx_scope_normalize(const char *list, char *out, size_t n);

// --------------------------------------------------------------------------
//  Replies of HTTP-facing workers (reactor thread, inside a handler or
//  before vz_reply_defer). Use one per reply: ctx a helper set stays when a
//  later call replaces the body. Each returns 0 once the reply (or an error
//  in its place) is set, so a handler may return what it returns.

//  Reply with the writer's JSON document (200 at the gateway); takes the
//  writer (*writer_p destroyed and nulled). A failed or unfinished
//  document becomes an "internal" error.
int vz_authctx_reply_json(vz_reply_t *reply, vz_json_writer_t **writer_p);
//  The same for a resource just created: http_status 201 and, when location
//  is not NULL, http_location. A location of more than VZ_AUTHCTX_VALUE_MAX
//  bytes is refused: -ENAMETOOLONG and an "internal" error as the reply.
int vz_authctx_reply_created(vz_reply_t *reply, vz_json_writer_t **writer_p, const char *location);
//  Error reply: code and message (vz_reply_error), and http_status = status
//  in the reply ctx. status 0 = the status the contract gives code, or none
//  when it gives none (the gateway then maps the code). -EINVAL (and no
//  reply) for a status outside 400..599.
int vz_authctx_reply_error(vz_reply_t *reply, int status, const char *code, const char *message);
//  The HTTP status contract C gives a worker's error code, or 0.
int vz_authctx_error_status(const char *code);

#endif
