#!/bin/bash
#   test_supervisor_mesh - the default-shaped mesh (redis, vz-broker, vz-echo,
#   vz-gateway) under vz-supervisor with auto ports: all ready, gateway answers,
#   live readiness follows the broker going away and coming back
#   SPDX-License-Identifier: MPL-2.0
#
#   Needs the real daemons in $VZ_BIN_DIR; fails (does not skip) without them,
#   since they are part of the same build.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" mesh

#   The status --json row of SERVICE replica 0.
row() { "${CTL[@]}" status --json | grep "\"service\":\"$1\",\"replica\":0,"; }
echo_unready() { row echo | grep '"state":"ready","ready":false' >/dev/null; }

mesh_config

mesh_start
for s in redis broker echo gateway; do
    "${CTL[@]}" status | awk -v s="$s" '$1==s && $4=="ready" {f=1} END {exit !f}' \
        || fail "$s not ready"
done
echo "ok - redis, broker, echo, gateway ready"

gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
code=
deadline=$((SECONDS + 10))
#   Ready on the notify fd, but the echo worker may still be registering at the broker.
while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -o "$T/readiness.json" -w '%{http_code}' --max-time 2 "http://127.0.0.1:$gw/readiness")
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || fail "GET /readiness on $gw gave $code: $(cat "$T/readiness.json" 2>/dev/null)"
echo "ok - gateway /readiness 200 on port $gw"
#   The default mesh runs every service its routes need (webhook targets are
#   optional), so /health is 200 "ok" once the workers registered.
health_ok() { curl -sf --max-time 2 "http://127.0.0.1:$gw/health" | grep '^{"status":"ok"' >/dev/null; }
until_ok 10 health_ok || fail "/health not ok: $(curl -s --max-time 2 "http://127.0.0.1:$gw/health")"
echo "ok - gateway /health 200 ok"

#   The built-in Redis: the default user is off (no anonymous command, no
#   AUTH as default); each daemon has an ACL user of its own with its own
#   key prefix; the file holds no password.
rport=$("${CTL[@]}" ports | awk '$1=="redis" {print $2}')
rcli() { redis-cli -p "$rport" --no-auth-warning "$@" 2>&1; }
rcli PING | grep NOAUTH >/dev/null || fail "anonymous PING allowed: $(rcli PING)"
rcli GET {auth}:x | grep NOAUTH >/dev/null || fail "anonymous GET allowed: $(rcli GET {auth}:x)"
out=$(rcli --user default --pass x GET {auth}:x)
[[ $out == *WRONGPASS* ]] || fail "AUTH as default: $out"
for f in users.acl secret; do
    [ "$(stat -c %a "$STATE/redis/$f")" = 600 ] || fail "$f is not owner-only"
done
apid=$(row auth | sed -E 's/.*"pid":([0-9]+).*/\1/')
url=$(tr '\0' '\n' < "/proc/$apid/environ" | sed -n 's/^VZ_REDIS_URL=//p')
pw=$(echo "$url" | sed -E 's#^redis://auth:([0-9a-f]+)@127.0.0.1:[0-9]+$#\1#')
[ -n "$pw" ] && [ "$pw" != "$url" ] || fail "auth's VZ_REDIS_URL has no user of its own: $url"
grep -q "$pw" "$STATE/redis/users.acl" && fail "users.acl holds a clear password"
[ "$(rcli --user auth --pass "$pw" SET {auth}:acl-test 1)" = OK ] || fail "auth cannot write {auth}:*"
rcli --user auth --pass "$pw" GET vz:rl:x | grep NOPERM >/dev/null || fail "auth may read vz:rl:*"
rcli --user auth --pass "$pw" FLUSHALL | grep NOPERM >/dev/null || fail "auth may FLUSHALL"
out=$(rcli --user auth --pass wrong PING)
[[ $out == *WRONGPASS* ]] || fail "a wrong password was taken: $out"
echo "ok - Redis ACL: nothing anonymous, auth confined to {auth}:*, no clear password at rest"

#   Live readiness: echo's process stays up without a broker but its /readyz
#   turns 503; the supervisor's poll shows that (with the reason) and does not
#   restart it. Once the broker is back, echo re-registers and is ready again.
epid=$(row echo | sed -E 's/.*"pid":([0-9]+).*/\1/')
[ -n "$epid" ] || fail "no echo pid"
"${CTL[@]}" stop broker >/dev/null || fail "vzctl stop broker"
until_ok 15 echo_unready || fail "echo still ready 15 s after the broker stopped: $(row echo)"
row echo | grep '"reason":"not ready: [^"]' >/dev/null || fail "no not-ready reason: $(row echo)"
"${CTL[@]}" wait echo --timeout 1 >/dev/null 2>&1 && fail "vzctl wait echo succeeded while echo is not ready"
grep -q '"msg":"replica not ready","target":"echo"' "$T/sup.log" || fail "no 'replica not ready' log line"
echo "ok - broker stopped: echo alive but not ready ($(row echo | sed -E 's/.*"reason":"([^"]*)".*/\1/'))"
"${CTL[@]}" start broker >/dev/null || fail "vzctl start broker"
"${CTL[@]}" wait echo --timeout 20 || fail "echo not ready again after the broker came back"
row echo | grep "\"pid\":$epid,\"state\":\"ready\",\"ready\":true,.*\"restarts\":0," >/dev/null \
    || fail "echo was restarted or is not ready: $(row echo)"
echo "ok - broker back: echo ready again, same process, no restart"

#   Redis away: auth (every method needs Redis) and ratelimit report not
#   ready with the reason, stay alive, and are ready again when Redis is back.
redis_unready() { row "$1" | grep '"ready":false.*redis unreachable' >/dev/null; }
"${CTL[@]}" wait --timeout 20 || fail "mesh not ready again after the broker came back"
"${CTL[@]}" stop redis >/dev/null || fail "vzctl stop redis"
for s in auth ratelimit; do
    until_ok 15 redis_unready "$s" || fail "$s not 'redis unreachable' 15 s after Redis stopped: $(row "$s")"
done
echo "ok - Redis stopped: auth and ratelimit alive but not ready (redis unreachable)"
"${CTL[@]}" start redis >/dev/null || fail "vzctl start redis"
"${CTL[@]}" wait auth --timeout 20 || fail "auth not ready again after Redis came back"
"${CTL[@]}" wait ratelimit --timeout 20 || fail "ratelimit not ready again after Redis came back"
echo "ok - Redis back: auth and ratelimit ready again"

sup_stop_clean
echo "ok - clean shutdown"
