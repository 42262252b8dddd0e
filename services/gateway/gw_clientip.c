/*  gw_clientip - who the client is when the gateway sits behind proxies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every address is held as 16 bytes of IPv6, IPv4 as ::ffff:a.b.c.d, so
 *  one prefix compare serves both families (an IPv4 CIDR's prefix grows
 *  by 96 bits).
 */
#include "gw_clientip.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vz_common.h"

typedef struct {
    uint8_t addr[16]; //  network, IPv4 mapped
    unsigned bits;    //  prefix length over the 128 bits
} s_cidr_t;

struct gw_trust_t {
    s_cidr_t cidrs[GW_TRUST_MAX]; //  the trusted ranges
    size_t count;                 //  used
};

static const uint8_t s_v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

//  Address text of exactly len bytes into 16 bytes; false when it is not
//  one. IPv6 may come in brackets, either family with a ":port" after it
//  (brackets required for IPv6 then), as proxies write them.
static bool s_parse_addr(const char *text, size_t len, uint8_t out[16])
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *host = buf;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close || (close[1] && (close[1] != ':' || !close[2])))
            return false;
        *close = '\0';
        host++;
        return inet_pton(AF_INET6, host, out) == 1;
    }
    char *colon = strchr(host, ':');
    bool v4_port = colon && !strchr(colon + 1, ':');
    if (v4_port)
        *colon = '\0'; //  a.b.c.d:port
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memcpy(out, s_v4_mapped, 12);
        memcpy(out + 12, &v4, 4);
        return true;
    }
    return !v4_port && inet_pton(AF_INET6, host, out) == 1;
}

static bool s_in_cidr(const s_cidr_t *cidr, const uint8_t addr[16])
{
    unsigned full = cidr->bits / 8, rest = cidr->bits % 8;
    if (memcmp(cidr->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (cidr->addr[full] & mask) == (addr[full] & mask);
}

static bool s_trusted(const gw_trust_t *self, const uint8_t addr[16])
{
    for (size_t i = 0; self && i < self->count; i++)
        if (s_in_cidr(&self->cidrs[i], addr))
            return true;
    return false;
}

//  One "addr" or "addr/bits" of len bytes; false when malformed.
static bool s_parse_cidr(const char *text, size_t len, s_cidr_t *out)
{
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    if (!s_parse_addr(text, alen, out->addr) || memchr(text, '[', alen))
        return false;
    bool v4 = memcmp(out->addr, s_v4_mapped, 12) == 0;
    if (v4 && memchr(text, ':', alen))
        return false; //  a port, or IPv4-mapped IPv6: write the IPv4 CIDR
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        char digits[4] = "";
        size_t dlen = len - alen - 1;
        if (dlen == 0 || dlen >= sizeof digits)
            return false;
        memcpy(digits, slash + 1, dlen);
        digits[dlen] = '\0';
        if (strspn(digits, "0123456789") != dlen)
            return false;
        bits = (unsigned)atoi(digits);
        if (bits > max)
            return false;
    }
    out->bits = v4 ? bits + 96 : bits;
    //  The host bits are dropped: 10.1.2.3/8 means 10.0.0.0/8.
    for (unsigned i = out->bits; i < 128; i++)
        out->addr[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
    return true;
}

gw_trust_t *gw_trust_new(const char *cidrs, char *err, size_t err_len)
{
    assert(cidrs);
    gw_trust_t *self = calloc(1, sizeof *self);
    assert(self);
    const char *p = cidrs;
    while (*p) {
        p += strspn(p, ", \t");
        size_t len = strcspn(p, ", \t");
        if (len == 0)
            break;
        if (self->count == GW_TRUST_MAX || !s_parse_cidr(p, len, &self->cidrs[self->count])) {
            snprintf(err, err_len,
                     self->count == GW_TRUST_MAX ? "more than 64 trusted proxy ranges"
                                                 : "not an IPv4/IPv6 address or CIDR: '%.*s'",
                     (int)(len > 64 ? 64 : len), p);
            free(self);
            return NULL;
        }
        self->count++;
        p += len;
    }
    return self;
}

void gw_trust_destroy(gw_trust_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

bool gw_trust_has(const gw_trust_t *self, const char *ip)
{
    uint8_t addr[16];
    return ip && s_parse_addr(ip, strlen(ip), addr) && s_trusted(self, addr);
}

static void s_text(const uint8_t addr[16], char *out, size_t n)
{
    if (memcmp(addr, s_v4_mapped, 12) == 0)
        inet_ntop(AF_INET, addr + 12, out, (socklen_t)n);
    else
        inet_ntop(AF_INET6, addr, out, (socklen_t)n);
}

//  The address in one hop of the chain (p, len: between two commas).
//  X-Forwarded-For's hop is the address; Forwarded's is the for= pair of
//  its ';'-separated pairs, maybe quoted.
static bool s_hop_addr(gw_fwd_header_t header, const char *p, size_t len, uint8_t out[16])
{
    while (len && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (header == GW_FWD_XFF)
        return s_parse_addr(p, len, out);
    while (len) {
        const char *semi = memchr(p, ';', len);
        size_t plen = semi ? (size_t)(semi - p) : len;
        const char *v = p;
        size_t vlen = plen;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        if (vlen > 4 && strncasecmp(v, "for=", 4) == 0) {
            v += 4, vlen -= 4;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
                v++, vlen -= 2;
            return s_parse_addr(v, vlen, out);
        }
        p += plen + (semi ? 1 : 0);
        len -= plen + (semi ? 1 : 0);
    }
    return false;
}

void gw_clientip_resolve(const gw_trust_t *self, gw_fwd_header_t header, const char *peer,
                         const char *const *lines, size_t count, char *out, size_t n)
{
    assert(peer && out && n >= GW_CLIENTIP_MAX);
    uint8_t cur[16];
    if (!s_parse_addr(peer, strlen(peer), cur)) {
        vz_strlcpy(out, peer, n);
        return;
    }
    //  From the right: while the hop we stand on is trusted, the address
    //  it reports is the next one to judge.
    bool done = !s_trusted(self, cur);
    for (size_t i = count; !done && i-- > 0;) {
        const char *line = lines[i];
        if (!line)
            continue;
        size_t end = strlen(line);
        while (!done) {
            const char *comma = end ? memrchr(line, ',', end) : NULL;
            size_t start = comma ? (size_t)(comma - line) + 1 : 0;
            uint8_t hop[16];
            if (end > start || comma) {
                if (!s_hop_addr(header, line + start, end - start, hop)) {
                    done = true; //  not an address: the last trusted hop it is
                    break;
                }
                memcpy(cur, hop, sizeof cur);
                done = !s_trusted(self, cur);
            }
            if (!comma)
                break;
            end = start - 1;
        }
    }
    s_text(cur, out, n);
}

void gw_clientip_text(const struct sockaddr *sa, char *out, size_t n)
{
    assert(out && n >= GW_CLIENTIP_MAX);
    out[0] = '\0';
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        s_text(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, out, n);
}

typedef struct {
    const char *name;                    //  the header looked for
    const char *lines[GW_FWD_LINES_MAX]; //  its values, the last ones received
    size_t count;                        //  kept
} s_lines_t;

static enum MHD_Result s_collect(void *arg, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    s_lines_t *lines = arg;
    if (!key || !value || strcasecmp(key, lines->name) != 0)
        return MHD_YES;
    if (lines->count == GW_FWD_LINES_MAX) {
        //  Only the right end of the chain can matter: drop the oldest line.
        memmove(lines->lines, lines->lines + 1, sizeof lines->lines - sizeof lines->lines[0]);
        lines->count--;
    }
    lines->lines[lines->count++] = value;
    return MHD_YES;
}

void gw_clientip_of(const gw_trust_t *self, gw_fwd_header_t header, struct MHD_Connection *conn,
                    char *out, size_t n)
{
    assert(conn && out && n >= GW_CLIENTIP_MAX);
    char peer[GW_CLIENTIP_MAX];
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    gw_clientip_text(info ? info->client_addr : NULL, peer, sizeof peer);
    s_lines_t lines = {.name = header == GW_FWD_XFF ? "X-Forwarded-For" : "Forwarded"};
    if (self && gw_trust_has(self, peer))
        MHD_get_connection_values(conn, MHD_HEADER_KIND, s_collect, &lines);
    gw_clientip_resolve(self, header, peer, lines.lines, lines.count, out, n);
}
