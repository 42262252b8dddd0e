/*  vz_stream - a Redis stream consumed by a consumer group, entries handed to a callback
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vz_stream_t {
    vz_redis_t *redis;     //  borrowed
    char *stream;          //  stream key
    char *group;           //  group name
    char *consumer;        //  consumer name
    char *dead;            //  dead-letter stream
    char count[16];        //  COUNT argument
    char idle[16];         //  XAUTOCLAIM min-idle argument
    int claim_every_ms;    //  spacing of XAUTOCLAIM passes
    int retry_ms;          //  spacing of own-pending re-reads after a refusal
    int max_deliveries;    //  deliveries before dead
    vz_stream_fn *fn;      //  the consumer's callback
    void *arg;             //  its argument
    bool grouped;          //  XGROUP CREATE done
    bool own_pending;      //  re-read our pending entries on the next pass
    size_t later;          //  entries handed out VZ_STREAM_LATER by the current read
    int64_t own_due_ms;    //  not before this (monotonic)
    int64_t claim_due_ms;  //  next XAUTOCLAIM (monotonic)
    char claim_cursor[48]; //  XAUTOCLAIM cursor
    vz_stream_stats_t stats;
};

vz_stream_t *vz_stream_new(vz_redis_t *redis, const vz_stream_config_t *config, vz_stream_fn *fn,
                           void *arg)
{
    if (!redis || !config || !fn || !config->stream || !config->group || !config->consumer ||
        !*config->stream || !*config->group || !*config->consumer) {
        errno = EINVAL;
        return NULL;
    }
    vz_stream_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    self->stream = strdup(config->stream);
    self->group = strdup(config->group);
    self->consumer = strdup(config->consumer);
    if (config->dead_stream)
        self->dead = strdup(config->dead_stream);
    else if (asprintf(&self->dead, "%s:dead", config->stream) < 0)
        self->dead = NULL;
    if (!self->stream || !self->group || !self->consumer || !self->dead) {
        vz_stream_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    snprintf(self->count, sizeof self->count, "%d", config->count > 0 ? config->count : 32);
    int idle = config->claim_idle_ms > 0 ? config->claim_idle_ms : 30000;
    snprintf(self->idle, sizeof self->idle, "%d", idle);
    self->claim_every_ms = idle / 2 > 0 ? idle / 2 : 1;
    self->retry_ms = config->retry_ms > 0 ? config->retry_ms : 1000;
    self->max_deliveries = config->max_deliveries > 0 ? config->max_deliveries : 10;
    self->fn = fn;
    self->arg = arg;
    self->own_pending = true; //  whatever this consumer held before a restart
    strcpy(self->claim_cursor, "0-0");
    return self;
}

void vz_stream_destroy(vz_stream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vz_stream_t *self = *self_p;
    free(self->stream);
    free(self->group);
    free(self->consumer);
    free(self->dead);
    free(self);
    *self_p = NULL;
}

const char *vz_stream_field(const vz_stream_entry_t *entry, const char *name, size_t *len)
{
    for (size_t i = 0; i < entry->count; i++)
        if (strcmp(entry->names[i], name) == 0) {
            if (len)
                *len = entry->lens[i];
            return entry->values[i];
        }
    return NULL;
}

void vz_stream_stats(const vz_stream_t *self, vz_stream_stats_t *stats)
{
    *stats = self->stats;
}

//  A command with NUL-terminated arguments.
static redisReply *s_cmd(vz_stream_t *self, int argc, const char **argv)
{
    return vz_redis_command(self->redis, argc, argv, NULL);
}

static int s_ensure_group(vz_stream_t *self)
{
    if (self->grouped)
        return 0;
    const char *argv[] = {"XGROUP", "CREATE", self->stream, self->group, "0", "MKSTREAM"};
    redisReply *r = s_cmd(self, 6, argv);
    if (!r)
        return -EIO;
    bool ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
    freeReplyObject(r);
    self->grouped = ok;
    return ok ? 0 : -EPROTO;
}

static int s_ack(vz_stream_t *self, const char *id)
{
    const char *argv[] = {"XACK", self->stream, self->group, id};
    redisReply *r = s_cmd(self, 4, argv);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}

//  How many times id was delivered (XPENDING range of one), or 1.
static long long s_deliveries(vz_stream_t *self, const char *id)
{
    const char *argv[] = {"XPENDING", self->stream, self->group, id, id, "1"};
    redisReply *r = s_cmd(self, 6, argv);
    long long n = 1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 4 &&
        r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->element[3]->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

//  Move a poison entry to the dead stream and acknowledge it.
static int s_bury(vz_stream_t *self, const vz_stream_entry_t *e)
{
    const char *argv[4 + 2 * VZ_STREAM_FIELDS_MAX + 2];
    size_t lens[4 + 2 * VZ_STREAM_FIELDS_MAX + 2];
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = self->dead;
    argv[n++] = "*";
    argv[n++] = "dead_id";
    argv[n++] = e->id;
    for (size_t i = 0; i < e->count; i++) {
        argv[n++] = e->names[i];
        argv[n++] = e->values[i];
    }
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < e->count; i++)
        lens[6 + 2 * i] = e->lens[i];
    redisReply *r = vz_redis_command(self->redis, n, argv, lens);
    int rc = r && r->type == REDIS_REPLY_STRING ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc == 0 ? s_ack(self, e->id) : rc;
}

//  Hand each entry of a [id, [field, value, ...]] array to fn. check: ask
//  the delivery count (re-reads and claims). Settled entries counted.
static int s_dispatch(vz_stream_t *self, const redisReply *entries, bool check, bool *refused)
{
    int settled = 0;
    for (size_t i = 0; entries && i < entries->elements; i++) {
        const redisReply *item = entries->element[i];
        if (item->type != REDIS_REPLY_ARRAY || item->elements != 2 ||
            item->element[0]->type != REDIS_REPLY_STRING)
            continue;
        vz_stream_entry_t e = {.stream = self->stream,
                               .group = self->group,
                               .id = item->element[0]->str,
                               .deliveries = 1};
        const redisReply *fields = item->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) {
            //  Deleted from the stream while pending (XAUTOCLAIM before 7.0): drop it.
            settled += s_ack(self, e.id) == 0;
            continue;
        }
        for (size_t f = 0; f + 1 < fields->elements && e.count < VZ_STREAM_FIELDS_MAX; f += 2) {
            e.names[e.count] = fields->element[f]->str;
            e.values[e.count] = fields->element[f + 1]->str;
            e.lens[e.count] = fields->element[f + 1]->len;
            e.count++;
        }
        if (check)
            e.deliveries = s_deliveries(self, e.id);
        if (e.deliveries > self->max_deliveries) {
            if (s_bury(self, &e) == 0) {
                self->stats.dead++;
                settled++;
            }
            continue;
        }
        vz_stream_verdict_t v = self->fn(self->arg, &e);
        if (v == VZ_STREAM_LATER) {
            self->later++; //  the owner acks it (vz_stream_ack) or retries later
            continue;
        }
        if (v == VZ_STREAM_ACK && s_ack(self, e.id) < 0)
            v = VZ_STREAM_RETRY;
        if (v == VZ_STREAM_RETRY) {
            self->stats.retried++;
            *refused = true;
        } else {
            self->stats.settled++;
            settled++;
        }
    }
    return settled;
}

//  XREADGROUP from id ("0": our pending, ">": new); -errno or settled.
static int s_read(vz_stream_t *self, const char *id, size_t *got, bool *refused)
{
    const char *argv[] = {"XREADGROUP",   "GROUP",      self->group,
                          self->consumer, "COUNT",      self->count,
                          "STREAMS",      self->stream, id};
    redisReply *r = s_cmd(self, 9, argv);
    if (!r)
        return -EIO;
    int rc = 0;
    *got = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        //  NOGROUP: the stream was deleted; create the group again next time.
        self->grouped = false;
        rc = -EPROTO;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        *got = entries->elements;
        rc = s_dispatch(self, entries, id[0] == '0', refused);
    }
    freeReplyObject(r);
    return rc;
}

//  XAUTOCLAIM one page of entries idle for longer than claim_idle_ms.
static int s_claim(vz_stream_t *self, bool *refused)
{
    const char *argv[] = {"XAUTOCLAIM", self->stream,       self->group, self->consumer,
                          self->idle,   self->claim_cursor, "COUNT",     self->count};
    redisReply *r = s_cmd(self, 8, argv);
    if (!r)
        return -EIO;
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(self->claim_cursor, sizeof self->claim_cursor, "%s", r->element[0]->str);
        self->stats.claimed += r->element[1]->elements;
        rc = s_dispatch(self, r->element[1], true, refused);
    } else if (r->type == REDIS_REPLY_ERROR) {
        self->grouped = false;
        rc = -EPROTO;
    }
    freeReplyObject(r);
    return rc;
}

int vz_stream_poll(vz_stream_t *self, int64_t now)
{
    int rc = s_ensure_group(self);
    if (rc < 0)
        return rc;
    int settled = 0;
    bool refused = false;
    size_t got = 0;
    if (self->own_pending && now >= self->own_due_ms) {
        bool own_refused = false;
        self->later = 0;
        rc = s_read(self, "0", &got, &own_refused);
        if (rc < 0)
            return rc;
        settled += rc;
        //  Read again while whole pages were settled (the next page follows);
        //  what fn refused waits retry_ms; entries in flight are not re-read.
        self->own_pending = got > 0 && (own_refused || self->later == 0);
        if (own_refused)
            self->own_due_ms = now + self->retry_ms;
    }
    if (now >= self->claim_due_ms) {
        rc = s_claim(self, &refused);
        if (rc < 0)
            return rc;
        settled += rc;
        //  Cursor back at 0-0: the whole pending list was scanned; wait.
        if (strcmp(self->claim_cursor, "0-0") == 0)
            self->claim_due_ms = now + self->claim_every_ms;
    }
    rc = s_read(self, ">", &got, &refused);
    if (rc < 0)
        return rc;
    settled += rc;
    if (refused && !self->own_pending) {
        self->own_pending = true;
        self->own_due_ms = now + self->retry_ms;
    }
    return settled;
}

int vz_stream_ack(vz_stream_t *self, const char *id)
{
    int rc = s_ack(self, id);
    if (rc == 0)
        self->stats.settled++;
    return rc;
}

void vz_stream_retry_later(vz_stream_t *self, int64_t now_ms)
{
    self->stats.retried++;
    if (!self->own_pending) {
        self->own_pending = true;
        self->own_due_ms = now_ms + self->retry_ms;
    }
}

long long vz_stream_pending(vz_stream_t *self)
{
    const char *argv[] = {"XPENDING", self->stream, self->group};
    redisReply *r = s_cmd(self, 3, argv);
    if (!r)
        return -EIO;
    long long n = -EPROTO;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

long long vz_stream_backlog(vz_stream_t *self)
{
    const char *argv[] = {"XINFO", "GROUPS", self->stream};
    redisReply *r = s_cmd(self, 3, argv);
    if (!r)
        return -EIO;
    long long n = -ENOENT;
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *info = r->element[g];
        long long pending = 0, lag = 0;
        bool mine = false;
        for (size_t i = 0; info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
            const char *key = info->element[i]->str;
            const redisReply *v = info->element[i + 1];
            if (strcmp(key, "name") == 0 && v->type == REDIS_REPLY_STRING)
                mine = strcmp(v->str, self->group) == 0;
            else if (strcmp(key, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(key, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
        if (mine)
            n = pending + lag;
    }
    freeReplyObject(r);
    return n;
}
