/*  rp_store - the reporter's state in Redis: lease, fencing token, send records, archive
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Keys (one Redis, like the rest of the mesh):
 *    {rp}:lease            "<token>|<owner>", PX the lease: the one replica running a report
 *    {rp}:fence            counter: each lease taken gets the next token
 *    {rp}:since            Unix s of the first schedule check ever: firings before it are not owed
 *    {rp}:sent:<week>      JSON record of the week's send (never expires)
 *    {rp}:report:<week>    hash: json, html (web, images inline as data:), mail (cid:), text, pdf
 *    {rp}:reports          sorted set: week -> its start (Unix s)
 *  Writes made on behalf of a run (archive, send record) are fenced: a Lua
 *  script applies them only while {rp}:lease still holds the run's token, so
 *  a replica whose lease ran out (paused, partitioned) cannot overwrite
 *  the work of the one that took over.
 *
 *  Every call is one round trip with the store's short timeouts, on the
 *  reactor thread. Return values: 0 or a count on success, -EIO when Redis
 *  is away or answered an error.
 */
#ifndef RP_STORE_H
#define RP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_json.h"

typedef struct rp_store_t rp_store_t;

//  NULL on a bad URL.
rp_store_t *rp_store_new(const char *url, int timeout_ms);
void rp_store_destroy(rp_store_t **self_p);

//  {rp}:since, set to now_s if absent; its value in *since.
int rp_store_since(rp_store_t *self, int64_t now_s, int64_t *since);

//  1 when week has a send record, 0 when not, -EIO.
int rp_store_sent(rp_store_t *self, const char *week);

//  Take the lease for ttl_ms: 1 and *token, 0 when another holds it, -EIO.
int rp_store_lease_take(rp_store_t *self, const char *owner, int ttl_ms, uint64_t *token);
//  Give it back if still ours. 0 or -EIO.
int rp_store_lease_give(rp_store_t *self, const char *owner, uint64_t token);

//  A report's parts for the archive (binary-safe).
typedef struct {
    const char *json, *html, *mail, *text; //  NUL-terminated
    const uint8_t *pdf;                    //  the PDF
    size_t pdf_len;                        //  its length
} rp_parts_t;

//  Archive week (start at start_s), fenced by token: 1 stored, 0 the lease
//  is no longer ours (nothing written), -EIO.
int rp_store_archive(rp_store_t *self, const char *owner, uint64_t token, const char *week,
                     int64_t start_s, const rp_parts_t *parts);

//  Record week as sent (record: JSON), fenced like the archive: 1, 0, -EIO.
int rp_store_record(rp_store_t *self, const char *owner, uint64_t token, const char *week,
                    const char *record);

//  The archive as a JSON array of {week, start, sent: <record or null>},
//  newest first, at most limit, written into w. 0 or -EIO.
int rp_store_list(rp_store_t *self, size_t limit, vz_json_writer_t *w);

//  One part of an archived report (field json, html, mail, text or pdf):
//  heap bytes (NUL-terminated, caller frees) and *len; NULL with *rc
//  -ENOENT when there is none, -EIO when Redis is away.
char *rp_store_part(rp_store_t *self, const char *week, const char *field, size_t *len, int *rc);

#endif
