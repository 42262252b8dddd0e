/*  vz_acl - who may open a worker's direct endpoint: a ZAP handler fed by the broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A worker's direct endpoint (docs/protocol.md, "Direct calls") is a CURVE
 *  server in a ZeroMQ context of its own, so it has a ZAP endpoint of its
 *  own and leaves the process's (vz_auth) alone. This module answers that
 *  ZAP endpoint from a table of (identity, public key) pairs that only the
 *  broker writes: the ACL message it sends a worker lists the identities
 *  the call policy lets call the worker's service, with their keys.
 *  A handshake is admitted when the client's key is in the table; the ZAP
 *  reply attaches the identity as the "name" metadata, so the worker reads
 *  it with vz_curve_peer_name as the broker does. Before the first ACL
 *  arrives nobody is admitted. Because an ACL may shrink while connections
 *  stay open, the worker also checks the caller of every request
 *  (vz_acl_allows).
 *  Single-threaded: the worker's reactor owns it.
 */
#ifndef VZ_ACL_H
#define VZ_ACL_H

#include <czmq.h>
#include <stdbool.h>

#define VZ_ACL_MAX 64 //  identities one ACL may hold

typedef struct vz_acl_t vz_acl_t;

//  Bind the ZAP endpoint of ctx (a context with no other ZAP handler).
//  NULL with errno on failure.
vz_acl_t *vz_acl_new(void *ctx);
void vz_acl_destroy(vz_acl_t **self_p);

//  The ZAP socket (a raw libzmq REP): poll it for ZMQ_POLLIN.
void *vz_acl_sock(vz_acl_t *self);

//  Answer every ZAP request waiting (never blocks).
void vz_acl_handle(vz_acl_t *self);

//  Replace the table with the frames of an ACL message after its command:
//  name, key (40 Z85 characters), name, key ... (none: nobody). Returns the
//  number of identities, or -EINVAL for a bad list (the table is kept).
int vz_acl_set(vz_acl_t *self, zmsg_t *msg);

//  True when identity is in the table.
bool vz_acl_allows(const vz_acl_t *self, const char *identity);

//  True once an ACL has arrived (even an empty one).
bool vz_acl_ready(const vz_acl_t *self);

#endif
