#!/bin/bash
#   test_multinode - three "nodes" in network namespaces, two brokers, Redis Cluster; one node cut off under load
#   SPDX-License-Identifier: MPL-2.0
#
#   Three network namespaces stand in for three machines: each has one
#   veth to a bridge in the root namespace and an address of a /24 chosen
#   free at start (10.77.X.1-3; the root namespace is .254 and drives the
#   load). Every node runs a Redis Cluster primary (port 7000) and a
#   replica of the next node's primary (7001), so each node's data has a
#   copy elsewhere; node 1 and node 2 run a vz-broker (one CURVE key pair
#   and one policy for both); every node runs vz-echo, vz-auth and
#   vz-ratelimit, each registered with both brokers (VZ_BROKER_ENDPOINTS
#   lists both); node 3 runs the gateway with both brokers as its
#   endpoints. The daemons are started directly, not by one vz-supervisor
#   a node: the supervisor makes its own keys and its own single Redis per
#   state directory and points every child at its local broker, where the
#   nodes here must share the brokers' key pair, a Redis Cluster and two
#   remote brokers. Inside a namespace every daemon keeps its default
#   admin port (each namespace has its own loopback), so parallel runs do
#   not collide; the names carry a random suffix.
#
#   Under HTTP load through the gateway (chaos_load.mjs: a route mix of
#   anonymous echo, echo with a JWT, auth's profile — Redis — with
#   MN_CONC keep-alive connections and a client deadline of MN_DEADLINE_MS)
#   node MN_VICTIM (1: a broker, a Redis primary, workers) loses its link
#   for MN_CUT_S seconds (its veth's root end set down: packets vanish, no
#   reset), then gets it back. Fails when a request hangs past the client
#   deadline (the gateway's own is 5 s), an answer is neither a 2xx nor an
#   error documented in docs/services/gateway.md, a connection error hits
#   the gateway, or the mesh does not serve again within MN_RECOVER_S of the
#   restore: every route 2xx after the last error, the victim's broker
#   holding a worker of every service from every node again and carrying
#   gateway requests again, and the Redis Cluster ok with every replica
#   linked.
#   Prints a "multinode:" line (tests/bench/multinode.sh reads it):
#   requests, answers by outcome:code, hangs, the longest wait, cut ->
#   first success, cut -> the first streak of MN_STREAK successes,
#   restore -> that streak, restore -> last error, cut -> recovered
#   (chaos_load.mjs's definition), and the Redis failover (whether a
#   replica took over the victim's primary during the cut).
#
#   Needs root, `ip netns` and redis-server with cluster support; exits 77
#   (skipped) without them. Knobs: MN_PRE (2 s of load before the cut),
#   MN_CUT_S (4), MN_POST (1 s after recovery), MN_CONC (4), MN_DEADLINE_MS
#   (10000), MN_RECOVER_S (30), MN_VICTIM (1), MN_STREAK (20),
#   MN_NODE_TIMEOUT_MS (Redis cluster-node-timeout, 2000), MN_ENDPOINTS
#   (list: VZ_BROKER_ENDPOINTS lists both brokers' addresses; dns: one name,
#   brokers.vizmesh, that /etc/netns/<node>/hosts resolves to both).
set -u -o pipefail

BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
PRE=${MN_PRE:-2} CUT_S=${MN_CUT_S:-4} POST=${MN_POST:-1} CONC=${MN_CONC:-4}
DEADLINE_MS=${MN_DEADLINE_MS:-10000} RECOVER_S=${MN_RECOVER_S:-30} VICTIM=${MN_VICTIM:-1}
STREAK=${MN_STREAK:-20} NODE_TIMEOUT_MS=${MN_NODE_TIMEOUT_MS:-2000}
LOADER=$SRC/tests/integration/chaos_load.mjs
SERVICES="echo auth ratelimit"
START=$SECONDS

skip() {
    echo "SKIP: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "ip (iproute2) missing"
for t in redis-server redis-cli node curl; do command -v $t >/dev/null || skip "$t missing"; done
for b in vz-broker vz-echo vz-auth vz-ratelimit vz-gateway vzctl; do
    [ -x "$BIN/$b" ] || { echo "FAIL: $BIN/$b missing" >&2 && exit 1; }
done

# shellcheck source=mesh.sh
source "$(dirname "$0")/mesh.sh" multinode
#   The daemons' logs where mesh.sh's fail and its exit check (sanitizer
#   reports) read them; no supervisor here, so its log stays empty.
LOGS=$STATE/logs
mkdir -p "$LOGS"
: >"$T/sup.log"
SFX=$(printf '%04x' $((RANDOM % 65536)))
BR=vzb$SFX
NS=()
PIDS=()
LOAD=
for i in 1 2 3; do NS[i]=vzn$i-$SFX; done

#   ns I CMD...: CMD inside node I's namespace.
ns() {
    local i=$1
    shift
    ip netns exec "${NS[i]}" "$@"
}

#   teardown: the load, every process this test started (by pid: TERM,
#   KILL after 5 s), the namespaces, the bridge.
teardown() {
    [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    local deadline=$((SECONDS + 5))
    for p in "${PIDS[@]}"; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for i in 1 2 3; do
        ip link del "vzh$i$SFX" 2>/dev/null
        ip netns del "${NS[i]}" 2>/dev/null
        rm -rf "/etc/netns/${NS[i]}"
    done
    rmdir /etc/netns 2>/dev/null # when no other run has a directory there
    ip link del "$BR" 2>/dev/null
    [ -n "${FWD_RULE:-}" ] && iptables -D FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null
    [ -n "${MN_KEEP:-}" ] && cp "$T/load.log" "$MN_KEEP" 2>/dev/null
}
#   mesh_cleanup reads the script's exit status from $?: keep it past the teardown.
trap 'rc=$?; teardown; (exit $rc); mesh_cleanup' EXIT

now_ms() { date +%s%3N; }

#   --- the network: a /24 no route of this machine covers yet.
NET=
for _ in $(seq 1 50); do
    x=$((RANDOM % 250 + 1))
    ip -4 route | grep -q "^10\.77\.$x\." || ip -4 addr | grep -q " 10\.77\.$x\." || {
        NET=10.77.$x
        break
    }
done
[ -n "$NET" ] || fail "no free 10.77.X.0/24"
ip link add "$BR" type bridge 2>/dev/null || skip "cannot create a bridge"
{ ip addr add "$NET.254/24" dev "$BR" && ip link set "$BR" up; } || fail "bridge $BR"
for i in 1 2 3; do
    ip netns add "${NS[i]}" 2>/dev/null || skip "ip netns add refused"
    ip link add "vzh$i$SFX" type veth peer name "vzp$i$SFX" || fail "veth $i"
    ip link set "vzp$i$SFX" netns "${NS[i]}" || fail "veth $i into ${NS[i]}"
    ip link set "vzh$i$SFX" master "$BR" up || fail "veth $i onto $BR"
    #   The nodes' name service: `ip netns exec` shows /etc/netns/NS/hosts
    #   as /etc/hosts; brokers.vizmesh names both brokers, as a headless
    #   Service's name does.
    mkdir -p "/etc/netns/${NS[i]}" &&
        printf '127.0.0.1 localhost\n%s brokers.vizmesh\n%s brokers.vizmesh\n' "$NET.1" "$NET.2" \
            >"/etc/netns/${NS[i]}/hosts" || fail "/etc/netns/${NS[i]}/hosts"
    ns $i ip link set lo up
    ns $i ip link set "vzp$i$SFX" name eth0
    ns $i ip addr add "$NET.$i/24" dev eth0
    ns $i ip link set eth0 up || fail "eth0 of node $i"
done
#   A bridge may carry its frames through iptables (br_netfilter) where a
#   FORWARD policy of DROP (Docker's) would stop them: let its own pass.
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" = 1 ] && command -v iptables >/dev/null; then
    iptables -I FORWARD -i "$BR" -o "$BR" -j ACCEPT && FWD_RULE=1
fi
#   (Reachability shows below: the root namespace asks every Redis, the
#   Redis nodes meet each other.)
echo "ok - three nodes ${NS[*]} on $NET.0/24 (bridge $BR)"

#   spawn NODE NAME CMD...: start CMD in NODE's namespace, log in logs/NAME.log.
spawn() {
    local i=$1 name=$2
    shift 2
    ip netns exec "${NS[i]}" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
}

#   --- Redis Cluster: node i has primary :7000 and the replica of node
#   i+1's primary on :7001. A 2 s node timeout: a cut of a few seconds
#   promotes the cut primary's replica.
rc_cli() { redis-cli -h "$1" -p "$2" "${@:3}"; }
for i in 1 2 3; do
    for p in 7000 7001; do
        d=$T/redis/$i.$p
        mkdir -p "$d"
        spawn $i "redis.$i.$p" redis-server --port $p --bind "$NET.$i" --protected-mode no \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout "$NODE_TIMEOUT_MS" --save "" --appendonly no \
            --repl-diskless-sync yes --repl-diskless-sync-delay 0 --dir "$d"
    done
done
for i in 1 2 3; do
    for p in 7000 7001; do
        until_ok 10 rc_cli "$NET.$i" $p ping || fail "redis $NET.$i:$p does not answer"
    done
done
redis-cli --cluster create "$NET.1:7000" "$NET.2:7000" "$NET.3:7000" --cluster-yes \
    >"$LOGS/cluster-create.log" 2>&1 || fail "redis-cli --cluster create: $(tail -5 "$LOGS/cluster-create.log")"
for i in 1 2 3; do
    j=$((i % 3 + 1))
    id=$(rc_cli "$NET.$j" 7000 cluster myid)
    redis-cli --cluster add-node "$NET.$i:7001" "$NET.1:7000" --cluster-slave --cluster-master-id "$id" \
        >>"$LOGS/cluster-create.log" 2>&1 || fail "replica on node $i of node $j: $(tail -5 "$LOGS/cluster-create.log")"
done
#   cluster_ok: every node says ok, 3 primaries with a linked replica each.
cluster_ok() {
    local i p
    for i in 1 2 3; do
        for p in 7000 7001; do
            rc_cli "$NET.$i" $p cluster info | grep -q '^cluster_state:ok' || return 1
        done
    done
    [ "$(rc_cli "$NET.1" 7000 cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/' | wc -l)" = 3 ] || return 1
    for i in 1 2 3; do
        for p in 7000 7001; do
            rc_cli "$NET.$i" $p info replication | grep -q '^role:slave' || continue
            rc_cli "$NET.$i" $p info replication | grep -q '^master_link_status:up' || return 1
        done
    done
}
until_ok 30 cluster_ok || fail "the Redis Cluster is not ok: $(rc_cli "$NET.1" 7000 cluster nodes)"
REDIS_URL="redis://$NET.1:7000,$NET.2:7000,$NET.3:7000?cluster=1"
echo "ok - Redis Cluster: 3 primaries, each with a replica on the next node"

#   --- keys (one pair per identity; the brokers share theirs), policy, configs.
K=$T/keys
# shellcheck disable=SC2086 # a list
"$BIN/vzctl" keys gen "$K" broker gateway $SERVICES >/dev/null || fail "vzctl keys gen"
cp "$SRC/configs/policy.cfg" "$T/policy.cfg"
#   Every rate limit raised: the load is not what is limited.
sed -E 's/^( +limit) = [0-9]+/\1 = 50000000/' "$SRC/configs/ratelimit.cfg" >"$T/ratelimit.cfg"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/auth.kek"
chmod 0400 "$T/auth.kek"
#   The brokers, as a list of addresses or (MN_ENDPOINTS=dns) one name
#   resolving to both.
BROKERS="tcp://$NET.1:5555,tcp://$NET.2:5555"
if [ "${MN_ENDPOINTS:-list}" = dns ]; then
    BROKERS=tcp://brokers.vizmesh:5555
    [ "$(ns 3 getent ahostsv4 brokers.vizmesh | awk '$2 == "STREAM"' | wc -l)" = 2 ] ||
        fail "brokers.vizmesh does not resolve to two addresses in node 3"
fi
GW=http://$NET.3:8080
ISSUER=$GW
#   common NAME: the settings every daemon of identity NAME gets.
common() {
    echo VZ_CURVE_CERT="$K/secret/$1.key" VZ_CURVE_ALLOW_DIR="$K/public" VZ_BROKER_KEY="$K/public/broker.key" \
        VZ_BROKER_ENDPOINTS="$BROKERS" VZ_REDIS_URL="$REDIS_URL" VZ_TELEMETRY=off VZ_LOG_LEVEL=warn
}
for i in 1 2; do
    # shellcheck disable=SC2046 # common's words are whole settings without blanks
    spawn $i "broker.$i" env $(common broker) VZ_BROKER_BIND="tcp://$NET.$i:5555" \
        VZ_BROKER_POLICY="$T/policy.cfg" "$BIN/vz-broker"
done
#   ready NODE ADMIN_PORT: the daemon's /readyz answers 200 in its namespace.
ready() { ns "$1" curl -sf --max-time 1 "http://127.0.0.1:$2/readyz"; }
for i in 1 2; do until_ok 15 ready $i 9100 || fail "broker $i not ready"; done
for i in 1 2 3; do
    # shellcheck disable=SC2046
    spawn $i "echo.$i" env $(common echo) "$BIN/vz-echo"
    # shellcheck disable=SC2046
    spawn $i "auth.$i" env $(common auth) VZ_AUTH_ISSUER="$ISSUER" VZ_AUTH_AUDIENCE=vizmesh \
        VZ_AUTH_KEK_FILE="$T/auth.kek" "$BIN/vz-auth"
    # shellcheck disable=SC2046
    spawn $i "ratelimit.$i" env $(common ratelimit) VZ_RATELIMIT_POLICY="$T/ratelimit.cfg" \
        VZ_RATELIMIT_FAILURE_MODE=open "$BIN/vz-ratelimit"
done
# shellcheck disable=SC2046
spawn 3 gateway env $(common gateway) VZ_GATEWAY_ADDR="$NET.3" VZ_GATEWAY_PORT=8080 \
    VZ_GATEWAY_ROUTES="$SRC/configs/routes.cfg" VZ_GATEWAY_OPENAPI="$SRC/docs/openapi.yaml" \
    VZ_GATEWAY_JWT_ISSUER="$ISSUER" VZ_GATEWAY_JWT_AUDIENCE=vizmesh VZ_GATEWAY_RATELIMIT_FAILURE=open \
    "$BIN/vz-gateway"
for i in 1 2 3; do
    for p in 9110 9120 9130; do until_ok 20 ready $i $p || fail "worker :$p on node $i not ready"; done
done
until_ok 20 ready 3 9101 || fail "gateway not ready"

#   workers BROKER_NODE SERVICE: that broker's vz_broker_workers gauge.
workers() {
    ns "$1" curl -sf --max-time 1 http://127.0.0.1:9100/metrics |
        awk -v s="vz_broker_workers{service=\"$2\"}" '$1 == s {print $2 + 0}'
}
#   all_registered BROKER_NODE: a worker of every service from every node.
all_registered() {
    local s
    for s in $SERVICES; do [ "$(workers "$1" "$s")" = 3 ] || return 1; done
}
#   served BROKER_NODE: requests that broker answered (all services, replied).
served() {
    ns "$1" curl -sf --max-time 1 http://127.0.0.1:9100/metrics |
        awk '/^vz_broker_requests_total\{/ && /outcome="replied"/ {n += $2} END {print n + 0}'
}
for i in 1 2; do until_ok 20 all_registered $i || fail "broker $i: not every worker registered"; done
echo "ok - brokers on node 1 and 2, echo/auth/ratelimit on every node registered with both, gateway on node 3"

#   A user and its token (auth's scripts on the cluster).
J=(-s --max-time 10 -H Content-Type:application/json)
CRED='{"email":"multinode@example.com","password":"multinode-password-1"}'
code=$(curl "${J[@]}" -o /dev/null -w '%{http_code}' -d "$CRED" "$GW/v1/auth/register")
[ "$code" = 201 ] || fail "register answered $code"
TOKEN=$(curl "${J[@]}" -d "$CRED" "$GW/v1/auth/login" |
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0)).access_token||"")')
[ -n "$TOKEN" ] || fail "no access token"
MIX=$T/mix.json
printf '[{"route":"echo","method":"GET","path":"/v1/echo"},
 {"route":"whoami","method":"GET","path":"/v1/echo/whoami","headers":{"Authorization":"Bearer %s"}},
 {"route":"profile","method":"GET","path":"/v1/auth/profile","headers":{"Authorization":"Bearer %s"}}]' \
    "$TOKEN" "$TOKEN" >"$MIX"
#   get200 PATH: GET PATH with the token answers 200 (else the answer on stdout).
get200() {
    local out
    out=$(curl -s -w '\n%{http_code}' --max-time 10 -H "Authorization: Bearer $TOKEN" "$GW$1")
    [ "${out##*$'\n'}" = 200 ] || { echo "$out" && return 1; }
}
for p in /v1/echo /v1/echo/whoami /v1/auth/profile; do
    until_ok 10 get200 "$p" || fail "healthy mesh: GET $p: $(get200 "$p" | tr '\n' ' ')"
done
echo "ok - every route of the mix answers 200 ($((SECONDS - START)) s)"

#   --- the cut, under load.
LOG=$T/load.log
: >"$LOG"
node "$LOADER" run "$GW" "$MIX" "$LOG" "$CONC" "$DEADLINE_MS" 300 &
LOAD=$!
#   ok_since MS: a request started at or after MS (epoch ms) got a 2xx.
ok_since() { awk -F'\t' -v k="$1" '$1 >= k && $4 ~ /^2/ {f = 1; exit} END {exit !f}' "$LOG"; }
UNTIL_OK_STEP=0.02 until_ok 15 ok_since 0 || fail "no success under load before the cut"
sleep "$PRE" # the load window before the cut
VB=$VICTIM
[ "$VB" = 3 ] && VB=
served_before=
[ -n "$VB" ] && served_before=$(served "$VB")
primary_id=$(rc_cli "$NET.$VICTIM" 7000 cluster myid)
CUT=$(now_ms)
ip link set "vzh$VICTIM$SFX" down || fail "cut node $VICTIM"
sleep "$CUT_S" # the node stays away this long
#   Did a replica take over the cut primary's slots? (asked of a node still up)
other=$((VICTIM % 3 + 1))
if rc_cli "$NET.$other" 7000 cluster nodes | grep "^$primary_id " | grep -q fail; then
    failover=yes
else
    failover=no
fi
RESTORE=$(now_ms)
ip link set "vzh$VICTIM$SFX" up || fail "restore node $VICTIM"
#   recovered: every route answered 2xx to a request started after the
#   restore and after the last error, at least 1 s ago, and nothing sent
#   more than 1 s ago still waits.
recovered() {
    awk -F'\t' -v k="$RESTORE" -v now="$(now_ms)" -v o="$(cat "$LOG.inflight" 2>/dev/null || echo 0)" \
        '$4 !~ /^2/ {if ($2 + 0 > e) e = $2 + 0; next}
        {if ($1 + 0 > ok[$3]) ok[$3] = $1 + 0}
        END {t = e > k ? e : k; for (r in ok) c += ok[r] >= t
             exit !(c >= 3 && now - t >= 1000 && o + 0 >= now - 1000)}' "$LOG"
}
UNTIL_OK_STEP=0.05 until_ok "$RECOVER_S" recovered ||
    fail "not every route answered 2xx again within $RECOVER_S s of the restore"
rec_ms=$(($(now_ms) - RESTORE))
if [ -n "$VB" ]; then
    until_ok "$RECOVER_S" all_registered "$VB" ||
        fail "broker $VB: workers of every node not registered again within $RECOVER_S s"
    #   The gateway sends through the returned broker again.
    until_ok "$RECOVER_S" test "$(served "$VB")" -gt "$((served_before + 10))" ||
        fail "broker $VB carries no gateway request after the restore"
fi
until_ok "$RECOVER_S" cluster_ok || fail "the Redis Cluster is not ok again: $(rc_cli "$NET.$other" 7000 cluster nodes)"
sleep "$POST" # the load window after recovery
kill -TERM "$LOAD"
wait "$LOAD" || fail "the load generator failed"
LOAD=

#   --- the verdict: chaos_load.mjs's (hangs, undocumented answers,
#   connection errors, every route 2xx after the last error; nothing may
#   wait the gateway's deadline plus its grace past the restore), then the
#   streaks.
verdict=$(node "$LOADER" report "$LOG" "$CUT" "$SRC" 0 5250 "$RESTORE" 2>"$T/verdict.err")
vrc=$?
#   streak FROM_MS: ms from FROM_MS to the end of the first STREAK answers
#   in a row (by end time) that are 2xx, among requests started after it.
streak() {
    awk -F'\t' -v k="$1" '$1 >= k {print $2 "\t" $4}' "$LOG" | sort -n |
        awk -F'\t' -v k="$1" -v n="$STREAK" '$2 ~ /^2/ {if (++s >= n) {print $1 - k; f = 1; exit}; next} {s = 0}
            END {if (!f) print -1}'
}
#   by_route: the errors as route/status:code=count, "none" without.
by_route=$(awk -F'\t' '$4 !~ /^2/ {n[$3 "/" $4 ":" $5]++}
    END {for (k in n) s = s (s ? "," : "") k "=" n[k]; print s ? s : "none"}' "$LOG")
last_err=$(awk -F'\t' -v k="$RESTORE" '$4 !~ /^2/ && $2 > k {if ($2 - k > e) e = $2 - k} END {print e + 0}' "$LOG")
echo "multinode: victim=node$VICTIM cut_ms=$((RESTORE - CUT)) redis_failover=$failover" \
    "cut_streak_ms=$(streak "$CUT") restore_streak_ms=$(streak "$RESTORE") restore_last_err_ms=$last_err" \
    "restore_recovered_ms=$rec_ms by_route=$by_route $verdict"
#   The timeline, a row per second from the cut (requests by their start):
#   sent, errors, the longest wait of one of them (t=0: the second after the cut).
awk -F'\t' -v k="$CUT" '{b = int(($1 - k + 60000) / 1000) - 60; n[b]++; if ($4 !~ /^2/) e[b]++
        if ($2 - $1 > m[b]) m[b] = $2 - $1; if (b < lo) lo = b; if (b > hi) hi = b}
    END {for (b = lo; b <= hi; b++) printf "multinode-second: t=%d sent=%d errors=%d max_ms=%d\n", b, n[b], e[b], m[b]}' "$LOG"
[ $vrc -eq 0 ] || fail "verdict: $(cat "$T/verdict.err")"
echo "ok - node $VICTIM cut for $((RESTORE - CUT)) ms under load: no hang, every answer 2xx or documented," \
    "served again ($((SECONDS - START)) s)"
