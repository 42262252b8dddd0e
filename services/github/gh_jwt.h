/*  gh_jwt - the GitHub App's JWT: RS256 over {iat, exp, iss} with the App's private key
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  GitHub's "Generating a JSON Web Token (JWT) for a GitHub App": header
 *  {"alg":"RS256","typ":"JWT"}, claims iat = now - 60 (clock drift), exp =
 *  now + lifetime (at most 10 minutes after now; GitHub refuses more),
 *  iss = the App id (a string: GitHub accepts the id or the client id).
 *  The key is read from a PEM file (PKCS#1 "RSA PRIVATE KEY" as GitHub
 *  hands it out, or PKCS#8) and kept in an EVP_PKEY; its bytes are never
 *  logged nor returned. No clock inside (now is a parameter): any thread
 *  on keys it owns.
 */
#ifndef GH_JWT_H
#define GH_JWT_H

#include <stddef.h>
#include <stdint.h>

#define GH_JWT_LIFETIME_S 540 //  exp - now: 9 minutes, under GitHub's 10
#define GH_JWT_BACKDATE_S 60  //  now - iat

typedef struct gh_jwt_key_t gh_jwt_key_t;

//  Load an RSA private key from path. NULL with a reason in err (never the
//  key's bytes): unreadable, not PEM, not RSA, under 2048 bits.
gh_jwt_key_t *gh_jwt_key_load(const char *path, char *err, size_t errlen);
void gh_jwt_key_destroy(gh_jwt_key_t **self_p);

//  The App JWT for app_id at now (Unix s) into a heap string (caller
//  frees). NULL when signing fails.
char *gh_jwt_sign(const gh_jwt_key_t *key, const char *app_id, int64_t now);

#endif
