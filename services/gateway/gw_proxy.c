/*  gw_proxy - the PROXY protocol (v1 and v2) in front of libmicrohttpd
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Bytes are only peeked (MSG_PEEK) until the whole header is there, then
 *  exactly its length is read, so not one byte of the request that
 *  follows is taken from libmicrohttpd.
 */
#include "gw_proxy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vz_clock.h"

static const uint8_t s_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

//  "PROXY TCP4 src dst sport dport\r\n" (or TCP6, or UNKNOWN ...) of len
//  bytes, CRLF excluded.
static gw_proxy_parse_t s_parse_v1(const char *line, size_t len, struct sockaddr_storage *addr)
{
    char text[GW_PROXY_V1_MAX + 1];
    memcpy(text, line, len);
    text[len] = '\0';
    char *save = NULL;
    strtok_r(text, " ", &save); //  "PROXY"
    const char *proto = strtok_r(NULL, " ", &save);
    if (!proto)
        return GW_PROXY_BAD;
    if (strcmp(proto, "UNKNOWN") == 0)
        return GW_PROXY_DONE; //  the peer's own address stands
    const char *src = strtok_r(NULL, " ", &save);
    const char *dst = strtok_r(NULL, " ", &save);
    const char *sport = strtok_r(NULL, " ", &save);
    const char *dport = strtok_r(NULL, " ", &save);
    if (!src || !dst || !sport || !dport || strtok_r(NULL, " ", &save))
        return GW_PROXY_BAD;
    char *end = NULL;
    long port = strtol(sport, &end, 10);
    if (*end || port < 0 || port > 65535 || strtol(dport, &end, 10) < 0 || *end)
        return GW_PROXY_BAD;
    if (strcmp(proto, "TCP4") == 0) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return inet_pton(AF_INET, src, &in->sin_addr) == 1 ? GW_PROXY_DONE : GW_PROXY_BAD;
    }
    if (strcmp(proto, "TCP6") == 0) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, src, &in6->sin6_addr) == 1 ? GW_PROXY_DONE : GW_PROXY_BAD;
    }
    return GW_PROXY_BAD;
}

gw_proxy_parse_t gw_proxy_parse(const uint8_t *buf, size_t len, struct sockaddr_storage *addr,
                                size_t *used)
{
    assert(buf && addr && used);
    memset(addr, 0, sizeof *addr);
    *used = 0;
    //  v1: "PROXY " then a line of at most 107 bytes.
    size_t n = len < 6 ? len : 6;
    if (memcmp(buf, "PROXY ", n) == 0) {
        if (len < 6)
            return GW_PROXY_MORE;
        const uint8_t *lf = memchr(buf, '\n', len < GW_PROXY_V1_MAX ? len : GW_PROXY_V1_MAX);
        if (!lf)
            return len < GW_PROXY_V1_MAX ? GW_PROXY_MORE : GW_PROXY_BAD;
        size_t line = (size_t)(lf - buf);
        if (line == 0 || buf[line - 1] != '\r')
            return GW_PROXY_BAD;
        *used = line + 1;
        return s_parse_v1((const char *)buf, line - 1, addr);
    }
    //  v2: the 12-byte signature, version/command, family, length.
    n = len < sizeof s_v2_sig ? len : sizeof s_v2_sig;
    if (n == 0 || memcmp(buf, s_v2_sig, n) != 0)
        return GW_PROXY_NONE;
    if (len < 16)
        return GW_PROXY_MORE;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if ((buf[12] & 0xF0) != 0x20 || 16 + body > GW_PROXY_V2_MAX)
        return GW_PROXY_BAD;
    if (len < 16 + body)
        return GW_PROXY_MORE;
    *used = 16 + body;
    unsigned command = buf[12] & 0x0F, family = buf[13];
    if (command == 0x0)
        return GW_PROXY_DONE; //  LOCAL: the proxy's own connection (a health check)
    if (command != 0x1)
        return GW_PROXY_BAD;
    const uint8_t *a = buf + 16;
    if (family == 0x11 && body >= 12) { //  TCP over IPv4
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a, 4);
        memcpy(&in->sin_port, a + 8, 2);
        return GW_PROXY_DONE;
    }
    if (family == 0x21 && body >= 36) { //  TCP over IPv6
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
        return GW_PROXY_DONE;
    }
    //  UNSPEC, UDP, unix sockets: nothing to say about the client.
    return family == 0x00 ? GW_PROXY_DONE : GW_PROXY_BAD;
}

typedef struct {
    int fd;                       //  accepted, header not yet read
    int64_t deadline;             //  monotonic ms
    struct sockaddr_storage peer; //  the TCP peer
    socklen_t peer_len;           //  its length
    bool lowat;                   //  SO_RCVLOWAT raised while waiting for more
} s_pending_t;

struct gw_proxy_t {
    int listen_fd;                             //  the public listener, -1 once closed
    int wake[2];                               //  pipe: the owner wakes the acceptor
    int port;                                  //  bound
    struct MHD_Daemon *mhd;                    //  borrowed: takes the connections
    const gw_trust_t *trust;                   //  borrowed
    pthread_t thread;                          //  the acceptor
    atomic_bool closing;                       //  close the listener (drain)
    atomic_bool stop;                          //  leave the thread
    s_pending_t pending[GW_PROXY_PENDING_MAX]; //  read by the acceptor only
    size_t count;                              //  used
};

static void s_hand_over(gw_proxy_t *self, s_pending_t *p, const struct sockaddr_storage *addr)
{
    const struct sockaddr_storage *use = addr && addr->ss_family ? addr : &p->peer;
    socklen_t len = use->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                    : use == &p->peer          ? p->peer_len
                                               : sizeof(struct sockaddr_in);
    //  libmicrohttpd closes the socket on failure too.
    MHD_add_connection(self->mhd, p->fd, (const struct sockaddr *)use, len);
    p->fd = -1;
}

//  Read what the connection sent so far; false when it is done with
//  (handed over or closed).
static bool s_read_header(gw_proxy_t *self, s_pending_t *p)
{
    uint8_t buf[GW_PROXY_V2_MAX];
    ssize_t got = recv(p->fd, buf, sizeof buf, MSG_PEEK);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (got <= 0) {
        close(p->fd);
        p->fd = -1;
        return false;
    }
    struct sockaddr_storage addr;
    size_t used = 0;
    gw_proxy_parse_t rc = gw_proxy_parse(buf, (size_t)got, &addr, &used);
    if (rc == GW_PROXY_MORE) {
        //  Readable again only once more than this has come (poll honours
        //  SO_RCVLOWAT on TCP): no spinning on a header that trickles in.
        int lowat = (int)got + 1;
        setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        p->lowat = true;
        return true;
    }
    if (rc == GW_PROXY_BAD || (rc == GW_PROXY_DONE && recv(p->fd, buf, used, 0) != (ssize_t)used)) {
        close(p->fd);
        p->fd = -1;
        return false;
    }
    if (p->lowat) {
        int one = 1; //  libmicrohttpd's default again
        setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
    s_hand_over(self, p, rc == GW_PROXY_DONE ? &addr : NULL);
    return false;
}

static void s_accept(gw_proxy_t *self)
{
    s_pending_t p = {.peer_len = sizeof p.peer};
    p.fd = accept4(self->listen_fd, (struct sockaddr *)&p.peer, &p.peer_len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (p.fd < 0)
        return;
    char ip[GW_CLIENTIP_MAX];
    gw_clientip_text((const struct sockaddr *)&p.peer, ip, sizeof ip);
    if (!gw_trust_has(self->trust, ip)) {
        s_hand_over(self, &p, NULL); //  not honoured: the bytes go as they are
        return;
    }
    if (self->count == GW_PROXY_PENDING_MAX) {
        close(self->pending[0].fd); //  the oldest gives way
        memmove(self->pending, self->pending + 1, sizeof self->pending[0] * (self->count - 1));
        self->count--;
    }
    p.deadline = vz_clock_mono_ms() + GW_PROXY_HEADER_MS;
    self->pending[self->count++] = p;
}

static void *s_run(void *arg)
{
    gw_proxy_t *self = arg;
    struct pollfd fds[GW_PROXY_PENDING_MAX + 2];
    while (!atomic_load(&self->stop)) {
        if (atomic_load(&self->closing) && self->listen_fd >= 0) {
            close(self->listen_fd);
            self->listen_fd = -1;
            for (size_t i = 0; i < self->count; i++)
                close(self->pending[i].fd);
            self->count = 0;
        }
        fds[0] = (struct pollfd){.fd = self->wake[0], .events = POLLIN};
        fds[1] = (struct pollfd){.fd = self->listen_fd, .events = POLLIN};
        int64_t now = vz_clock_mono_ms(), wait = -1;
        for (size_t i = 0; i < self->count; i++) {
            fds[2 + i] = (struct pollfd){.fd = self->pending[i].fd, .events = POLLIN};
            int64_t left = self->pending[i].deadline - now;
            if (wait < 0 || left < wait)
                wait = left < 0 ? 0 : left;
        }
        if (poll(fds, 2 + self->count, (int)wait) < 0 && errno != EINTR)
            break;
        if (fds[0].revents) {
            char drop[16];
            if (read(self->wake[0], drop, sizeof drop) < 0 && errno != EAGAIN)
                break;
        }
        //  The connections being read first (fds indexes follow pending's).
        now = vz_clock_mono_ms();
        size_t keep = 0;
        for (size_t i = 0; i < self->count; i++) {
            s_pending_t *p = &self->pending[i];
            bool alive = true;
            if (fds[2 + i].revents)
                alive = s_read_header(self, p);
            if (alive && now >= p->deadline) {
                close(p->fd);
                alive = false;
            }
            if (alive)
                self->pending[keep++] = *p;
        }
        self->count = keep;
        if (self->listen_fd >= 0 && fds[1].revents & POLLIN)
            s_accept(self);
    }
    return NULL;
}

static void s_wake(gw_proxy_t *self)
{
    char byte = 1;
    if (write(self->wake[1], &byte, 1) < 0 && errno != EAGAIN)
        assert(false && "the wake-up pipe is ours");
}

gw_proxy_t *gw_proxy_new(const struct sockaddr_in *sa, struct MHD_Daemon *mhd,
                         const gw_trust_t *trust)
{
    assert(sa && mhd);
    gw_proxy_t *self = calloc(1, sizeof *self);
    assert(self);
    self->mhd = mhd;
    self->trust = trust;
    self->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    if (self->listen_fd < 0 ||
        setsockopt(self->listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        bind(self->listen_fd, (const struct sockaddr *)sa, sizeof *sa) < 0 ||
        listen(self->listen_fd, SOMAXCONN) < 0 ||
        getsockname(self->listen_fd, (struct sockaddr *)&bound, &len) < 0 ||
        pipe2(self->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        int saved = errno;
        if (self->listen_fd >= 0)
            close(self->listen_fd);
        free(self);
        errno = saved;
        return NULL;
    }
    self->port = ntohs(bound.sin_port);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        close(self->listen_fd);
        close(self->wake[0]);
        close(self->wake[1]);
        free(self);
        errno = EAGAIN;
        return NULL;
    }
    return self;
}

int gw_proxy_port(const gw_proxy_t *self)
{
    assert(self);
    return self->port;
}

void gw_proxy_close(gw_proxy_t *self)
{
    assert(self);
    atomic_store(&self->closing, true);
    s_wake(self);
}

void gw_proxy_destroy(gw_proxy_t **self_p)
{
    assert(self_p);
    gw_proxy_t *self = *self_p;
    if (!self)
        return;
    atomic_store(&self->stop, true);
    s_wake(self);
    pthread_join(self->thread, NULL);
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    for (size_t i = 0; i < self->count; i++)
        close(self->pending[i].fd);
    close(self->wake[0]);
    close(self->wake[1]);
    free(self);
    *self_p = NULL;
}
