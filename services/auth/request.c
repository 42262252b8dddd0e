/*  request - helpers shared by the auth handlers: bodies, errors, Redis, randomness
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "vz_proto.h"

vz_json_t *auth_json_body(const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = 16 * 1024;
    limits.max_depth = 4;
    limits.max_string = 4096;
    limits.max_members = 64;
    limits.max_nodes = 256;
    vz_json_error_t err;
    vz_json_t *doc =
        vz_json_parse(req->body ? (const void *)req->body : "", req->body_len, &limits, &err);
    if (!doc) {
        char msg[128];
        snprintf(msg, sizeof msg, "body is not valid JSON: %s at byte %zu", err.reason, err.offset);
        vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, msg);
        return NULL;
    }
    if (vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT) {
        vz_json_destroy(&doc);
        vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, "body must be a JSON object");
        return NULL;
    }
    return doc;
}

int auth_json_str(const vz_json_value_t *obj, const char *field, size_t max, const char **out,
                  vz_reply_t *reply)
{
    const vz_json_value_t *v = vz_json_get(obj, field);
    *out = NULL;
    if (!v)
        return 0;
    size_t len = 0;
    const char *text = vz_json_string(v, &len);
    char msg[128];
    if (!text) {
        snprintf(msg, sizeof msg, "%s: must be a string", field);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, msg);
        return -1;
    }
    if (len > max) {
        snprintf(msg, sizeof msg, "%s: must have at most %zu bytes", field, max);
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_VALIDATION, msg);
        return -1;
    }
    *out = text;
    return 0;
}

int auth_unavailable(vz_reply_t *reply)
{
    return vz_authctx_reply_error(reply, 0, VZ_ERR_UNAVAILABLE, "auth storage unavailable");
}

int auth_reply_take(vz_reply_t *reply, void *body, size_t len)
{
    int rc = vz_reply_body(reply, body, len);
    free(body);
    return rc;
}

int auth_reply_credential(vz_reply_t *reply, const auth_credential_t *cred)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, cred->id_field, cred->id);
    vz_json_write_kv_string(w, cred->secret_field, cred->secret);
    vz_json_write_kv_string(w, "name", cred->name);
    vz_json_write_kv_string(w, "scope", cred->scope);
    if (cred->tier)
        vz_json_write_kv_string(w, "tier", cred->tier);
    vz_json_write_kv_int(w, "created", atoll(cred->created));
    vz_json_write_object_end(w);
    //  The writer holds its own copy; the caller's buffer is wiped now.
    OPENSSL_cleanse(cred->secret, cred->secret_size);
    return vz_authctx_reply_created(reply, &w, NULL);
}

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int auth_form_get(const char *body, size_t len, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name);
    bool found = false;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        const char *eq = memchr(body + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (body + i)) : end - i;
        if (klen == nlen && memcmp(body + i, name, nlen) == 0) {
            if (found)
                return -EINVAL; //  RFC 6749 §3.2: parameters must not repeat
            found = true;
            size_t o = 0;
            for (size_t j = eq ? (size_t)(eq - body) + 1 : end; j < end; j++) {
                int c = (unsigned char)body[j];
                if (c == '+')
                    c = ' ';
                else if (c == '%') {
                    if (j + 2 >= end)
                        return -EINVAL;
                    int hi = s_hexval(body[j + 1]), lo = s_hexval(body[j + 2]);
                    if (hi < 0 || lo < 0)
                        return -EINVAL;
                    c = hi * 16 + lo;
                    j += 2;
                }
                if (c == 0 || o + 1 >= n)
                    return -EINVAL;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            if (!vz_json_utf8_valid(out, o))
                return -EINVAL;
        }
        i = end + 1;
    }
    return found ? 0 : -ENOENT;
}

int auth_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
        return -EIO;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int auth_random_b64(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
        return -EIO;
    vz_jwt_b64url_encode(out, raw, nbytes);
    return 0;
}

void auth_sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

redisReply *auth_redis(auth_t *self, int argc, const char **argv)
{
    redisReply *reply = vz_redis_command(self->redis, argc, argv, NULL);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        vz_warn(NULL, "unable to run redis command", "command", argv[0], "reason", reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

const char *auth_hash_field(const redisReply *reply, const char *field)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, field) == 0)
            return v->str;
    }
    return NULL;
}
