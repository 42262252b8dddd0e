/*  gw_clientip - who the client is when the gateway sits behind proxies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The TCP peer is the client unless it is a configured trusted proxy
 *  (VZ_GATEWAY_TRUSTED_PROXIES, CIDRs). From a trusted peer the chain of
 *  one forwarding header (X-Forwarded-For, or Forwarded's for= values;
 *  VZ_GATEWAY_CLIENT_IP_HEADER picks which) is read from the right: each
 *  trusted address is skipped and the right-most untrusted one is the
 *  client, as Envoy's xff_num_trusted_hops, Kong's trusted_ips and
 *  nginx's real_ip_recursive do. A value that is not an address
 *  ("unknown", an obfuscated node, garbage) ends the walk: the client is
 *  then the last trusted hop, never something a client could have
 *  written. Every other header (and everything from an untrusted peer) is
 *  ignored. The PROXY protocol's source address, when it is on, arrives
 *  here as the peer (gw_proxy.h), so the two compose.
 *
 *  Threads: a gw_trust_t is read-only after gw_trust_new; any thread.
 */
#ifndef GW_CLIENTIP_H
#define GW_CLIENTIP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define GW_TRUST_MAX 64     //  CIDRs in one list at most
#define GW_CLIENTIP_MAX 46  //  INET6_ADDRSTRLEN: the longest address text
#define GW_FWD_LINES_MAX 16 //  header lines of the chain looked at (the last ones)

typedef enum {
    GW_FWD_XFF,       //  X-Forwarded-For: a, b, c
    GW_FWD_FORWARDED, //  RFC 7239 Forwarded: for=a, for="[v6]:port";proto=https
} gw_fwd_header_t;

typedef struct gw_trust_t gw_trust_t;

//  Parse a list of IPv4/IPv6 addresses and CIDRs separated by commas or
//  spaces ("10.0.0.0/8, 192.168.0.7 fd00::/8"). "" gives a list that
//  trusts nothing. NULL with the reason in err when a part is not a CIDR
//  or there are more than GW_TRUST_MAX. Caller owns the result.
gw_trust_t *gw_trust_new(const char *cidrs, char *err, size_t err_len);
void gw_trust_destroy(gw_trust_t **self_p);

//  Is the address text ip (IPv4 or IPv6) inside one of the CIDRs? false
//  for text that is not an address; self may be NULL (trusts nothing).
bool gw_trust_has(const gw_trust_t *self, const char *ip);

//  The client's address into out (n >= GW_CLIENTIP_MAX) from the peer's
//  text and the lines of the chosen header, in the order received
//  (count of them, NULL entries skipped). out is "" when peer is "".
void gw_clientip_resolve(const gw_trust_t *self, gw_fwd_header_t header, const char *peer,
                         const char *const *lines, size_t count, char *out, size_t n);

//  The same for an HTTP connection (libmicrohttpd thread): the peer is
//  the connection's client address, the lines its header's. self NULL =
//  the peer, whatever the headers say.
void gw_clientip_of(const gw_trust_t *self, gw_fwd_header_t header, struct MHD_Connection *conn,
                    char *out, size_t n);

//  Text of a socket address (IPv4 or IPv6, an IPv4-mapped IPv6 address as
//  IPv4) into out; "" for another family.
void gw_clientip_text(const struct sockaddr *sa, char *out, size_t n);

#endif
