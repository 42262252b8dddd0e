/*  nt_outbox - the durable queue in Redis: stream, consumer group, schedule, dead letters
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"

struct nt_scripts_t {
    vz_redis_script_t *enqueue; //  idempotency check + hash + XADD or ZADD
    vz_redis_script_t *promote; //  due schedule -> stream
    vz_redis_script_t *take;    //  mark sending, return the hash
    vz_redis_script_t *finish;  //  ack + delivered | dead | retrying
    vz_redis_script_t *requeue; //  dead letter -> stream
};

//  KEYS: idem, msg, stream, sched. ARGV: id, ttl_s (0 = no key), due_ms
//  (0 = now), field, value, ...
static const char s_lua_enqueue[] =
    "if ARGV[2] ~= '0' then\n"
    "  local prev = redis.call('GET', KEYS[1])\n"
    "  if prev then return {0, prev} end\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))\n"
    "end\n"
    "redis.call('HSET', KEYS[2], unpack(ARGV, 4))\n"
    "if ARGV[3] == '0' then redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])\n"
    "else redis.call('ZADD', KEYS[4], tonumber(ARGV[3]), ARGV[1]) end\n"
    "return {1, ARGV[1]}\n";

//  KEYS: sched, stream. ARGV: now_ms, limit.
static const char s_lua_promote[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "for _, id in ipairs(ids) do\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  redis.call('XADD', KEYS[2], '*', 'id', id)\n"
    "end\n"
    "return #ids\n";

//  KEYS: msg. ARGV: now_ms, alert key prefix. A delayed alert route whose
//  alert is no longer firing is dropped here, atomically with the check.
static const char s_lua_take[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {ok='gone'} end\n"
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st == 'delivered' or st == 'dead' or st == 'dropped' then return {ok='done'} end\n"
    "local cond = redis.call('HGET', KEYS[1], 'cond_alert')\n"
    "if cond and cond ~= '' and redis.call('GET', ARGV[2] .. cond) ~= 'firing' then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'dropped', 'updated_ms', ARGV[1])\n"
    "  return {ok='dropped'}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', 'sending', 'updated_ms', ARGV[1])\n"
    "return redis.call('HGETALL', KEYS[1])\n";

//  KEYS: stream, msg, sched, dead. ARGV: group, entry, status, attempts,
//  error, next_ms, now_ms, id, keep_s.
static const char s_lua_finish[] =
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('XDEL', KEYS[1], ARGV[2])\n"
    "local st = ARGV[3]\n"
    "if st == 'ack' then return 1 end\n"
    "redis.call('HSET', KEYS[2], 'status', st, 'attempts', ARGV[4], 'last_error', ARGV[5], "
    "'updated_ms', ARGV[7])\n"
    "if st == 'retrying' then\n"
    "  redis.call('HSET', KEYS[2], 'next_ms', ARGV[6])\n"
    "  redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[8])\n"
    "elseif st == 'delivered' then\n"
    "  redis.call('HSET', KEYS[2], 'delivered_ms', ARGV[7])\n"
    "  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[9]))\n"
    "elseif st == 'dead' then\n"
    "  local ch = redis.call('HGET', KEYS[2], 'channel') or ''\n"
    "  local e = redis.call('XADD', KEYS[4], '*', 'id', ARGV[8], 'channel', ch, 'error', "
    "ARGV[5], 'at_ms', ARGV[7])\n"
    "  redis.call('HSET', KEYS[2], 'dead_entry', e)\n"
    "end\n"
    "return 1\n";

//  KEYS: msg, dead, stream. ARGV: id, now_ms.
static const char s_lua_requeue[] =
    "if redis.call('HGET', KEYS[1], 'status') ~= 'dead' then return 0 end\n"
    "local e = redis.call('HGET', KEYS[1], 'dead_entry')\n"
    "if e then redis.call('XDEL', KEYS[2], e) end\n"
    "redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', '0', 'updated_ms', ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'dead_entry', 'next_ms')\n"
    "redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])\n"
    "return 1\n";

int nt_outbox_init(nt_t *self)
{
    struct nt_scripts_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->enqueue = vz_redis_script_new(s_lua_enqueue);
    s->promote = vz_redis_script_new(s_lua_promote);
    s->take = vz_redis_script_new(s_lua_take);
    s->finish = vz_redis_script_new(s_lua_finish);
    s->requeue = vz_redis_script_new(s_lua_requeue);
    self->scripts = s;
    if (!s->enqueue || !s->promote || !s->take || !s->finish || !s->requeue)
        abort(); //  out of memory: the sources are constants
    return 0;
}

int nt_outbox_group(nt_t *self)
{
    //  From "0": messages accepted before the first replica ever started count.
    const char *argv[] = {"XGROUP", "CREATE", NT_KEY_STREAM, NT_GROUP, "0", "MKSTREAM"};
    redisReply *r = vz_redis_command(self->redis, 6, argv, NULL);
    bool ok = r && (r->type != REDIS_REPLY_ERROR || strstr(r->str, "BUSYGROUP"));
    if (r)
        freeReplyObject(r);
    self->group_ready = ok;
    return ok ? 0 : -EIO;
}

void nt_outbox_fini(nt_t *self)
{
    struct nt_scripts_t *s = self->scripts;
    if (!s)
        return;
    vz_redis_script_destroy(&s->enqueue);
    vz_redis_script_destroy(&s->promote);
    vz_redis_script_destroy(&s->take);
    vz_redis_script_destroy(&s->finish);
    vz_redis_script_destroy(&s->requeue);
    free(s);
    self->scripts = NULL;
}

//  r, or NULL when Redis did not answer or answered an error (then freed).
static redisReply *s_ok(redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

//  Frees r: 0, or -EIO when Redis did not answer or answered an error.
static int s_done(redisReply *r)
{
    r = s_ok(r);
    if (!r)
        return -EIO;
    freeReplyObject(r);
    return 0;
}

//  Frees r: its integer, or -EIO when it is no integer reply.
static int s_integer(redisReply *r)
{
    r = s_ok(r);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}

int nt_outbox_enqueue(nt_t *self, const char *id, const char *idem_key, int64_t due_ms,
                      const nt_field_t *fields, size_t count, char *existing, size_t n)
{
    char idem[256], msg[64], ttl[16], due[24];
    snprintf(idem, sizeof idem, NT_KEY_IDEM "%s", idem_key ? idem_key : "");
    snprintf(msg, sizeof msg, NT_KEY_MSG "%s", id);
    snprintf(ttl, sizeof ttl, "%d", idem_key ? self->config.idem_ttl_s : 0);
    snprintf(due, sizeof due, "%lld", (long long)due_ms);
    const char *keys[] = {idem, msg, NT_KEY_STREAM, NT_KEY_SCHED};
    size_t nargs = 3 + 2 * count;
    const char **args = calloc(nargs, sizeof *args);
    if (!args)
        abort();
    args[0] = id, args[1] = ttl, args[2] = due;
    for (size_t i = 0; i < count; i++) {
        args[3 + 2 * i] = fields[i].field;
        args[4 + 2 * i] = fields[i].value;
    }
    redisReply *r =
        s_ok(vz_redis_eval(self->redis, self->scripts->enqueue, 4, keys, (int)nargs, args));
    free(args);
    int rc = -EIO;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        rc = r->element[0]->integer == 1 ? 1 : 0;
        vz_strlcpy(existing, r->element[1]->str, n);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int nt_outbox_promote(nt_t *self, int64_t now_ms)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *keys[] = {NT_KEY_SCHED, NT_KEY_STREAM};
    const char *args[] = {now, "100"};
    return s_integer(vz_redis_eval(self->redis, self->scripts->promote, 2, keys, 2, args));
}

//  Entries of a stream reply ([[entry, [field, value, ...]], ...]) into out.
static size_t s_entries(const redisReply *list, nt_entry_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements && n < max;
         i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *kv = e->element[1];
        vz_strlcpy(out[n].entry, e->element[0]->str, sizeof out[n].entry);
        out[n].id[0] = '\0';
        //  A deleted entry still pending shows as nil fields: ack it as "gone".
        for (size_t j = 0; kv->type == REDIS_REPLY_ARRAY && j + 1 < kv->elements; j += 2)
            if (kv->element[j]->type == REDIS_REPLY_STRING &&
                strcmp(kv->element[j]->str, "id") == 0 &&
                kv->element[j + 1]->type == REDIS_REPLY_STRING)
                vz_strlcpy(out[n].id, kv->element[j + 1]->str, sizeof out[n].id);
        n++;
    }
    return n;
}

int nt_outbox_read(nt_t *self, nt_entry_t *out, size_t max)
{
    char count[16];
    snprintf(count, sizeof count, "%zu", max);
    const char *argv[] = {"XREADGROUP", "GROUP",       NT_GROUP, self->consumer, "COUNT", count,
                          "STREAMS",    NT_KEY_STREAM, ">"};
    redisReply *r = s_ok(vz_redis_command(self->redis, 9, argv, NULL));
    if (!r)
        return -EIO;
    size_t n = 0;
    //  [[stream, entries]] or nil when nothing is new.
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
        n = s_entries(r->element[0]->element[1], out, max);
    freeReplyObject(r);
    return (int)n;
}

int nt_outbox_claim(nt_t *self, nt_entry_t *out, size_t max)
{
    char idle[16], count[16];
    snprintf(idle, sizeof idle, "%d", self->config.claim_ms);
    snprintf(count, sizeof count, "%zu", max);
    const char *argv[] = {"XAUTOCLAIM", NT_KEY_STREAM, NT_GROUP, self->consumer,
                          idle,         "0-0",         "COUNT",  count};
    redisReply *r = s_ok(vz_redis_command(self->redis, 8, argv, NULL));
    if (!r)
        return -EIO;
    size_t n = 0;
    //  [next-cursor, entries, deleted-ids] (Redis 7).
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2)
        n = s_entries(r->element[1], out, max);
    freeReplyObject(r);
    return (int)n;
}

int nt_outbox_touch(nt_t *self, const char *const *entries, size_t count)
{
    if (count == 0)
        return 0;
    const char **argv = calloc(count + 7, sizeof *argv);
    if (!argv)
        abort();
    size_t n = 0;
    argv[n++] = "XCLAIM", argv[n++] = NT_KEY_STREAM, argv[n++] = NT_GROUP;
    argv[n++] = self->consumer, argv[n++] = "0";
    for (size_t i = 0; i < count; i++)
        argv[n++] = entries[i];
    argv[n++] = "JUSTID";
    int rc = s_done(vz_redis_command(self->redis, (int)n, argv, NULL));
    free(argv);
    return rc;
}

redisReply *nt_outbox_take(nt_t *self, const char *id, int64_t now_ms)
{
    char msg[64], now[24];
    snprintf(msg, sizeof msg, NT_KEY_MSG "%s", id);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *keys[] = {msg};
    const char *args[] = {now, NT_KEY_ALERT};
    return s_ok(vz_redis_eval(self->redis, self->scripts->take, 1, keys, 2, args));
}

int nt_outbox_finish(nt_t *self, const nt_entry_t *entry, const char *status, int attempts,
                     const char *error, int64_t next_ms, int64_t now_ms)
{
    char msg[64], att[16], next[24], now[24], keep[16];
    snprintf(msg, sizeof msg, NT_KEY_MSG "%s", entry->id);
    snprintf(att, sizeof att, "%d", attempts);
    snprintf(next, sizeof next, "%lld", (long long)next_ms);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(keep, sizeof keep, "%d", self->config.idem_ttl_s);
    const char *keys[] = {NT_KEY_STREAM, msg, NT_KEY_SCHED, NT_KEY_DEAD};
    const char *args[] = {NT_GROUP, entry->entry, status,    att, error ? error : "",
                          next,     now,          entry->id, keep};
    return s_done(vz_redis_eval(self->redis, self->scripts->finish, 4, keys, 9, args));
}

int nt_outbox_requeue(nt_t *self, const char *id, int64_t now_ms)
{
    char msg[64], now[24];
    snprintf(msg, sizeof msg, NT_KEY_MSG "%s", id);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *keys[] = {msg, NT_KEY_DEAD, NT_KEY_STREAM};
    const char *args[] = {id, now};
    return s_integer(vz_redis_eval(self->redis, self->scripts->requeue, 3, keys, 2, args));
}

int64_t nt_outbox_oldest(nt_t *self, int64_t now_ms)
{
    //  The group's pending summary gives the oldest unacknowledged entry;
    //  entries not read yet are younger than the stream's first entry.
    const char *argv[] = {"XRANGE", NT_KEY_STREAM, "-", "+", "COUNT", "1"};
    redisReply *r = s_ok(vz_redis_command(self->redis, 6, argv, NULL));
    if (!r)
        return -EIO;
    int64_t age = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
        r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        long long ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
        age = now_ms > ms ? now_ms - ms : 0;
    }
    freeReplyObject(r);
    return age;
}
