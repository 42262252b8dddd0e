/*  edge - the gateway's credential state: JWKS, verified tokens, API-key answers
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  What the authenticate stage (gw_auth.c) keeps to know callers without
 *  a network round trip on an HTTP thread:
 *    - the auth service's JWKS (auth.jwks), fetched by the reactor at start,
 *      refreshed every refresh_ms, fetched again on an unknown kid (one
 *      fetch at a time, at most one per min_interval_ms; with no keys yet
 *      and the last fetch failed, one per retry_ms, as Envoy's
 *      failed_refetch_duration), kept (stale) when auth is away;
 *    - a cache of verified tokens (SHA-256 of the token -> identity, until
 *      exp), bounded, dropped when the key set changes;
 *    - a cache of API-key answers (SHA-256 of the key -> identity), ttl_ms
 *      for valid keys and negative_ms for unknown ones, bounded.
 *  Raw credentials are never stored: caches are keyed by their digest.
 *
 *  Threads: verify/lookup/store may run on any thread (a mutex guards
 *  the shared state, signature checks run outside it). Fetches are sent by
 *  the reactor through gw_upstream; waiters are called on the reactor.
 */
#ifndef GW_EDGE_H
#define GW_EDGE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "upstream.h"
#include "vz_auth_contract.h"
#include "vz_jwt.h"
#include "vz_metrics.h"

#define GW_EDGE_EWAIT -11                     //  no usable keys yet: a waiter was queued
#define GW_EDGE_EUNAVAIL -12                  //  no keys and the auth service is away
#define GW_EDGE_TIER_MAX 16                   //  "anonymous", "free", "premium" (incl. NUL)
#define GW_EDGE_APIKEY_MAX VZ_AUTH_APIKEY_MAX //  longest X-API-Key accepted, incl. NUL

typedef struct {
    char issuer[256];       //  required iss
    char audience[256];     //  required aud
    int leeway_s;           //  clock skew on exp/nbf/iat
    int refresh_ms;         //  background JWKS refresh period
    int min_interval_ms;    //  least time between two JWKS fetches
    int retry_ms;           //  ...while no key was ever fetched and the last fetch failed
    int fetch_timeout_ms;   //  deadline of one auth call (jwks, api_key_verify)
    int token_cache;        //  verified-token cache slots; 0 = off
    int apikey_ttl_ms;      //  valid API-key answers kept this long
    int apikey_negative_ms; //  invalid ones this long
    int apikey_cache_max;   //  entries at most
} gw_edge_config_t;

//  Who the caller is, once authenticated (contract B).
typedef struct {
    const char *auth;             //  "jwt", "oauth" or "api_key" (static)
    char sub[VZ_JWT_STR_MAX];     //  subject
    char scope[VZ_JWT_SCOPE_MAX]; //  granted scopes, space-separated
    char tier[GW_EDGE_TIER_MAX];  //  free | premium (anonymous never here)
    char kid[VZ_AUTH_KID_MAX];    //  API key id ("" for tokens)
    int64_t exp;                  //  token expiry, Unix s (0 = API key)
} gw_edge_identity_t;

//  Called on the reactor when a JWKS fetch a verify queued on ends.
typedef struct gw_edge_waiter_t gw_edge_waiter_t;
struct gw_edge_waiter_t {
    void (*fn)(gw_edge_waiter_t *waiter); //  then verify again
    void *arg;                            //  for fn
    gw_edge_waiter_t *next;               //  queue link (edge-private)
};

typedef struct gw_edge_t gw_edge_t;

//  upstream and metrics borrowed.
gw_edge_t *gw_edge_new(const gw_edge_config_t *config, gw_upstream_t *upstream,
                       vz_metrics_t *metrics);
//  After gw_upstream_close (which ends any fetch in flight).
void gw_edge_destroy(gw_edge_t **self_p);

//  First JWKS fetch now, then a timer for refreshes and the cache-age gauge.
int gw_edge_attach(gw_edge_t *self, zloop_t *loop);

//  Verify a bearer JWT. 0 and *id filled; a VZ_JWT_E* code; GW_EDGE_EWAIT
//  when the keys must be fetched first (waiter queued: it is called on the
//  reactor once the fetch ends, and the caller verifies again; with
//  waiter NULL the fetch is not waited for and the result is VZ_JWT_EKID
//  or GW_EDGE_EUNAVAIL); GW_EDGE_EUNAVAIL when no keys were ever fetched
//  and a fetch failed less than retry_ms ago.
int gw_edge_jwt_verify(gw_edge_t *self, const char *token, size_t len, gw_edge_identity_t *id,
                       gw_edge_waiter_t *waiter);

//  The cached JWKS document (caller frees) or NULL when none yet.
char *gw_edge_jwks_document(gw_edge_t *self, size_t *len_p);

//  API key cache: 1 hit (*valid and *id filled), 0 miss.
int gw_edge_apikey_lookup(gw_edge_t *self, const char *key, bool *valid, gw_edge_identity_t *id);
//  Store an answer of auth.api_key_verify.
void gw_edge_apikey_store(gw_edge_t *self, const char *key, bool valid,
                          const gw_edge_identity_t *id);

#endif
