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
 *  stay open, the worker also checks the caller and its key on every
 *  request (vz_acl_allows). Each broker's list is kept apart: a name is
 *  admitted while every broker that sent a list admits it.
 *  Single-threaded: the worker's reactor owns it.
 */
#ifndef VZ_ACL_H
#define VZ_ACL_H

#include <czmq.h>
#include <stdbool.h>

#define VZ_ACL_MAX 256    //  identities all brokers' ACLs hold together (the broker's KEYS_MAX)
#define VZ_ACL_SOURCES 32 //  brokers one worker tracks (its links, VZ_ENDPOINTS_MAX)

typedef struct vz_acl_t vz_acl_t;

//  Bind the ZAP endpoint of ctx (a context with no other ZAP handler).
//  NULL with errno on failure.
vz_acl_t *vz_acl_new(void *ctx);
void vz_acl_destroy(vz_acl_t **self_p);

//  The ZAP socket (a raw libzmq REP): poll it for ZMQ_POLLIN.
void *vz_acl_sock(vz_acl_t *self);

//  Answer every ZAP request waiting (never blocks). An admitted client's
//  user id is its key (Z85) and its "name" metadata its identity.
void vz_acl_handle(vz_acl_t *self);

//  Replace what broker `source` (0..VZ_ACL_SOURCES-1: the worker's link)
//  said with the frames of its ACL message after the command: name, key
//  (40 Z85 characters), name, key ... (none: nobody). An identity is
//  admitted only while every broker that sent an ACL lists it with that
//  key: brokers that disagree (a policy reload reaching them one by one)
//  make the stricter answer win. Returns the number of identities, or
//  -EINVAL for a list that cannot be read or holds more than VZ_ACL_MAX
//  in all: that broker then lists nobody (fail closed).
int vz_acl_set(vz_acl_t *self, int source, zmsg_t *msg);

//  A broker gone for good (left DNS): its list no longer counts.
void vz_acl_forget(vz_acl_t *self, int source);

//  True when identity with key (Z85: the connection's user id) is admitted.
bool vz_acl_allows(const vz_acl_t *self, const char *identity, const char *key);

//  True once an ACL has arrived (even an empty one).
bool vz_acl_ready(const vz_acl_t *self);

#endif
