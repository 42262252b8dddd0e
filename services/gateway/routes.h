/*  routes - the gateway's route table, loaded from a ZPL file (configs/routes.cfg)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A table maps HTTP method + path pattern ("/v1/auth/api-keys/{id}") to a
 *  service method with its policy: authentication, scopes, rate-limit
 *  class, timeout, retry, body limit, accepted content types, headers to
 *  forward. The whole file is validated before a table exists, so a reload
 *  either yields a complete new table or an error text naming the route
 *  and the field; the caller keeps the old table in the latter case.
 *
 *  Tables are immutable once built and reference-counted: the gateway
 *  swaps its pointer under a lock held only for the copy, and every request
 *  holds a reference to the table it was matched against, so a reload never
 *  pulls a route from under a request in flight (RCU-like). ref/unref are
 *  thread-safe; everything else reads only.
 */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vz_common.h"
#include "vz_envelope.h"
#include "vz_metrics.h"

//  HTTP method bits.
#define GW_M_GET 0x01u
#define GW_M_POST 0x02u
#define GW_M_PUT 0x04u
#define GW_M_PATCH 0x08u
#define GW_M_DELETE 0x10u
#define GW_M_ALL 0x1fu

#define GW_ROUTE_SEGS_MAX 16   //  path segments in a pattern
#define GW_ROUTE_PARAMS_MAX 4  //  {params} in one pattern
#define GW_ROUTE_HEADERS_MAX 4 //  request headers forwarded as ctx
#define GW_ROUTE_QUERY_MAX 4   //  query parameters forwarded as ctx
#define GW_ROUTE_PATH_MAX 256  //  pattern length
#define GW_ROUTE_PARAM_MAX 24  //  param name: "path." + name fits a ctx key
#define GW_ROUTE_TEXT_MAX 256  //  scopes, content types
#define GW_ROUTES_MAX 128      //  routes in one table
#define GW_ROUTE_LINK_MAX 600  //  Link header of a deprecated route (two references)
//  The gateway's own pseudo-service: a route naming it is answered by the
//  gateway itself (gw_deprecation.h), never forwarded, not a /health need.
#define GW_ROUTE_SELF "gateway"
//  Params, headers and query parameters of one route together: with the
//  auth context, content_type and route.version (8 entries) they always
//  fit VZ_CTX_MAX.
#define GW_ROUTE_NAMED_MAX 8

typedef enum {
    GW_AUTH_NONE,    //  anyone
    GW_AUTH_JWT,     //  Bearer JWT (ES256) required
    GW_AUTH_API_KEY, //  X-API-Key required
    GW_AUTH_ANY,     //  either of them
} gw_route_auth_t;

typedef struct {
    char name[VZ_NAME_MAX];             //  ZPL child name; metrics label, rate-limit route
    unsigned methods;                   //  GW_M_* allowed
    char path[GW_ROUTE_PATH_MAX];       //  pattern as written
    char service[VZ_NAME_MAX];          //  target service
    char call[VZ_NAME_MAX];             //  target method
    gw_route_auth_t auth;               //  required credential
    char scopes[GW_ROUTE_TEXT_MAX];     //  space-separated, all required ("" = none)
    char rate_class[VZ_NAME_MAX];       //  rate-limit class ("" = not limited)
    int timeout_ms;                     //  0 = the gateway default
    bool retry;                         //  idempotent: flag it and allow retries
    int max_body;                       //  0 = the gateway default
    char accept[GW_ROUTE_TEXT_MAX];     //  accepted request media types ("" = any)
    bool json;                          //  a non-empty body must be valid JSON
    bool pass_ctype;                    //  reply carries the request's Content-Type
    bool optional;                      //  its service may be absent: /health stays "ok"
    bool bundle;                        //  may share a bundle envelope with its neighbours
    char reply_type[GW_ROUTE_TEXT_MAX]; //  reply Content-Type ("" = application/json)
    bool oauth_errors;                  //  errors = "oauth2": RFC 6749 §5.2 error bodies
    size_t header_count;                //  entries in headers
    char headers[GW_ROUTE_HEADERS_MAX][VZ_CTX_KEY_MAX]; //  forwarded, lowercase names
    size_t query_count;                                 //  entries in query
    char query[GW_ROUTE_QUERY_MAX][VZ_CTX_KEY_MAX];     //  query parameters forwarded
    char version[VZ_NAME_MAX];                          //  target service version ("" = any)
    int64_t deprecated_s;                               //  deprecation date, Unix s (0 = none)
    int64_t sunset_s;                                   //  sunset date, Unix s (0 = none)
    char successor[GW_ROUTE_PATH_MAX];                  //  successor path or URL ("" = none)
    char deprecation_link[GW_ROUTE_PATH_MAX];           //  its documentation URL ("" = none)
    char hdr_deprecation[24];                           //  Deprecation value, sf-date
    char hdr_sunset[32];                                //  Sunset value, IMF-fixdate ("" = none)
    char hdr_link[GW_ROUTE_LINK_MAX];                   //  Link value ("" = none)
    size_t seg_count;                                   //  segments of the pattern
    char segs[GW_ROUTE_SEGS_MAX][VZ_NAME_MAX];          //  literal text, or the param name
    bool is_param[GW_ROUTE_SEGS_MAX];                   //  segment i is a {param}
    size_t literal_count;                               //  literal segments (more = more specific)
    vz_series_t *duration;                              //  latency histogram, set by the gateway
    vz_series_t *answered_200;                          //  requests_total{status=200}, idem
    vz_series_t *answered_429;                          //  requests_total{status=429}, idem
    vz_series_t *deprecated_calls; //  deprecated_requests_total, idem (deprecated routes)
} gw_route_t;

typedef struct gw_routes_t gw_routes_t;

//  A matched request: route and the values of its params.
typedef struct {
    const gw_route_t *route;                                  //  NULL = no route
    unsigned allow;                                           //  methods of routes with this path
    size_t param_count;                                       //  entries below
    char param_name[GW_ROUTE_PARAMS_MAX][GW_ROUTE_PARAM_MAX]; //  param names
    char param_value[GW_ROUTE_PARAMS_MAX][VZ_CTX_VAL_MAX];    //  their values
} gw_route_match_t;

//  Load and validate a ZPL table (file at most 1 MiB). Returns the table
//  (refcount 1) or NULL with a one-line reason in err.
gw_routes_t *gw_routes_load(const char *path, char *err, size_t errlen);
//  Same from text in memory (tests, and the file after it was read).
gw_routes_t *gw_routes_parse(const char *text, char *err, size_t errlen);

gw_routes_t *gw_routes_ref(gw_routes_t *self);
//  Drop a reference; the last one frees and nulls *self_p either way.
void gw_routes_unref(gw_routes_t **self_p);

size_t gw_routes_count(const gw_routes_t *self);
//  Route i (mutable only before the table is shared).
gw_route_t *gw_routes_at(gw_routes_t *self, size_t i);

//  Match method (GW_M_* bit; 0 = path only) and path. Returns true when a
//  route's pattern and method match; match->allow is filled either way
//  (0 = no pattern matched the path: 404).
bool gw_routes_match(const gw_routes_t *self, unsigned method, const char *path,
                     gw_route_match_t *match);

//  GW_M_* bit of an HTTP method name, 0 when unknown.
unsigned gw_routes_method_bit(const char *method);
//  "GET, POST" style text for an Allow header into buf.
void gw_routes_allow_text(unsigned methods, char *buf, size_t n);

#endif
