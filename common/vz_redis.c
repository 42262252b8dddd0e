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
#define S_SLOTS 16384   //  hash slots of a Redis Cluster
#define S_NODES_MAX 128 //  nodes known at once (seeds and the map's), fits the uint8_t map
#define S_REDIRECTS 5   //  MOVED/ASK/failover hops one command may take

//  One server and its connection: the only one outside a cluster, one per
//  node (opened on first use) in a cluster.
typedef struct {
    char host[S_HOST_MAX]; //  host name or address
    int port;              //  TCP port
    int fd;                //  the connection, -1 while disconnected
    SSL *ssl;              //  its TLS session (tls only)
    redisReader *reader;   //  reply parser of the connection
    int64_t last_attempt;  //  ms of the last connect attempt, 0 = never
    bool sentinel;         //  a Sentinel of the URL: asked without AUTH or SELECT
} s_node_t;

struct vz_redis_t {
    int db;                         //  SELECT index, 0 = default
    char user[S_CRED_MAX];          //  ACL user, "" = the default user
    char pass[S_CRED_MAX];          //  password, "" = no AUTH
    char sentinel_user[S_CRED_MAX]; //  ?sentinel_user=: the Sentinels' ACL user, "" = default
    char sentinel_pass[S_CRED_MAX]; //  ?sentinel_password=: AUTH to the Sentinels, "" = none
    bool tls;                       //  rediss://
    char server_name[S_HOST_MAX];   //  name the certificate must carry, "" = host
    SSL_CTX *ssl_ctx;               //  TLS settings (CA, client certificate), NULL = plain
    int connect_timeout_ms;         //  bound on connect(2)
    int command_timeout_ms;         //  bound on each send and receive
    int retry_ms;                   //  least time between connect attempts (per node)
    bool cluster;                   //  ?cluster=1: route by slot, follow redirections
    char master[S_HOST_MAX];        //  ?sentinel=<name>: the primary Sentinels name, "" none
    int primary;                    //  sentinel: node index of the primary, -1 unknown
    s_node_t nodes[S_NODES_MAX];    //  the URL's hosts first, then nodes the cluster named
    int node_count;                 //  entries in nodes
    uint8_t *slots;                 //  cluster: node index + 1 per slot, 0 = unknown
    bool stale;                     //  cluster: reload the slot map before the next command
    bool up;                        //  last command (or connect) reached Redis
    bool refused;                   //  the last connect's AUTH was refused
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

//  The query: the TLS settings ca_file, cert_file, key_file, server_name
//  (rediss:// only), cluster=0|1, sentinel=<master name> and the
//  Sentinels' own credentials sentinel_user and sentinel_password.
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
        if (klen == 8 && strncmp(q, "sentinel", 8) == 0) {
            if (s_decode(eq + 1, len - klen - 1, self->master, sizeof self->master) < 0 ||
                !self->master[0])
                return -EINVAL;
        } else if (klen == 13 && strncmp(q, "sentinel_user", 13) == 0) {
            out = self->sentinel_user, n = sizeof self->sentinel_user;
        } else if (klen == 17 && strncmp(q, "sentinel_password", 17) == 0) {
            out = self->sentinel_pass, n = sizeof self->sentinel_pass;
        } else if (klen == 7 && strncmp(q, "cluster", 7) == 0) {
            if (len - klen - 1 != 1 || (eq[1] != '0' && eq[1] != '1'))
                return -EINVAL;
            self->cluster = eq[1] == '1';
        } else if (!self->tls)
            return -EINVAL; //  TLS settings only mean something with TLS
        else if (klen == 7 && strncmp(q, "ca_file", 7) == 0)
            out = ca;
        else if (klen == 9 && strncmp(q, "cert_file", 9) == 0)
            out = cert;
        else if (klen == 8 && strncmp(q, "key_file", 8) == 0)
            out = key;
        else if (klen == 11 && strncmp(q, "server_name", 11) == 0)
            out = self->server_name, n = sizeof self->server_name;
        else
            return -EINVAL;
        if (out && (s_decode(eq + 1, len - klen - 1, out, n) < 0 ||
                    (!out[0] && out == self->sentinel_pass)))
            return -EINVAL;
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

//  One host[:port] of the authority (len bytes at p) as a new node.
static int s_parse_host(vz_redis_t *self, const char *p, size_t len)
{
    if (self->node_count == S_NODES_MAX)
        return -EINVAL;
    s_node_t *node = &self->nodes[self->node_count];
    const char *colon = memchr(p, ':', len);
    size_t hlen = colon ? (size_t)(colon - p) : len;
    if (hlen == 0 || hlen >= sizeof node->host || memchr(p, '[', hlen))
        return -EINVAL;
    memcpy(node->host, p, hlen);
    node->host[hlen] = '\0';
    node->port = S_DEFAULT_PORT;
    if (colon) {
        char digits[8] = "";
        size_t dlen = len - hlen - 1;
        if (dlen == 0 || dlen >= sizeof digits)
            return -EINVAL;
        memcpy(digits, colon + 1, dlen);
        char *end;
        long port = strtol(digits, &end, 10);
        if (*end || port < 1 || port > 65535)
            return -EINVAL;
        node->port = (int)port;
    }
    node->fd = -1;
    self->node_count++;
    return 0;
}

//  redis[s]://[[user]:password@]host[:port][,host[:port]...][/db][?query];
//  everything else is refused. Several hosts only with cluster=1 (they
//  are seeds), and a cluster has no db but 0. ca, cert, key: the TLS
//  files named in the query.
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
    const char *hosts_end = p + strcspn(p, "/?");
    while (p < hosts_end) {
        size_t len = strcspn(p, ",/?");
        if (s_parse_host(self, p, len) < 0)
            return -EINVAL;
        p += len;
        if (*p == ',' && ++p == hosts_end)
            return -EINVAL; //  a trailing comma
    }
    if (self->node_count == 0)
        return -EINVAL;
    char *end;
    if (*p == '/' && p[1] && p[1] != '?') {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || (*end && *end != '?') || db < 0 || db > 1000000)
            return -EINVAL;
        self->db = (int)db;
        p = end;
    } else if (*p == '/')
        p++;
    if (*p == '?' && s_parse_query(self, p + 1, ca, cert, key) < 0)
        return -EINVAL;
    if (*p && *p != '?')
        return -EINVAL;
    //  Cluster mode has one database; a single server, one host.
    for (int i = 0; self->master[0] && i < self->node_count; i++)
        self->nodes[i].sentinel = true;
    if ((self->sentinel_user[0] || self->sentinel_pass[0]) &&
        (!self->master[0] || !self->sentinel_pass[0]))
        return -EINVAL; //  Sentinel credentials without Sentinels, or a user without password
    if (self->cluster)
        return self->db || self->master[0] ? -EINVAL : 0;
    return self->node_count == 1 || self->master[0] ? 0 : -EINVAL;
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
    char ca[VZ_PATH_MAX] = "", cert[VZ_PATH_MAX] = "", key[VZ_PATH_MAX] = "";
    if (s_parse_url(self, url, ca, cert, key) < 0 ||
        (self->tls && s_tls_setup(self, ca, cert, key) < 0)) {
        vz_redis_destroy(&self);
        errno = EINVAL;
        return NULL;
    }
    self->primary = -1;
    if (self->cluster) {
        self->slots = calloc(S_SLOTS, 1);
        assert(self->slots);
        self->stale = true;
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
    size_t len = strlen(url) + 4;
    char *shown = malloc(len);
    assert(shown);
    if (colon)
        snprintf(shown, len, "%.*s:***%s", (int)(colon - url), url, at);
    else
        vz_strlcpy(shown, url, len);
    //  The Sentinels' password in the query goes too.
    out[0] = '\0';
    const char *p = shown, *q = strchr(shown, '?');
    while (q && (q = strstr(q, "sentinel_password=")) != NULL) {
        if (q[-1] != '?' && q[-1] != '&') {
            q++;
            continue;
        }
        q += strlen("sentinel_password=");
        size_t o = strlen(out);
        snprintf(out + o, n - o, "%.*s***", (int)(q - p), p);
        q = p = q + strcspn(q, "&");
    }
    size_t o = strlen(out);
    snprintf(out + o, n - o, "%s", p);
    explicit_bzero(shown, len);
    free(shown);
}

int vz_redis_url_password(const char *url, const char *password, char *out, size_t n)
{
    assert(url && password && out);
    const char *scheme = strstr(url, "://");
    if (!scheme || (strncmp(url, "redis://", 8) != 0 && strncmp(url, "rediss://", 9) != 0))
        return -EINVAL;
    const char *auth = scheme + 3;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *c = auth; c < auth + auth_len; c++)
        if (*c == '@')
            at = c;
    if (at && memchr(auth, ':', (size_t)(at - auth)))
        return -EINVAL; //  a password already
    //  Unreserved characters stay, everything else is %XX.
    char enc[3 * S_CRED_MAX + 1];
    size_t e = 0;
    for (const unsigned char *c = (const unsigned char *)password; *c; c++) {
        if (e + 4 > sizeof enc)
            return -ENAMETOOLONG;
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", *c))
            enc[e++] = (char)*c;
        else
            e += (size_t)snprintf(enc + e, 4, "%%%02X", *c);
    }
    enc[e] = '\0';
    int len = at ? snprintf(out, n, "%.*s:%s%s", (int)(at - url), url, enc, at)
                 : snprintf(out, n, "%.*s:%s@%s", (int)(auth - url), url, enc, auth);
    explicit_bzero(enc, sizeof enc);
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

static void s_node_drop(s_node_t *node)
{
    if (node->ssl) {
        SSL_free(node->ssl); //  no close_notify: the link is given up
        node->ssl = NULL;
    }
    if (node->fd >= 0)
        close(node->fd);
    node->fd = -1;
    if (node->reader)
        redisReaderFree(node->reader);
    node->reader = NULL;
}

void vz_redis_destroy(vz_redis_t **self_p)
{
    assert(self_p);
    vz_redis_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < self->node_count; i++)
        s_node_drop(&self->nodes[i]);
    if (self->ssl_ctx)
        SSL_CTX_free(self->ssl_ctx);
    free(self->slots);
    //  The password leaves no copy in freed memory.
    explicit_bzero(self->pass, sizeof self->pass);
    explicit_bzero(self->sentinel_pass, sizeof self->sentinel_pass);
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
static bool s_send(s_node_t *node, const char *buf, size_t len)
{
    if (!node->ssl) {
        while (len) {
            ssize_t n = send(node->fd, buf, len, MSG_NOSIGNAL);
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
    bool ok = len == 0 || SSL_write(node->ssl, buf, (int)len) == (int)len;
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
static ssize_t s_recv(s_node_t *node, char *buf, size_t n)
{
    if (node->ssl) {
        int got = SSL_read(node->ssl, buf, (int)n);
        ERR_clear_error();
        return got;
    }
    ssize_t got;
    do
        got = recv(node->fd, buf, n, 0);
    while (got < 0 && errno == EINTR);
    return got;
}

//  The next reply of the connection; NULL on a transport or protocol failure.
static redisReply *s_reply(s_node_t *node)
{
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(node->reader, &reply) != REDIS_OK)
            return NULL;
        if (reply)
            return reply;
        char buf[16384];
        ssize_t got = s_recv(node, buf, sizeof buf);
        if (got <= 0 || redisReaderFeed(node->reader, buf, (size_t)got) != REDIS_OK)
            return NULL;
    }
}

//  Send one command, after ASKING when asking, and read its reply
//  (connection set up, no checks).
static redisReply *s_roundtrip(s_node_t *node, bool asking, int argc, const char **argv,
                               const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return NULL;
    static const char ask[] = "*1\r\n$6\r\nASKING\r\n";
    bool sent = (!asking || s_send(node, ask, sizeof ask - 1)) && s_send(node, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (!sent)
        return NULL;
    if (asking) {
        redisReply *ok = s_reply(node);
        if (!ok)
            return NULL;
        freeReplyObject(ok); //  +OK, or an error the command's reply repeats
    }
    return s_reply(node);
}

//  TCP connect within connect_timeout_ms to the first address of the
//  node's host that answers; the socket is left blocking with the
//  command timeouts.
static int s_connect_tcp(const vz_redis_t *self, s_node_t *node)
{
    char port[8];
    snprintf(port, sizeof port, "%d", node->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *list = NULL;
    if (getaddrinfo(node->host, port, &hints, &list) != 0)
        return -EHOSTUNREACH;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = list; ai && node->fd < 0; ai = ai->ai_next) {
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
            node->fd = fd;
        else {
            rc = err ? -err : -EIO;
            close(fd);
        }
    }
    freeaddrinfo(list);
    return node->fd >= 0 ? 0 : rc;
}

//  The TLS handshake over the connected socket; the certificate must name
//  server_name (or the node's host): a DNS name, or an IP address in its SANs.
static int s_handshake(const vz_redis_t *self, s_node_t *node)
{
    node->ssl = SSL_new(self->ssl_ctx);
    if (!node->ssl || SSL_set_fd(node->ssl, node->fd) != 1)
        return -ENOMEM;
    const char *name = self->server_name[0] ? self->server_name : node->host;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    bool ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(node->ssl), name) == 1
                    : SSL_set_tlsext_host_name(node->ssl, name) == 1 &&
                          SSL_set1_host(node->ssl, name) == 1;
    ok = ok && SSL_connect(node->ssl) == 1;
    ERR_clear_error();
    return ok ? 0 : -ECONNREFUSED;
}

//  A command that must answer +OK (AUTH, SELECT); -EACCES / -EIO otherwise.
static int s_expect_ok(s_node_t *node, int argc, const char **argv, int refused)
{
    redisReply *reply = s_roundtrip(node, false, argc, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_STATUS;
    int rc = !reply ? -EIO : ok ? 0 : refused;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

//  Whether an idle connection was closed by the server (a restart, a node
//  killed, an idle timeout): it is then dropped before a command is sent on
//  it, so that command can go elsewhere instead of being lost. Redis sends
//  nothing unasked, so any input on an idle plain socket means the end; a
//  TLS one may carry session tickets, so there only a hang-up counts.
static bool s_closed(const s_node_t *node)
{
    struct pollfd pfd = {.fd = node->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) != 1)
        return false;
    short gone = POLLHUP | POLLERR | POLLRDHUP | (node->ssl ? 0 : POLLIN);
    return (pfd.revents & gone) != 0;
}

//  Connect node if it is not (respecting retry_ms): TCP, TLS, AUTH, SELECT.
static int s_node_ensure(vz_redis_t *self, s_node_t *node)
{
    if (node->fd >= 0 && s_closed(node))
        s_node_drop(node);
    if (node->fd >= 0)
        return 0;
    int64_t now = vz_clock_mono_ms();
    //  A Redis that is away costs each caller at most one connect per
    //  retry_ms; in between, failing at once is the whole point.
    if (node->last_attempt && now - node->last_attempt < self->retry_ms)
        return -EAGAIN;
    node->last_attempt = now;
    int rc = s_connect_tcp(self, node);
    if (rc == 0 && self->tls)
        rc = s_handshake(self, node);
    if (rc == 0) {
        node->reader = redisReaderCreate();
        assert(node->reader);
    }
    //  A Sentinel has its own credentials (sentinel_password), if any.
    const char *user = node->sentinel ? self->sentinel_user : self->user;
    const char *pass = node->sentinel ? self->sentinel_pass : self->pass;
    if (rc == 0 && pass[0]) {
        const char *user_auth[] = {"AUTH", user, pass};
        const char *pass_auth[] = {"AUTH", pass};
        rc = user[0] ? s_expect_ok(node, 3, user_auth, -EACCES)
                     : s_expect_ok(node, 2, pass_auth, -EACCES);
    }
    if (rc == 0 && self->db && !node->sentinel) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        const char *select[] = {"SELECT", db};
        rc = s_expect_ok(node, 2, select, -EIO);
    }
    self->refused = rc == -EACCES;
    if (rc < 0) {
        s_node_drop(node);
        return rc;
    }
    return 0;
}

bool vz_redis_refused(const vz_redis_t *self)
{
    assert(self);
    return self->refused;
}

//  --------------------------------------------------------------------------
//  Cluster: slots, the slot map, redirections

//  CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum of the
//  Redis Cluster specification; bitwise, keys are short.
static uint16_t s_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int vz_redis_key_slot(const char *key, size_t len)
{
    assert(key || len == 0);
    //  A hash tag: what is between the first '{' and the first '}' after
    //  it, when that is not empty.
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return s_crc16(open + 1, (size_t)(close - open - 1)) & (S_SLOTS - 1);
    }
    return s_crc16(key, len) & (S_SLOTS - 1);
}

int vz_redis_redirect_parse(const char *err, bool *ask, int *slot, char *host, size_t n, int *port)
{
    assert(err && ask && slot && host && n > 0 && port);
    //  "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>"; the host
    //  may be empty (the node that answered) or an IPv6 address.
    const char *p;
    if (strncmp(err, "MOVED ", 6) == 0)
        p = err + 6, *ask = false;
    else if (strncmp(err, "ASK ", 4) == 0)
        p = err + 4, *ask = true;
    else
        return -EINVAL;
    char *end;
    long s = strtol(p, &end, 10);
    if (end == p || *end != ' ' || s < 0 || s >= S_SLOTS)
        return -EINVAL;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= n || strchr(addr, ' '))
        return -EINVAL;
    long pt = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || pt < 1 || pt > 65535)
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *slot = (int)s;
    *port = (int)pt;
    return 0;
}

//  Index of host:port among the known nodes, added when new; -1 when the
//  table is full.
static int s_node_index(vz_redis_t *self, const char *host, int port)
{
    for (int i = 0; i < self->node_count; i++)
        if (self->nodes[i].port == port && strcmp(self->nodes[i].host, host) == 0)
            return i;
    if (self->node_count == S_NODES_MAX || strlen(host) >= S_HOST_MAX)
        return -1;
    s_node_t *node = &self->nodes[self->node_count];
    memset(node, 0, sizeof *node);
    vz_strlcpy(node->host, host, sizeof node->host);
    node->port = port;
    node->fd = -1;
    return self->node_count++;
}

//  Apply a CLUSTER SLOTS reply got from node from: [[start, end, [host,
//  port, ...], replicas...]...]; an empty host is from's. 0, or -EPROTO
//  on a malformed reply (the map is then left as it was).
static int s_apply_slots(vz_redis_t *self, const redisReply *reply, const s_node_t *from)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return -EPROTO;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
            r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements < 2 ||
            r->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            r->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return -EPROTO;
        long long lo = r->element[0]->integer, hi = r->element[1]->integer;
        if (lo < 0 || hi < lo || hi >= S_SLOTS)
            return -EPROTO;
    }
    memset(self->slots, 0, S_SLOTS);
    char host[S_HOST_MAX];
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        const redisReply *primary = r->element[2];
        vz_strlcpy(host, primary->element[0]->len ? primary->element[0]->str : from->host,
                   sizeof host);
        int idx = s_node_index(self, host, (int)primary->element[1]->integer);
        if (idx < 0)
            continue; //  beyond S_NODES_MAX: those slots stay unknown
        memset(self->slots + r->element[0]->integer, idx + 1,
               (size_t)(r->element[1]->integer - r->element[0]->integer + 1));
    }
    return 0;
}

//  Reload the slot map from the first node that answers CLUSTER SLOTS,
//  connected ones first. 0, or the last node's -errno (-EACCES wins).
static int s_refresh(vz_redis_t *self)
{
    int rc = -EHOSTUNREACH;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < self->node_count; i++) {
            s_node_t *node = &self->nodes[i];
            if ((pass == 0) != (node->fd >= 0))
                continue;
            int nrc = s_node_ensure(self, node);
            if (nrc == 0) {
                const char *argv[] = {"CLUSTER", "SLOTS"};
                redisReply *reply = s_roundtrip(node, false, 2, argv, NULL);
                if (!reply)
                    s_node_drop(node);
                nrc = !reply ? -EIO : s_apply_slots(self, reply, node);
                if (reply)
                    freeReplyObject(reply);
                if (nrc == 0) {
                    self->stale = false;
                    return 0;
                }
            }
            if (rc != -EACCES)
                rc = nrc;
        }
    return rc;
}

//  Case-insensitive command name test.
static bool s_is(const char *arg, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(arg, name, len) == 0;
}

//  Length of argument i (lens NULL: C strings).
static size_t s_len(const char **argv, const size_t *lens, int i)
{
    return lens ? lens[i] : strlen(argv[i]);
}

//  The slot a command is routed by: its first key; -1 for one without a
//  key (any node answers it). EVAL/EVALSHA/FCALL carry numkeys first,
//  XREAD/XREADGROUP their keys after STREAMS, and SCAN is routed by a
//  hash tag at the head of its MATCH pattern ("{tl}:s:*"), when it has one.
static int s_command_slot(int argc, const char **argv, const size_t *lens)
{
    const char *name = argv[0];
    size_t nlen = s_len(argv, lens, 0);
    static const char *const keyless[] = {
        "PING",  "INFO",   "SCRIPT", "CLUSTER", "AUTH",  "SELECT",   "TIME",     "ECHO",
        "HELLO", "CLIENT", "CONFIG", "COMMAND", "ACL",   "DBSIZE",   "FLUSHALL", "FLUSHDB",
        "WAIT",  "ROLE",   "MEMORY", "SLOWLOG", "DEBUG", "LASTSAVE", "PUBLISH",  "FUNCTION"};
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (s_is(name, nlen, keyless[i]))
            return -1;
    if (s_is(name, nlen, "EVAL") || s_is(name, nlen, "EVALSHA") || s_is(name, nlen, "EVAL_RO") ||
        s_is(name, nlen, "EVALSHA_RO") || s_is(name, nlen, "FCALL"))
        return argc > 3 && atoi(argv[2]) > 0 ? vz_redis_key_slot(argv[3], s_len(argv, lens, 3))
                                             : -1;
    if (s_is(name, nlen, "XREAD") || s_is(name, nlen, "XREADGROUP")) {
        for (int i = 1; i + 1 < argc; i++)
            if (s_is(argv[i], s_len(argv, lens, i), "STREAMS"))
                return vz_redis_key_slot(argv[i + 1], s_len(argv, lens, i + 1));
        return -1;
    }
    if (s_is(name, nlen, "SCAN")) {
        for (int i = 2; i + 1 < argc; i++) {
            const char *pat = argv[i + 1];
            size_t plen = s_len(argv, lens, i + 1);
            if (!s_is(argv[i], s_len(argv, lens, i), "MATCH") || plen < 3 || pat[0] != '{')
                continue;
            size_t tag = 1;
            while (tag < plen && !memchr("}*?[\\", pat[tag], 5))
                tag++;
            if (tag < plen && pat[tag] == '}')
                return vz_redis_key_slot(pat, tag + 1);
        }
        return -1;
    }
    return argc > 1 ? vz_redis_key_slot(argv[1], s_len(argv, lens, 1)) : -1;
}

//  The node owning slot (-1: any node with slots, else the first one).
static int s_owner(const vz_redis_t *self, int slot)
{
    if (slot >= 0)
        return self->slots[slot] - 1;
    for (int i = 0; i < S_SLOTS; i += 1024)
        if (self->slots[i])
            return self->slots[i] - 1;
    return 0;
}

//  An error reply starting with word.
static bool s_error_is(const redisReply *reply, const char *word)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->len >= strlen(word) &&
           strncmp(reply->str, word, strlen(word)) == 0;
}

//  Run a command on the node owning its slot. MOVED updates the map (and
//  schedules a full reload) and goes to the named node; ASK goes there
//  once, after ASKING; a node that cannot be reached makes the map reload
//  at once and the command go to the slot's owner if that changed (a
//  failover already done), within command_timeout_ms. A command that was
//  sent but got no reply is never sent again: it may have run. TRYAGAIN
//  is retried until the deadline; CLUSTERDOWN (a failover in progress)
//  answers NULL, as a Redis away.
static redisReply *s_cluster_command(vz_redis_t *self, int argc, const char **argv,
                                     const size_t *lens)
{
    int slot = s_command_slot(argc, argv, lens);
    int64_t deadline = vz_clock_mono_ms() + self->command_timeout_ms;
    int target = -1; //  a redirection's node, else the slot's owner
    bool asking = false;
    for (int hop = 0; hop <= S_REDIRECTS; hop++) {
        if (self->stale && s_refresh(self) < 0 && target < 0 && s_owner(self, slot) < 0)
            break;
        int idx = target >= 0 ? target : s_owner(self, slot);
        if (idx < 0)
            break;
        s_node_t *node = &self->nodes[idx];
        if (s_node_ensure(self, node) < 0) {
            //  Away: has another node taken its slots over?
            self->stale = true;
            if (vz_clock_mono_ms() >= deadline || s_refresh(self) < 0 ||
                s_owner(self, slot) == idx || target >= 0)
                break;
            continue;
        }
        redisReply *reply = s_roundtrip(node, asking, argc, argv, lens);
        if (!reply) {
            s_node_drop(node);
            self->stale = true;
            break;
        }
        self->up = true;
        target = -1;
        asking = false;
        char host[S_HOST_MAX];
        bool ask;
        int rslot, port;
        if (reply->type == REDIS_REPLY_ERROR &&
            vz_redis_redirect_parse(reply->str, &ask, &rslot, host, sizeof host, &port) == 0) {
            freeReplyObject(reply);
            target = s_node_index(self, host[0] ? host : node->host, port);
            if (target < 0)
                break;
            asking = ask;
            if (!ask) {
                self->slots[rslot] = (uint8_t)(target + 1);
                self->stale = true;
            }
            continue;
        }
        if (s_error_is(reply, "TRYAGAIN") && vz_clock_mono_ms() < deadline) {
            freeReplyObject(reply);
            struct timespec pause = {0, 2 * 1000 * 1000}; //  a multi-key command mid-migration
            nanosleep(&pause, NULL);
            continue;
        }
        if (s_error_is(reply, "CLUSTERDOWN")) {
            freeReplyObject(reply);
            self->stale = true;
            break;
        }
        return reply;
    }
    self->up = false;
    return NULL;
}

//  --------------------------------------------------------------------------
//  Sentinel: the primary's address asked from the Sentinels

//  Ask the Sentinels, in order, for the primary of master; the first that
//  names one wins. 0, or the last -errno; -EACCES wins (a Sentinel refused
//  sentinel_password, or asked for one: NOAUTH).
static int s_resolve(vz_redis_t *self)
{
    int rc = -EHOSTUNREACH;
    for (int i = 0; i < self->node_count; i++) {
        s_node_t *node = &self->nodes[i];
        int nrc = node->sentinel ? s_node_ensure(self, node) : -EHOSTUNREACH;
        if (nrc < 0) {
            rc = rc == -EACCES ? rc : nrc;
            continue;
        }
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name", self->master};
        redisReply *r = s_roundtrip(node, false, 3, argv, NULL);
        if (!r)
            s_node_drop(node);
        if (s_error_is(r, "NOAUTH") || s_error_is(r, "WRONGPASS")) {
            freeReplyObject(r);
            rc = -EACCES;
            continue;
        }
        bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  r->element[1]->type == REDIS_REPLY_STRING;
        int port = ok ? atoi(r->element[1]->str) : 0;
        int idx =
            ok && port > 0 && port < 65536 ? s_node_index(self, r->element[0]->str, port) : -1;
        if (r)
            freeReplyObject(r);
        if (idx < 0) {
            rc = rc == -EACCES ? rc : -EHOSTUNREACH;
            continue;
        }
        if (self->primary >= 0 && self->primary != idx)
            s_node_drop(&self->nodes[self->primary]); //  the old primary is a replica now
        self->primary = idx;
        self->stale = false;
        return 0;
    }
    return rc;
}

//  The one server outside a cluster: the URL's host, or the primary the
//  Sentinels name (asked again when stale), connected. NULL when away.
static s_node_t *s_server(vz_redis_t *self, int *rc_p)
{
    int rc = 0;
    if (self->master[0] && (self->primary < 0 || self->stale))
        rc = s_resolve(self);
    s_node_t *node = self->master[0] ? (self->primary >= 0 ? &self->nodes[self->primary] : NULL)
                                     : &self->nodes[0];
    if (node && (rc = s_node_ensure(self, node)) < 0 && self->master[0]) {
        //  Unreachable: a failover may have named another primary.
        int before = self->primary;
        if (s_resolve(self) == 0 && self->primary != before)
            rc = s_node_ensure(self, node = &self->nodes[self->primary]);
    }
    if (rc_p)
        *rc_p = node || rc < 0 ? rc : -EHOSTUNREACH;
    return node && rc == 0 ? node : NULL;
}

int vz_redis_ensure(vz_redis_t *self)
{
    assert(self);
    if (self->cluster && !self->stale)
        return 0; //  nodes are connected on first use
    int rc = 0;
    if (self->cluster)
        rc = s_refresh(self);
    else
        s_server(self, &rc);
    self->up = rc == 0;
    return rc;
}

redisReply *vz_redis_command(vz_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    assert(self && argc > 0 && argv);
    if (self->cluster)
        return s_cluster_command(self, argc, argv, lens);
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc;
        s_node_t *node = s_server(self, &rc);
        self->up = node != NULL;
        if (!node)
            return NULL;
        redisReply *reply = s_roundtrip(node, false, argc, argv, lens);
        //  Transport failures (NULL) drop the connection; error replies do not.
        if (!reply) {
            s_node_drop(node);
            self->stale = self->master[0] != '\0';
            self->up = false;
            return NULL;
        }
        //  A primary demoted by a failover refuses writes: ask again, once
        //  (nothing ran on the replica).
        if (attempt == 0 && self->master[0] && s_error_is(reply, "READONLY")) {
            freeReplyObject(reply);
            self->stale = true;
            continue;
        }
        return reply;
    }
    return NULL;
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

//  Send the formatted commands (len bytes of out, freed) to node, then
//  read one reply per call of the node (owner[i] == idx) whose reply is
//  still NULL, in order.
static int s_run_batch(s_node_t *node, char *out, size_t len, vz_redis_call_t *calls,
                       const int *owner, int idx, size_t count)
{
    bool sent = s_send(node, out, len);
    free(out);
    if (!sent)
        return -EIO;
    for (size_t i = 0; i < count; i++) {
        if (owner[i] != idx || calls[i].reply)
            continue;
        calls[i].reply = s_reply(node);
        if (!calls[i].reply)
            return -EIO;
    }
    return 0;
}

//  The calls of node idx, pipelined: every EVALSHA written, then the
//  replies read; those answered NOSCRIPT (after a restart or SCRIPT FLUSH)
//  are resent by source, pipelined too. A transport failure drops the
//  connection (its stream position is lost).
static int s_node_batch(vz_redis_t *self, int idx, vz_redis_call_t *calls, const int *owner,
                        size_t count)
{
    s_node_t *node = &self->nodes[idx];
    int rc = s_node_ensure(self, node);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        char *out = NULL;
        size_t len = 0;
        for (size_t i = 0; i < count && rc == 0; i++) {
            if (owner[i] != idx || (pass == 1 && !s_noscript(calls[i].reply)))
                continue;
            if (calls[i].reply)
                freeReplyObject(calls[i].reply);
            calls[i].reply = NULL;
            rc = s_append_eval(&calls[i], pass == 1, &out, &len);
        }
        if (rc == 0 && len)
            rc = s_run_batch(node, out, len, calls, owner, idx, count);
        else
            free(out);
    }
    if (rc == -EIO)
        s_node_drop(node);
    return rc;
}

//  A reply the cluster path must handle: a redirection, TRYAGAIN or
//  CLUSTERDOWN (the call is then run again alone by vz_redis_eval).
static bool s_rerun(const redisReply *reply)
{
    return !reply || s_error_is(reply, "MOVED ") || s_error_is(reply, "ASK ") ||
           s_error_is(reply, "TRYAGAIN") || s_error_is(reply, "CLUSTERDOWN");
}

//  Everything for one node is written before anything is read: one send
//  per node, each answering in order; replies land in their calls, so
//  call order is kept whatever the grouping. A transport failure anywhere
//  voids the batch, like a failed vz_redis_command.
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
    //  Each call's node: the owner of its first key's slot (-1 unknown),
    //  or the one server.
    int *owner = calloc(count, sizeof *owner);
    assert(owner);
    for (size_t i = 0; i < count && self->master[0]; i++)
        owner[i] = self->primary;
    for (size_t i = 0; i < count && self->cluster; i++)
        owner[i] = s_owner(self, calls[i].nkeys
                                     ? vz_redis_key_slot(calls[i].keys[0], strlen(calls[i].keys[0]))
                                     : -1);
    for (size_t i = 0; i < count && rc == 0; i++) {
        bool first = owner[i] >= 0;
        for (size_t j = 0; j < i && first; j++)
            first = owner[j] != owner[i];
        if (first)
            rc = s_node_batch(self, owner[i], calls, owner, count);
    }
    //  Moved slots, migrations, unknown owners: one by one, the long way.
    for (size_t i = 0; i < count && rc == 0 && self->cluster; i++)
        if (s_rerun(calls[i].reply)) {
            if (calls[i].reply)
                freeReplyObject(calls[i].reply);
            calls[i].reply = vz_redis_eval(self, calls[i].script, calls[i].nkeys, calls[i].keys,
                                           calls[i].nargs, calls[i].args);
            rc = calls[i].reply ? 0 : -EIO;
        }
    free(owner);
    if (rc < 0) {
        for (size_t i = 0; i < count; i++)
            if (calls[i].reply) {
                freeReplyObject(calls[i].reply);
                calls[i].reply = NULL;
            }
        self->stale = self->cluster || self->master[0];
        self->up = false;
        return rc;
    }
    //  A demoted primary: the Sentinels are asked again before the next call.
    for (size_t i = 0; i < count && self->master[0]; i++)
        self->stale = self->stale || s_error_is(calls[i].reply, "READONLY");
    self->up = true;
    return 0;
}
