/*  scripts - the two Lua scripts of the rate limiter, one atomic decision each
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Kept in a header so the service and tests/bench/bench_ratelimit.c run
 *  the very same bytes (hence the same EVALSHA name). Both take the time
 *  from Redis (TIME), so replicas with skewed clocks agree; Redis 7
 *  replicates script effects, which makes TIME before a write legal.
 *  Bodies are kept slim: Redis runs one script at a time, so its cost is
 *  the shared ceiling of every replica.
 */
#ifndef RL_SCRIPTS_H
#define RL_SCRIPTS_H

//  GCRA, the token bucket kept as one number (the theoretical arrival
//  time): ARGV = microseconds per token, burst, cost. Returns {allowed,
//  tat - now in us} with tat after this request when allowed.
static const char rl_token_bucket_lua[] =
    "local t=redis.call('TIME')\n"
    "local now=t[1]*1000000+t[2]\n"
    "local T=tonumber(ARGV[1])\n"
    "local tat=tonumber(redis.call('GET',KEYS[1])) or now\n"
    "if tat<now then tat=now end\n"
    "local nt=tat+tonumber(ARGV[3])*T\n"
    "if nt-tonumber(ARGV[2])*T>now then return {0,tat-now} end\n"
    "redis.call('SET',KEYS[1],string.format('%.0f',nt),'PX',math.ceil((nt-now)/1000)+1)\n"
    "return {1,nt-now}\n";

//  Sliding window counter: the current fixed window's count plus the
//  previous one's weighted by how much of it the sliding window still
//  covers. One hash {w, c, p}. ARGV = window ms, limit, cost. Returns
//  {allowed, c, p, ms elapsed in the current window}.
static const char rl_sliding_window_lua[] =
    "local t=redis.call('TIME')\n"
    "local now=t[1]*1000+math.floor(t[2]/1000)\n"
    "local win=tonumber(ARGV[1])\n"
    "local w=math.floor(now/win)\n"
    "local h=redis.call('HMGET',KEYS[1],'w','c','p')\n"
    "local c=tonumber(h[2]) or 0\n"
    "local p=tonumber(h[3]) or 0\n"
    "local hw=tonumber(h[1])\n"
    "if hw~=w then if hw==w-1 then p=c else p=0 end c=0 end\n"
    "local e=now-w*win\n"
    "if p*(win-e)/win+c+tonumber(ARGV[3])>tonumber(ARGV[2]) then return {0,c,p,e} end\n"
    "c=c+tonumber(ARGV[3])\n"
    "redis.call('HSET',KEYS[1],'w',w,'c',c,'p',p)\n"
    "redis.call('PEXPIRE',KEYS[1],2*win)\n"
    "return {1,c,p,e}\n";

#endif
