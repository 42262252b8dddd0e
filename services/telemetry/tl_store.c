/*  tl_store - the sink's working state in Redis, shared by its replicas
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "tl_store.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"

#define S_MINUTE 60
#define S_HOUR 3600
#define S_DAY 86400
#define S_DAU_TTL (35 * S_DAY) //  a month of days, and margin
#define S_WEEK (7 * S_DAY)
#define S_ERR_TTL (15 * S_DAY)      //  this week's and last week's rankings
#define S_SLO_FINE_MAX (6 * S_HOUR) //  longest SLO window read from minutes
#define S_NUM 24                    //  bytes of a number as text

//  KEYS: the hashes to add into; ARGV: one TTL per key, then field,
//  increment pairs ("s" is a float sum).
static const char s_add_lua[] =
    "local n = #KEYS\n"
    "for k = 1, n do\n"
    "  for i = n + 1, #ARGV, 2 do\n"
    "    if ARGV[i] == 's' then redis.call('HINCRBYFLOAT', KEYS[k], 's', ARGV[i + 1])\n"
    "    else redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]) end\n"
    "  end\n"
    "  redis.call('EXPIRE', KEYS[k], ARGV[k])\n"
    "end\n"
    "return 1\n";

//  KEYS: {tl}:idx, {tl}:svc, {tl}:sat:<svc>, {tl}:tot:<svc>, {tl}:vidx; ARGV: service,
//  replica, saturation JSON, received, lost, dropped, TTL, the vidx member ("" = none),
//  then idx members.
static const char s_meta_lua[] = "redis.call('SADD', KEYS[2], ARGV[1])\n"
                                 "if ARGV[8] ~= '' then redis.call('SADD', KEYS[5], ARGV[8]) end\n"
                                 "redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])\n"
                                 "redis.call('EXPIRE', KEYS[3], ARGV[7])\n"
                                 "redis.call('HINCRBY', KEYS[4], 'received', ARGV[4])\n"
                                 "redis.call('HINCRBY', KEYS[4], 'lost', ARGV[5])\n"
                                 "redis.call('HINCRBY', KEYS[4], 'snapshots', 1)\n"
                                 "redis.call('HSET', KEYS[4], 'dropped:' .. ARGV[2], ARGV[6])\n"
                                 "for i = 9, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end\n"
                                 "return 1\n";

//  KEYS: the day's HyperLogLog and its calls per user (sorted set); ARGV:
//  TTL, then user, calls pairs.
static const char s_users_lua[] =
    "for i = 2, #ARGV, 2 do\n"
    "  redis.call('PFADD', KEYS[1], ARGV[i])\n"
    "  if tonumber(ARGV[i + 1]) > 0 then redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i]) end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[1])\n"
    "return 1\n";

//  KEYS: the days' calls per user; ARGV: how many to return: the top
//  users over the days, flat user, calls, most first.
static const char s_top_users_lua[] =
    "local cmd = {'ZUNION', #KEYS}\n"
    "for i = 1, #KEYS do cmd[#cmd + 1] = KEYS[i] end\n"
    "cmd[#cmd + 1] = 'WITHSCORES'\n"
    "local all = redis.call(unpack(cmd))\n"
    "local rows = {}\n"
    "for i = 1, #all, 2 do rows[#rows + 1] = {all[i], tonumber(all[i + 1])} end\n"
    "table.sort(rows, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)\n"
    "local out = {}\n"
    "for i = 1, math.min(#rows, tonumber(ARGV[1])) do\n"
    "  out[#out + 1] = rows[i][1]\n"
    "  out[#out + 1] = tostring(rows[i][2])\n"
    "end\n"
    "return out\n";

//  KEYS: the week's error ranking, first-seen and last-seen hashes, the
//  prefix of the services per code ({tl}:err:svc:<code>); ARGV: TTL, now,
//  service, then code, count pairs.
static const char s_errors_lua[] = "for i = 4, #ARGV, 2 do\n"
                                   "  local code = ARGV[i]\n"
                                   "  redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], code)\n"
                                   "  redis.call('HSETNX', KEYS[2], code, ARGV[2])\n"
                                   "  redis.call('HSET', KEYS[3], code, ARGV[2])\n"
                                   "  redis.call('SADD', KEYS[4] .. code, ARGV[3])\n"
                                   "  redis.call('EXPIRE', KEYS[4] .. code, ARGV[1])\n"
                                   "end\n"
                                   "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
                                   "return 1\n";

//  ARGV: key prefix, first and last index: the hashes prefix..i merged,
//  as a flat field, value list.
static const char s_sum_lua[] = "local acc, order = {}, {}\n"
                                "for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do\n"
                                "  local kv = redis.call('HGETALL', ARGV[1] .. i)\n"
                                "  for j = 1, #kv, 2 do\n"
                                "    local f = kv[j]\n"
                                "    if acc[f] == nil then acc[f] = 0; order[#order + 1] = f end\n"
                                "    acc[f] = acc[f] + tonumber(kv[j + 1])\n"
                                "  end\n"
                                "end\n"
                                "local out = {}\n"
                                "for _, f in ipairs(order) do\n"
                                "  out[#out + 1] = f\n"
                                "  out[#out + 1] = string.format('%.17g', acc[f])\n"
                                "end\n"
                                "return out\n";

//  KEYS: {tl}:pid:<svc>, {tl}:deploys; ARGV: service, replica, pid, now. A new
//  pid for a replica is a (re)start: recorded as a deploy, the last 20 kept.
static const char s_deploy_lua[] =
    "if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then\n"
    "  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])\n"
    "  redis.call('LPUSH', KEYS[2], cjson.encode({service = ARGV[1], replica = "
    "tonumber(ARGV[2]), pid = tonumber(ARGV[3]), t = tonumber(ARGV[4])}))\n"
    "  redis.call('LTRIM', KEYS[2], 0, 19)\n"
    "end\n"
    "return 1\n";

//  ARGV: key prefix, first and last index: per index the fields n and e of
//  the hash prefix..i (0 when absent), flat.
static const char s_chart_lua[] = "local out = {}\n"
                                  "for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do\n"
                                  "  local v = redis.call('HMGET', ARGV[1] .. i, 'n', 'e')\n"
                                  "  out[#out + 1] = tonumber(v[1] or '0')\n"
                                  "  out[#out + 1] = tonumber(v[2] or '0')\n"
                                  "end\n"
                                  "return out\n";

//  ARGV: key prefix, first and last index, field: per index the field of
//  the hash prefix..i, -1 when the hash is absent.
static const char s_field_lua[] =
    "local out = {}\n"
    "for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do\n"
    "  local key = ARGV[1] .. i\n"
    "  if redis.call('EXISTS', key) == 1 then\n"
    "    out[#out + 1] = tonumber(redis.call('HGET', key, ARGV[4]) or '0')\n"
    "  else out[#out + 1] = -1 end\n"
    "end\n"
    "return out\n";

struct tl_store_t {
    vz_redis_t *redis;         //  borrowed
    tl_store_config_t config;  //  retention
    vz_redis_script_t *add;    //  s_add_lua
    vz_redis_script_t *meta;   //  s_meta_lua
    vz_redis_script_t *sum;    //  s_sum_lua
    vz_redis_script_t *users;  //  s_users_lua
    vz_redis_script_t *errors; //  s_errors_lua
    vz_redis_script_t *deploy; //  s_deploy_lua
    vz_redis_script_t *chart;  //  s_chart_lua
    vz_redis_script_t *field;  //  s_field_lua
    vz_redis_script_t *top;    //  s_top_users_lua
};

//  The strings of one script call; everything is freed with the batch.
typedef struct {
    vz_redis_script_t *script; //  which script
    const char *keys[5];       //  KEYS
    int nkeys;                 //  used
    const char **args;         //  ARGV (heap)
    int nargs;                 //  used
    int cap;                   //  room in args
} s_call_t;

//  Owned strings of a batch.
typedef struct {
    zlist_t *owned; //  char * freed at the end
} s_arena_t;

static const char *s_str(s_arena_t *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = zsys_vprintf(fmt, ap);
    va_end(ap);
    assert(text);
    zlist_append(arena->owned, text);
    return text;
}

static void s_arg(s_call_t *call, const char *arg)
{
    if (call->nargs == call->cap) {
        call->cap = call->cap ? call->cap * 2 : 16;
        call->args = (const char **)realloc(call->args, (size_t)call->cap * sizeof(char *));
        assert(call->args);
    }
    call->args[call->nargs++] = arg;
}

//  One series as field, value pairs: n, s, c:<code> and b:<bin>.
static void s_series_args(s_call_t *call, s_arena_t *arena, const vz_tl_series_t *row)
{
    s_arg(call, "n");
    s_arg(call, s_str(arena, "%llu", (unsigned long long)row->count));
    s_arg(call, "s");
    s_arg(call, s_str(arena, "%.17g", row->sum_us));
    for (size_t c = 0; c < row->ncodes; c++) {
        s_arg(call, s_str(arena, "c:%s", row->codes[c].name));
        s_arg(call, s_str(arena, "%llu", (unsigned long long)row->codes[c].count));
    }
    for (size_t b = 0; b < row->nbins; b++) {
        s_arg(call, s_str(arena, "b:%u", row->bin[b]));
        s_arg(call, s_str(arena, "%u", row->bin_count[b]));
    }
}

tl_store_t *tl_store_new(vz_redis_t *redis, const tl_store_config_t *config)
{
    assert(redis && config);
    tl_store_t *self = (tl_store_t *)zmalloc(sizeof *self);
    assert(self);
    self->redis = redis;
    self->config = *config;
    self->add = vz_redis_script_new(s_add_lua);
    self->meta = vz_redis_script_new(s_meta_lua);
    self->sum = vz_redis_script_new(s_sum_lua);
    self->users = vz_redis_script_new(s_users_lua);
    self->errors = vz_redis_script_new(s_errors_lua);
    self->deploy = vz_redis_script_new(s_deploy_lua);
    self->chart = vz_redis_script_new(s_chart_lua);
    self->field = vz_redis_script_new(s_field_lua);
    self->top = vz_redis_script_new(s_top_users_lua);
    assert(self->add && self->meta && self->sum && self->users && self->errors && self->deploy &&
           self->chart && self->field && self->top);
    return self;
}

void tl_store_destroy(tl_store_t **self_p)
{
    assert(self_p);
    tl_store_t *self = *self_p;
    if (self) {
        vz_redis_script_destroy(&self->add);
        vz_redis_script_destroy(&self->meta);
        vz_redis_script_destroy(&self->sum);
        vz_redis_script_destroy(&self->users);
        vz_redis_script_destroy(&self->errors);
        vz_redis_script_destroy(&self->deploy);
        vz_redis_script_destroy(&self->chart);
        vz_redis_script_destroy(&self->field);
        vz_redis_script_destroy(&self->top);
        free(self);
        *self_p = NULL;
    }
}

//  Requests of row that slo counts as bad.
static uint64_t s_bad(const tl_slo_t *slo, const vz_tl_series_t *row)
{
    uint64_t bad = 0;
    if (slo->kind == TL_SLO_AVAILABILITY) {
        for (size_t c = 0; c < row->ncodes; c++)
            if (tl_code_bad(row->codes[c].name))
                bad += row->codes[c].count;
    } else {
        int limit = vz_tl_bin((double)slo->threshold_us);
        for (size_t b = 0; b < row->nbins; b++)
            if (row->bin[b] > limit)
                bad += row->bin_count[b];
    }
    return bad;
}

int tl_store_ingest(tl_store_t *self, const vz_tl_snapshot_t *snap, const tl_slo_config_t *slos,
                    int64_t now_s)
{
    assert(self && snap && slos);
    int64_t minute = now_s / S_MINUTE, hour = now_s / S_HOUR;
    const char *fine = NULL, *coarse = NULL;
    s_arena_t arena = {zlist_new()};
    fine = s_str(&arena, "%lld", (long long)self->config.fine_ttl_s);
    coarse = s_str(&arena, "%lld", (long long)self->config.coarse_ttl_s);
    //  One call per series, one per (series, SLO) match, one for the rest,
    //  one for the users, one for the business events, one for the errors,
    //  one for the version.
    size_t max = snap->nseries * (1 + slos->count) + 7;
    s_call_t *calls = (s_call_t *)calloc(max, sizeof *calls);
    vz_redis_call_t *batch = (vz_redis_call_t *)calloc(max, sizeof *batch);
    assert(calls && batch);
    size_t n = 0;
    uint64_t received = 0;
    s_call_t *meta = &calls[n++];
    meta->script = self->meta;
    for (size_t i = 0; i < snap->nseries; i++) {
        const vz_tl_series_t *row = &snap->series[i];
        received += row->count;
        s_call_t *call = &calls[n++];
        call->script = self->add;
        call->keys[0] =
            s_str(&arena, "{tl}:s:%s|%s:m:%lld", snap->service, row->name, (long long)minute);
        call->keys[1] =
            s_str(&arena, "{tl}:s:%s|%s:h:%lld", snap->service, row->name, (long long)hour);
        call->nkeys = 2;
        s_arg(call, fine);
        s_arg(call, coarse);
        s_series_args(call, &arena, row);
        for (size_t k = 0; k < slos->count; k++) {
            const tl_slo_t *slo = &slos->slo[k];
            if (!tl_slo_matches(slo, snap->service, row->name))
                continue;
            s_call_t *sc = &calls[n++];
            sc->script = self->add;
            sc->keys[0] = s_str(&arena, "{tl}:slo:%s:m:%lld", slo->name, (long long)minute);
            sc->keys[1] = s_str(&arena, "{tl}:slo:%s:h:%lld", slo->name, (long long)hour);
            sc->nkeys = 2;
            s_arg(sc, fine);
            //  The budget window reads hours: keep them for all of it.
            s_arg(sc, s_str(&arena, "%lld", (long long)(slo->window_s + 2 * S_HOUR)));
            s_arg(sc, "n");
            s_arg(sc, s_str(&arena, "%llu", (unsigned long long)row->count));
            s_arg(sc, "b");
            s_arg(sc, s_str(&arena, "%llu", (unsigned long long)s_bad(slo, row)));
        }
    }
    meta->keys[0] = "{tl}:idx";
    meta->keys[1] = "{tl}:svc";
    meta->keys[2] = s_str(&arena, "{tl}:sat:%s", snap->service);
    meta->keys[3] = s_str(&arena, "{tl}:tot:%s", snap->service);
    meta->keys[4] = "{tl}:vidx";
    meta->nkeys = 5;
    s_arg(meta, snap->service);
    s_arg(meta, s_str(&arena, "%lld", (long long)snap->replica));
    s_arg(meta, s_str(&arena, "{\"cpu\":%.6g,\"rss\":%llu,\"fds\":%lld,\"t\":%lld}", snap->cpu,
                      (unsigned long long)snap->rss, (long long)snap->fds, (long long)now_s));
    s_arg(meta, s_str(&arena, "%llu", (unsigned long long)received));
    s_arg(meta, s_str(&arena, "%llu", (unsigned long long)snap->lost));
    s_arg(meta, s_str(&arena, "%llu", (unsigned long long)snap->dropped));
    s_arg(meta, coarse);
    s_arg(meta, *snap->version ? s_str(&arena, "%s|%s", snap->service, snap->version) : "");
    for (size_t i = 0; i < snap->nseries; i++)
        s_arg(meta, s_str(&arena, "%s|%s", snap->service, snap->series[i].name));
    //  The version's requests: every series added into one hash (HINCRBY
    //  adds a field named twice twice), the rollout's gates per version.
    if (*snap->version && snap->nseries) {
        s_call_t *ver = &calls[n++];
        ver->script = self->add;
        ver->keys[0] =
            s_str(&arena, "{tl}:v:%s|%s:m:%lld", snap->service, snap->version, (long long)minute);
        ver->keys[1] =
            s_str(&arena, "{tl}:v:%s|%s:h:%lld", snap->service, snap->version, (long long)hour);
        ver->nkeys = 2;
        s_arg(ver, fine);
        s_arg(ver, coarse);
        for (size_t i = 0; i < snap->nseries; i++) {
            const vz_tl_series_t *row = &snap->series[i];
            s_series_args(ver, &arena, row);
        }
    }

    if (snap->nusers) {
        s_call_t *users = &calls[n++];
        users->script = self->users;
        users->keys[0] = s_str(&arena, "{tl}:dau:%lld", (long long)(now_s / S_DAY));
        users->keys[1] = s_str(&arena, "{tl}:uc:d:%lld", (long long)(now_s / S_DAY));
        users->nkeys = 2;
        s_arg(users, s_str(&arena, "%d", S_DAU_TTL));
        for (size_t i = 0; i < snap->nusers; i++) {
            s_arg(users, snap->users[i]);
            s_arg(users, s_str(&arena, "%llu", (unsigned long long)snap->user_calls[i]));
        }
    }
    //  The service's per-minute requests and errors (the status page's
    //  charts), and its deploys.
    uint64_t errors = 0;
    for (size_t i = 0; i < snap->nseries; i++)
        for (size_t c = 0; c < snap->series[i].ncodes; c++)
            if (tl_code_error(snap->series[i].codes[c].name))
                errors += snap->series[i].codes[c].count;
    s_call_t *chart = &calls[n++];
    chart->script = self->add;
    chart->keys[0] = s_str(&arena, "{tl}:sm:%s:m:%lld", snap->service, (long long)minute);
    chart->nkeys = 1;
    s_arg(chart, s_str(&arena, "%d", 2 * S_HOUR));
    s_arg(chart, "n");
    s_arg(chart, s_str(&arena, "%llu", (unsigned long long)received));
    s_arg(chart, "e");
    s_arg(chart, s_str(&arena, "%llu", (unsigned long long)errors));
    s_call_t *deploy = &calls[n++];
    deploy->script = self->deploy;
    deploy->keys[0] = s_str(&arena, "{tl}:pid:%s", snap->service);
    deploy->keys[1] = "{tl}:deploys";
    deploy->nkeys = 2;
    s_arg(deploy, snap->service);
    s_arg(deploy, s_str(&arena, "%lld", (long long)snap->replica));
    s_arg(deploy, s_str(&arena, "%lld", (long long)snap->pid));
    s_arg(deploy, s_str(&arena, "%lld", (long long)now_s));
    if (snap->nevents) {
        s_call_t *events = &calls[n++];
        events->script = self->add;
        events->keys[0] = s_str(&arena, "{tl}:ev:d:%lld", (long long)(now_s / S_DAY));
        events->nkeys = 1;
        s_arg(events, s_str(&arena, "%d", S_DAU_TTL));
        for (size_t i = 0; i < snap->nevents; i++) {
            s_arg(events, snap->events[i].name);
            s_arg(events, s_str(&arena, "%llu", (unsigned long long)snap->events[i].count));
        }
    }
    s_call_t *errs = &calls[n];
    errs->script = self->errors;
    errs->keys[0] = s_str(&arena, "{tl}:err:w:%lld", (long long)(now_s / S_WEEK));
    errs->keys[1] = "{tl}:err:first";
    errs->keys[2] = "{tl}:err:last";
    errs->keys[3] = "{tl}:err:svc:";
    errs->nkeys = 4;
    s_arg(errs, s_str(&arena, "%d", S_ERR_TTL));
    s_arg(errs, s_str(&arena, "%lld", (long long)now_s));
    s_arg(errs, snap->service);
    for (size_t i = 0; i < snap->nseries; i++)
        for (size_t c = 0; c < snap->series[i].ncodes; c++) {
            const vz_tl_code_count_t *code = &snap->series[i].codes[c];
            if (tl_code_error(code->name) && code->count) {
                s_arg(errs, code->name);
                s_arg(errs, s_str(&arena, "%llu", (unsigned long long)code->count));
            }
        }
    if (errs->nargs > 3)
        n++;
    for (size_t i = 0; i < n; i++)
        batch[i] = (vz_redis_call_t){.script = calls[i].script,
                                     .nkeys = calls[i].nkeys,
                                     .keys = calls[i].keys,
                                     .nargs = calls[i].nargs,
                                     .args = calls[i].args};
    int rc = vz_redis_eval_batch(self->redis, batch, n);
    for (size_t i = 0; i < n; i++) {
        if (!batch[i].reply || batch[i].reply->type == REDIS_REPLY_ERROR)
            rc = -EIO;
        if (batch[i].reply)
            freeReplyObject(batch[i].reply);
    }
    //  Every row, sent or not (the errors row is built before it is known
    //  to have any).
    for (size_t i = 0; i < max; i++)
        free(calls[i].args);
    free(batch);
    free(calls);
    char *text;
    while ((text = (char *)zlist_pop(arena.owned)))
        zstr_free(&text);
    zlist_destroy(&arena.owned);
    return rc < 0 ? -EIO : 0;
}

//  Merged fields of prefix<first..last> (freeReplyObject), or NULL.
static redisReply *s_sum(tl_store_t *self, const char *prefix, int64_t first, int64_t last)
{
    char a[S_NUM], b[S_NUM];
    snprintf(a, sizeof a, "%lld", (long long)first);
    snprintf(b, sizeof b, "%lld", (long long)last);
    const char *args[] = {prefix, a, b};
    redisReply *reply = vz_redis_eval(self->redis, self->sum, 1, args, 3, args);
    if (reply && (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2)) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

//  The key suffix and index range of [from_s, to_s) at a granularity.
static void s_range(int64_t from_s, int64_t to_s, int64_t unit, int64_t *first, int64_t *last)
{
    *first = from_s / unit;
    *last = (to_s - 1) / unit;
}

//  The hashes of every member "service|name" of the set idx, under
//  {tl}:<kind>:<member>:m|h:<index>, merged over [from_s, to_s).
static int s_merge(tl_store_t *self, const char *idx, char kind, const char *service,
                   int64_t from_s, int64_t to_s, tl_merged_fn *fn, void *arg)
{
    assert(self && fn && to_s > from_s);
    const char *argv[] = {"SMEMBERS", idx};
    redisReply *members = vz_redis_command(self->redis, 2, argv, NULL);
    if (!members || members->type != REDIS_REPLY_ARRAY) {
        if (members)
            freeReplyObject(members);
        return -EIO;
    }
    bool fine = to_s - from_s <= self->config.fine_ttl_s;
    int64_t unit = fine ? S_MINUTE : S_HOUR, first, last;
    s_range(from_s, to_s, unit, &first, &last);
    tl_merged_t *merged = (tl_merged_t *)malloc(sizeof *merged);
    assert(merged);
    int rc = 0;
    for (size_t i = 0; i < members->elements && rc == 0; i++) {
        const char *member = members->element[i]->str;
        const char *bar = member ? strchr(member, '|') : NULL;
        if (!bar || (size_t)(bar - member) >= sizeof merged->service ||
            strlen(bar + 1) >= sizeof merged->name)
            continue;
        memset(merged, 0, sizeof *merged);
        memcpy(merged->service, member, (size_t)(bar - member));
        vz_strlcpy(merged->name, bar + 1, sizeof merged->name);
        if (service && strcmp(service, merged->service) != 0)
            continue;
        char prefix[2 * VZ_TL_NAME_MAX + 16];
        snprintf(prefix, sizeof prefix, "{tl}:%c:%s:%c:", kind, member, fine ? 'm' : 'h');
        redisReply *fields = s_sum(self, prefix, first, last);
        if (!fields) {
            rc = -EIO;
            break;
        }
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
            const char *field = fields->element[f]->str;
            double value = strtod(fields->element[f + 1]->str, NULL);
            if (!field || value < 0)
                continue;
            if (strcmp(field, "n") == 0)
                merged->hist.count = (uint64_t)value;
            else if (strcmp(field, "s") == 0)
                merged->hist.sum_us = value;
            else if (strncmp(field, "b:", 2) == 0) {
                long bin = strtol(field + 2, NULL, 10);
                if (bin >= 0 && bin < VZ_TL_BINS)
                    merged->hist.bins[bin] = (uint32_t)value;
            } else if (strncmp(field, "c:", 2) == 0 && merged->ncodes < VZ_TL_CODES) {
                vz_tl_code_count_t *code = &merged->codes[merged->ncodes++];
                vz_strlcpy(code->name, field + 2, sizeof code->name);
                code->count = (uint64_t)value;
            }
        }
        freeReplyObject(fields);
        //  A series with nothing in the window is left out.
        if (merged->hist.count)
            fn(arg, merged);
    }
    free(merged);
    freeReplyObject(members);
    return rc;
}

int tl_store_series(tl_store_t *self, const char *service, int64_t from_s, int64_t to_s,
                    tl_merged_fn *fn, void *arg)
{
    return s_merge(self, "{tl}:idx", 's', service, from_s, to_s, fn, arg);
}

int tl_store_versions(tl_store_t *self, const char *service, int64_t from_s, int64_t to_s,
                      tl_merged_fn *fn, void *arg)
{
    return s_merge(self, "{tl}:vidx", 'v', service, from_s, to_s, fn, arg);
}

int tl_store_slo_counts(void *arg, const tl_slo_t *slo, int64_t from_s, int64_t to_s,
                        tl_counts_t *out)
{
    tl_store_t *self = (tl_store_t *)arg;
    assert(self && slo && out);
    out->total = out->bad = 0;
    if (to_s <= from_s)
        return 0;
    bool fine = to_s - from_s <= S_SLO_FINE_MAX;
    int64_t first, last;
    s_range(from_s, to_s, fine ? S_MINUTE : S_HOUR, &first, &last);
    char prefix[TL_SLO_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, "{tl}:slo:%s:%c:", slo->name, fine ? 'm' : 'h');
    redisReply *fields = s_sum(self, prefix, first, last);
    if (!fields)
        return -EIO;
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
        const char *field = fields->element[f]->str;
        uint64_t value = strtoull(fields->element[f + 1]->str, NULL, 10);
        if (field && strcmp(field, "n") == 0)
            out->total = value;
        else if (field && strcmp(field, "b") == 0)
            out->bad = value;
    }
    freeReplyObject(fields);
    return 0;
}

//  HGETALL prefix<service>: an array reply (freeReplyObject) or NULL.
static redisReply *s_hgetall(tl_store_t *self, const char *prefix, const char *service)
{
    char key[VZ_TL_NAME_MAX + 16];
    snprintf(key, sizeof key, "%s%s", prefix, service);
    const char *argv[] = {"HGETALL", key};
    redisReply *reply = vz_redis_command(self->redis, 2, argv, NULL);
    if (reply && reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

//  PFCOUNT of the days days ending with day.
static int s_pfcount(tl_store_t *self, int64_t day, int days, uint64_t *out)
{
    const char *argv[1 + 30];
    char keys[30][32];
    argv[0] = "PFCOUNT";
    for (int i = 0; i < days; i++) {
        snprintf(keys[i], sizeof keys[i], "{tl}:dau:%lld", (long long)(day - i));
        argv[1 + i] = keys[i];
    }
    redisReply *reply = vz_redis_command(self->redis, 1 + days, argv, NULL);
    int rc = reply && reply->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
    if (rc == 0)
        *out = (uint64_t)reply->integer;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int tl_store_chart(tl_store_t *self, const char *service, int64_t now_s, uint64_t *n, uint64_t *e,
                   int minutes)
{
    assert(self && service && n && e && minutes > 0);
    char prefix[VZ_TL_NAME_MAX + 16], a[S_NUM], b[S_NUM];
    snprintf(prefix, sizeof prefix, "{tl}:sm:%s:m:", service);
    snprintf(a, sizeof a, "%lld", (long long)(now_s / S_MINUTE - minutes + 1));
    snprintf(b, sizeof b, "%lld", (long long)(now_s / S_MINUTE));
    const char *args[] = {prefix, a, b};
    redisReply *reply = vz_redis_eval(self->redis, self->chart, 1, args, 3, args);
    int rc = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 * (size_t)minutes
                 ? 0
                 : -EIO;
    for (int i = 0; rc == 0 && i < minutes; i++) {
        n[i] = (uint64_t)reply->element[2 * i]->integer;
        e[i] = (uint64_t)reply->element[2 * i + 1]->integer;
    }
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int tl_store_field_range(tl_store_t *self, const char *prefix, int64_t first, int64_t last,
                         const char *field, int64_t *out)
{
    assert(self && prefix && field && out && last >= first);
    char a[S_NUM], b[S_NUM];
    snprintf(a, sizeof a, "%lld", (long long)first);
    snprintf(b, sizeof b, "%lld", (long long)last);
    const char *args[] = {prefix, a, b, field};
    redisReply *reply = vz_redis_eval(self->redis, self->field, 1, args, 4, args);
    size_t n = (size_t)(last - first + 1);
    int rc = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == n ? 0 : -EIO;
    for (size_t i = 0; rc == 0 && i < n; i++)
        out[i] = reply->element[i]->integer;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

zlist_t *tl_store_series_names(tl_store_t *self)
{
    assert(self);
    const char *argv[] = {"SMEMBERS", "{tl}:idx"};
    redisReply *members = vz_redis_command(self->redis, 2, argv, NULL);
    if (!members || members->type != REDIS_REPLY_ARRAY) {
        if (members)
            freeReplyObject(members);
        return NULL;
    }
    zlist_t *list = zlist_new();
    zlist_autofree(list);
    for (size_t i = 0; i < members->elements; i++)
        if (members->element[i]->type == REDIS_REPLY_STRING)
            zlist_append(list, members->element[i]->str);
    freeReplyObject(members);
    zlist_sort(list, (zlist_compare_fn *)strcmp);
    return list;
}

redisReply *tl_store_deploys(tl_store_t *self)
{
    assert(self);
    const char *argv[] = {"LRANGE", "{tl}:deploys", "0", "19"};
    redisReply *reply = vz_redis_command(self->redis, 4, argv, NULL);
    if (reply && reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

redisReply *tl_store_events(tl_store_t *self, int64_t now_s, int days)
{
    assert(self && days > 0);
    int64_t today = now_s / S_DAY;
    return s_sum(self, "{tl}:ev:d:", today - days + 1, today);
}

int tl_store_usage(tl_store_t *self, int64_t now_s, tl_usage_t *out)
{
    assert(self && out);
    int64_t day = now_s / S_DAY;
    if (s_pfcount(self, day, 1, &out->dau) < 0 || s_pfcount(self, day, 7, &out->wau) < 0 ||
        s_pfcount(self, day, 30, &out->mau) < 0)
        return -EIO;
    return 0;
}

int tl_store_top_users(tl_store_t *self, int64_t now_s, int days, tl_user_calls_t *out, size_t max,
                       size_t *count)
{
    assert(self && out && count && days > 0 && days <= 31);
    *count = 0;
    char names[31][40];
    const char *keys[31];
    int64_t day = now_s / S_DAY;
    for (int i = 0; i < days; i++) {
        snprintf(names[i], sizeof names[i], "{tl}:uc:d:%lld", (long long)(day - i));
        keys[i] = names[i];
    }
    char limit[S_NUM];
    snprintf(limit, sizeof limit, "%zu", max);
    const char *args[] = {limit};
    redisReply *reply = vz_redis_eval(self->redis, self->top, days, keys, 1, args);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            freeReplyObject(reply);
        return -EIO;
    }
    for (size_t i = 0; i + 1 < reply->elements && *count < max; i += 2) {
        vz_strlcpy(out[*count].user, reply->element[i]->str ? reply->element[i]->str : "",
                   sizeof out[*count].user);
        out[*count].calls =
            strtoull(reply->element[i + 1]->str ? reply->element[i + 1]->str : "0", NULL, 10);
        (*count)++;
    }
    freeReplyObject(reply);
    return 0;
}

bool tl_code_error(const char *code)
{
    assert(code);
    if (strcmp(code, "ok") == 0)
        return false;
    if (code[0] >= '0' && code[0] <= '9')
        return strtol(code, NULL, 10) >= 400;
    return true;
}

//  A string reply of HGET key field as an integer, or 0.
static int64_t s_hget_int(tl_store_t *self, const char *key, const char *field)
{
    const char *argv[] = {"HGET", key, field};
    redisReply *reply = vz_redis_command(self->redis, 3, argv, NULL);
    int64_t value = reply && reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
    if (reply)
        freeReplyObject(reply);
    return value;
}

int tl_store_errors_top(tl_store_t *self, int64_t now_s, tl_error_t *out, size_t max, size_t *count)
{
    assert(self && out && count);
    *count = 0;
    char week[32], last_week[32], top[24];
    snprintf(week, sizeof week, "{tl}:err:w:%lld", (long long)(now_s / S_WEEK));
    snprintf(last_week, sizeof last_week, "{tl}:err:w:%lld", (long long)(now_s / S_WEEK - 1));
    snprintf(top, sizeof top, "%zu", max ? max - 1 : 0);
    const char *argv[] = {"ZREVRANGE", week, "0", top, "WITHSCORES"};
    redisReply *reply = vz_redis_command(self->redis, 5, argv, NULL);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            freeReplyObject(reply);
        return -EIO;
    }
    for (size_t i = 0; i + 1 < reply->elements && *count < max; i += 2) {
        tl_error_t *err = &out[*count];
        memset(err, 0, sizeof *err);
        if (!reply->element[i]->str ||
            vz_strlcpy(err->code, reply->element[i]->str, sizeof err->code) < 0)
            continue;
        err->count = strtoull(reply->element[i + 1]->str, NULL, 10);
        const char *zargv[] = {"ZSCORE", last_week, err->code};
        redisReply *prev = vz_redis_command(self->redis, 3, zargv, NULL);
        if (prev && prev->type == REDIS_REPLY_STRING)
            err->previous = strtoull(prev->str, NULL, 10);
        if (prev)
            freeReplyObject(prev);
        err->first_s = s_hget_int(self, "{tl}:err:first", err->code);
        err->last_s = s_hget_int(self, "{tl}:err:last", err->code);
        char key[VZ_TL_NAME_MAX + 16];
        snprintf(key, sizeof key, "{tl}:err:svc:%s", err->code);
        const char *sargv[] = {"SMEMBERS", key};
        redisReply *svcs = vz_redis_command(self->redis, 2, sargv, NULL);
        for (size_t k = 0; svcs && svcs->type == REDIS_REPLY_ARRAY && k < svcs->elements; k++) {
            size_t used = strlen(err->services);
            if (svcs->element[k]->str &&
                used + strlen(svcs->element[k]->str) + 2 < sizeof err->services)
                snprintf(err->services + used, sizeof err->services - used, "%s%s", used ? " " : "",
                         svcs->element[k]->str);
        }
        if (svcs)
            freeReplyObject(svcs);
        (*count)++;
    }
    freeReplyObject(reply);
    return 0;
}

int tl_store_saturation(tl_store_t *self, const char *service, tl_sat_t *out, size_t max,
                        size_t *count)
{
    assert(self && service && out && count);
    *count = 0;
    redisReply *reply = s_hgetall(self, "{tl}:sat:", service);
    if (!reply)
        return -EIO;
    for (size_t i = 0; i + 1 < reply->elements && *count < max; i += 2) {
        tl_sat_t *sat = &out[*count];
        unsigned long long rss = 0;
        long long fds = 0, t = 0;
        const char *value = reply->element[i + 1]->str;
        if (!value || sscanf(value, "{\"cpu\":%lf,\"rss\":%llu,\"fds\":%lld,\"t\":%lld}", &sat->cpu,
                             &rss, &fds, &t) != 4)
            continue;
        sat->replica = strtoll(reply->element[i]->str, NULL, 10);
        sat->rss = rss;
        sat->fds = fds;
        sat->t_s = t;
        (*count)++;
    }
    freeReplyObject(reply);
    return 0;
}

int tl_store_totals(tl_store_t *self, const char *service, tl_totals_t *out)
{
    assert(self && service && out);
    memset(out, 0, sizeof *out);
    redisReply *reply = s_hgetall(self, "{tl}:tot:", service);
    if (!reply)
        return -EIO;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *field = reply->element[i]->str;
        uint64_t value = strtoull(reply->element[i + 1]->str, NULL, 10);
        if (!field)
            continue;
        if (strcmp(field, "received") == 0)
            out->received = value;
        else if (strcmp(field, "lost") == 0)
            out->lost = value;
        else if (strcmp(field, "snapshots") == 0)
            out->snapshots = value;
        else if (strncmp(field, "dropped:", 8) == 0)
            out->dropped += value;
    }
    freeReplyObject(reply);
    return 0;
}

zlist_t *tl_store_services(tl_store_t *self)
{
    assert(self);
    const char *argv[] = {"SMEMBERS", "{tl}:svc"};
    redisReply *reply = vz_redis_command(self->redis, 2, argv, NULL);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            freeReplyObject(reply);
        return NULL;
    }
    zlist_t *list = zlist_new();
    zlist_autofree(list);
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->str)
            zlist_append(list, reply->element[i]->str);
    zlist_sort(list, NULL);
    freeReplyObject(reply);
    return list;
}

char *tl_store_get(tl_store_t *self, const char *key, size_t *len_p)
{
    assert(self && key);
    const char *argv[] = {"GET", key};
    redisReply *reply = vz_redis_command(self->redis, 2, argv, NULL);
    char *value = NULL;
    if (reply && reply->type == REDIS_REPLY_STRING) {
        value = (char *)malloc(reply->len + 1);
        assert(value);
        memcpy(value, reply->str, reply->len);
        value[reply->len] = '\0';
        if (len_p)
            *len_p = reply->len;
    }
    if (reply)
        freeReplyObject(reply);
    return value;
}

int tl_store_set(tl_store_t *self, const char *key, const char *value, size_t len)
{
    assert(self && key && value);
    const char *argv[] = {"SET", key, value};
    size_t lens[] = {3, strlen(key), len};
    redisReply *reply = vz_redis_command(self->redis, 3, argv, lens);
    int rc = reply && reply->type == REDIS_REPLY_STATUS ? 0 : -EIO;
    if (reply)
        freeReplyObject(reply);
    return rc;
}

int tl_store_lock(tl_store_t *self, const char *key, const char *value, int ttl_ms)
{
    assert(self && key && value);
    char ttl[S_NUM];
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    const char *argv[] = {"SET", key, value, "NX", "PX", ttl};
    redisReply *reply = vz_redis_command(self->redis, 6, argv, NULL);
    int rc = !reply                              ? -EIO
             : reply->type == REDIS_REPLY_STATUS ? 1
             : reply->type == REDIS_REPLY_NIL    ? 0
                                                 : -EIO;
    if (reply)
        freeReplyObject(reply);
    return rc;
}
