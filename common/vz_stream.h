/*  vz_stream - a Redis stream consumed by a consumer group, entries handed to a callback
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The durable-queue pattern of the mesh (billing's webhook events and
 *  outbox, github's deliveries, outbox and backfill jobs), with no
 *  knowledge of what the entries mean:
 *
 *    producer: XADD <stream> * field value ...      (not this module)
 *    consumer: vz_stream_poll, from a zloop timer, on the reactor thread:
 *      1. creates the group once (XGROUP CREATE .. 0 MKSTREAM; BUSYGROUP is fine);
 *      2. re-reads this consumer's own pending entries (XREADGROUP .. 0) after
 *         a start or a failed entry: a replica restarted under the same
 *         consumer name (config.consumer: keep it stable per replica) resumes
 *         what it held at once;
 *      3. every claim_idle_ms/2, claims entries another consumer has held
 *         for more than claim_idle_ms (XAUTOCLAIM): a dead replica's entries
 *         are taken over by the living;
 *      4. reads new entries (XREADGROUP .. >, COUNT config.count, no BLOCK:
 *         vz_redis is synchronous with short timeouts).
 *    Each entry goes to fn. Delivery semantics: at least once. For exactly
 *    once, fn applies the entry and XACKs it in ONE Lua script (the entry
 *    carries stream, group and id for that) and returns VZ_STREAM_ACKED;
 *    a crash then leaves either nothing done (the entry is redelivered) or
 *    both. fn returning VZ_STREAM_ACK lets this module XACK; VZ_STREAM_RETRY
 *    leaves the entry pending: it is retried after retry_ms, and after
 *    max_deliveries deliveries it is moved to the dead stream (XADD of its
 *    fields plus "dead_id", then XACK) and counted.
 *
 *  Ownership: the config strings are copied; the vz_redis_t is borrowed and
 *  must outlive the vz_stream_t. Entries handed to fn are borrowed for the
 *  call only (copy the id to ack it later).
 *  Threads: one vz_stream_t per thread, on the vz_redis_t of that thread;
 *  fn runs on the caller's thread, inside vz_stream_poll.
 *  Timeouts: every call is synchronous and bounded by the vz_redis_t's
 *  command timeout; nothing blocks on the stream (no BLOCK).
 *  Time: now_ms (monotonic, vz_clock_mono_ms) is a parameter of the calls
 *  that schedule (poll, retry_later), so a test decides when a retry or a
 *  claim pass is due. The claim idleness itself is Redis's (server clock).
 *  Errors: negative errno, never logged here (the caller decides; Redis
 *  being away is normal for a while); nothing is lost on an error, the
 *  entries stay pending in Redis.
 */
#ifndef VZ_STREAM_H
#define VZ_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_redis.h"

#define VZ_STREAM_FIELDS_MAX 16 //  fields of one entry handed to fn (the rest ignored)

typedef struct {
    const char *stream;      //  stream key
    const char *group;       //  consumer group
    const char *consumer;    //  this consumer: stable per replica ("host-0")
    const char *dead_stream; //  where poison entries go; NULL = stream + ":dead"
    int count;               //  entries per read; 0 = 32
    int claim_idle_ms;       //  idle time after which another's entry is claimed; 0 = 30000
    int retry_ms;            //  wait before an entry fn refused is retried; 0 = 1000
    int max_deliveries;      //  deliveries before an entry goes dead; 0 = 10
} vz_stream_config_t;

//  One entry as fn sees it; every pointer is borrowed for the call only.
typedef struct {
    const char *stream;                       //  config.stream
    const char *group;                        //  config.group
    const char *id;                           //  entry id "1700000000000-0"
    size_t count;                             //  fields
    const char *names[VZ_STREAM_FIELDS_MAX];  //  field names
    const char *values[VZ_STREAM_FIELDS_MAX]; //  field values (binary safe with lens)
    size_t lens[VZ_STREAM_FIELDS_MAX];        //  value lengths
    long long deliveries;                     //  1 for a first delivery, more on re-reads
} vz_stream_entry_t;

//  Value of field name in entry (and its length), or NULL.
const char *vz_stream_field(const vz_stream_entry_t *entry, const char *name, size_t *len);

typedef enum {
    VZ_STREAM_ACK = 0,    //  done: the module XACKs
    VZ_STREAM_ACKED = 1,  //  done and already XACKed by fn (atomically with its effect)
    VZ_STREAM_RETRY = -1, //  not done: leave pending, retry later
    VZ_STREAM_LATER = 2,  //  taken asynchronously: fn's owner calls vz_stream_ack when it
                          //  is done, or vz_stream_retry_later when it failed
} vz_stream_verdict_t;

typedef vz_stream_verdict_t(vz_stream_fn)(void *arg, const vz_stream_entry_t *entry);

typedef struct vz_stream_t vz_stream_t;

//  The strings of config are copied, redis is borrowed. NULL (errno EINVAL)
//  when redis, fn, stream, group or consumer is missing, ENOMEM.
vz_stream_t *vz_stream_new(vz_redis_t *redis, const vz_stream_config_t *config, vz_stream_fn *fn,
                           void *arg);
void vz_stream_destroy(vz_stream_t **self_p);

//  One pass (steps 1-4 above) at now_ms (monotonic). Returns the entries
//  settled (acked or moved dead), or -errno when Redis failed (nothing
//  lost: the entries stay pending in Redis).
int vz_stream_poll(vz_stream_t *self, int64_t now_ms);

//  Acknowledge an entry taken with VZ_STREAM_LATER. 0 or -errno.
int vz_stream_ack(vz_stream_t *self, const char *id);
//  An entry taken with VZ_STREAM_LATER failed: re-read this consumer's
//  pending entries after retry_ms (an entry still in flight then may be
//  handed out twice: asynchronous consumers must be idempotent). now_ms
//  is monotonic, as for poll.
void vz_stream_retry_later(vz_stream_t *self, int64_t now_ms);

typedef struct {
    uint64_t settled; //  entries acked
    uint64_t retried; //  entries fn refused
    uint64_t dead;    //  entries moved to the dead stream
    uint64_t claimed; //  entries taken over from other consumers
} vz_stream_stats_t;

void vz_stream_stats(const vz_stream_t *self, vz_stream_stats_t *stats);

//  Entries of the group not yet acknowledged (XPENDING summary), or -errno.
long long vz_stream_pending(vz_stream_t *self);
//  Entries in the stream not yet delivered to the group (lag) plus pending,
//  the queue's backlog as an operator sees it; -errno on failure.
long long vz_stream_backlog(vz_stream_t *self);

#endif
