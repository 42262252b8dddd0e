/*  gw_proxy - the PROXY protocol (v1 and v2) in front of libmicrohttpd
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  With VZ_GATEWAY_PROXY_PROTOCOL on, the gateway accepts connections
 *  itself: an acceptor thread takes each one, and when its peer is a
 *  trusted proxy (gw_clientip.h) reads the PROXY header that starts it
 *  (HAProxy's proxy-protocol.txt, text v1 or binary v2), consumes exactly
 *  those bytes and hands the socket to libmicrohttpd with the address the
 *  header names (MHD_add_connection), so everything after it (the access
 *  log, the per-IP connection limit, X-Forwarded-For's trust) sees the
 *  real client. A trusted peer may also connect without a header (a
 *  probe); an untrusted peer's connection goes to libmicrohttpd as it is,
 *  where a PROXY line is just a malformed request (400): the header is
 *  honoured only from trusted CIDRs. A v2 LOCAL command or a v1 UNKNOWN
 *  keeps the peer's address. A header that does not arrive within
 *  GW_PROXY_HEADER_MS, or is malformed, closes the connection.
 *
 *  Threads: new/close/destroy on the owner's thread; one acceptor thread
 *  of its own (poll on the listener, a wake-up pipe and the connections
 *  still being read, at most GW_PROXY_PENDING_MAX of them: the oldest is
 *  closed for a new one).
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <microhttpd.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gw_clientip.h"

#define GW_PROXY_HEADER_MS 5000  //  deadline for a connection's PROXY header
#define GW_PROXY_PENDING_MAX 256 //  connections read at once
#define GW_PROXY_V1_MAX 107      //  longest v1 line, CRLF included
#define GW_PROXY_V2_MAX 1024     //  longest v2 header accepted (16 + addresses + TLVs)

//  The outcome of looking at a connection's first bytes.
typedef enum {
    GW_PROXY_NONE = 0,  //  no PROXY header: the bytes are the request's
    GW_PROXY_DONE = 1,  //  a header of *used bytes; *addr set (family 0: keep the peer's)
    GW_PROXY_MORE = -1, //  a header may follow: wait for more bytes
    GW_PROXY_BAD = -2,  //  a malformed header: close
} gw_proxy_parse_t;

//  Parse the first len bytes a connection sent. Pure; any thread.
gw_proxy_parse_t gw_proxy_parse(const uint8_t *buf, size_t len, struct sockaddr_storage *addr,
                                size_t *used);

typedef struct gw_proxy_t gw_proxy_t;

//  Listen on sa (port 0: ephemeral) and start the acceptor handing
//  connections to mhd, which must run without its own listener
//  (MHD_USE_NO_LISTEN_SOCKET) and with MHD_USE_ITC. trust is borrowed
//  (NULL: no peer is trusted). NULL with errno when the bind fails.
gw_proxy_t *gw_proxy_new(const struct sockaddr_in *sa, struct MHD_Daemon *mhd,
                         const gw_trust_t *trust);

//  The port bound.
int gw_proxy_port(const gw_proxy_t *self);

//  Stop accepting (the drain): the listener is closed, connections whose
//  header is still being read are closed, the ones handed over live on.
void gw_proxy_close(gw_proxy_t *self);

//  Stop the acceptor and close what it holds. Before MHD_stop_daemon.
void gw_proxy_destroy(gw_proxy_t **self_p);

#endif
