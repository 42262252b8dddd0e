/*  bl_store - billing's Redis scripts and the loader of the revenue input
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Keys (all under "billing:"; docs/services/billing.md lists them):
 *    seen:<event id>            SET NX at intake, EX dedup ttl: duplicates are not queued
 *    events                     the stream of verified events (group "apply")
 *    applied:<event id>         set by the apply script: a redelivered entry is only acked
 *    obj:<kind>:<id>            hash: the object's newest state and its version
 *                               (v_created, v_rank, v_event), event = that event's JSON
 *    hist:<kind>:<id>           zset, score event created: subscription and charge history
 *    idx:<kind>                 set of the ids of a kind
 *    counts                     hash: events applied per type
 *    outbox                     stream of side effects for the notifier
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "billing.h"

//  KEYS obj, applied, stream, hist, idx, counts, outbox
//  ARGV group, entry, event, created, rank, hist member ('' none), object,
//       type, notify ('' none), body, applied ttl, store ('1'|'0'), field, value...
//  -> 0 already applied (acked again), 1 stored, 2 older than the stored state.
const char bl_lua_apply[] =
    "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "  return 0\n"
    "end\n"
    "local result = 1\n"
    "if ARGV[12] == '1' then\n"
    "  local cur = redis.call('HMGET', KEYS[1], 'v_created', 'v_rank', 'v_event')\n"
    "  if cur[1] then\n"
    "    local c, r = tonumber(cur[1]), tonumber(cur[2])\n"
    "    local nc, nr = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "    if nc < c or (nc == c and (nr < r or (nr == r and ARGV[3] <= cur[3]))) then\n"
    "      result = 2\n"
    "    end\n"
    "  end\n"
    "  if result == 1 then\n"
    "    local fields = {'v_created', ARGV[4], 'v_rank', ARGV[5], 'v_event', ARGV[3],\n"
    "                    'type', ARGV[8], 'event', ARGV[10]}\n"
    "    for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end\n"
    "    redis.call('HSET', KEYS[1], unpack(fields))\n"
    "  end\n"
    "  if ARGV[6] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[6]) end\n"
    "  redis.call('SADD', KEYS[5], ARGV[7])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[6], ARGV[8], 1)\n"
    "if ARGV[9] ~= '' then\n"
    "  redis.call('XADD', KEYS[7], '*', 'kind', ARGV[9], 'event', ARGV[3], 'object', ARGV[7])\n"
    "end\n"
    "redis.call('SET', KEYS[2], '1', 'EX', ARGV[11])\n"
    "redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "return result\n";

//  KEYS prefix (its hash tag routes the call), ARGV prefix -> {{sub id,
//  {member, score, ...}}...}, {{status, currency, amount, at}...}, {{charge
//  id, {member, score, ...}}...}. Reads every subscription, invoice and
//  charge: O(objects), one round trip.
const char bl_lua_dump[] =
    "local p = ARGV[1]\n"
    "local subs, invoices, charges = {}, {}, {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p .. 'idx:subscription')) do\n"
    "  subs[#subs + 1] = {id, redis.call('ZRANGE', p .. 'hist:subscription:' .. id, 0, -1,\n"
    "                                    'WITHSCORES')}\n"
    "end\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p .. 'idx:invoice')) do\n"
    "  local h = redis.call('HMGET', p .. 'obj:invoice:' .. id, 'status', 'currency', 'amount',\n"
    "                       'at')\n"
    "  if h[1] == 'paid' then invoices[#invoices + 1] = {h[2] or '', h[3] or '0', h[4] or '0'} "
    "end\n"
    "end\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p .. 'idx:charge')) do\n"
    "  charges[#charges + 1] = {id, redis.call('ZRANGE', p .. 'hist:charge:' .. id, 0, -1,\n"
    "                                          'WITHSCORES')}\n"
    "end\n"
    "return {subs, invoices, charges}\n";

//  KEYS prefix (its hash tag routes the call), ARGV prefix, kind, customer
//  -> {{id, status, currency, amount, mrr, v_created, subscription}...}: the
//  stored objects of kind that belong to customer, any order.
const char bl_lua_list[] =
    "local p, kind = ARGV[1], ARGV[2]\n"
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p .. 'idx:' .. kind)) do\n"
    "  local h = redis.call('HMGET', p .. 'obj:' .. kind .. ':' .. id, 'customer', 'status',\n"
    "                       'currency', 'amount', 'mrr', 'v_created', 'subscription')\n"
    "  if h[1] == ARGV[3] then\n"
    "    out[#out + 1] = {id, h[2] or '', h[3] or '', h[4] or '0', h[5] or '0', h[6] or '0',\n"
    "                     h[7] or ''}\n"
    "  end\n"
    "end\n"
    "return out\n";

void bl_store_input_free(bl_store_input_t *in)
{
    free(in->subs);
    free(in->points);
    free(in->payments);
    free(in->refunds);
    free(in->text);
    memset(in, 0, sizeof *in);
}

//  Bump allocator over in->text (sized beforehand): a copy of s.
static char *s_keep(char **cursor, const char *s, size_t len)
{
    char *out = *cursor;
    memcpy(out, s, len);
    out[len] = '\0';
    *cursor += len + 1;
    return out;
}

//  Split a history member "rank|event|f1|f2|f3" in place: fields 2.. into f.
static int s_split(char *member, char **f, int want)
{
    int n = 0;
    for (char *p = member; n < want + 2;) {
        char *bar = strchr(p, '|');
        if (n >= 2)
            f[n - 2] = p;
        n++;
        if (!bar)
            break;
        *bar = '\0';
        p = bar + 1;
    }
    return n == want + 2 ? 0 : -1;
}

static size_t s_text_size(const redisReply *r)
{
    size_t n = r->type == REDIS_REPLY_STRING ? r->len + 1 : 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        n += s_text_size(r->element[i]);
    return n;
}

//  {{id, {member, score, ...}}...} as the dump script builds it.
static bool s_pairs_ok(const redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
            return false;
    }
    return r->type == REDIS_REPLY_ARRAY;
}

int bl_store_load(vz_redis_t *redis, vz_redis_script_t *script, bl_store_input_t *out)
{
    memset(out, 0, sizeof *out);
    const char *args[] = {BL_PREFIX};
    redisReply *r = vz_redis_eval(redis, script, 1, args, 1, args);
    if (!r)
        return -EIO;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        freeReplyObject(r);
        return -EPROTO;
    }
    const redisReply *subs = r->element[0], *inv = r->element[1], *ch = r->element[2];
    if (!s_pairs_ok(subs) || !s_pairs_ok(ch) || inv->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -EPROTO;
    }
    size_t npoints = 0, nrefunds = 0;
    for (size_t i = 0; i < subs->elements; i++)
        npoints += subs->element[i]->element[1]->elements / 2;
    for (size_t i = 0; i < ch->elements; i++)
        nrefunds += ch->element[i]->element[1]->elements / 2;
    out->subs = calloc(subs->elements + 1, sizeof *out->subs);
    out->points = calloc(npoints + 1, sizeof *out->points);
    out->payments = calloc(inv->elements + 1, sizeof *out->payments);
    out->refunds = calloc(nrefunds + 1, sizeof *out->refunds);
    out->text = malloc(s_text_size(r) + 1);
    if (!out->subs || !out->points || !out->payments || !out->refunds || !out->text) {
        freeReplyObject(r);
        bl_store_input_free(out);
        return -ENOMEM;
    }
    char *cursor = out->text;
    bl_rev_input_t *in = &out->input;
    //  Subscriptions: members "rank|event|status|currency|mrr", score created.
    size_t used = 0;
    for (size_t i = 0; i < subs->elements; i++) {
        const redisReply *hist = subs->element[i]->element[1];
        bl_rev_sub_t *sub = &out->subs[in->nsubs++];
        sub->id =
            s_keep(&cursor, subs->element[i]->element[0]->str, subs->element[i]->element[0]->len);
        sub->points = &out->points[used]; //  each history a slice of one array
        for (size_t j = 0; j + 1 < hist->elements; j += 2) {
            char *m = s_keep(&cursor, hist->element[j]->str, hist->element[j]->len);
            char *f[3];
            if (s_split(m, f, 3) < 0)
                continue;
            bl_rev_point_t *pt = &out->points[used++];
            sub->count++;
            pt->at = strtoll(hist->element[j + 1]->str, NULL, 10);
            pt->status = f[0];
            pt->currency = f[1];
            pt->mrr = strtoll(f[2], NULL, 10);
        }
    }
    //  Paid invoices: {currency, amount, paid_at}.
    for (size_t i = 0; i < inv->elements; i++) {
        const redisReply *row = inv->element[i];
        if (row->type != REDIS_REPLY_ARRAY || row->elements != 3)
            continue;
        bl_rev_payment_t *p = &out->payments[in->npayments++];
        p->currency = s_keep(&cursor, row->element[0]->str, row->element[0]->len);
        p->amount = strtoll(row->element[1]->str, NULL, 10);
        p->at = strtoll(row->element[2]->str, NULL, 10);
    }
    //  Charges: members "rank|event|currency|amount_refunded".
    for (size_t i = 0; i < ch->elements; i++) {
        const redisReply *hist = ch->element[i]->element[1];
        const char *id =
            s_keep(&cursor, ch->element[i]->element[0]->str, ch->element[i]->element[0]->len);
        for (size_t j = 0; j + 1 < hist->elements; j += 2) {
            char *m = s_keep(&cursor, hist->element[j]->str, hist->element[j]->len);
            char *f[2];
            if (s_split(m, f, 2) < 0)
                continue;
            bl_rev_refund_t *rf = &out->refunds[in->nrefunds++];
            rf->charge = id;
            rf->currency = f[0];
            rf->cumulative = strtoll(f[1], NULL, 10);
            rf->at = strtoll(hist->element[j + 1]->str, NULL, 10);
        }
    }
    in->subs = out->subs;
    in->payments = out->payments;
    in->refunds = out->refunds;
    freeReplyObject(r);
    return 0;
}
