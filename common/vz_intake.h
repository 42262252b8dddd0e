/*  vz_intake - verified webhook deliveries queued in a Redis stream, once per id, before the 2xx
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  What Stripe's and GitHub's senders need from a receiver: answer 2xx
 *  only once the delivery is stored, answer a repeat of the same id as a
 *  duplicate without storing it twice, and answer non-2xx when it cannot
 *  be stored (the sender retries, so nothing is lost). billing and github
 *  verify a delivery (its signature, its headers) and hand it here:
 *    - vz_intake_add defers the reply and keeps a copy of the delivery;
 *    - after the worker's batch, the daemon's flush function calls
 *      vz_intake_flush, which runs one script per delivery in one
 *      pipelined round trip: SET <seen_prefix><id> NX EX ttl, and only
 *      when that set it, XADD <stream> [MAXLEN ~ maxlen] * fields... body;
 *    - each reply is then 200 {"received":true,"duplicate":false|true},
 *      or the error unavailable "<what> queue unavailable, retry later"
 *      when Redis failed or answered an error (logged).
 *  vz_intake_enqueue runs the same script at once, for deliveries that
 *  come another way (billing's reconciliation from Stripe's event list).
 *  Each outcome is reported to count (a daemon's own metric) with the
 *  label the delivery was added with.
 *
 *  Stream entries carry the fields given to add/enqueue, in order, then
 *  "body". The seen key expires after ttl_s: a repeat within it is a
 *  duplicate, later it would be queued again (the consumer's own
 *  applied-once record then decides).
 *
 *  Ownership: redis is borrowed and must outlive the intake; config
 *  strings are copied. Everything add is given is copied.
 *  Threads: the reactor thread only (that of redis and the worker).
 *  Timeouts: the vz_redis_t command timeout bounds each round trip.
 *  Errors: new returns NULL on bad config or ENOMEM; add answers
 *  internal "out of memory" itself when it cannot keep the delivery.
 */
#ifndef VZ_INTAKE_H
#define VZ_INTAKE_H

#include <stddef.h>

#include "vz_redis.h"
#include "vz_worker.h"

#define VZ_INTAKE_ID_MAX 255   //  longest delivery id
#define VZ_INTAKE_LABEL_MAX 63 //  longest label for count
#define VZ_INTAKE_FIELDS_MAX 8 //  name/value pairs besides the body

typedef enum {
    VZ_INTAKE_QUEUED = 0,      //  stored in the stream, 200 duplicate:false
    VZ_INTAKE_DUPLICATE = 1,   //  the id was seen within ttl_s, 200 duplicate:true
    VZ_INTAKE_UNAVAILABLE = 2, //  Redis failed, error unavailable
} vz_intake_outcome_t;

typedef struct {
    const char *seen_prefix; //  dedupe key prefix, e.g. "{billing}:seen:"
    const char *stream;      //  stream key, e.g. "{billing}:events"
    unsigned long maxlen;    //  approximate trim (MAXLEN ~); 0 = never trimmed
    int ttl_s;               //  how long an id stays seen (> 0)
    const char *what;        //  names a delivery in messages: "event", "delivery"
} vz_intake_config_t;

//  Called once per delivery with its label and outcome (may be NULL).
typedef void(vz_intake_count_fn)(void *arg, const char *label, vz_intake_outcome_t outcome);

typedef struct vz_intake_t vz_intake_t;

vz_intake_t *vz_intake_new(vz_redis_t *redis, const vz_intake_config_t *config,
                           vz_intake_count_fn *count, void *arg);
void vz_intake_destroy(vz_intake_t **self_p);

//  Take one verified delivery of a VZ_METHOD_DEFERRED method: id
//  (1..VZ_INTAKE_ID_MAX bytes), label (for count, truncated), nfields
//  name/value pairs (at most VZ_INTAKE_FIELDS_MAX) and the body. Defers
//  reply with flush, which must call vz_intake_flush. Returns 0, or what
//  vz_reply_error returns for a refusal (invalid id or too many fields,
//  internal out of memory).
int vz_intake_add(vz_intake_t *self, vz_reply_t *reply, vz_flush_fn *flush, const char *id,
                  const char *label, const char *const *fields, size_t nfields, const void *body,
                  size_t body_len);

//  Queue every delivery added since the last flush in one round trip and
//  complete their replies.
void vz_intake_flush(vz_intake_t *self);

//  The same for one delivery, now: 1 queued, 0 duplicate, -1 failed or
//  refused (bad id or fields). Not counted.
int vz_intake_enqueue(vz_intake_t *self, const char *id, const char *const *fields, size_t nfields,
                      const void *body, size_t body_len);

#endif
