/*  passwords - PBKDF2-HMAC-SHA256 password hashes and the password policy
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  PBKDF2 rather than scrypt: at OWASP's recommended costs, on this
 *  project's 2-core machines, PBKDF2-SHA256 x 600000 takes ~0.2-0.3 s and
 *  no extra memory, scrypt N=2^17,r=8 ~0.6 s and 128 MiB per login (see
 *  docs/services/auth.md for the measurements).
 */
#include "passwords.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "vz_jwt.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define PREFIX "pbkdf2-sha256$"

int auth_password_hash(const char *password, int iterations, char *out, size_t n)
{
    if (iterations < 1 || n < AUTH_HASH_MAX)
        return -EINVAL;
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    if (RAND_bytes(salt, SALT_LEN) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, iterations,
                          EVP_sha256(), KEY_LEN, key) != 1)
        return -EIO;
    char salt64[32], key64[48];
    vz_jwt_b64url_encode(salt64, salt, SALT_LEN);
    vz_jwt_b64url_encode(key64, key, KEY_LEN);
    OPENSSL_cleanse(key, sizeof key);
    int rc = snprintf(out, n, PREFIX "%d$%s$%s", iterations, salt64, key64);
    return rc > 0 && (size_t)rc < n ? 0 : -EINVAL;
}

bool auth_password_verify(const char *password, const char *encoded, int *iterations_p)
{
    if (iterations_p)
        *iterations_p = 0;
    if (!encoded || strncmp(encoded, PREFIX, strlen(PREFIX)) != 0)
        return false;
    const char *p = encoded + strlen(PREFIX);
    char *end = NULL;
    long iterations = strtol(p, &end, 10);
    if (end == p || *end != '$' || iterations < 1 || iterations > 100000000)
        return false;
    const char *salt64 = end + 1;
    const char *dollar = strchr(salt64, '$');
    if (!dollar)
        return false;
    unsigned char salt[SALT_LEN + 3], want[KEY_LEN + 3], got[KEY_LEN];
    long slen = vz_jwt_b64url_decode(salt, sizeof salt, salt64, (size_t)(dollar - salt64));
    long klen = vz_jwt_b64url_decode(want, sizeof want, dollar + 1, strlen(dollar + 1));
    if (slen < 8 || klen != KEY_LEN)
        return false;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)slen, (int)iterations,
                          EVP_sha256(), KEY_LEN, got) != 1)
        return false;
    bool ok = CRYPTO_memcmp(got, want, KEY_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    if (iterations_p)
        *iterations_p = (int)iterations;
    return ok;
}

const char *auth_password_policy(const char *password, const char *email)
{
    size_t bytes = strlen(password), chars = 0;
    for (size_t i = 0; i < bytes; i++)
        chars += ((unsigned char)password[i] & 0xC0) != 0x80;
    if (chars < AUTH_PASSWORD_MIN)
        return "password: must have at least 10 characters";
    if (bytes > AUTH_PASSWORD_MAX)
        return "password: must have at most 256 bytes";
    bool same = true;
    for (size_t i = 1; i < bytes && same; i++)
        same = password[i] == password[0];
    if (same)
        return "password: must not repeat one character";
    if (email && strcasecmp(password, email) == 0)
        return "password: must differ from the e-mail address";
    return NULL;
}
