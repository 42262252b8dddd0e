/*  gw_deprecation - API versions: deprecation headers, sunset, callers of old routes
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A route of routes.cfg may be marked deprecated (routes.h: deprecated_s,
 *  sunset_s, successor, deprecation_link). Such a route then answers:
 *
 *    Deprecation: @1780272000                  RFC 9745: a structured-field
 *                                              date (RFC 9651 sf-date), sent
 *                                              before the date too: the RFC
 *                                              lets it announce a future one
 *    Sunset: Tue, 01 Jun 2027 00:00:00 GMT     RFC 8594: an IMF-fixdate
 *    Link: </v2/echo>; rel="successor-version", <https://..>; rel="deprecation";
 *          type="text/html"                    RFC 5829 and RFC 9745 §3
 *
 *  on every response of the route, and from its sunset on (by the gateway's
 *  clock, vz_clock_now, which tests shift with VZ_CLOCK_START) 410 Gone
 *  with code "route_sunset" and a message naming the successor.
 *
 *  Calls to deprecated routes are counted per route on /metrics
 *  (vz_gateway_deprecated_requests_total{route}) and per client in a
 *  bounded record (gw_deprecations_t): the client is the API key id
 *  ("key:<kid>"), else the token's subject ("sub:<sub>"), else the client
 *  address ("ip:<addr>"). Each route keeps at most clients_max clients;
 *  when it is full a new client takes the place of the one with the fewest
 *  calls and starts from that count (the space-saving top-k algorithm:
 *  a client with more than 1/clients_max of the route's calls is never
 *  lost, a count is an upper bound whose possible excess is reported as
 *  "overcount"). At most GW_ROUTES_MAX routes are
 *  recorded. The record lives in the replica's memory like its metrics;
 *  every replica reports its own callers.
 *
 *  The pipeline stage that uses this module is gw_versions.c (after limit:
 *  records the call, answers 410 after the sunset, and answers the
 *  gateway's own report route, service "gateway" call "deprecations": GET
 *  /v1/admin/deprecations); the front adds the headers (gateway.c). This
 *  module stays free of libmicrohttpd and the pipeline, so that routes.c
 *  (and its fuzz target) can use the date helpers.
 *
 *  Threads: the date helpers are pure; gw_deprecations_t may be used from
 *  any thread (one mutex, held for a lookup in one route's table).
 */
#ifndef GW_DEPRECATION_H
#define GW_DEPRECATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routes.h"

#define GW_DEPRECATION_CLIENT_MAX 80            //  "key:" / "sub:" / "ip:" + identity, truncated
#define GW_DEPRECATION_CLIENTS_MAX 1000         //  upper bound of the clients_max setting
#define GW_DEPRECATION_SF_DATE_MAX 24           //  "@" + seconds
#define GW_DEPRECATION_HTTP_DATE_MAX 32         //  "Tue, 01 Jun 2027 00:00:00 GMT"
#define GW_DEPRECATION_SELF_CALL "deprecations" //  service "gateway": the report
#define GW_ERR_ROUTE_SUNSET "route_sunset"      //  code of the 410 after a sunset

// --------------------------------------------------------------------------
//  Dates and headers (pure)

//  "YYYY-MM-DDTHH:MM:SSZ" (UTC) into Unix seconds: 0, or -EINVAL for any
//  other text or a date before 1970-01-02 or after 9999.
int gw_deprecation_parse_date(const char *text, int64_t *out_s);
//  RFC 9651 sf-date of s ("@1780272000") into buf.
void gw_deprecation_sf_date(int64_t s, char *buf, size_t n);
//  RFC 9110 IMF-fixdate of s ("Tue, 01 Jun 2027 00:00:00 GMT"), locale
//  independent. 0, or -EINVAL when s is out of range or buf too small.
int gw_deprecation_http_date(int64_t s, char *buf, size_t n);
//  The Link value for successor and doc (either may be ""): "" when both
//  are. 0, or -ENAMETOOLONG.
int gw_deprecation_link(const char *successor, const char *doc, char *buf, size_t n);
//  A successor or documentation reference may appear inside <...>: a path
//  ("/v2/echo") or an http(s) URL, printable, without spaces, '<', '>',
//  '"' or ','.
bool gw_deprecation_ref_ok(const char *ref);

//  True when route's sunset has come at now_s (Unix seconds).
bool gw_deprecation_sunset(const gw_route_t *route, int64_t now_s);
//  The client key of a caller (see above) into buf: kid and sub may be
//  NULL or "" (anonymous).
void gw_deprecation_client(const char *kid, const char *sub, const char *ip, char *buf, size_t n);

// --------------------------------------------------------------------------
//  Callers per route

typedef struct gw_deprecations_t gw_deprecations_t;

//  A record keeping at most clients_max (1..GW_DEPRECATION_CLIENTS_MAX)
//  clients per route.
gw_deprecations_t *gw_deprecations_new(size_t clients_max);
void gw_deprecations_destroy(gw_deprecations_t **self_p);

//  One call of client to route at now_s.
void gw_deprecations_record(gw_deprecations_t *self, const char *route, const char *client,
                            int64_t now_s);

//  The record as JSON (caller frees; *len its length):
//  {"clients_max":N,"routes":[{"route":..,"calls":N,"replaced":N,"clients":[
//    {"client":..,"calls":N,"overcount":N,"first_seen":"..Z","last_seen":"..Z"}]}]}
//  routes by name, clients by calls, most first.
char *gw_deprecations_report(gw_deprecations_t *self, size_t *len);

#endif
