/*  fake_http - a scripted HTTP/HTTPS server for tests
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Blocking I/O on a thread per connection keeps TLS simple (no
 *  want-read/want-write states); stop shuts the sockets down, which wakes
 *  every blocked accept and read, and broadcasts the condition variable,
 *  which ends every scripted delay.
 */
#include "fake_http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_HEAD_MAX (64 * 1024)        //  request line and headers
#define FAKE_BODY_MAX (16 * 1024 * 1024) //  request body

typedef struct conn_t conn_t;

struct fake_http_t {
    bool tls;                      //  HTTPS
    SSL_CTX *ssl_ctx;              //  server context with the test certificate (TLS only)
    char ca_file[256];             //  the test CA's PEM file (TLS only)
    char base[64];                 //  scheme://127.0.0.1:port
    int port;                      //  bound port
    int listen_fd;                 //  listening socket
    pthread_t acceptor;            //  accept thread
    pthread_mutex_t mutex;         //  guards everything below
    pthread_cond_t cond;           //  a request arrived, or stop
    bool stopping;                 //  destroy has begun
    fake_http_reply_t *script;     //  queued replies (deep copies)
    size_t script_head;            //  next reply to play
    size_t script_len;             //  replies queued in total
    fake_http_request_t **records; //  every request, in arrival order
    size_t count;                  //  records used
    size_t records_cap;            //  records allocated
    int connections;               //  connections accepted
    conn_t **conns;                //  connection threads to join
    size_t conns_len;              //  entries in conns
};

struct conn_t {
    fake_http_t *server; //  owner
    int fd;              //  the accepted socket
    SSL *ssl;            //  TLS session or NULL
    int number;          //  1-based connection number
    pthread_t thread;    //  serving thread
    char *buf;           //  bytes read and not yet consumed
    size_t len;          //  bytes in buf
    size_t cap;          //  buf allocated
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *s_strndup(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    assert(copy);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

//  ---------------------------------------------------------------------
//  Test CA and server certificate

static int s_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return -1;
    int rc = X509_add_ext(cert, ext, -1) ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

//  A certificate for key, signed by issuer (NULL: self-signed CA).
static X509 *s_make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *cert = X509_new();
    assert(cert);
    uint64_t serial = 0;
    RAND_bytes((unsigned char *)&serial, sizeof serial);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial >> 1);
    X509_set_version(cert, 2);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    const char *cn = issuer ? "127.0.0.1" : "vizmesh fake_http test CA";
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : cert;
    int rc = s_add_ext(cert, signer, NID_subject_key_identifier, "hash");
    rc |= s_add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
    if (issuer) {
        rc |= s_add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
        rc |= s_add_ext(cert, signer, NID_key_usage, "critical,digitalSignature");
        rc |= s_add_ext(cert, signer, NID_ext_key_usage, "serverAuth");
        rc |= s_add_ext(cert, signer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    } else {
        rc |= s_add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
        rc |= s_add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (rc != 0 || !X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

//  Generate the CA and the server certificate, write the CA's PEM file
//  and build the server context.
static int s_tls_setup(fake_http_t *self)
{
    int rc = -1;
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
    X509 *ca = ca_key ? s_make_cert(ca_key, NULL, NULL) : NULL;
    X509 *leaf = ca && leaf_key ? s_make_cert(leaf_key, ca, ca_key) : NULL;
    if (!leaf)
        goto done;
    const char *tmp = getenv("TMPDIR");
    snprintf(self->ca_file, sizeof self->ca_file, "%s/fake_http_ca_XXXXXX.pem",
             tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(self->ca_file, 4);
    if (fd < 0)
        goto done;
    FILE *file = fdopen(fd, "w");
    if (!file || !PEM_write_X509(file, ca)) {
        if (file)
            fclose(file);
        goto done;
    }
    fclose(file);
    self->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (self->ssl_ctx && SSL_CTX_use_certificate(self->ssl_ctx, leaf) == 1 &&
        SSL_CTX_use_PrivateKey(self->ssl_ctx, leaf_key) == 1)
        rc = 0;
done:
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(ca_key);
    return rc;
}

//  ---------------------------------------------------------------------
//  Connection I/O

static ssize_t s_recv(conn_t *conn, void *buf, size_t n)
{
    if (conn->ssl) {
        int got = SSL_read(conn->ssl, buf, (int)n);
        return got > 0 ? got : -1;
    }
    ssize_t got;
    do
        got = recv(conn->fd, buf, n, 0);
    while (got < 0 && errno == EINTR);
    return got > 0 ? got : -1;
}

static int s_send(conn_t *conn, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t sent;
        if (conn->ssl)
            sent = SSL_write(conn->ssl, p, (int)n);
        else
            sent = send(conn->fd, p, n, MSG_NOSIGNAL);
        if (sent <= 0) {
            if (!conn->ssl && sent < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += sent;
        n -= (size_t)sent;
    }
    return 0;
}

//  Read until buf holds at least want bytes. 0, or -1 on EOF or error.
static int s_fill(conn_t *conn, size_t want)
{
    while (conn->len < want) {
        if (conn->cap - conn->len < 4096) {
            conn->cap = conn->cap * 2 + 8192;
            conn->buf = realloc(conn->buf, conn->cap);
            assert(conn->buf);
        }
        ssize_t got = s_recv(conn, conn->buf + conn->len, conn->cap - conn->len - 1);
        if (got < 0)
            return -1;
        conn->len += (size_t)got;
    }
    return 0;
}

static char *s_header(const char *block, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *line = block; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *value = line + name_len + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            return s_strndup(value, (size_t)(end - value));
        }
        line = end + 2;
    }
    return NULL;
}

char *fake_http_request_header(const fake_http_request_t *request, const char *name)
{
    return s_header(request->headers, name);
}

static void s_record_free(fake_http_request_t *rec)
{
    if (rec) {
        free(rec->method);
        free(rec->target);
        free(rec->headers);
        free(rec->body);
        free(rec);
    }
}

//  Read one request. Returns it (heap), or NULL on EOF or a malformed one.
static fake_http_request_t *s_read_request(conn_t *conn)
{
    char *end = NULL;
    while (!(conn->buf && (end = memmem(conn->buf, conn->len, "\r\n\r\n", 4)))) {
        if (conn->len > FAKE_HEAD_MAX || s_fill(conn, conn->len + 1) < 0)
            return NULL;
    }
    size_t head_len = (size_t)(end - conn->buf) + 4;
    char *line_end = memmem(conn->buf, head_len, "\r\n", 2);
    char *sp1 = memchr(conn->buf, ' ', (size_t)(line_end - conn->buf));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp2)
        return NULL;
    fake_http_request_t *rec = calloc(1, sizeof *rec);
    assert(rec);
    rec->method = s_strndup(conn->buf, (size_t)(sp1 - conn->buf));
    rec->target = s_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    rec->headers = s_strndup(line_end + 2, head_len - 2 - (size_t)(line_end + 2 - conn->buf));
    rec->connection = conn->number;
    char *expect = s_header(rec->headers, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        const char *go = "HTTP/1.1 100 Continue\r\n\r\n";
        s_send(conn, go, strlen(go));
    }
    free(expect);
    char *length = s_header(rec->headers, "Content-Length");
    size_t body_len = length ? strtoul(length, NULL, 10) : 0;
    free(length);
    if (body_len > FAKE_BODY_MAX || s_fill(conn, head_len + body_len) < 0) {
        s_record_free(rec);
        return NULL;
    }
    rec->body = malloc(body_len + 1);
    assert(rec->body);
    memcpy(rec->body, conn->buf + head_len, body_len);
    rec->body[body_len] = '\0';
    rec->body_len = body_len;
    conn->len -= head_len + body_len;
    memmove(conn->buf, conn->buf + head_len + body_len, conn->len);
    rec->at_ms = s_mono_ms();
    return rec;
}

//  Record the request, take the next reply (a copy of its plain fields;
//  the texts stay in the script until destroy).
static fake_http_reply_t s_record_and_pop(fake_http_t *self, fake_http_request_t *rec)
{
    static const char none[] = "no scripted response";
    fake_http_reply_t reply = {.status = 404, .body = none, .body_len = sizeof none - 1};
    pthread_mutex_lock(&self->mutex);
    if (self->count == self->records_cap) {
        self->records_cap = self->records_cap * 2 + 16;
        self->records = realloc(self->records, self->records_cap * sizeof *self->records);
        assert(self->records);
    }
    self->records[self->count++] = rec;
    if (self->script_head < self->script_len)
        reply = self->script[self->script_head++];
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    return reply;
}

//  The CLOCK_REALTIME instant ms from now, for pthread_cond_timedwait.
static struct timespec s_realtime_in(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (int64_t)(ms % 1000) * 1000000;
    until.tv_sec += ms / 1000 + ns / 1000000000;
    until.tv_nsec = (long)(ns % 1000000000);
    return until;
}

//  Sleep delay_ms unless the server stops first. Returns false on stop.
static bool s_delay(fake_http_t *self, int delay_ms)
{
    struct timespec until = s_realtime_in(delay_ms);
    pthread_mutex_lock(&self->mutex);
    int rc = 0;
    while (!self->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&self->cond, &self->mutex, &until);
    bool stopping = self->stopping;
    pthread_mutex_unlock(&self->mutex);
    return !stopping;
}

static const char *s_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

//  Play one reply (headers only for HEAD). Returns 0 to keep the
//  connection, -1 to close it.
static int s_answer(conn_t *conn, const fake_http_reply_t *reply, bool client_close, bool head_only)
{
    if (reply->action == FAKE_HTTP_RESET) {
        struct linger hard = {.l_onoff = 1, .l_linger = 0};
        setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        return -1;
    }
    char head[FAKE_HEAD_MAX];
    int len = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s", reply->status,
                       s_reason(reply->status), reply->headers ? reply->headers : "");
    if (reply->action == FAKE_HTTP_CLOSE)
        len += snprintf(head + len, sizeof head - (size_t)len, "Connection: close\r\n\r\n");
    else
        len += snprintf(head + len, sizeof head - (size_t)len, "Content-Length: %zu\r\n%s\r\n",
                        reply->body_len, client_close ? "Connection: close\r\n" : "");
    assert(len > 0 && (size_t)len < sizeof head);
    if (s_send(conn, head, (size_t)len) < 0 ||
        (reply->body_len && !head_only && s_send(conn, reply->body, reply->body_len) < 0))
        return -1;
    return reply->action == FAKE_HTTP_CLOSE || client_close ? -1 : 0;
}

static void *s_serve(void *arg)
{
    conn_t *conn = arg;
    fake_http_t *self = conn->server;
    bool clean = true;
    if (self->tls) {
        conn->ssl = SSL_new(self->ssl_ctx);
        assert(conn->ssl);
        SSL_set_fd(conn->ssl, conn->fd);
        if (SSL_accept(conn->ssl) != 1)
            clean = false;
    }
    fake_http_request_t *rec;
    while (clean && (rec = s_read_request(conn))) {
        char *connection = s_header(rec->headers, "Connection");
        bool client_close = connection && strcasecmp(connection, "close") == 0;
        free(connection);
        fake_http_reply_t reply = s_record_and_pop(self, rec);
        if (reply.delay_ms > 0 && !s_delay(self, reply.delay_ms))
            break;
        clean = reply.action != FAKE_HTTP_RESET;
        if (s_answer(conn, &reply, client_close, strcmp(rec->method, "HEAD") == 0) < 0)
            break;
    }
    if (conn->ssl && clean)
        SSL_shutdown(conn->ssl);
    SSL_free(conn->ssl);
    conn->ssl = NULL;
    ERR_clear_error();
    //  Closed here so a reset (SO_LINGER 0) sends its RST now; under the
    //  mutex so destroy never shuts down a number reused meanwhile.
    pthread_mutex_lock(&self->mutex);
    close(conn->fd);
    conn->fd = -1;
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

static void *s_accept(void *arg)
{
    fake_http_t *self = arg;
    //  A peer gone mid-write must not kill the test process (SSL_write).
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    while (true) {
        int fd = accept(self->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        conn_t *conn = calloc(1, sizeof *conn);
        assert(conn);
        conn->server = self;
        conn->fd = fd;
        pthread_mutex_lock(&self->mutex);
        if (self->stopping) {
            pthread_mutex_unlock(&self->mutex);
            close(fd);
            free(conn);
            break;
        }
        conn->number = ++self->connections;
        self->conns = realloc(self->conns, (self->conns_len + 1) * sizeof *self->conns);
        assert(self->conns);
        self->conns[self->conns_len++] = conn;
        //  Threads inherit the blocked SIGPIPE.
        int rc = pthread_create(&conn->thread, NULL, s_serve, conn);
        assert(rc == 0);
        pthread_mutex_unlock(&self->mutex);
    }
    return NULL;
}

//  Stop the acceptor and every connection thread and close their sockets.
static void s_stop(fake_http_t *self)
{
    pthread_mutex_lock(&self->mutex);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    for (size_t i = 0; i < self->conns_len; i++)
        if (self->conns[i]->fd >= 0)
            shutdown(self->conns[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&self->mutex);
    //  Wakes the blocked accept (EINVAL); no connection is added after it.
    shutdown(self->listen_fd, SHUT_RDWR);
    pthread_join(self->acceptor, NULL);
    close(self->listen_fd);
    for (size_t i = 0; i < self->conns_len; i++)
        pthread_join(self->conns[i]->thread, NULL);
}

//  Free a stopped (or never started) server and all it recorded.
static void s_free(fake_http_t *self)
{
    for (size_t i = 0; i < self->conns_len; i++) {
        free(self->conns[i]->buf);
        free(self->conns[i]);
    }
    free(self->conns);
    for (size_t i = 0; i < self->count; i++)
        s_record_free(self->records[i]);
    free(self->records);
    for (size_t i = 0; i < self->script_len; i++) {
        free((void *)self->script[i].headers);
        free((void *)self->script[i].body);
    }
    free(self->script);
    if (self->ca_file[0])
        unlink(self->ca_file);
    SSL_CTX_free(self->ssl_ctx);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mutex);
    free(self);
}

//  ---------------------------------------------------------------------
//  Public API

fake_http_t *fake_http_new(bool tls)
{
    fake_http_t *self = calloc(1, sizeof *self);
    assert(self);
    self->tls = tls;
    self->listen_fd = -1;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_cond_init(&self->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (tls && s_tls_setup(self) < 0)
        goto fail;
    self->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    if (self->listen_fd < 0 || bind(self->listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(self->listen_fd, 64) < 0 ||
        getsockname(self->listen_fd, (struct sockaddr *)&addr, &addr_len) < 0)
        goto fail;
    self->port = ntohs(addr.sin_port);
    snprintf(self->base, sizeof self->base, "%s://127.0.0.1:%d", tls ? "https" : "http",
             self->port);
    if (pthread_create(&self->acceptor, NULL, s_accept, self) != 0)
        goto fail;
    return self;
fail:
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    s_free(self);
    return NULL;
}

void fake_http_destroy(fake_http_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        s_stop(*self_p);
        s_free(*self_p);
        *self_p = NULL;
    }
}

int fake_http_port(const fake_http_t *self)
{
    return self->port;
}

const char *fake_http_base(const fake_http_t *self)
{
    return self->base;
}

const char *fake_http_ca_file(const fake_http_t *self)
{
    return self->tls ? self->ca_file : NULL;
}

void fake_http_script(fake_http_t *self, const fake_http_reply_t *reply)
{
    fake_http_reply_t copy = *reply;
    copy.headers = reply->headers ? s_strndup(reply->headers, strlen(reply->headers)) : NULL;
    copy.body = reply->body_len ? s_strndup(reply->body, reply->body_len) : NULL;
    pthread_mutex_lock(&self->mutex);
    self->script = realloc(self->script, (self->script_len + 1) * sizeof *self->script);
    assert(self->script);
    self->script[self->script_len++] = copy;
    pthread_mutex_unlock(&self->mutex);
}

void fake_http_script_status(fake_http_t *self, int status, const char *body)
{
    fake_http_reply_t reply = {.status = status, .body = body, .body_len = body ? strlen(body) : 0};
    fake_http_script(self, &reply);
}

bool fake_http_wait(fake_http_t *self, size_t n, int timeout_ms)
{
    struct timespec until = s_realtime_in(timeout_ms);
    pthread_mutex_lock(&self->mutex);
    int rc = 0;
    while (self->count < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&self->cond, &self->mutex, &until);
    bool arrived = self->count >= n;
    pthread_mutex_unlock(&self->mutex);
    return arrived;
}

size_t fake_http_count(fake_http_t *self)
{
    pthread_mutex_lock(&self->mutex);
    size_t count = self->count;
    pthread_mutex_unlock(&self->mutex);
    return count;
}

const fake_http_request_t *fake_http_request(fake_http_t *self, size_t i)
{
    pthread_mutex_lock(&self->mutex);
    assert(i < self->count);
    const fake_http_request_t *rec = self->records[i];
    pthread_mutex_unlock(&self->mutex);
    return rec;
}

int fake_http_connections(fake_http_t *self)
{
    pthread_mutex_lock(&self->mutex);
    int connections = self->connections;
    pthread_mutex_unlock(&self->mutex);
    return connections;
}
