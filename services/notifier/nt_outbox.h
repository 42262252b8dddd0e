/*  nt_outbox - the durable queue in Redis: stream, consumer group, schedule, dead letters
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Keys:
 *    {nt}:msg:<id>    hash: the message (request, rendered parts, status, attempts,
 *                   last_error, timestamps); kept idem_ttl after it ends
 *    {nt}:stream      stream of {id}: messages due now; consumer group "notifier"
 *    {nt}:sched       sorted set id -> due (Unix ms): retries and delayed routes
 *    {nt}:dead        stream of {id, channel, error}: the dead letters
 *    {nt}:idem:<key>  id accepted for an idempotency key (SET NX, with TTL)
 *    {nt}:alert:<key> "firing" | "resolved": delayed routes check it
 *
 *  Every change of state that spans keys is one Lua script, so a crash
 *  between two writes cannot lose or duplicate a message. An entry read
 *  with XREADGROUP stays pending until the script that ends or reschedules
 *  it acknowledges it; a replica that dies holding it leaves it pending,
 *  and XAUTOCLAIM hands it to another replica (or the restarted one) after
 *  claim_ms of idleness.
 *
 *  Calls are synchronous with the Redis timeout of nt_config_t (tens of
 *  milliseconds), from the reactor thread only. Errors: -EIO when Redis
 *  did not answer or answered an error.
 */
#ifndef NT_OUTBOX_H
#define NT_OUTBOX_H

#include "nt.h"

#define NT_KEY_STREAM "{nt}:stream"
#define NT_KEY_SCHED "{nt}:sched"
#define NT_KEY_DEAD "{nt}:dead"
#define NT_KEY_MSG "{nt}:msg:"
#define NT_KEY_IDEM "{nt}:idem:"
#define NT_KEY_ALERT "{nt}:alert:"
#define NT_GROUP "notifier"

//  Message statuses (the hash's "status").
#define NT_ST_QUEUED "queued"       //  accepted, not tried yet (or requeued by an admin)
#define NT_ST_SCHEDULED "scheduled" //  waits for its due time (delayed route)
#define NT_ST_SENDING "sending"     //  a replica is delivering it
#define NT_ST_RETRYING "retrying"   //  failed, waits for its next attempt
#define NT_ST_DELIVERED "delivered" //  the channel accepted it
#define NT_ST_DEAD "dead"           //  attempts exhausted or refused for good
#define NT_ST_DROPPED "dropped"     //  its alert resolved before it was due

typedef struct {
    const char *field; //  hash field
    const char *value; //  its value
} nt_field_t;

typedef struct {
    char entry[48];     //  stream entry id
    char id[NT_ID_MAX]; //  message id
} nt_entry_t;

//  Load the scripts. 0.
int nt_outbox_init(nt_t *self);
//  Create the consumer group (MKSTREAM; an existing group is fine) and
//  set group_ready. 0 or -EIO.
int nt_outbox_group(nt_t *self);
void nt_outbox_fini(nt_t *self);

//  Store the message's fields and queue it (due_ms 0: at once, else in
//  {nt}:sched). With idem_key (may be NULL), only the first message of a key
//  within idem_ttl_s is kept: 1 when stored, 0 when the key was seen (its
//  id in existing), -EIO.
int nt_outbox_enqueue(nt_t *self, const char *id, const char *idem_key, int64_t due_ms,
                      const nt_field_t *fields, size_t count, char *existing, size_t n);

//  Move scheduled messages due at now_ms into the stream. Count or -EIO.
int nt_outbox_promote(nt_t *self, int64_t now_ms);

//  New entries for this consumer (XREADGROUP, no blocking) / entries idle
//  for claim_ms taken over from any consumer (XAUTOCLAIM). Count or -EIO.
int nt_outbox_read(nt_t *self, nt_entry_t *out, size_t max);
int nt_outbox_claim(nt_t *self, nt_entry_t *out, size_t max);

//  Reset the idle time of entries this replica is still delivering
//  (XCLAIM ... JUSTID to itself), so a slow transfer or a queued SMTP job
//  is not claimed by another replica while this one is alive. 0 or -EIO.
int nt_outbox_touch(nt_t *self, const char *const *entries, size_t count);

//  Mark the message "sending" and return its fields (a HGETALL-style
//  array reply the caller frees), or a status reply "done" (already ended:
//  the caller finishes the entry), "dropped" (its alert resolved: already
//  marked), "gone" (no such message); NULL when Redis failed.
redisReply *nt_outbox_take(nt_t *self, const char *id, int64_t now_ms);

//  End or reschedule an entry: status NT_ST_DELIVERED, _DEAD, _RETRYING
//  (due at next_ms) or "ack" (only acknowledge: the message ended
//  already). attempts and error are stored. 0 or -EIO.
int nt_outbox_finish(nt_t *self, const nt_entry_t *entry, const char *status, int attempts,
                     const char *error, int64_t next_ms, int64_t now_ms);

//  Requeue a dead letter with its attempts reset: 1, 0 when id is not a
//  dead letter, -EIO.
int nt_outbox_requeue(nt_t *self, const char *id, int64_t now_ms);

//  Age in ms of the oldest message due and not delivered (stream head or
//  the earliest past-due schedule); 0 when none; -EIO.
int64_t nt_outbox_oldest(nt_t *self, int64_t now_ms);

#endif
