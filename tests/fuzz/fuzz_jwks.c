/*  fuzz_jwks - libFuzzer target for JWKS parsing (vz_jwt_keyset_from_jwks)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A document that loads gives at most 64 keys, each with a kid that fits
 *  and that finds it, public only; exporting the set and loading the
 *  export gives the same kids in the same order with the same JWKs.
 */
#include "fuzz.h"
#include "vz_jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vz_jwt_keyset_t *set = vz_jwt_keyset_from_jwks((const char *)data, size);
    if (!set)
        return 0;
    size_t n = vz_jwt_keyset_size(set);
    FZ_CHECK(n <= 64);
    for (size_t i = 0; i < n; i++) {
        const vz_jwt_key_t *key = vz_jwt_keyset_at(set, i);
        const char *kid = vz_jwt_key_kid(key);
        FZ_CHECK(key && kid && kid[0]);
        FZ_CHECK_STR(kid, VZ_JWT_KID_MAX);
        FZ_CHECK(vz_jwt_keyset_find(set, kid) == key);
        FZ_CHECK(!vz_jwt_key_has_private(key));
    }
    size_t len = 0;
    char *doc = vz_jwt_keyset_jwks(set, &len);
    FZ_CHECK(doc && strlen(doc) == len);
    vz_jwt_keyset_t *again = vz_jwt_keyset_from_jwks(doc, len);
    FZ_CHECK(again && vz_jwt_keyset_size(again) == n);
    for (size_t i = 0; i < n; i++) {
        const vz_jwt_key_t *a = vz_jwt_keyset_at(set, i), *b = vz_jwt_keyset_at(again, i);
        FZ_CHECK(strcmp(vz_jwt_key_kid(a), vz_jwt_key_kid(b)) == 0);
        char *ja = vz_jwt_key_jwk(a), *jb = vz_jwt_key_jwk(b);
        FZ_CHECK(ja && jb && strcmp(ja, jb) == 0);
        free(ja);
        free(jb);
    }
    vz_jwt_keyset_destroy(&again);
    free(doc);
    vz_jwt_keyset_destroy(&set);
    return 0;
}
