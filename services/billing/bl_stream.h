/*  bl_stream - a Redis stream consumed by a consumer group, entries handed to a callback
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The durable-queue pattern of the mesh (billing's webhook events today;
 *  the notifier's and github's deliveries share it), with no knowledge of
 *  what the entries mean, so that it can move to common/ as is:
 *
 *    producer: XADD <stream> * field value ...      (not this module)
 *    consumer: bl_stream_poll, from a zloop timer, on the reactor thread:
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
 *    carries stream, group and id for that) and returns BL_STREAM_ACKED;
 *    a crash then leaves either nothing done (the entry is redelivered) or
 *    both. fn returning BL_STREAM_ACK lets this module XACK; BL_STREAM_RETRY
 *    leaves the entry pending: it is retried after retry_ms, and after
 *    max_deliveries deliveries it is moved to the dead stream (XADD of its
 *    fields plus "dead_id", then XACK) and counted.
 *
 *  Threads: one bl_stream_t per thread, on the vz_redis_t of that thread
 *  (borrowed). Errors: negative errno, never logged here (the caller
 *  decides; Redis being away is normal for a while).
 */
#ifndef BL_STREAM_H
#define BL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_redis.h"

#define BL_STREAM_FIELDS_MAX 16 //  fields of one entry handed to fn (the rest ignored)

typedef struct {
    const char *stream;      //  stream key
    const char *group;       //  consumer group
    const char *consumer;    //  this consumer: stable per replica ("host-0")
    const char *dead_stream; //  where poison entries go; NULL = stream + ":dead"
    int count;               //  entries per read; 0 = 32
    int claim_idle_ms;       //  idle time after which another's entry is claimed; 0 = 30000
    int retry_ms;            //  wait before an entry fn refused is retried; 0 = 1000
    int max_deliveries;      //  deliveries before an entry goes dead; 0 = 10
} bl_stream_config_t;

//  One entry as fn sees it; every pointer is borrowed for the call only.
typedef struct {
    const char *stream;                       //  config.stream
    const char *group;                        //  config.group
    const char *id;                           //  entry id "1700000000000-0"
    size_t count;                             //  fields
    const char *names[BL_STREAM_FIELDS_MAX];  //  field names
    const char *values[BL_STREAM_FIELDS_MAX]; //  field values (binary safe with lens)
    size_t lens[BL_STREAM_FIELDS_MAX];        //  value lengths
    long long deliveries;                     //  1 for a first delivery, more on re-reads
} bl_stream_entry_t;

//  Value of field name in entry (and its length), or NULL.
const char *bl_stream_field(const bl_stream_entry_t *entry, const char *name, size_t *len);

typedef enum {
    BL_STREAM_ACK = 0,    //  done: the module XACKs
    BL_STREAM_ACKED = 1,  //  done and already XACKed by fn (atomically with its effect)
    BL_STREAM_RETRY = -1, //  not done: leave pending, retry later
    BL_STREAM_LATER = 2,  //  taken asynchronously: fn's owner calls bl_stream_ack when it
                          //  is done, or bl_stream_retry_later when it failed
} bl_stream_verdict_t;

typedef bl_stream_verdict_t(bl_stream_fn)(void *arg, const bl_stream_entry_t *entry);

typedef struct bl_stream_t bl_stream_t;

//  The strings of config are copied. NULL (errno EINVAL) when stream, group
//  or consumer is missing.
bl_stream_t *bl_stream_new(vz_redis_t *redis, const bl_stream_config_t *config, bl_stream_fn *fn,
                           void *arg);
void bl_stream_destroy(bl_stream_t **self_p);

//  One pass (steps 1-4 above). Returns the entries settled (acked or
//  moved dead), or -errno when Redis failed (nothing lost: the entries stay
//  pending in Redis).
int bl_stream_poll(bl_stream_t *self);

//  Acknowledge an entry taken with BL_STREAM_LATER. 0 or -errno.
int bl_stream_ack(bl_stream_t *self, const char *id);
//  An entry taken with BL_STREAM_LATER failed: re-read this consumer's
//  pending entries after retry_ms (an entry still in flight then may be
//  handed out twice: asynchronous consumers must be idempotent).
void bl_stream_retry_later(bl_stream_t *self);

typedef struct {
    uint64_t settled; //  entries acked
    uint64_t retried; //  entries fn refused
    uint64_t dead;    //  entries moved to the dead stream
    uint64_t claimed; //  entries taken over from other consumers
} bl_stream_stats_t;

void bl_stream_stats(const bl_stream_t *self, bl_stream_stats_t *stats);

//  Entries of the group not yet acknowledged (XPENDING summary), or -errno.
long long bl_stream_pending(bl_stream_t *self);
//  Entries in the stream not yet delivered to the group (lag) plus pending,
//  the queue's backlog as an operator sees it; -errno on failure.
long long bl_stream_backlog(bl_stream_t *self);

#endif
