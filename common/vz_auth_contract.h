/*  vz_auth_contract - the msgpack bodies of the auth service's internal methods
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The auth methods other services call (contract A in docs/protocol.md),
 *  defined once for the service, its callers (the gateway) and the tests:
 *
 *    api_key_verify    request  {key: str}
 *                      reply    {valid: bool, sub, scope, tier, kid: str}
 *    token_introspect  request  {token: str}
 *                      reply    {active: false} or {active: true, sub, scope,
 *                               client_id, token_type, tier: str, exp, iat: int}
 *
 *  (auth.jwks answers an RFC 7517 JSON document, read by vz_jwt; the
 *  HTTP-facing methods take and answer JSON, docs/protocol.md.)
 *
 *  Encoders return a heap buffer the caller frees (out of memory aborts).
 *  Decoders read untrusted bytes with vz_mp's bounded reader, allocate
 *  nothing, skip unknown keys, refuse a repeated key and a string longer
 *  than its field (never cut), and return 0 or VZ_EMALFORMED with a static
 *  *reason (reason may be NULL). Any thread; no shared state.
 */
#ifndef VZ_AUTH_CONTRACT_H
#define VZ_AUTH_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"
#include "vz_jwt.h"

#define VZ_AUTH_SERVICE "auth"

//  Field capacities, bytes incl. NUL.
#define VZ_AUTH_APIKEY_MAX 256 //  an X-API-Key value
#define VZ_AUTH_TIER_MAX 32    //  free | premium
#define VZ_AUTH_KID_MAX 64     //  API key id (fits a rate-limit "key" descriptor)

//  api_key_verify request.
typedef struct {
    char key[VZ_AUTH_APIKEY_MAX]; //  the secret as the client sent it ("" when absent)
} vz_auth_key_verify_t;

//  api_key_verify reply: an unknown, malformed or revoked key is valid=false
//  with empty strings, never an error.
typedef struct {
    bool valid;                   //  the key is known and live
    char sub[VZ_JWT_STR_MAX];     //  its owner
    char scope[VZ_JWT_SCOPE_MAX]; //  granted scopes, space-separated
    char tier[VZ_AUTH_TIER_MAX];  //  the owner's tier
    char kid[VZ_AUTH_KID_MAX];    //  the key's id (never the secret)
} vz_auth_key_identity_t;

//  token_introspect request. Heap-allocate it: the token may be 8 KiB.
typedef struct {
    char token[VZ_JWT_TOKEN_MAX + 1]; //  compact JWT
} vz_auth_introspect_t;

//  token_introspect reply; every field but active is empty/0 when inactive.
typedef struct {
    bool active;                    //  signed by us, unexpired, right iss/aud
    char sub[VZ_JWT_STR_MAX];       //  subject
    char scope[VZ_JWT_SCOPE_MAX];   //  scopes
    char client_id[VZ_JWT_STR_MAX]; //  OAuth client, "" for users
    char token_type[16];            //  "Bearer"
    char tier[VZ_AUTH_TIER_MAX];    //  tier
    int64_t exp;                    //  expiry, Unix s
    int64_t iat;                    //  issued at, Unix s
} vz_auth_token_info_t;

uint8_t *vz_auth_key_verify_encode(const vz_auth_key_verify_t *request, size_t *len_p);
//  The key is required ("missing key").
int vz_auth_key_verify_decode(vz_auth_key_verify_t *request, const uint8_t *buf, size_t len,
                              const char **reason);

uint8_t *vz_auth_key_identity_encode(const vz_auth_key_identity_t *identity, size_t *len_p);
//  valid is required; a valid answer without sub is malformed.
int vz_auth_key_identity_decode(vz_auth_key_identity_t *identity, const uint8_t *buf, size_t len,
                                const char **reason);

uint8_t *vz_auth_introspect_encode(const vz_auth_introspect_t *request, size_t *len_p);
//  The token is required ("missing token").
int vz_auth_introspect_decode(vz_auth_introspect_t *request, const uint8_t *buf, size_t len,
                              const char **reason);

//  An inactive answer is sent as {active: false} alone.
uint8_t *vz_auth_token_info_encode(const vz_auth_token_info_t *info, size_t *len_p);
//  active is required; an active answer needs every other field.
int vz_auth_token_info_decode(vz_auth_token_info_t *info, const uint8_t *buf, size_t len,
                              const char **reason);

#endif
