#!/bin/bash
#   test_redis_migrate - supervisor/redis-migrate-keys.sh on a real redis-server holding
#   keys in the old (untagged) layout: every key renamed with value, TTL and
#   stream group kept, ratelimit keys untouched, a second run a no-op, a
#   conflict left alone and reported
#   SPDX-License-Identifier: MPL-2.0
set -u -o pipefail

SCRIPT="${VZ_SOURCE_DIR:?}/supervisor/redis-migrate-keys.sh"
dir=$(mktemp -d /tmp/vz-migrate.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && { kill -9 "$pid"; wait "$pid"; } 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "not ok - $*" >&2
    exit 1
}

#   A free loopback port: bind, read it back, release.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" &
pid=$!
r() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do
    [ "$(r PING 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
[ "$(r PING)" = PONG ] || fail "redis-server did not start"

#   The old layout: one key of each kind the services keep, a TTL, a stream
#   with a consumer group, an email key with a quote and a space.
r SET auth:bootstrap tok EX 600 >/dev/null
r HSET auth:user:u1 email a@example.com tier free >/dev/null
r SET 'auth:email:o"brien x@example.com' u1 >/dev/null
r HSET billing:obj:customer:cus_1 v_event evt_1 >/dev/null
r XADD billing:events '*' body x >/dev/null
r XGROUP CREATE billing:events apply 0 >/dev/null
r SADD github:repos octo/hello >/dev/null
r XADD nt:stream '*' id m1 >/dev/null
r HSET tl:tot:echo received 3 >/dev/null
r SET rp:since 1700000000 >/dev/null
r SET vz:rl:api:3:abc 123 >/dev/null

out=$(bash "$SCRIPT" -p "$port") || fail "first run: $out"
[ "$out" = "renamed 9 conflicts 0" ] || fail "first run printed: $out"
[ "$(r GET '{auth}:bootstrap')" = tok ] || fail "auth:bootstrap not moved"
ttl=$(r TTL '{auth}:bootstrap')
[ "$ttl" -gt 500 ] || fail "TTL lost: $ttl"
[ "$(r HGET '{auth}:user:u1' tier)" = free ] || fail "hash not moved"
[ "$(r GET '{auth}:email:o"brien x@example.com')" = u1 ] || fail "quoted key not moved"
[ "$(r XINFO GROUPS '{billing}:events' | head -2 | tail -1)" = apply ] || fail "stream group lost"
[ "$(r SISMEMBER '{github}:repos' octo/hello)" = 1 ] || fail "github set not moved"
[ "$(r XLEN '{nt}:stream')" = 1 ] || fail "notifier stream not moved"
[ "$(r HGET '{tl}:tot:echo' received)" = 3 ] || fail "telemetry hash not moved"
[ "$(r GET '{rp}:since')" = 1700000000 ] || fail "reporter key not moved"
[ "$(r GET vz:rl:api:3:abc)" = 123 ] || fail "ratelimit key touched"
left=$(r --scan --pattern 'auth:*' | wc -l)
[ "$left" = 0 ] || fail "$left old auth keys left"
echo "ok - old keys renamed with values, TTL and stream group; ratelimit untouched"

out=$(bash "$SCRIPT" -p "$port") || fail "second run: $out"
[ "$out" = "renamed 0 conflicts 0" ] || fail "second run printed: $out"
echo "ok - a second run changes nothing"

#   An old key whose new name exists already: both kept, reported.
r SET auth:keys:ver 1 >/dev/null
r SET '{auth}:keys:ver' 7 >/dev/null
out=$(bash "$SCRIPT" -p "$port") && fail "a conflict exited 0: $out"
[ "$out" = "renamed 0 conflicts 1" ] || fail "conflict run printed: $out"
[ "$(r GET '{auth}:keys:ver')" = 7 ] || fail "newer key overwritten"
[ "$(r GET auth:keys:ver)" = 1 ] || fail "old key lost"
echo "ok - a conflict is left alone and reported"
