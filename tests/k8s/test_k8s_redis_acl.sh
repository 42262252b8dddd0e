#!/bin/bash
#   test_k8s_redis_acl.sh - vzctl redis-acl: one least-privilege Redis user per service, for compose and k8s
#   SPDX-License-Identifier: MPL-2.0
#
#   The ACL file `vzctl redis-acl DIR NAME...` prints (compose's keys job
#   and the Secret vizmesh-redis-acl carry it) is loaded by a real
#   redis-server on a unix socket, then: each user logs in with the
#   password of DIR/NAME.password and only that one; a daemon that keeps
#   state writes its own prefix and nothing else, no @dangerous command; the
#   others may PING only; the default user is off (with every right, for
#   the AOF replay) and "probe" may PING and nothing else.
#   A second run keeps the passwords; --k8s carries the same file.
#   compose/docker-compose.yml (read, not run): every service that talks to
#   Redis logs in as its own user with its own password file, and the keys
#   job makes exactly those users.
set -u
source "$(dirname "$0")/common.sh"
BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    fail "redis-server/redis-cli missing (Debian package redis-server)"
names=(auth ratelimit gateway)
"$BIN/vzctl" redis-acl "$T/redis" "${names[@]}" >"$T/users.acl" || fail "vzctl redis-acl"
[ "$(stat -c %a "$T/redis/auth.password")" = 600 ] || fail "auth.password is not owner-only"
grep -qx 'user default off ~\* &\* +@all' "$T/users.acl" || fail "default user not off"
grep -qx 'user probe on nopass -@all +ping' "$T/users.acl" || fail "probe user not restricted to PING"
for n in "${names[@]}"; do
    sum=$(tr -d '\n' <"$T/redis/$n.password" | sha256sum | cut -d' ' -f1)
    grep -q "^user $n on #$sum " "$T/users.acl" || fail "user $n: not the SHA-256 of $n.password"
done
grep -c '^user ' "$T/users.acl" | grep -x 5 >/dev/null || fail "expected default, probe + 3 users: $(cat "$T/users.acl")"
"$BIN/vzctl" redis-acl "$T/redis" "${names[@]}" | cmp -s - "$T/users.acl" || fail "a second run changed the users"
"$BIN/vzctl" redis-acl "$T/redis" "${names[@]}" --k8s >"$T/acl.yaml" || fail "vzctl redis-acl --k8s"
b64=$(awk '/^  users.acl: /{print $2}' "$T/acl.yaml")
base64 -d <<<"$b64" | cmp -s - "$T/users.acl" || fail "--k8s carries another ACL file"
"$BIN/vzctl" redis-acl "$T/redis" default >/dev/null 2>&1 && fail "user name default accepted"
"$BIN/vzctl" redis-acl "$T/redis" probe >/dev/null 2>&1 && fail "user name probe accepted"
"$BIN/vzctl" redis-acl "$T/redis" 'a b' >/dev/null 2>&1 && fail "a user name with a blank accepted"

# The file as Redis enforces it.
sock=$T/redis.sock
redis-server --port 0 --unixsocket "$sock" --dir "$T" --save "" --appendonly no \
    --aclfile "$T/users.acl" >"$T/redis.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do
    [ "$(redis-cli -s "$sock" --user probe --pass x --no-auth-warning ping 2>/dev/null)" = PONG ] && break
    kill -0 $pid 2>/dev/null || fail "redis-server refused the ACL file: $(cat "$T/redis.log")"
    sleep 0.1 # polling for readiness, bounded by the loop
done
[ "$(redis-cli -s "$sock" --user probe --pass x --no-auth-warning ping)" = PONG ] ||
    fail "Redis never answered PING"
as() { # USER PASSWORD-FILE COMMAND... -> the reply
    local user=$1 pwfile=$2
    shift 2
    REDISCLI_AUTH=$(cat "$pwfile") redis-cli --no-auth-warning -s "$sock" --user "$user" "$@" 2>&1
}
expect() { # WHAT REPLY PATTERN
    grep -Eq "$3" <<<"$2" || fail "$1: got '$2'"
}
P=$T/redis
expect "auth SET own prefix" "$(as auth "$P/auth.password" set {auth}:x 1)" '^OK$'
expect "auth SET ratelimit's prefix" "$(as auth "$P/auth.password" set vz:rl:x 1)" 'NOPERM'
expect "auth FLUSHALL" "$(as auth "$P/auth.password" flushall)" 'NOPERM'
expect "auth CONFIG" "$(as auth "$P/auth.password" config get dir)" 'NOPERM'
expect "ratelimit SET own prefix" "$(as ratelimit "$P/ratelimit.password" set vz:rl:k 1)" '^OK$'
expect "ratelimit GET auth's key" "$(as ratelimit "$P/ratelimit.password" get {auth}:x)" 'NOPERM'
expect "auth with ratelimit's password" "$(as auth "$P/ratelimit.password" ping)" 'WRONGPASS|invalid'
expect "gateway PING" "$(as gateway "$P/gateway.password" ping)" '^PONG$'
expect "gateway GET" "$(as gateway "$P/gateway.password" get {auth}:x)" 'NOPERM'
expect "anonymous PING" "$(redis-cli -s "$sock" ping 2>&1)" 'NOAUTH'
expect "anonymous GET" "$(redis-cli -s "$sock" get {auth}:x 2>&1)" 'NOAUTH'
expect "probe PING" "$(redis-cli -s "$sock" --user probe --pass any --no-auth-warning ping)" '^PONG$'
expect "probe GET" "$(redis-cli -s "$sock" --user probe --pass any --no-auth-warning get {auth}:x 2>&1)" 'NOPERM'
expect "AUTH default" "$(redis-cli -s "$sock" --user default --pass x --no-auth-warning ping 2>&1)" 'WRONGPASS|invalid'

# Compose, statically (tests/compose runs it): merge keys resolved by yaml.
node_deps
node --input-type=module - "$SRC/compose/docker-compose.yml" >"$T/compose.users" <<'JS' || fail "compose: Redis users"
import fs from "node:fs";
import { createRequire } from "node:module";
const YAML = createRequire(process.env.VZ_SOURCE_DIR + "/tests/k8s/")("yaml");
const c = YAML.parse(fs.readFileSync(process.argv[2], "utf8"), { merge: true });
let bad = 0;
const users = [];
for (const [name, svc] of Object.entries(c.services)) {
    const env = svc.environment || {};
    if (!("VZ_REDIS_PASSWORD_FILE" in env) && !("VZ_REDIS_URL" in env)) continue;
    users.push(name);
    if (env.VZ_REDIS_URL !== `redis://${name}@redis:6379`) { console.error(`${name}: VZ_REDIS_URL ${env.VZ_REDIS_URL}`); bad++; }
    if (env.VZ_REDIS_PASSWORD_FILE !== `/etc/vizmesh/keys/redis/${name}.password`) {
        console.error(`${name}: VZ_REDIS_PASSWORD_FILE ${env.VZ_REDIS_PASSWORD_FILE}`); bad++;
    }
}
const job = [].concat(c.services.keys.command).join(" ").replace(/\\\n/g, " ");
const m = /vzctl redis-acl (\S+)((?:\s+[a-z][a-z0-9-]*)+)\s*>/.exec(job);
const made = m ? m[2].trim().split(/\s+/).sort() : [];
if (made.join() !== [...users].sort().join()) { console.error(`keys job makes [${made}], Redis clients are [${users.sort()}]`); bad++; }
if (!/--aclfile \/etc\/vizmesh\/keys\/redis\/users.acl/.test([].concat(c.services.redis.command).join(" "))) {
    console.error("redis: not started with the keys job's users.acl"); bad++;
}
if (/requirepass/.test(JSON.stringify(c.services.redis))) { console.error("redis: a shared requirepass"); bad++; }
console.log(users.join(" "));
process.exit(bad ? 1 : 0);
JS
echo "ok - compose: $(cat "$T/compose.users") each log in as themselves; the keys job makes exactly those users"
echo "PASS: ACL users ${names[*]} enforced by redis-server $(redis-server --version | grep -o 'v=[0-9.]*')"
