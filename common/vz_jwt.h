/*  vz_jwt - ES256 JSON Web Tokens (RFC 7519/7515/7518) and JWKS (RFC 7517)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Only what the mesh needs, and strictly: tokens are compact JWS signed
 *  with ES256 (ECDSA P-256 + SHA-256, the signature as the 64-byte R||S of
 *  RFC 7518 §3.4). Verification takes the algorithm from the key, never
 *  from the token: a header whose "alg" is not exactly "ES256" (so "none",
 *  "HS256" signed with the public key, ...) is refused, as is a header with
 *  "crit", a "kid" the key set does not hold, or any part that is not
 *  canonical base64url without padding. Claims are checked with a leeway:
 *  exp (required), nbf and iat (if present), iss and aud (when the options
 *  name them; aud may be a string or an array of strings).
 *
 *  Keys are EC P-256 (OpenSSL 3 EVP). A vz_jwt_key_t holds a private key
 *  (can sign) or only a public one; a vz_jwt_keyset_t is a set of keys by
 *  kid, built from a JWKS document or from keys, and exported as one.
 *  Key sets are read-only once built: one set may be used to verify from
 *  several threads at once; building or changing it is single-threaded.
 *  Nothing here logs or keeps global state.
 */
#ifndef VZ_JWT_H
#define VZ_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"

//  Limits.
#define VZ_JWT_TOKEN_MAX 8192 //  longest accepted compact token
#define VZ_JWT_KID_MAX   64   //  kid, incl. NUL
#define VZ_JWT_STR_MAX   256  //  iss, sub, aud, jti, tier, client_id, typ, incl. NUL
#define VZ_JWT_SCOPE_MAX 1024 //  scope, incl. NUL

//  Verification failures: VZ_JWT_EMALFORMED, VZ_JWT_EALG, _EKID, _ESIG,
//  _EEXPIRED, _ENOTYET, _EISS, _EAUD, defined with every custom code in
//  vz_common.h (a range that cannot collide with -errno).

//  A short static text for a return code above ("expired", "bad signature", ...).
const char *vz_jwt_strerror(int rc);

// --------------------------------------------------------------------------
//  base64url (RFC 4648 §5) without padding

//  Encode n bytes into out (size >= vz_jwt_b64url_len(n) + 1, NUL added).
//  Returns the length written.
size_t vz_jwt_b64url_len(size_t n);
size_t vz_jwt_b64url_encode(char *out, const void *data, size_t n);
//  Decode len characters into out (capacity cap). Returns the decoded
//  length, or -EINVAL for a character outside the alphabet, padding, an
//  impossible length or non-zero unused bits (non-canonical), -ENOSPC
//  when out is too small.
long vz_jwt_b64url_decode(void *out, size_t cap, const char *text, size_t len);

// --------------------------------------------------------------------------
//  Keys

typedef struct vz_jwt_key_t vz_jwt_key_t;

//  A fresh P-256 key pair. NULL on failure (kid empty or too long, OpenSSL).
vz_jwt_key_t *vz_jwt_key_generate(const char *kid);
//  From a PEM private key (PKCS#8 or SEC1 "EC PRIVATE KEY") or public key
//  (SPKI "PUBLIC KEY"); must be P-256. NULL otherwise.
vz_jwt_key_t *vz_jwt_key_from_pem(const char *kid, const char *pem, size_t len);
//  A deep copy holding the public half only.
vz_jwt_key_t *vz_jwt_key_public(const vz_jwt_key_t *self);
void vz_jwt_key_destroy(vz_jwt_key_t **self_p);

const char *vz_jwt_key_kid(const vz_jwt_key_t *self);
bool vz_jwt_key_has_private(const vz_jwt_key_t *self);
//  PKCS#8 PEM of the private key (caller frees), NULL if public only.
char *vz_jwt_key_private_pem(const vz_jwt_key_t *self);
//  SPKI PEM of the public key (caller frees).
char *vz_jwt_key_public_pem(const vz_jwt_key_t *self);
//  The public JWK as a JSON object (caller frees):
//  {"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg":"ES256","use":"sig"}
char *vz_jwt_key_jwk(const vz_jwt_key_t *self);

typedef struct vz_jwt_keyset_t vz_jwt_keyset_t;

vz_jwt_keyset_t *vz_jwt_keyset_new(void);
void vz_jwt_keyset_destroy(vz_jwt_keyset_t **self_p);
//  Take a key into the set. -EEXIST when its kid is already there (the key
//  is then destroyed anyway: ownership always moves), -ENOSPC beyond 64 keys.
int vz_jwt_keyset_add(vz_jwt_keyset_t *self, vz_jwt_key_t **key_p);
size_t vz_jwt_keyset_size(const vz_jwt_keyset_t *self);
const vz_jwt_key_t *vz_jwt_keyset_find(const vz_jwt_keyset_t *self, const char *kid);
const vz_jwt_key_t *vz_jwt_keyset_at(const vz_jwt_keyset_t *self, size_t i);
//  Parse a JWKS document {"keys":[...]}. Keys that are not EC P-256 for
//  signing (other kty/crv, alg other than ES256, use other than sig, no kid)
//  are skipped, so a JWKS that also lists RSA keys still loads; a key entry
//  that claims EC P-256 but has a bad point, or a repeated kid, makes the
//  whole document invalid. NULL when the document is malformed.
vz_jwt_keyset_t *vz_jwt_keyset_from_jwks(const char *json, size_t len);
//  The public JWKS document of every key in the set (caller frees, *len_p).
char *vz_jwt_keyset_jwks(const vz_jwt_keyset_t *self, size_t *len_p);

// --------------------------------------------------------------------------
//  Tokens

typedef struct {
    char iss[VZ_JWT_STR_MAX];       //  issuer
    char sub[VZ_JWT_STR_MAX];       //  subject (user id or OAuth client id)
    char aud[VZ_JWT_STR_MAX];       //  audience (signing: one; verifying: the first or the matching one)
    char scope[VZ_JWT_SCOPE_MAX];   //  space-separated scopes
    char tier[VZ_JWT_STR_MAX];      //  anonymous | free | premium
    char jti[VZ_JWT_STR_MAX];       //  unique token id
    char client_id[VZ_JWT_STR_MAX]; //  OAuth client (RFC 9068), "" for users
    char kid[VZ_JWT_KID_MAX];       //  verifying: the header's kid
    int64_t iat;                    //  issued at, Unix seconds (0 = absent)
    int64_t nbf;                    //  not before (0 = absent)
    int64_t exp;                    //  expires (required)
} vz_jwt_claims_t;

//  Sign claims with key (must hold the private half). Empty strings and zero
//  times are left out. *token_p is a heap string the caller frees.
//  0, -EINVAL (no private key, exp 0), -ENOMEM or -EIO (OpenSSL).
int vz_jwt_sign(const vz_jwt_key_t *key, const vz_jwt_claims_t *claims, char **token_p);

typedef struct {
    const char *issuer;   //  required iss, NULL = not checked
    const char *audience; //  required aud member, NULL = not checked
    int64_t now;          //  Unix seconds; 0 = the clock
    int leeway_s;         //  clock skew allowed on exp/nbf/iat
} vz_jwt_verify_opts_t;

//  Verify token (len bytes) against keys and opts. 0 and *claims filled
//  (claims may be NULL), or one of the VZ_JWT_E* codes. String claims that
//  are present must be strings that fit their field; times must be integers.
int vz_jwt_verify(const vz_jwt_keyset_t *keys, const char *token, size_t len,
                  const vz_jwt_verify_opts_t *opts, vz_jwt_claims_t *claims);

#endif
