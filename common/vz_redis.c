/*  vz_redis - one Redis connection with short timeouts and reconnection
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  hiredis formats the commands and parses the replies (its reader); the
 *  transport is ours: a blocking socket carrying SO_RCVTIMEO/SO_SNDTIMEO,
 *  so no command waits longer than command_timeout_ms, with OpenSSL on top
 *  for rediss:// (Debian's hiredis 0.14 has no TLS). After any transport
 *  failure the connection is dropped, never reused: a late reply would
 *  otherwise be read as the answer to the next command.
 */
#include "vz_redis.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vz_clock.h"
#include "vz_common.h"

#define S_HOST_MAX 256
#define S_CRED_MAX 256
#define S_DEFAULT_PORT 6379

struct vz_redis_t {
    char host[S_HOST_MAX];        //  host name or address
    int port;                     //  TCP port
    int db;                       //  SELECT index, 0 = default
    char user[S_CRED_MAX];        //  ACL user, "" = the default user
    char pass[S_CRED_MAX];        //  password, "" = no AUTH
    bool tls;                     //  rediss://
    char server_name[S_HOST_MAX]; //  name the certificate must carry, "" = host
    SSL_CTX *ssl_ctx;             //  TLS settings (CA, client certificate), NULL = plain
    int connect_timeout_ms;       //  bound on connect(2)
    int command_timeout_ms;       //  bound on each send and receive
    int retry_ms;                 //  least time between connect attempts
    int fd;                       //  the connection, -1 while disconnected
    SSL *ssl;                     //  its TLS session (tls only)
    redisReader *reader;          //  reply parser of the connection
    int64_t last_attempt;         //  ms of the last connect attempt, 0 = never
    bool up;                      //  last command (or connect) reached Redis
};

struct vz_redis_script_t {
    char *source; //  Lua body
    char sha[41]; //  SHA1 of source, hex, as Redis names scripts
};

static struct timeval s_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

//  Percent-decode len bytes of src into out (n bytes); -EINVAL when it
//  does not fit or a %XX is malformed.
static int s_decode(const char *src, size_t len, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= n)
            return -EINVAL;
        if (src[i] != '%') {
            out[o++] = src[i];
            continue;
        }
        unsigned value;
        char hex[3] = {0};
        if (i + 2 >= len)
            return -EINVAL;
        memcpy(hex, src + i + 1, 2);
        if (strspn(hex, "0123456789abcdefABCDEF") != 2 || sscanf(hex, "%2x", &value) != 1 ||
            value == 0)
            return -EINVAL;
        out[o++] = (char)value;
        i += 2;
    }
    out[o] = '\0';
    return 0;
}

//  The query of a rediss:// URL: ca_file, cert_file, key_file, server_name.
static int s_parse_query(vz_redis_t *self, const char *q, char *ca, char *cert, char *key)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - q);
        char *out = NULL;
        size_t n = VZ_PATH_MAX;
        if (klen == 7 && strncmp(q, "ca_file", 7) == 0)
            out = ca;
        else if (klen == 9 && strncmp(q, "cert_file", 9) == 0)
            out = cert;
        else if (klen == 8 && strncmp(q, "key_file", 8) == 0)
            out = key;
        else if (klen == 11 && strncmp(q, "server_name", 11) == 0)
            out = self->server_name, n = sizeof self->server_name;
        if (!out || s_decode(eq + 1, len - klen - 1, out, n) < 0)
            return -EINVAL;
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

//  redis[s]://[[user]:password@]host[:port][/db][?query]; everything else
//  is refused. ca, cert, key: the TLS files named in the query.
static int s_parse_url(vz_redis_t *self, const char *url, char *ca, char *cert, char *key)
{
    const char *p = url;
    if (strncmp(p, "rediss://", 9) == 0) {
        self->tls = true;
        p += 9;
    } else if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else
        return -EINVAL;
    //  Credentials: up to the last '@' of the authority.
    size_t auth_len = strcspn(p, "/?");
    const char *at = NULL;
    for (const char *c = p; c < p + auth_len; c++)
        if (*c == '@')
            at = c;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || s_decode(p, (size_t)(colon - p), self->user, sizeof self->user) < 0 ||
            s_decode(colon + 1, (size_t)(at - colon - 1), self->pass, sizeof self->pass) < 0 ||
            !self->pass[0])
            return -EINVAL;
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/?");
    if (hlen == 0 || hlen >= sizeof self->host || memchr(p, '[', hlen))
        return -EINVAL;
    memcpy(self->host, p, hlen);
    self->host[hlen] = '\0';
    p += hlen;
    self->port = S_DEFAULT_PORT;
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return -EINVAL;
        self->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] && p[1] != '?') {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || (*end && *end != '?') || db < 0 || db > 1000000)
            return -EINVAL;
        self->db = (int)db;
        p = end;
    } else if (*p == '/')
        p++;
    if (*p == '?') //  TLS settings only mean something with TLS
        return self->tls ? s_parse_query(self, p + 1, ca, cert, key) : -EINVAL;
    return *p ? -EINVAL : 0;
}

//  The TLS context: verify the server against ca (or the system's store)
//  and present cert/key when given. -EINVAL when a file does not load.
static int s_tls_setup(vz_redis_t *self, const char *ca, const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    bool ok = ca[0] ? SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1
                    : SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (ok && (cert[0] || key[0]))
        ok = cert[0] && key[0] && SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1;
    ERR_clear_error();
    if (!ok) {
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    self->ssl_ctx = ctx;
    return 0;
}

vz_redis_t *vz_redis_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                         int retry_ms)
{
    assert(connect_timeout_ms > 0 && command_timeout_ms > 0 && retry_ms >= 0);
    if (!url) {
        errno = EINVAL;
        return NULL;
    }
    vz_redis_t *self = calloc(1, sizeof *self);
    assert(self);
    self->fd = -1;
    char ca[VZ_PATH_MAX] = "", cert[VZ_PATH_MAX] = "", key[VZ_PATH_MAX] = "";
    if (s_parse_url(self, url, ca, cert, key) < 0 ||
        (self->tls && s_tls_setup(self, ca, cert, key) < 0)) {
        vz_redis_destroy(&self);
        errno = EINVAL;
        return NULL;
    }
    self->connect_timeout_ms = connect_timeout_ms;
    self->command_timeout_ms = command_timeout_ms;
    self->retry_ms = retry_ms;
    return self;
}

void vz_redis_redact(const char *url, char *out, size_t n)
{
    assert(url && out && n > 0);
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *c = auth; c < auth + auth_len; c++)
        if (*c == '@')
            at = c;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon) {
        vz_strlcpy(out, url, n);
        return;
    }
    snprintf(out, n, "%.*s:***%s", (int)(colon - url), url, at);
}

static void s_drop(vz_redis_t *self)
{
    if (self->ssl) {
        SSL_free(self->ssl); //  no close_notify: the link is given up
        self->ssl = NULL;
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    if (self->reader)
        redisReaderFree(self->reader);
    self->reader = NULL;
    self->up = false;
}

void vz_redis_destroy(vz_redis_t **self_p)
{
    assert(self_p);
    vz_redis_t *self = *self_p;
    if (!self)
        return;
    s_drop(self);
    if (self->ssl_ctx)
        SSL_CTX_free(self->ssl_ctx);
    //  The password leaves no copy in freed memory.
    explicit_bzero(self->pass, sizeof self->pass);
    free(self);
    *self_p = NULL;
}

bool vz_redis_up(const vz_redis_t *self)
{
    assert(self);
    return self->up;
}

//  Write all len bytes; false on failure or timeout. A peer gone must not
//  kill the process: plain sockets send with MSG_NOSIGNAL, and OpenSSL's
//  write(2) runs with SIGPIPE blocked, a pending one taken back after.
static bool s_send(vz_redis_t *self, const char *buf, size_t len)
{
    if (!self->ssl) {
        while (len) {
            ssize_t n = send(self->fd, buf, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            buf += n;
            len -= (size_t)n;
        }
        return true;
    }
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    bool ok = len == 0 || SSL_write(self->ssl, buf, (int)len) == (int)len;
    if (!ok) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
            ; //  ours, if it came
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ERR_clear_error();
    return ok;
}

//  Read what is there (at least a byte) into buf; <= 0 on failure or timeout.
static ssize_t s_recv(vz_redis_t *self, char *buf, size_t n)
{
    if (self->ssl) {
        int got = SSL_read(self->ssl, buf, (int)n);
        ERR_clear_error();
        return got;
    }
    ssize_t got;
    do
        got = recv(self->fd, buf, n, 0);
    while (got < 0 && errno == EINTR);
    return got;
}

//  The next reply of the connection; NULL on a transport or protocol failure.
static redisReply *s_reply(vz_redis_t *self)
{
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(self->reader, &reply) != REDIS_OK)
            return NULL;
        if (reply)
            return reply;
        char buf[16384];
        ssize_t got = s_recv(self, buf, sizeof buf);
        if (got <= 0 || redisReaderFeed(self->reader, buf, (size_t)got) != REDIS_OK)
            return NULL;
    }
}

//  Send one command and read its reply (connection set up, no checks).
static redisReply *s_roundtrip(vz_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return NULL;
    bool sent = s_send(self, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return sent ? s_reply(self) : NULL;
}

//  TCP connect within connect_timeout_ms to the first address of host
//  that answers; the socket is left blocking with the command timeouts.
static int s_connect_tcp(vz_redis_t *self)
{
    char port[8];
    snprintf(port, sizeof port, "%d", self->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *list = NULL;
    if (getaddrinfo(self->host, port, &hints, &list) != 0)
        return -EHOSTUNREACH;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = list; ai && self->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t elen = sizeof err;
            err = poll(&pfd, 1, self->connect_timeout_ms) == 1 &&
                          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0
                      ? err
                      : ETIMEDOUT;
        }
        struct timeval tv = s_tv(self->command_timeout_ms);
        int one = 1;
        if (err == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
            self->fd = fd;
        else {
            rc = err ? -err : -EIO;
            close(fd);
        }
    }
    freeaddrinfo(list);
    return self->fd >= 0 ? 0 : rc;
}

//  The TLS handshake over the connected socket; the certificate must name
//  server_name (or host): a DNS name, or an IP address in its SANs.
static int s_handshake(vz_redis_t *self)
{
    self->ssl = SSL_new(self->ssl_ctx);
    if (!self->ssl || SSL_set_fd(self->ssl, self->fd) != 1)
        return -ENOMEM;
    const char *name = self->server_name[0] ? self->server_name : self->host;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    bool ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(self->ssl), name) == 1
                    : SSL_set_tlsext_host_name(self->ssl, name) == 1 &&
                          SSL_set1_host(self->ssl, name) == 1;
    ok = ok && SSL_connect(self->ssl) == 1;
    ERR_clear_error();
    return ok ? 0 : -ECONNREFUSED;
}

//  A command that must answer +OK (AUTH, SELECT); -EACCES / -EIO otherwise.
static int s_expect_ok(vz_redis_t *self, int argc, const char **argv, int refused)
{
    redisReply *reply = s_roundtrip(self, argc, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_STATUS;
    int rc = !reply ? -EIO : ok ? 0 : refused;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int vz_redis_ensure(vz_redis_t *self)
{
    assert(self);
    if (self->fd >= 0)
        return 0;
    int64_t now = vz_clock_mono_ms();
    //  A Redis that is away costs each caller at most one connect per
    //  retry_ms; in between, failing at once is the whole point.
    if (self->last_attempt && now - self->last_attempt < self->retry_ms)
        return -EAGAIN;
    self->last_attempt = now;
    int rc = s_connect_tcp(self);
    if (rc == 0 && self->tls)
        rc = s_handshake(self);
    if (rc == 0) {
        self->reader = redisReaderCreate();
        assert(self->reader);
    }
    if (rc == 0 && self->pass[0]) {
        const char *user_auth[] = {"AUTH", self->user, self->pass};
        const char *pass_auth[] = {"AUTH", self->pass};
        rc = self->user[0] ? s_expect_ok(self, 3, user_auth, -EACCES)
                           : s_expect_ok(self, 2, pass_auth, -EACCES);
    }
    if (rc == 0 && self->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        const char *select[] = {"SELECT", db};
        rc = s_expect_ok(self, 2, select, -EIO);
    }
    if (rc < 0) {
        s_drop(self);
        return rc;
    }
    self->up = true;
    return 0;
}

//  Transport failures (NULL) drop the connection; error replies do not.
static redisReply *s_checked(vz_redis_t *self, redisReply *reply)
{
    if (!reply) {
        s_drop(self);
        return NULL;
    }
    self->up = true;
    return reply;
}

redisReply *vz_redis_command(vz_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    assert(self && argc > 0 && argv);
    if (vz_redis_ensure(self) < 0)
        return NULL;
    return s_checked(self, s_roundtrip(self, argc, argv, lens));
}

vz_redis_script_t *vz_redis_script_new(const char *source)
{
    assert(source);
    vz_redis_script_t *self = calloc(1, sizeof *self);
    assert(self);
    self->source = strdup(source);
    assert(self->source);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)source, strlen(source), digest);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(self->sha + 2 * i, 3, "%02x", digest[i]);
    return self;
}

void vz_redis_script_destroy(vz_redis_script_t **self_p)
{
    assert(self_p);
    vz_redis_script_t *self = *self_p;
    if (!self)
        return;
    free(self->source);
    free(self);
    *self_p = NULL;
}

const char *vz_redis_script_sha(const vz_redis_script_t *self)
{
    assert(self);
    return self->sha;
}

//  The SHA is computed locally, so the common case is one EVALSHA. After a
//  Redis restart or SCRIPT FLUSH the first call gets NOSCRIPT and is sent
//  again as EVAL, which also caches the script for the next EVALSHA.
redisReply *vz_redis_eval(vz_redis_t *self, vz_redis_script_t *script, int nkeys, const char **keys,
                          int nargs, const char **args)
{
    assert(self && script && nkeys >= 0 && nargs >= 0);
    assert((!nkeys || keys) && (!nargs || args));
    int argc = 3 + nkeys + nargs;
    const char *stack[32];
    const char **argv = argc <= 32 ? stack : malloc((size_t)argc * sizeof *argv);
    assert(argv);
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    redisReply *reply = vz_redis_command(self, argc, argv, NULL);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        argv[0] = "EVAL";
        argv[1] = script->source;
        reply = vz_redis_command(self, argc, argv, NULL);
    }
    if (argv != stack)
        free(argv);
    return reply;
}

//  One EVALSHA (or EVAL with the source) formatted onto *out (heap, grown).
static int s_append_eval(const vz_redis_call_t *call, bool by_source, char **out, size_t *len)
{
    int argc = 3 + call->nkeys + call->nargs;
    const char *stack[32];
    const char **argv = argc <= 32 ? stack : malloc((size_t)argc * sizeof *argv);
    assert(argv);
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%d", call->nkeys);
    argv[0] = by_source ? "EVAL" : "EVALSHA";
    argv[1] = by_source ? call->script->source : call->script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < call->nkeys; i++)
        argv[3 + i] = call->keys[i];
    for (int i = 0; i < call->nargs; i++)
        argv[3 + call->nkeys + i] = call->args[i];
    char *cmd = NULL;
    int clen = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (argv != stack)
        free(argv);
    if (clen < 0)
        return -ENOMEM;
    *out = realloc(*out, *len + (size_t)clen);
    assert(*out);
    memcpy(*out + *len, cmd, (size_t)clen);
    *len += (size_t)clen;
    redisFreeCommand(cmd);
    return 0;
}

static bool s_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

//  Send the formatted commands (len bytes of out, freed), then read one
//  reply per call whose reply is still NULL, in order.
static int s_run_batch(vz_redis_t *self, char *out, size_t len, vz_redis_call_t *calls,
                       size_t count)
{
    bool sent = s_send(self, out, len);
    free(out);
    if (!sent)
        return -EIO;
    for (size_t i = 0; i < count; i++) {
        if (calls[i].reply)
            continue;
        calls[i].reply = s_reply(self);
        if (!calls[i].reply)
            return -EIO;
    }
    return 0;
}

//  Everything is written before anything is read: one send, Redis
//  answers in order. A transport failure anywhere voids the batch (the
//  connection's stream position is lost), like a failed vz_redis_command.
int vz_redis_eval_batch(vz_redis_t *self, vz_redis_call_t *calls, size_t count)
{
    assert(self && (calls || count == 0));
    for (size_t i = 0; i < count; i++) {
        assert(calls[i].script && calls[i].nkeys >= 0 && calls[i].nargs >= 0);
        calls[i].reply = NULL;
    }
    if (count == 0)
        return 0;
    int rc = vz_redis_ensure(self);
    if (rc < 0)
        return rc;
    char *out = NULL;
    size_t len = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = s_append_eval(&calls[i], false, &out, &len);
    rc = rc == 0 ? s_run_batch(self, out, len, calls, count) : (free(out), rc);
    //  After a Redis restart or SCRIPT FLUSH: resend those by source.
    out = NULL;
    len = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        if (s_noscript(calls[i].reply)) {
            freeReplyObject(calls[i].reply);
            calls[i].reply = NULL;
            rc = s_append_eval(&calls[i], true, &out, &len);
        }
    if (rc == 0 && len)
        rc = s_run_batch(self, out, len, calls, count);
    else
        free(out);
    if (rc < 0) {
        for (size_t i = 0; i < count; i++)
            if (calls[i].reply) {
                freeReplyObject(calls[i].reply);
                calls[i].reply = NULL;
            }
        s_drop(self);
        return rc;
    }
    self->up = true;
    return 0;
}
