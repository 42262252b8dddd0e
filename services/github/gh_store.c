/*  gh_store - github's Redis scripts
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Keys (all under "github:"; docs/services/github.md lists them):
 *    seen:<delivery>            SET NX at intake, EX dedup ttl: duplicates are not queued
 *    deliveries                 the stream of verified deliveries (group "apply"); about the
 *                               newest 20000 kept (MAXLEN ~, bodies up to 1 MiB): a backlog
 *                               that large (the alert fires at 100) loses its oldest
 *    applied:<delivery>         set by the apply script: a redelivered entry is only acked
 *    counts                     hash: deliveries applied per event ("other:<event>" unhandled)
 *    repos                      set of "owner/name"
 *    repo:<full>                hash: installation_id, updated_at
 *    items:<full>               set of issue and pull request numbers
 *    item:<full>:<n>            hash: kind, title, state, state_reason, url, labels, milestone,
 *                               merged, draft, updated_at, closed_at, merged_at
 *    milestones:<full>          set of milestone numbers
 *    milestone:<full>:<n>       hash: title, state, open_issues, closed_issues
 *    deploy:<full>              hash: w|<week>|<created|state> and e|<env>|<total|state|
 *                               last_state|last_at> counters
 *    ci:<full>                  hash: <week>|<workflow>|<runs|success|failure>
 *    installations              set of installation ids; installation:<id> its repositories
 *    outbox                     stream of notifier.send bodies (group "notify"), ~10000 kept
 *    jobs                       stream of App client work (group "jobs"): backfill
 */
#include "github.h"

//  KEYS applied, stream, counts
//  ARGV group, entry, ttl, counted event, then (op, key, a, b)... (gh_event.h)
//  -> 0 already applied (acked again), 1 applied.
const char gh_lua_apply[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])\n"
    "  return 0\n"
    "end\n"
    "local skip = {}\n"
    "for i = 5, #ARGV - 3, 4 do\n"
    "  local op, key, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "  if op == 'G' then\n"
    "    local cur = tonumber(redis.call('HGET', key, 'updated_at') or '0') or 0\n"
    "    skip[key] = tonumber(a) < cur\n"
    "  elseif op == 'H' then\n"
    "    if not skip[key] then redis.call('HSET', key, a, b) end\n"
    "  elseif op == 'I' then redis.call('HINCRBY', key, a, tonumber(b))\n"
    "  elseif op == 'S' then redis.call('SADD', key, a)\n"
    "  elseif op == 'R' then redis.call('SREM', key, a)\n"
    "  elseif op == 'X' then\n"
    "    redis.call('XADD', key, 'MAXLEN', '~', '10000', '*', 'method', a, 'body', b)\n"
    "  end\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[4], 1)\n"
    "redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])\n"
    "redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])\n"
    "return 1\n";

//  KEYS prefix (its hash tag routes the call), ARGV prefix, repo -> {{number, kind, state,
//  state_reason, merged, draft, labels, title, url, milestone, updated_at, closed_at,
//  merged_at}...},
//  {{number, title, state, open_issues, closed_issues}...}, deploy hash
//  (flat), ci hash (flat).
const char gh_lua_items[] =
    "local p, r = ARGV[1], ARGV[2]\n"
    "local items, ms = {}, {}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'items:' .. r)) do\n"
    "  local h = redis.call('HMGET', p .. 'item:' .. r .. ':' .. n, 'kind', 'state',\n"
    "    'state_reason', 'merged', 'draft', 'labels', 'title', 'url', 'milestone',\n"
    "    'updated_at', 'closed_at', 'merged_at')\n"
    "  local row = {n}\n"
    "  for i = 1, 12 do row[i + 1] = h[i] or '' end\n"
    "  items[#items + 1] = row\n"
    "end\n"
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'milestones:' .. r)) do\n"
    "  local h = redis.call('HMGET', p .. 'milestone:' .. r .. ':' .. n, 'title', 'state',\n"
    "    'open_issues', 'closed_issues')\n"
    "  ms[#ms + 1] = {n, h[1] or '', h[2] or '', h[3] or '0', h[4] or '0'}\n"
    "end\n"
    "return {items, ms, redis.call('HGETALL', p .. 'deploy:' .. r),\n"
    "        redis.call('HGETALL', p .. 'ci:' .. r)}\n";

//  KEYS prefix (its hash tag routes the call), ARGV prefix -> {{full, installation_id, updated_at,
//  open_issues, open_pulls}...}
const char gh_lua_repos[] =
    "local p = ARGV[1]\n"
    "local out = {}\n"
    "for _, r in ipairs(redis.call('SMEMBERS', p .. 'repos')) do\n"
    "  local h = redis.call('HMGET', p .. 'repo:' .. r, 'installation_id', 'updated_at')\n"
    "  local issues, pulls = 0, 0\n"
    "  for _, n in ipairs(redis.call('SMEMBERS', p .. 'items:' .. r)) do\n"
    "    local it = redis.call('HMGET', p .. 'item:' .. r .. ':' .. n, 'kind', 'state')\n"
    "    if it[2] == 'open' then\n"
    "      if it[1] == 'pull' then pulls = pulls + 1 else issues = issues + 1 end\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = {r, h[1] or '0', h[2] or '0', tostring(issues), tostring(pulls)}\n"
    "end\n"
    "return out\n";
