/*  keys - ES256 signing keys shared by every replica through Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Redis holds the keys as PEM: hash {auth}:keys maps kid -> "<created>
 *  <drop_at> <pem>" (Unix seconds; drop_at 0 while the key signs or could
 *  sign), {auth}:keys:current names the signing key and {auth}:keys:ver is
 *  bumped on every change. Replicas cache the parsed keys and re-read them
 *  when the version moves, so they all sign with the same key and serve the
 *  same JWKS.
 *
 *  With a key-encryption key (auth_keys_kek) the PEM is never in Redis:
 *  the record's third part is "enc:v1:" and the base64 of a 12-byte
 *  nonce, the AES-256-GCM ciphertext of the PEM and its 16-byte tag, with
 *  the kid as additional data, so a record moved to another kid does not
 *  decrypt. Records that do not decrypt are skipped with a warning.
 *
 *  Rotation with overlap: the new key becomes current and the old one gets
 *  drop_at = now + access_ttl + leeway, the moment the last token it signed
 *  has expired everywhere. Until then it stays in the JWKS; afterwards it
 *  is left out and pruned at the next rotation. Both steps are one Lua
 *  script, so two replicas rotating at once cannot lose a key: the second
 *  sees a fresh current key (younger than min_age) and does nothing.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vz_proto.h"

#define K_KEYS "{auth}:keys"
#define K_CURRENT "{auth}:keys:current"
#define K_VERSION "{auth}:keys:ver"
#define ENC_PREFIX "enc:v1:" //  an encrypted private key in a record
#define ENC_NONCE 12         //  AES-GCM nonce bytes
#define ENC_TAG 16           //  AES-GCM tag bytes

struct auth_keys_t {
    long long version;         //  {auth}:keys:ver the cache was built from, -1 = none
    vz_jwt_key_t *signing;     //  current key with its private half
    vz_jwt_keyset_t *publish;  //  keys in the JWKS
    vz_redis_script_t *ensure; //  create the first key unless one exists
    vz_redis_script_t *rotate; //  rotate with overlap and prune
};

static const char s_ensure_lua[] =
    "local cur = redis.call('GET', KEYS[2])\n"
    "if cur and redis.call('HEXISTS', KEYS[1], cur) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "redis.call('INCR', KEYS[3])\n"
    "return 1\n";

static const char s_rotate_lua[] =
    "local now = tonumber(ARGV[3])\n"
    "local cur = redis.call('GET', KEYS[2])\n"
    "if cur then\n"
    "  local rec = redis.call('HGET', KEYS[1], cur)\n"
    "  if rec then\n"
    "    local created, drop, pem = string.match(rec, '^(%d+) (%d+) (.*)$')\n"
    "    if created and tonumber(created) > now - tonumber(ARGV[4]) then return 0 end\n"
    "    if pem then\n"
    "      redis.call('HSET', KEYS[1], cur, created .. ' ' ..\n"
    "                 string.format('%d', now + tonumber(ARGV[5])) .. ' ' .. pem)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  local d = string.match(all[i + 1], '^%d+ (%d+) ')\n"
    "  if d and tonumber(d) > 0 and tonumber(d) < now then redis.call('HDEL', KEYS[1], all[i]) "
    "end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "redis.call('INCR', KEYS[3])\n"
    "return 1\n";

int auth_keys_new(auth_t *self)
{
    auth_keys_t *keys = calloc(1, sizeof *keys);
    if (!keys)
        return -1;
    keys->version = -1;
    keys->ensure = vz_redis_script_new(s_ensure_lua);
    keys->rotate = vz_redis_script_new(s_rotate_lua);
    self->keys = keys;
    return keys->ensure && keys->rotate ? 0 : -1;
}

static void s_clear(auth_keys_t *keys)
{
    vz_jwt_key_destroy(&keys->signing);
    vz_jwt_keyset_destroy(&keys->publish);
    keys->version = -1;
}

void auth_keys_destroy(auth_t *self)
{
    auth_keys_t *keys = self->keys;
    if (!keys)
        return;
    s_clear(keys);
    vz_redis_script_destroy(&keys->ensure);
    vz_redis_script_destroy(&keys->rotate);
    free(keys);
    self->keys = NULL;
}

int auth_keys_kek(auth_t *self, const char *path, bool create, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        char hex[65];
        if (auth_random_hex(hex, 32) < 0)
            return -EIO;
        //  Replicas starting together: each writes a whole file of its own,
        //  and the first link() to path wins (atomic, EEXIST for the rest),
        //  so nobody reads a file still being written.
        char tmp[VZ_PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, hex, 64) == 64 && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        explicit_bzero(hex, sizeof hex);
        ok = ok && (link(tmp, path) == 0 || errno == EEXIST);
        int saved = errno;
        unlink(tmp);
        errno = saved;
        fd = ok ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    }
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    char buf[80];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    //  32 raw bytes, or 64 hex characters and maybe a newline.
    while (got > 64 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        got--;
    int rc = 0;
    if (got == 32)
        memcpy(self->kek, buf, 32);
    else if (got == 64 && strspn(buf, "0123456789abcdefABCDEF") >= 64) {
        for (size_t i = 0; i < 32; i++) {
            unsigned byte;
            sscanf(buf + 2 * i, "%2x", &byte);
            self->kek[i] = (unsigned char)byte;
        }
    } else {
        snprintf(err, errlen, "%s: expected 32 bytes or 64 hex characters", path);
        rc = -EINVAL;
    }
    explicit_bzero(buf, sizeof buf);
    self->has_kek = rc == 0;
    return rc;
}

//  AES-256-GCM of len bytes with aad; out gets nonce | ciphertext | tag
//  (len + 28 bytes). 0 or -1.
static int s_seal(const unsigned char key[32], const char *aad, const unsigned char *in, int len,
                  unsigned char *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, rc = -1;
    if (c && RAND_bytes(out, ENC_NONCE) == 1 &&
        EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
        EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
        EVP_EncryptUpdate(c, out + ENC_NONCE, &n, in, len) == 1 &&
        EVP_EncryptFinal_ex(c, out + ENC_NONCE + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, ENC_TAG, out + ENC_NONCE + len) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

//  The reverse of s_seal: len bytes of nonce | ciphertext | tag into out
//  (len - 28 bytes). 0, or -1 when it does not authenticate.
static int s_open(const unsigned char key[32], const char *aad, const unsigned char *in, int len,
                  unsigned char *out)
{
    if (len < ENC_NONCE + ENC_TAG)
        return -1;
    int body = len - ENC_NONCE - ENC_TAG, n = 0, rc = -1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
        EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
        EVP_DecryptUpdate(c, out, &n, in + ENC_NONCE, body) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, ENC_TAG, (void *)(in + len - ENC_TAG)) == 1 &&
        EVP_DecryptFinal_ex(c, out + n, &n) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

//  What a record keeps of key kid's private PEM: the PEM itself without a
//  KEK, else ENC_PREFIX and the base64 of s_seal's output. Heap; NULL on
//  failure.
static char *s_wrap(const auth_t *self, const char *kid, const char *pem)
{
    if (!self->has_kek)
        return strdup(pem);
    int len = (int)strlen(pem), sealed = len + ENC_NONCE + ENC_TAG;
    unsigned char *raw = malloc((size_t)sealed);
    char *out = malloc(strlen(ENC_PREFIX) + 4 * ((size_t)sealed + 2) / 3 + 1);
    if (!raw || !out || s_seal(self->kek, kid, (const unsigned char *)pem, len, raw) < 0) {
        free(raw);
        free(out);
        return NULL;
    }
    strcpy(out, ENC_PREFIX);
    EVP_EncodeBlock((unsigned char *)out + strlen(ENC_PREFIX), raw, sealed);
    free(raw);
    return out;
}

//  The PEM of a record's third part (heap, the caller frees); NULL when it
//  is encrypted and there is no KEK or it does not authenticate for kid.
static char *s_unwrap(const auth_t *self, const char *kid, const char *blob)
{
    size_t plen = strlen(ENC_PREFIX);
    if (strncmp(blob, ENC_PREFIX, plen) != 0)
        return strdup(blob); //  plain PEM, from before a KEK was set
    const char *b64 = blob + plen;
    size_t b64len = strlen(b64);
    if (!self->has_kek || b64len % 4 != 0 || b64len == 0)
        return NULL;
    unsigned char *raw = malloc(b64len / 4 * 3);
    int len = raw ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64len) : -1;
    //  EVP_DecodeBlock counts the '=' padding as zero bytes.
    for (size_t i = b64len; len > 0 && i > 0 && b64[i - 1] == '='; i--)
        len--;
    char *pem = len > ENC_NONCE + ENC_TAG ? malloc((size_t)len - ENC_NONCE - ENC_TAG + 1) : NULL;
    if (!pem || s_open(self->kek, kid, raw, len, (unsigned char *)pem) < 0) {
        free(raw);
        free(pem);
        return NULL;
    }
    pem[len - ENC_NONCE - ENC_TAG] = '\0';
    free(raw);
    return pem;
}

//  A fresh key and its Redis record ("<now> 0 <pem or sealed pem>"); NULL
//  on failure.
static vz_jwt_key_t *s_new_key(const auth_t *self, char **record_p)
{
    char kid[24] = "k-";
    if (auth_random_hex(kid + 2, 8) < 0)
        return NULL;
    vz_jwt_key_t *key = vz_jwt_key_generate(kid);
    char *pem = key ? vz_jwt_key_private_pem(key) : NULL;
    char *kept = pem ? s_wrap(self, kid, pem) : NULL;
    if (pem)
        explicit_bzero(pem, strlen(pem));
    free(pem);
    if (!kept || asprintf(record_p, "%lld 0 %s", (long long)(vz_clock_now_ms() / 1000), kept) < 0) {
        free(kept);
        vz_jwt_key_destroy(&key);
        return NULL;
    }
    free(kept);
    return key;
}

static long long s_version(auth_t *self, bool *ok)
{
    const char *argv[] = {"GET", K_VERSION};
    redisReply *r = auth_redis(self, 2, argv);
    *ok = r != NULL;
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (r)
        freeReplyObject(r);
    return v;
}

//  Rebuild the cache from Redis.
static int s_load(auth_t *self, long long version)
{
    auth_keys_t *keys = self->keys;
    const char *hgetall[] = {"HGETALL", K_KEYS};
    const char *get[] = {"GET", K_CURRENT};
    redisReply *all = auth_redis(self, 2, hgetall);
    redisReply *cur = all ? auth_redis(self, 2, get) : NULL;
    int rc = -1;
    if (all && cur && all->type == REDIS_REPLY_ARRAY && cur->type == REDIS_REPLY_STRING) {
        vz_jwt_keyset_t *publish = vz_jwt_keyset_new();
        vz_jwt_key_t *signing = NULL;
        long long now = (long long)(vz_clock_now_ms() / 1000);
        for (size_t i = 0; publish && i + 1 < all->elements; i += 2) {
            const redisReply *k = all->element[i], *v = all->element[i + 1];
            long long created = 0, drop = 0;
            int off = 0;
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                sscanf(v->str, "%lld %lld %n", &created, &drop, &off) != 2 || off == 0)
                continue;
            if (drop > 0 && drop < now)
                continue; //  its last token has expired: out of the JWKS
            char *pem = s_unwrap(self, k->str, v->str + off);
            vz_jwt_key_t *key = pem ? vz_jwt_key_from_pem(k->str, pem, strlen(pem)) : NULL;
            if (key && strcmp(k->str, cur->str) == 0 && !signing)
                signing = vz_jwt_key_from_pem(k->str, pem, strlen(pem));
            if (pem)
                explicit_bzero(pem, strlen(pem));
            free(pem);
            if (!key) {
                vz_warn(NULL, "unable to load signing key", "kid", k->str, "reason",
                        strncmp(v->str + off, ENC_PREFIX, strlen(ENC_PREFIX)) == 0
                            ? "encrypted with another key-encryption key (VZ_AUTH_KEK_FILE)"
                            : "malformed PEM");
                continue;
            }
            vz_jwt_key_t *pub = vz_jwt_key_public(key);
            vz_jwt_key_destroy(&key);
            if (pub)
                vz_jwt_keyset_add(publish, &pub);
        }
        if (signing && publish) {
            s_clear(keys);
            keys->signing = signing;
            keys->publish = publish;
            keys->version = version;
            rc = 0;
        } else {
            vz_jwt_key_destroy(&signing);
            vz_jwt_keyset_destroy(&publish);
        }
    }
    if (all)
        freeReplyObject(all);
    if (cur)
        freeReplyObject(cur);
    return rc;
}

//  Make the cache current: create the first key if Redis has none.
static int s_refresh(auth_t *self)
{
    auth_keys_t *keys = self->keys;
    bool ok = false;
    long long version = s_version(self, &ok);
    if (!ok)
        return keys->signing ? 0 : -1; //  Redis away: keep signing with what we have
    if (version > 0 && version == keys->version)
        return 0;
    if (version == 0) {
        char *record = NULL;
        vz_jwt_key_t *key = s_new_key(self, &record);
        if (!key)
            return -1;
        const char *k[] = {K_KEYS, K_CURRENT, K_VERSION};
        const char *a[] = {vz_jwt_key_kid(key), record};
        redisReply *r = vz_redis_eval(self->redis, keys->ensure, 3, k, 2, a);
        free(record);
        vz_jwt_key_destroy(&key);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
        version = s_version(self, &ok);
        if (!ok)
            return -1;
    }
    return s_load(self, version);
}

const vz_jwt_key_t *auth_keys_signing(auth_t *self)
{
    return s_refresh(self) == 0 ? self->keys->signing : NULL;
}

const vz_jwt_keyset_t *auth_keys_public(auth_t *self)
{
    return s_refresh(self) == 0 ? self->keys->publish : NULL;
}

int auth_keys_rotate(auth_t *self, int min_age_s)
{
    if (s_refresh(self) < 0)
        return -1;
    char *record = NULL;
    vz_jwt_key_t *key = s_new_key(self, &record);
    if (!key)
        return -1;
    char now[24], age[24], overlap[24];
    snprintf(now, sizeof now, "%lld", (long long)(vz_clock_now_ms() / 1000));
    snprintf(age, sizeof age, "%d", min_age_s);
    snprintf(overlap, sizeof overlap, "%d", self->config.access_ttl_s + self->config.leeway_s);
    const char *k[] = {K_KEYS, K_CURRENT, K_VERSION};
    const char *a[] = {vz_jwt_key_kid(key), record, now, age, overlap};
    redisReply *r = vz_redis_eval(self->redis, self->keys->rotate, 3, k, 5, a);
    free(record);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (rc == 1)
        vz_info(NULL, "signing key rotated", "kid", vz_jwt_key_kid(key));
    vz_jwt_key_destroy(&key);
    if (r)
        freeReplyObject(r);
    return rc;
}

int auth_h_jwks(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    const vz_jwt_keyset_t *set = auth_keys_public(self);
    if (!set)
        return auth_unavailable(reply);
    size_t len = 0;
    char *jwks = vz_jwt_keyset_jwks(set, &len);
    if (!jwks)
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "cannot render the JWKS");
    return auth_reply_take(reply, jwks, len);
}

//  Admin only: rotate the signing key now (the old one stays published).
int auth_h_keys_rotate(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    auth_t *self = app;
    vz_authctx_t ctx;
    vz_authctx_read(req, &ctx);
    if (strcmp(ctx.auth, VZ_AUTHCTX_BY_NONE) == 0)
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED,
                                      "authentication required");
    if (!vz_authctx_scope_has(ctx.scope, "admin"))
        return vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED, "scope admin required");
    if (auth_keys_rotate(self, 0) < 0)
        return auth_unavailable(reply);
    const vz_jwt_key_t *key = auth_keys_signing(self);
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "kid", key ? vz_jwt_key_kid(key) : "");
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}
