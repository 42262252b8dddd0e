/*  probe - one non-blocking readiness probe of a running child over TCP
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "probe.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_RESPONSE_MAX 4096 //  a /readyz answer is a few hundred bytes; more is junk
#define S_REQUEST_MAX 256   //  "AUTH user password\r\nPING\r\n"

typedef enum { S_CONNECTING, S_SENDING, S_READING, S_DONE } s_phase_t;

struct sup_probe_t {
    sup_probe_kind_t kind;             //  what is asked
    int fd;                            //  socket, -1 when finished
    s_phase_t phase;                   //  where the exchange is
    int64_t deadline;                  //  monotonic ms
    const char *request;               //  request text (static, or request_buf)
    char request_buf[S_REQUEST_MAX];   //  AUTH + PING
    bool auth;                         //  PING: an AUTH answer comes first
    size_t sent;                       //  request bytes written
    char buf[S_RESPONSE_MAX + 1];      //  response so far, NUL-terminated
    size_t len;                        //  bytes in buf
    sup_probe_result_t result;         //  outcome (RUNNING until S_DONE)
    char reason[SUP_PROBE_REASON_MAX]; //  why not ready / failed
};

static const char s_readyz_request[] = "GET /readyz HTTP/1.0\r\n"
                                       "Host: 127.0.0.1\r\n"
                                       "User-Agent: vz-supervisor\r\n"
                                       "Connection: close\r\n\r\n";
static const char s_ping_request[] = "PING\r\n";

static sup_probe_result_t s_finish(sup_probe_t *self, sup_probe_result_t result, const char *reason)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    self->phase = S_DONE;
    self->result = result;
    snprintf(self->reason, sizeof self->reason, "%s", reason ? reason : "");
    return result;
}

sup_probe_t *sup_probe_new(sup_probe_kind_t kind, int port, const char *auth, int64_t deadline_ms)
{
    sup_probe_t *self = calloc(1, sizeof *self);
    assert(self);
    self->kind = kind;
    self->deadline = deadline_ms;
    self->request = kind == SUP_PROBE_READYZ ? s_readyz_request : s_ping_request;
    if (kind == SUP_PROBE_PING && auth) {
        snprintf(self->request_buf, sizeof self->request_buf, "%s%s", auth, s_ping_request);
        self->request = self->request_buf;
        self->auth = true;
    }
    self->phase = S_CONNECTING;
    self->result = SUP_PROBE_RUNNING;
    self->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->fd < 0) {
        char why[SUP_PROBE_REASON_MAX];
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        s_finish(self, SUP_PROBE_ERROR, why);
        return self;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(self->fd, (struct sockaddr *)&addr, sizeof addr) == 0)
        self->phase = S_SENDING;
    else if (errno != EINPROGRESS) {
        char why[SUP_PROBE_REASON_MAX];
        snprintf(why, sizeof why, "connect to port %d: %s", port, strerror(errno));
        s_finish(self, SUP_PROBE_ERROR, why);
    }
    return self;
}

void sup_probe_destroy(sup_probe_t **self_p)
{
    assert(self_p);
    if (!*self_p)
        return;
    if ((*self_p)->fd >= 0)
        close((*self_p)->fd);
    free(*self_p);
    *self_p = NULL;
}

int sup_probe_fd(const sup_probe_t *self)
{
    return self->fd;
}

short sup_probe_events(const sup_probe_t *self)
{
    return self->phase == S_READING ? POLLIN : POLLOUT;
}

const char *sup_probe_reason(const sup_probe_t *self)
{
    return self->reason;
}

//  Copy the JSON string value of "reason" from body into out, made safe for
//  a tab-separated status row and a log line: escapes are undone only for
//  quote, backslash and slash; every other escape or control byte becomes a
//  space. The daemon is trusted to speak JSON, but not relied on to.
static void s_json_reason(const char *body, char *out, size_t n)
{
    out[0] = '\0';
    const char *p = strstr(body, "\"reason\"");
    if (!p)
        return;
    p += 8;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p++ != ':')
        return;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p++ != '"')
        return;
    size_t len = 0;
    for (; *p && *p != '"' && len + 1 < n; p++) {
        char c = *p;
        if (c == '\\' && p[1]) {
            c = *++p;
            if (c != '"' && c != '\\' && c != '/')
                c = ' ';
        }
        out[len++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
    }
    out[len] = '\0';
}

static sup_probe_result_t s_judge_readyz(sup_probe_t *self)
{
    int status = 0;
    if (sscanf(self->buf, "HTTP/1.%*1[01] %3d", &status) != 1)
        return s_finish(self, SUP_PROBE_ERROR, "readyz: not an HTTP response");
    if (status == 200)
        return s_finish(self, SUP_PROBE_READY, NULL);
    char why[SUP_PROBE_REASON_MAX];
    if (status != 503) {
        snprintf(why, sizeof why, "readyz answered %d", status);
        return s_finish(self, SUP_PROBE_ERROR, why);
    }
    const char *body = strstr(self->buf, "\r\n\r\n");
    s_json_reason(body ? body + 4 : "", why, sizeof why);
    return s_finish(self, SUP_PROBE_NOT_READY, *why ? why : "readyz answered 503");
}

static sup_probe_result_t s_judge_ping(sup_probe_t *self)
{
    //  After AUTH's +OK, PING's answer; an AUTH error is judged below.
    const char *line = self->buf;
    if (self->auth && strncmp(line, "+OK\r\n", 5) == 0)
        line += 5;
    if (strncmp(line, "+PONG\r\n", 7) == 0)
        return s_finish(self, SUP_PROBE_READY, NULL);
    //  An error reply (e.g. -LOADING while the AOF is replayed, or a
    //  refused AUTH) is Redis saying it is not ready for us yet.
    if (line[0] == '-') {
        char why[SUP_PROBE_REASON_MAX];
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        snprintf(why, sizeof why, "redis: %.100s", line + 1);
        for (char *c = why; *c; c++)
            *c = (unsigned char)*c < 0x20 ? ' ' : *c;
        return s_finish(self, SUP_PROBE_NOT_READY, why);
    }
    return s_finish(self, SUP_PROBE_ERROR, "redis: unexpected PING reply");
}

//  True when the response is complete: Redis answers one line per command
//  (two with AUTH); the HTTP/1.0 server closes the connection after the
//  response (EOF is seen by the caller).
static bool s_complete(const sup_probe_t *self)
{
    const char *eol = self->kind == SUP_PROBE_PING ? strstr(self->buf, "\r\n") : NULL;
    return eol && (!self->auth || strstr(eol + 2, "\r\n"));
}

sup_probe_result_t sup_probe_step(sup_probe_t *self, int64_t now_ms)
{
    assert(self);
    if (self->phase == S_CONNECTING) {
        int soerr = 0;
        socklen_t slen = sizeof soerr;
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) > 0) {
            if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
                soerr = errno;
            if (soerr) {
                char why[SUP_PROBE_REASON_MAX];
                snprintf(why, sizeof why, "connect: %s", strerror(soerr));
                return s_finish(self, SUP_PROBE_ERROR, why);
            }
            self->phase = S_SENDING;
        }
    }
    if (self->phase == S_SENDING) {
        size_t total = strlen(self->request);
        ssize_t n = send(self->fd, self->request + self->sent, total - self->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            char why[SUP_PROBE_REASON_MAX];
            snprintf(why, sizeof why, "send: %s", strerror(errno));
            return s_finish(self, SUP_PROBE_ERROR, why);
        }
        self->sent += n > 0 ? (size_t)n : 0;
        if (self->sent == total)
            self->phase = S_READING;
    }
    while (self->phase == S_READING) {
        ssize_t n = recv(self->fd, self->buf + self->len, S_RESPONSE_MAX - self->len, MSG_DONTWAIT);
        if (n > 0) {
            self->len += (size_t)n;
            self->buf[self->len] = '\0';
            if (s_complete(self))
                return s_judge_ping(self);
            if (self->len == S_RESPONSE_MAX)
                return s_finish(self, SUP_PROBE_ERROR, "response too long");
            continue;
        }
        if (n == 0) {
            if (self->kind == SUP_PROBE_READYZ && self->len > 0)
                return s_judge_readyz(self);
            return s_finish(self, SUP_PROBE_ERROR, "connection closed without an answer");
        }
        if (errno != EAGAIN && errno != EINTR) {
            char why[SUP_PROBE_REASON_MAX];
            snprintf(why, sizeof why, "recv: %s", strerror(errno));
            return s_finish(self, SUP_PROBE_ERROR, why);
        }
        break;
    }
    if (self->phase != S_DONE && now_ms >= self->deadline)
        return s_finish(self, SUP_PROBE_ERROR, "no answer in time");
    return self->result;
}
