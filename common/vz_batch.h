/*  vz_batch - several calls of one method in one envelope (the batch convention)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A service may offer "<method>_batch" next to "<method>": the same work
 *  for up to VZ_BATCH_MAX items at once, so a caller with many small calls
 *  queued sends one envelope instead of N (each envelope costs every hop a
 *  CURVE box, a ZeroMQ message and often a thread wake-up).
 *
 *    request body   msgpack array of N bin items: each the body <method> takes
 *    reply body     msgpack array of N results, in the request's order, each
 *                   a 2-array [code, payload]:
 *                     code "" (empty str), payload bin = that item's reply body
 *                     code an error code, payload str  = its message
 *
 *  Only bodies travel per item: the envelope's ctx, deadline and trace
 *  context are shared by every item, and per-item reply ctx (http_status)
 *  does not exist. An error of the whole envelope (timeout, no_worker, a
 *  malformed body) applies to every item. Decoders check every declared
 *  length against the bytes left and never allocate.
 */
/*  Bundles - several whole requests in one envelope, for any method
 *
 *  The batch convention needs a <method>_batch in the service and shares
 *  one ctx. A bundle needs nothing from the service: vz_worker unpacks it.
 *
 *    request   an envelope to service.method with VZ_FLAG_BUNDLE; its body
 *              is a msgpack array of 1..VZ_BATCH_MAX bin items, each a whole
 *              encoded request envelope to the same service.method (own id,
 *              ctx, deadline, trace context, flags without BUNDLE). The
 *              outer deadline is the earliest of the items'; the outer
 *              envelope is idempotent only if every item is.
 *    reply     a reply envelope (same id as the request) whose body is an
 *              array of N bin items in the request's order, each a whole
 *              encoded reply or error envelope answering that item (with
 *              its id and its own ctx, e.g. http_status).
 *
 *  The broker routes, polices and times the outer envelope like any other:
 *  the policy of service.method covers every item because every item names
 *  the same one. The worker checks each item as it checks a single request
 *  (decodes, right service and method, body size, deadline) and answers a
 *  failed check in that item's slot; the caller of every item is the one
 *  the broker vouched for on the outer envelope. An item whose deadline has
 *  passed is answered "timeout". Once the filled replies pass half a frame,
 *  the items not yet dispatched are answered "bundle_overflow" without
 *  being served: the caller sends those again alone. If the replies still
 *  do not fit (deferred ones, or one very large), the largest give way to
 *  "reply_dropped": served, answer lost; the caller sends only idempotent
 *  ones again and fails the others (as for worker_lost). The reply leaves when the last
 *  item is answered (deferred handlers included), so a bundle only groups
 *  requests that the caller would have sent at the same moment anyway.
 *  Both bodies use vz_batch_request_encode/_decode (an array of bin).
 */
#ifndef VZ_BATCH_H
#define VZ_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"

#define VZ_BATCH_MAX 256 //  items per envelope

typedef struct {
    const uint8_t *data; //  item body (request) or reply body / error message (reply)
    size_t len;          //  its length
    const char *code;    //  reply only: "" for a body, else the error code (NUL-terminated
                         //  when encoding; when decoding it points into the buffer, see code_len)
    size_t code_len;     //  decoding: length of code
} vz_batch_item_t;

//  Heap msgpack of the request or reply array; *len_p its length. n must be
//  1..VZ_BATCH_MAX (asserted: the caller builds batches). OOM aborts.
uint8_t *vz_batch_request_encode(const vz_batch_item_t *items, size_t n, size_t *len_p);
uint8_t *vz_batch_reply_encode(const vz_batch_item_t *items, size_t n, size_t *len_p);

//  Split a received body into at most max items pointing into buf. 0 and
//  *n_p, or VZ_EMALFORMED with a short static *reason (not an array, empty,
//  more than max, wrong item type, "truncated" for a length past the end,
//  "trailing bytes"). *n_p is untouched on failure.
int vz_batch_request_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                            size_t *n_p, const char **reason);
int vz_batch_reply_decode(const uint8_t *buf, size_t len, vz_batch_item_t *items, size_t max,
                          size_t *n_p, const char **reason);

#endif
