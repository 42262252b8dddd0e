/*  vz_proto - frames exchanged with the broker (Majordomo-style)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every peer is a DEALER connected to the broker's ROUTER over CURVE. The
 *  first frame is the command; the rest depend on it (docs/protocol.md):
 *
 *    client -> broker   REQ  envelope
 *    broker -> client   REP  envelope               (reply or error)
 *    worker -> broker   RDY  service  credit  [version]   (credit: ASCII decimal, 1..1000;
 *                                                      version: vz_version_valid, absent = "0")
 *    broker -> worker   REQ  tag  caller  envelope   (tag: 8 opaque bytes)
 *    worker -> broker   REP  tag  envelope
 *    either way         HB                            (heartbeat)
 *    either way         BYE                           (worker: drain me; broker: go away / drained)
 *
 *  The broker answers RDY with HB at once, so a worker knows it is
 *  registered. A peer silent for VZ_HEARTBEAT_LIVENESS intervals is dead.
 *  The caller frame carries the identity the broker took from the client's
 *  CURVE certificate ("name" metadata); workers trust it because the
 *  broker is authenticated by its own key.
 *  The broker itself serves the service "broker": method "ping" (empty
 *  reply) and "services" (msgpack map: service -> {workers, queue}).
 */
#ifndef VZ_PROTO_H
#define VZ_PROTO_H

#define VZ_CMD_REQUEST   "REQ"
#define VZ_CMD_REPLY     "REP"
#define VZ_CMD_READY     "RDY"
#define VZ_CMD_HEARTBEAT "HB"
#define VZ_CMD_BYE       "BYE"
#define VZ_CMD_ACL       "ACL" //  broker -> worker: the callers a direct endpoint admits

#define VZ_TAG_SIZE            8
#define VZ_HEARTBEAT_MS        1000 //  default interval
#define VZ_HEARTBEAT_LIVENESS  3    //  intervals of silence before a peer is dead
#define VZ_CREDIT_MAX          1000
#define VZ_VERSION_MAX         32   //  bytes of a RDY version token, NUL included

//  Error codes carried in error envelopes (error_code), one list for all.
#define VZ_ERR_NO_WORKER      "no_worker"      //  no worker for the service before the deadline
#define VZ_ERR_TIMEOUT        "timeout"        //  deadline passed
#define VZ_ERR_WORKER_LOST    "worker_lost"    //  the worker died holding the request
#define VZ_ERR_MALFORMED      "malformed"      //  envelope could not be decoded
#define VZ_ERR_FORBIDDEN      "forbidden"      //  call policy refuses caller -> service
#define VZ_ERR_UNKNOWN_METHOD "unknown_method" //  service has no such method
#define VZ_ERR_OVERLOADED     "overloaded"     //  queue full
#define VZ_ERR_UNAVAILABLE    "unavailable"    //  broker or dependency unreachable
#define VZ_ERR_INVALID        "invalid_request"//  well-formed but unacceptable body
#define VZ_ERR_INTERNAL       "internal"       //  bug or unexpected failure in the handler
#define VZ_ERR_BUNDLE_OVERFLOW "bundle_overflow"//  bundle item not served (its reply is full): send it alone
#define VZ_ERR_REPLY_DROPPED  "reply_dropped"  //  bundle item served, but its reply did not fit

//  The broker's own service name.
#define VZ_BROKER_SERVICE "broker"

#endif
