/*  vz_pending - calls sent and not yet answered, keyed by request id
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The table every asynchronous caller of the broker keeps (the gateway's
 *  upstream, vz_call): request id -> call, matched against each response,
 *  swept for calls whose local deadline passed. Entries are intrusive: the
 *  caller embeds a vz_pending_entry_t in its own call object and fills
 *  service, method, expires_ms and owner; the table owns nothing and frees
 *  nothing. Request ids may come from outside (X-Request-Id) and repeat, so
 *  an id already pending makes vz_pending_add pick a fresh one.
 *  Not thread-safe: the reactor thread only.
 */
#ifndef VZ_PENDING_H
#define VZ_PENDING_H

#include <stddef.h>
#include <stdint.h>
#include "vz_envelope.h"

typedef struct vz_pending_t vz_pending_t;

typedef struct {
    char id[VZ_ID_MAX];  //  wire id, written by vz_pending_add
    const char *service; //  the call's service (borrowed, outlives the entry)
    const char *method;  //  the call's method (idem)
    int64_t expires_ms;  //  Unix ms from which vz_pending_expire gives up on it
    void *owner;         //  the caller's call object
    int broker;          //  the broker it went through (vz_client_last_broker), -1 unknown
} vz_pending_entry_t;

//  Called for each entry taken out by expire or clear; it may free the
//  entry's owner (the entry is no longer in the table).
typedef void(vz_pending_fn)(vz_pending_entry_t *entry, void *arg);

vz_pending_t *vz_pending_new(void);
//  Entries still filed are forgotten, not touched: clear them first.
void vz_pending_destroy(vz_pending_t **self_p);

//  Choose the id to send under: want_id, or a fresh random id when want_id
//  is NULL, empty or already pending. Writes it to out (VZ_ID_MAX bytes;
//  may be want_id itself) without filing anything (for items that travel
//  inside a filed carrier). Returns 0 (want_id kept) or 1 (fresh id).
int vz_pending_id(const vz_pending_t *self, const char *want_id, char *out);

//  File entry under the id vz_pending_id chooses for want_id; entry->id
//  then holds the id to send. Returns 0 (want_id kept) or 1 (fresh id).
//  entry must not be filed.
int vz_pending_add(vz_pending_t *self, vz_pending_entry_t *entry, const char *want_id);

//  The entry response answers, taken out; NULL when its id is not pending
//  (a late answer) or names another service or method (a late answer to
//  an earlier step that carried the same id).
vz_pending_entry_t *vz_pending_match(vz_pending_t *self, const vz_envelope_t *response);

//  Take entry out (cancel); no effect when it is not filed.
void vz_pending_remove(vz_pending_t *self, vz_pending_entry_t *entry);

//  Take out every entry with expires_ms <= now_ms, then call fn for each.
//  Returns how many.
size_t vz_pending_expire(vz_pending_t *self, int64_t now_ms, vz_pending_fn *fn, void *arg);

//  Take out every entry, then call fn for each (shutdown). Returns how many.
size_t vz_pending_clear(vz_pending_t *self, vz_pending_fn *fn, void *arg);

//  Take out every entry whose broker is broker (its link dropped: the
//  broker held them and is gone), then call fn for each. Returns how many.
size_t vz_pending_clear_broker(vz_pending_t *self, int broker, vz_pending_fn *fn, void *arg);

//  Entries filed.
size_t vz_pending_size(const vz_pending_t *self);

#endif
