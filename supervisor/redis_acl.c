/*  redis_acl - one Redis ACL user per service of the mesh, for the built-in Redis
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "redis_acl.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vz_redis.h"

#define S_SECRET_HEX 64   //  the secret, hex characters
#define S_PASSWORD_HEX 32 //  a user's password, hex characters
#define S_SUPERVISOR "vz-supervisor"

//  The daemons that keep state in Redis and their one prefix each.
static const struct {
    const char *daemon; //  service name, or its command without "vz-"
    const char *keys;   //  ACL key pattern
} s_prefixes[] = {
    {"auth", "~{auth}:*"},   {"ratelimit", "~vz:rl:*"}, {"billing", "~{billing}:*"},
    {"notifier", "~{nt}:*"}, {"telemetry", "~{tl}:*"},  {"github", "~{github}:*"},
    {"reporter", "~{rp}:*"},
};

const char *sup_redis_acl_keys(const sup_mesh_service_t *svc)
{
    assert(svc);
    //  The command's first word, without its directory and "vz-".
    char word[VZ_PATH_MAX];
    vz_strlcpy(word, svc->command, sizeof word);
    word[strcspn(word, " \t")] = '\0';
    const char *base = strrchr(word, '/') ? strrchr(word, '/') + 1 : word;
    if (strncmp(base, "vz-", 3) == 0)
        base += 3;
    for (size_t i = 0; i < sizeof s_prefixes / sizeof s_prefixes[0]; i++)
        if (strcmp(base, s_prefixes[i].daemon) == 0 || strcmp(svc->name, s_prefixes[i].daemon) == 0)
            return s_prefixes[i].keys;
    return "";
}

void sup_redis_acl_path(const sup_mesh_config_t *cfg, char *out, size_t n)
{
    snprintf(out, n, "%s/redis/users.acl", cfg->state_dir);
}

//  The secret (S_SECRET_HEX characters + NUL), made owner-only when absent.
static int s_secret(const sup_mesh_config_t *cfg, char out[S_SECRET_HEX + 1])
{
    char path[VZ_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/redis/secret", cfg->state_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        char fresh[S_SECRET_HEX + 1];
        vz_random_hex(fresh, S_SECRET_HEX);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            bool ok = write(fd, fresh, S_SECRET_HEX) == S_SECRET_HEX;
            close(fd);
            if (!ok)
                return -EIO;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    ssize_t got = read(fd, out, S_SECRET_HEX);
    close(fd);
    if (got != S_SECRET_HEX)
        return -EIO;
    out[S_SECRET_HEX] = '\0';
    return 0;
}

//  HMAC-SHA256(secret, name) as S_PASSWORD_HEX hex characters.
static void s_password(const char *secret, const char *name, char out[S_PASSWORD_HEX + 1])
{
    unsigned char mac[32];
    unsigned int len = sizeof mac;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)name, strlen(name), mac,
         &len);
    for (size_t i = 0; i < S_PASSWORD_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

int sup_redis_acl_write(const sup_mesh_config_t *cfg, char *err, size_t errlen)
{
    assert(cfg);
    char secret[S_SECRET_HEX + 1], pw[S_PASSWORD_HEX + 1];
    int rc = s_secret(cfg, secret);
    if (rc < 0) {
        snprintf(err, errlen, "unable to read %s/redis/secret: %s", cfg->state_dir, strerror(-rc));
        return rc;
    }
    char path[VZ_PATH_MAX + 32], tmp[VZ_PATH_MAX + 40];
    sup_redis_acl_path(cfg, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "unable to write %s: %s", tmp, strerror(-rc));
        return rc;
    }
    //  The default user answers the readiness PING and nothing else.
    fprintf(f, "user default on nopass -@all +ping\n");
    s_password(secret, S_SUPERVISOR, pw);
    fprintf(f, "user %s on #", S_SUPERVISOR);
    //  ACL files take the password's SHA-256 ('#'): no clear text at rest.
    unsigned char digest[32];
    unsigned int dlen = sizeof digest;
    EVP_Digest(pw, strlen(pw), digest, &dlen, EVP_sha256(), NULL);
    for (size_t i = 0; i < sizeof digest; i++)
        fprintf(f, "%02x", digest[i]);
    fprintf(f, " -@all +ping +acl|load\n");
    for (size_t i = 0; i < cfg->service_count; i++) {
        const sup_mesh_service_t *svc = &cfg->services[i];
        //  A service called like one of the users above gets none (no Redis).
        if (svc->builtin_redis || strcmp(svc->name, "default") == 0 ||
            strcmp(svc->name, S_SUPERVISOR) == 0)
            continue;
        s_password(secret, svc->name, pw);
        EVP_Digest(pw, strlen(pw), digest, &dlen, EVP_sha256(), NULL);
        fprintf(f, "user %s on #", svc->name);
        for (size_t k = 0; k < sizeof digest; k++)
            fprintf(f, "%02x", digest[k]);
        const char *keys = sup_redis_acl_keys(svc);
        fprintf(f, keys[0] ? " %s +@all -@dangerous\n" : " -@all +ping +select\n", keys);
    }
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(pw, sizeof pw);
    rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, errlen, "unable to write %s: %s", path, strerror(-rc));
    }
    return rc;
}

int sup_redis_acl_url(const sup_mesh_config_t *cfg, const char *name, int port, char *out, size_t n)
{
    char secret[S_SECRET_HEX + 1], pw[S_PASSWORD_HEX + 1];
    int rc = s_secret(cfg, secret);
    if (rc < 0)
        return rc;
    s_password(secret, name, pw);
    snprintf(out, n, "redis://%s:%s@127.0.0.1:%d", name, pw, port);
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(pw, sizeof pw);
    return 0;
}

int sup_redis_acl_reload(const sup_mesh_config_t *cfg, int port)
{
    char url[256];
    int rc = sup_redis_acl_url(cfg, S_SUPERVISOR, port, url, sizeof url);
    if (rc < 0)
        return rc;
    vz_redis_t *redis = vz_redis_new(url, 200, 200, 0);
    explicit_bzero(url, sizeof url);
    if (!redis)
        return -EINVAL;
    const char *argv[] = {"ACL", "LOAD"};
    redisReply *reply = vz_redis_command(redis, 2, argv, NULL);
    rc = !reply ? -ECONNREFUSED : reply->type == REDIS_REPLY_STATUS ? 0 : -EIO;
    if (reply)
        freeReplyObject(reply);
    vz_redis_destroy(&redis);
    return rc;
}
