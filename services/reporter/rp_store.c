/*  rp_store - the reporter's state in Redis: lease, fencing token, send records, archive
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_store.h"
#include "vz_redis.h"

#define K_LEASE "{rp}:lease"
#define K_FENCE "{rp}:fence"
#define K_SINCE "{rp}:since"
#define K_INDEX "{rp}:reports"

struct rp_store_t {
    vz_redis_t *redis;          //  own connection
    vz_redis_script_t *take;    //  lease: INCR the fence, SET the lease
    vz_redis_script_t *give;    //  compare and delete
    vz_redis_script_t *archive; //  fenced HSET + ZADD
    vz_redis_script_t *record;  //  fenced SET
};

//  KEYS lease fence; ARGV owner ttl_ms -> token, or 0 when held.
static const char s_take_lua[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                 "local t = redis.call('INCR', KEYS[2])\n"
                                 "redis.call('SET', KEYS[1], t .. '|' .. ARGV[1], 'PX', ARGV[2])\n"
                                 "return t\n";

//  KEYS lease; ARGV "<token>|<owner>".
static const char s_give_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

//  KEYS lease report index; ARGV holder week start json html mail text pdf.
static const char s_archive_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'json', ARGV[4], 'html', ARGV[5], 'mail', ARGV[6],\n"
    "           'text', ARGV[7], 'pdf', ARGV[8])\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])\n"
    "return 1\n";

//  KEYS lease sent; ARGV holder record.
static const char s_record_lua[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                                   "redis.call('SET', KEYS[2], ARGV[2])\n"
                                   "return 1\n";

rp_store_t *rp_store_new(const char *url, int timeout_ms)
{
    vz_redis_t *redis = vz_redis_new(url, timeout_ms, timeout_ms, 500);
    if (!redis)
        return NULL;
    rp_store_t *self = (rp_store_t *)calloc(1, sizeof *self);
    assert(self);
    self->redis = redis;
    self->take = vz_redis_script_new(s_take_lua);
    self->give = vz_redis_script_new(s_give_lua);
    self->archive = vz_redis_script_new(s_archive_lua);
    self->record = vz_redis_script_new(s_record_lua);
    return self;
}

void rp_store_destroy(rp_store_t **self_p)
{
    rp_store_t *self = *self_p;
    if (!self)
        return;
    vz_redis_script_destroy(&self->take);
    vz_redis_script_destroy(&self->give);
    vz_redis_script_destroy(&self->archive);
    vz_redis_script_destroy(&self->record);
    vz_redis_destroy(&self->redis);
    free(self);
    *self_p = NULL;
}

//  A command of NUL-terminated words.
static redisReply *s_cmd(rp_store_t *self, int argc, const char **argv)
{
    size_t lens[8];
    assert(argc <= 8);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return vz_redis_command(self->redis, argc, argv, lens);
}

static bool s_failed(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_ERROR;
}

int rp_store_since(rp_store_t *self, int64_t now_s, int64_t *since)
{
    char now[24];
    snprintf(now, sizeof now, "%" PRId64, now_s);
    redisReply *r = s_cmd(self, 4, (const char *[]){"SET", K_SINCE, now, "NX"});
    bool bad = s_failed(r);
    freeReplyObject(r);
    if (bad)
        return -EIO;
    r = s_cmd(self, 2, (const char *[]){"GET", K_SINCE});
    if (s_failed(r) || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return -EIO;
    }
    *since = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return 0;
}

int rp_store_sent(rp_store_t *self, const char *week)
{
    char key[64];
    snprintf(key, sizeof key, "{rp}:sent:%s", week);
    redisReply *r = s_cmd(self, 2, (const char *[]){"EXISTS", key});
    int rc = s_failed(r) || r->type != REDIS_REPLY_INTEGER ? -EIO : r->integer > 0;
    freeReplyObject(r);
    return rc;
}

//  An integer reply of a script, or -EIO.
static int64_t s_eval_int(rp_store_t *self, vz_redis_script_t *script, int nkeys, const char **keys,
                          int nargs, const char **args)
{
    redisReply *r = vz_redis_eval(self->redis, script, nkeys, keys, nargs, args);
    int64_t rc = s_failed(r) || r->type != REDIS_REPLY_INTEGER ? -EIO : r->integer;
    freeReplyObject(r);
    return rc;
}

int rp_store_lease_take(rp_store_t *self, const char *owner, int ttl_ms, uint64_t *token)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    int64_t t = s_eval_int(self, self->take, 2, (const char *[]){K_LEASE, K_FENCE}, 2,
                           (const char *[]){owner, ttl});
    if (t < 0)
        return -EIO;
    *token = (uint64_t)t;
    return t > 0;
}

static void s_holder(char *out, size_t n, const char *owner, uint64_t token)
{
    snprintf(out, n, "%" PRIu64 "|%s", token, owner);
}

int rp_store_lease_give(rp_store_t *self, const char *owner, uint64_t token)
{
    char holder[160];
    s_holder(holder, sizeof holder, owner, token);
    return s_eval_int(self, self->give, 1, (const char *[]){K_LEASE}, 1, (const char *[]){holder}) <
                   0
               ? -EIO
               : 0;
}

int rp_store_archive(rp_store_t *self, const char *owner, uint64_t token, const char *week,
                     int64_t start_s, const rp_parts_t *parts)
{
    //  The PDF is binary: vz_redis_eval takes C strings, so the script
    //  gets it through a binary-safe EVALSHA built here.
    char holder[160], key[64], start[24];
    s_holder(holder, sizeof holder, owner, token);
    snprintf(key, sizeof key, "{rp}:report:%s", week);
    snprintf(start, sizeof start, "%" PRId64, start_s);
    const char *argv[] = {"EVALSHA",   vz_redis_script_sha(self->archive),
                          "3",         K_LEASE,
                          key,         K_INDEX,
                          holder,      week,
                          start,       parts->json,
                          parts->html, parts->mail,
                          parts->text, (const char *)parts->pdf};
    size_t lens[sizeof argv / sizeof argv[0]];
    size_t n = sizeof argv / sizeof argv[0];
    for (size_t i = 0; i < n - 1; i++)
        lens[i] = strlen(argv[i]);
    lens[n - 1] = parts->pdf_len;
    redisReply *r = vz_redis_command(self->redis, (int)n, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        //  First use on this Redis: load it, then again.
        freeReplyObject(r);
        r = s_cmd(self, 3, (const char *[]){"SCRIPT", "LOAD", s_archive_lua});
        freeReplyObject(r);
        r = vz_redis_command(self->redis, (int)n, argv, lens);
    }
    int rc = s_failed(r) || r->type != REDIS_REPLY_INTEGER ? -EIO : (int)r->integer;
    freeReplyObject(r);
    return rc;
}

int rp_store_record(rp_store_t *self, const char *owner, uint64_t token, const char *week,
                    const char *record)
{
    char holder[160], key[64];
    s_holder(holder, sizeof holder, owner, token);
    snprintf(key, sizeof key, "{rp}:sent:%s", week);
    int64_t rc = s_eval_int(self, self->record, 2, (const char *[]){K_LEASE, key}, 2,
                            (const char *[]){holder, record});
    return rc < 0 ? -EIO : (int)rc;
}

int rp_store_list(rp_store_t *self, size_t limit, vz_json_writer_t *w)
{
    char stop[24];
    snprintf(stop, sizeof stop, "%zu", limit ? limit - 1 : 0);
    redisReply *r = s_cmd(self, 5, (const char *[]){"ZREVRANGE", K_INDEX, "0", stop, "WITHSCORES"});
    if (s_failed(r) || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -EIO;
    }
    vz_json_write_array_begin(w);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *week = r->element[i], *score = r->element[i + 1];
        if (week->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING)
            continue;
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "week", week->str);
        vz_json_write_kv_int(w, "start", strtoll(score->str, NULL, 10));
        char key[64];
        snprintf(key, sizeof key, "{rp}:sent:%.40s", week->str);
        redisReply *sent = s_cmd(self, 2, (const char *[]){"GET", key});
        vz_json_write_key(w, "sent");
        vz_json_t *doc = NULL;
        if (!s_failed(sent) && sent->type == REDIS_REPLY_STRING)
            doc = vz_json_parse(sent->str, sent->len, NULL, NULL);
        if (doc)
            vz_json_write_value(w, vz_json_root(doc));
        else
            vz_json_write_null(w);
        vz_json_destroy(&doc);
        freeReplyObject(sent);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    freeReplyObject(r);
    return 0;
}

char *rp_store_part(rp_store_t *self, const char *week, const char *field, size_t *len, int *rc)
{
    char key[64];
    snprintf(key, sizeof key, "{rp}:report:%s", week);
    redisReply *r = s_cmd(self, 3, (const char *[]){"HGET", key, field});
    if (s_failed(r)) {
        freeReplyObject(r);
        *rc = -EIO;
        return NULL;
    }
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        *rc = -ENOENT;
        return NULL;
    }
    char *out = (char *)malloc(r->len + 1);
    assert(out);
    memcpy(out, r->str, r->len);
    out[r->len] = '\0';
    *len = r->len;
    freeReplyObject(r);
    *rc = 0;
    return out;
}
