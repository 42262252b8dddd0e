/*  passwords - PBKDF2-HMAC-SHA256 password hashes and the password policy
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Encoded form: "pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>"
 *  with a 16-byte random salt and a 32-byte derived key. The iteration
 *  count travels with each hash, so raising the configured cost upgrades
 *  hashes at the next successful login while old ones still verify.
 */
#ifndef AUTH_PASSWORDS_H
#define AUTH_PASSWORDS_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_PBKDF2_DEFAULT 600000 //  OWASP 2023 for PBKDF2-HMAC-SHA256
#define AUTH_PBKDF2_FLOOR 100000   //  lowest configurable cost
#define AUTH_HASH_MAX 160          //  encoded hash, incl. NUL
#define AUTH_PASSWORD_MIN 10       //  characters (code points)
#define AUTH_PASSWORD_MAX 256      //  bytes

//  Hash password into out (size n >= AUTH_HASH_MAX). 0 or -EIO/-EINVAL.
int auth_password_hash(const char *password, int iterations, char *out, size_t n);
//  Constant-time check of password against an encoded hash. A malformed
//  hash never matches. *iterations_p (may be NULL) gets its cost.
bool auth_password_verify(const char *password, const char *encoded, int *iterations_p);
//  NULL when password is acceptable, else a reason for the client.
const char *auth_password_policy(const char *password, const char *email);

#endif
