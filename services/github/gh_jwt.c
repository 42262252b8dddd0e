/*  gh_jwt - the GitHub App's JWT: RS256 over {iat, exp, iss} with the App's private key
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_jwt.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_json.h"
#include "vz_jwt.h"

struct gh_jwt_key_t {
    EVP_PKEY *pkey;
};

gh_jwt_key_t *gh_jwt_key_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the App key file %s", path);
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048) {
        snprintf(err, errlen, "the App key file %s is not an RSA private key of 2048 bits or more",
                 path);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    gh_jwt_key_t *self = calloc(1, sizeof *self);
    if (!self) {
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->pkey = pkey;
    return self;
}

void gh_jwt_key_destroy(gh_jwt_key_t **self_p)
{
    if (*self_p) {
        EVP_PKEY_free((*self_p)->pkey);
        free(*self_p);
        *self_p = NULL;
    }
}

//  base64url of n bytes appended at out (room checked by the caller).
static size_t s_b64(char *out, const void *data, size_t n)
{
    return vz_jwt_b64url_encode(out, data, n);
}

char *gh_jwt_sign(const gh_jwt_key_t *key, const char *app_id, int64_t now)
{
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    vz_json_writer_t *w = vz_json_writer_new(1024);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "iat", now - GH_JWT_BACKDATE_S);
    vz_json_write_kv_int(w, "exp", now + GH_JWT_LIFETIME_S);
    vz_json_write_kv_string(w, "iss", app_id);
    vz_json_write_object_end(w);
    size_t clen = 0;
    char *claims = vz_json_writer_take(w, &clen);
    vz_json_writer_destroy(&w);
    if (!claims)
        return NULL;
    size_t cap = vz_jwt_b64url_len(sizeof header - 1) + vz_jwt_b64url_len(clen) +
                 vz_jwt_b64url_len(1024) + 4;
    char *token = malloc(cap);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    char *out = NULL;
    if (token && md) {
        size_t at = s_b64(token, header, sizeof header - 1);
        token[at++] = '.';
        at += s_b64(token + at, claims, clen);
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
            EVP_DigestSign(md, sig, &siglen, (const unsigned char *)token, at) == 1 &&
            siglen <= sizeof sig) {
            token[at++] = '.';
            at += s_b64(token + at, sig, siglen);
            token[at] = '\0';
            out = token;
            token = NULL;
        }
    }
    EVP_MD_CTX_free(md);
    free(token);
    free(claims);
    return out;
}
