/*  redis_acl - one Redis ACL user per service of the mesh, for the built-in Redis
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "redis_acl.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vz_redis.h"

#define S_SECRET_HEX 64   //  the secret, hex characters
#define S_PASSWORD_HEX 32 //  a user's password, hex characters
#define S_SUPERVISOR "vz-supervisor"
#define S_PROBE "probe"        //  S_DEFAULT_USER's health-check user
#define S_FILE_PASSWORD_HEX 48 //  a password vzctl redis-acl makes, hex characters
#define S_PASSWORD_MAX 256     //  a password file's first line, bytes

//  The default user is off: a connection must AUTH as a user. It keeps
//  every right because Redis replays the AOF as this user and re-checks
//  its rights at each EXEC (redis#14541): without them every MULTI/EXEC in
//  the AOF (a Lua script's writes) is dropped on restart. "probe" (any
//  password) may PING and nothing else: the container health checks.
#define S_DEFAULT_USER                                                                             \
    "user default off ~* &* +@all\n"                                                               \
    "user " S_PROBE " on nopass -@all +ping\n"

//  The daemons that keep state in Redis and their one prefix each.
static const struct {
    const char *daemon; //  service name, or its command without "vz-"
    const char *keys;   //  ACL key pattern
} s_prefixes[] = {
    {"auth", "~{auth}:*"},   {"ratelimit", "~vz:rl:*"}, {"billing", "~{billing}:*"},
    {"notifier", "~{nt}:*"}, {"telemetry", "~{tl}:*"},  {"github", "~{github}:*"},
    {"reporter", "~{rp}:*"},
};

const char *sup_redis_acl_daemon_keys(const char *daemon)
{
    assert(daemon);
    for (size_t i = 0; i < sizeof s_prefixes / sizeof s_prefixes[0]; i++)
        if (strcmp(daemon, s_prefixes[i].daemon) == 0)
            return s_prefixes[i].keys;
    return "";
}

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
    const char *keys = sup_redis_acl_daemon_keys(base);
    return keys[0] ? keys : sup_redis_acl_daemon_keys(svc->name);
}

//  "user NAME on #SHA256(password) RIGHTS": ACL files take the password's
//  SHA-256, so no clear text is at rest.
static void s_user(FILE *f, const char *name, const char *password, const char *rights)
{
    unsigned char digest[32];
    unsigned int dlen = sizeof digest;
    EVP_Digest(password, strlen(password), digest, &dlen, EVP_sha256(), NULL);
    fprintf(f, "user %s on #", name);
    for (size_t i = 0; i < sizeof digest; i++)
        fprintf(f, "%02x", digest[i]);
    fprintf(f, " %s\n", rights);
}

//  A service's user: its own key prefix and no @dangerous command when it
//  keeps state, else PING and SELECT only.
static void s_service_user(FILE *f, const char *name, const char *password, const char *keys)
{
    char rights[96];
    if (keys[0])
        snprintf(rights, sizeof rights, "%s +@all -@dangerous", keys);
    else
        snprintf(rights, sizeof rights, "-@all +ping +select");
    s_user(f, name, password, rights);
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
    fputs(S_DEFAULT_USER, f);
    s_password(secret, S_SUPERVISOR, pw);
    s_user(f, S_SUPERVISOR, pw, "-@all +ping +acl|load");
    for (size_t i = 0; i < cfg->service_count; i++) {
        const sup_mesh_service_t *svc = &cfg->services[i];
        //  A service called like one of the users above gets none (no Redis).
        if (svc->builtin_redis || strcmp(svc->name, "default") == 0 ||
            strcmp(svc->name, S_PROBE) == 0 || strcmp(svc->name, S_SUPERVISOR) == 0)
            continue;
        s_password(secret, svc->name, pw);
        s_service_user(f, svc->name, pw, sup_redis_acl_keys(svc));
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

int sup_redis_acl_auth(const sup_mesh_config_t *cfg, char *out, size_t n)
{
    char secret[S_SECRET_HEX + 1], pw[S_PASSWORD_HEX + 1];
    int rc = s_secret(cfg, secret);
    if (rc < 0)
        return rc;
    s_password(secret, S_SUPERVISOR, pw);
    snprintf(out, n, "AUTH %s %s\r\n", S_SUPERVISOR, pw);
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

//  ---------------------------------------------------------------------------
//  vzctl redis-acl: the same users for compose and Kubernetes

//  DIR/NAME.password's first line into out, made first (random hex,
//  owner-only) when there is none. 0, or -errno with err.
static int s_file_password(const char *dir, const char *name, char out[S_PASSWORD_MAX], char *err,
                           size_t errlen)
{
    char path[VZ_PATH_MAX + VZ_NAME_MAX + 16];
    snprintf(path, sizeof path, "%s/%s.password", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        unsigned char raw[S_FILE_PASSWORD_HEX / 2];
        char fresh[S_FILE_PASSWORD_HEX + 1];
        if (RAND_bytes(raw, sizeof raw) != 1) {
            snprintf(err, errlen, "no random bytes for %s", path);
            return -EIO;
        }
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(fresh + 2 * i, 3, "%02x", raw[i]);
        //  O_EXCL: a password made meanwhile by someone else wins.
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            bool ok = write(fd, fresh, S_FILE_PASSWORD_HEX) == S_FILE_PASSWORD_HEX;
            close(fd);
            explicit_bzero(fresh, sizeof fresh);
            if (!ok) {
                unlink(path);
                snprintf(err, errlen, "unable to write %s", path);
                return -EIO;
            }
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "unable to read %s: %s", path, strerror(errno));
        return rc;
    }
    ssize_t got = read(fd, out, S_PASSWORD_MAX - 1);
    close(fd);
    out[got > 0 ? got : 0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    bool printable = out[0] != '\0';
    for (const char *c = out; *c; c++)
        printable = printable && (unsigned char)*c > ' ' && *c != 0x7f;
    if (!printable) {
        explicit_bzero(out, S_PASSWORD_MAX);
        snprintf(err, errlen, "%s: empty, or blanks in the password", path);
        return -EINVAL;
    }
    return 0;
}

//  A user name that is also a Kubernetes Secret name part: [a-z0-9-],
//  starting with a letter, and none of the users the file has anyway.
static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= VZ_NAME_MAX || !(name[0] >= 'a' && name[0] <= 'z') ||
        strcmp(name, "default") == 0 || strcmp(name, S_PROBE) == 0 ||
        strcmp(name, S_SUPERVISOR) == 0)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == len && name[len - 1] != '-';
}

static void s_print_b64(FILE *out, const char *data, size_t len)
{
    unsigned char *b64 = malloc(((len + 2) / 3) * 4 + 1);
    assert(b64);
    EVP_EncodeBlock(b64, (const unsigned char *)data, (int)len);
    fprintf(out, "%s\n", b64);
    free(b64);
}

static void s_print_secret_head(FILE *out, const char *name, const char *component)
{
    fprintf(out,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n"
            "  labels:\n    app.kubernetes.io/part-of: vizmesh\n"
            "    app.kubernetes.io/component: %s\ntype: Opaque\ndata:\n",
            name, component);
}

//  The ACL file of names (default user first) into a malloc'ed text
//  (*acl, *len), passwords made where missing. 0, or -errno with err.
static int s_acl_text(const char *dir, const char **names, size_t count, char **acl, size_t *len,
                      char *err, size_t errlen)
{
    FILE *f = open_memstream(acl, len);
    assert(f);
    fputs(S_DEFAULT_USER, f);
    char pw[S_PASSWORD_MAX];
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        rc = s_file_password(dir, names[i], pw, err, errlen);
        if (rc == 0)
            s_service_user(f, names[i], pw, sup_redis_acl_daemon_keys(names[i]));
    }
    explicit_bzero(pw, sizeof pw);
    fclose(f);
    return rc;
}

//  The checked arguments of the command: 0, 1 or 2 as sup_redis_acl_cmd.
static int s_acl_cmd(const char *dir, const char **names, size_t count, bool k8s, FILE *out)
{
    if (!dir || count == 0 || strlen(dir) >= VZ_PATH_MAX)
        return 2;
    for (size_t i = 0; i < count; i++) {
        if (!s_name_ok(names[i])) {
            fprintf(stderr, "vzctl: %s: a user name is [a-z0-9-], from a letter, not default\n",
                    names[i]);
            return 2;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0) {
                fprintf(stderr, "vzctl: %s named twice\n", names[i]);
                return 2;
            }
    }
    //  Made here (world-traversable: Redis reads the ACL file as another
    //  user); an existing directory keeps its mode.
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "vzctl: unable to make %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *acl = NULL, err[VZ_PATH_MAX + VZ_NAME_MAX + 128];
    size_t acl_len = 0;
    int rc = s_acl_text(dir, names, count, &acl, &acl_len, err, sizeof err);
    if (rc == 0 && !k8s)
        fputs(acl, out);
    else if (rc == 0) {
        //  The ACL file for Redis, then one password Secret per service.
        s_print_secret_head(out, "vizmesh-redis-acl", "redis");
        fputs("  users.acl: ", out);
        s_print_b64(out, acl, acl_len);
        char pw[S_PASSWORD_MAX], secret[VZ_NAME_MAX + 16];
        for (size_t i = 0; i < count && rc == 0; i++) {
            rc = s_file_password(dir, names[i], pw, err, sizeof err);
            if (rc < 0)
                break;
            snprintf(secret, sizeof secret, "vizmesh-redis-%s", names[i]);
            fputs("---\n", out);
            s_print_secret_head(out, secret, names[i]);
            fputs("  password: ", out);
            s_print_b64(out, pw, strlen(pw));
        }
        explicit_bzero(pw, sizeof pw);
    }
    if (rc < 0)
        fprintf(stderr, "vzctl: %s\n", err);
    free(acl);
    return rc < 0 ? 1 : 0;
}

int sup_redis_acl_cmd(int argc, char **argv, FILE *out)
{
    //  DIR NAME..., --k8s anywhere.
    const char **names = calloc(argc > 0 ? (size_t)argc : 1, sizeof *names);
    assert(names);
    const char *dir = NULL;
    size_t count = 0;
    bool k8s = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--k8s") == 0)
            k8s = true;
        else if (dir)
            names[count++] = argv[i];
        else
            dir = argv[i];
    }
    int rc = s_acl_cmd(dir, names, count, k8s, out);
    free(names);
    return rc;
}
