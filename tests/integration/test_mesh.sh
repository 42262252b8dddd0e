#!/bin/bash
#   test_mesh - the whole mesh under vz-supervisor, seen from outside:
#   an independent Node CURVE peer, kill -9 of a worker under traffic, and
#   vzctl scale changing who serves.
#   SPDX-License-Identifier: MPL-2.0
#
#   Every wait is a loop on a condition with a deadline (vzctl wait, curl
#   --max-time, the peer's own --wait); none is a fixed sleep.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" e2e
PEERS=$SRC/tests/peers

command -v node >/dev/null || fail "node missing (make test-deps installs it)"
[ -d "$PEERS/node_modules/zeromq" ] || fail "tests/peers/node_modules missing (run make test-deps)"

#   The default policy plus one test identity, "tester", allowed to call echo
#   and the broker. Its key is made only after the mesh is up, to show that
#   the broker's allow directory is re-read without a restart.
mesh_config '    tester
        call = "echo broker"
'
#   This test sends a few hundred anonymous requests a minute from one IP,
#   which the default policy (100/min) would rightly refuse: raise that limit.
sed -i '/^    anonymous$/,/limit =/ s/limit = [0-9]*/limit = 100000/' "$T/ratelimit.cfg"
grep -q 'limit = 100000' "$T/ratelimit.cfg" || fail "could not raise the anonymous limit"

t0=$(date +%s%N)
mesh_start
t1=$(date +%s%N)
echo "ok - cold start to ready in $(((t1 - t0) / 1000000)) ms"

broker=$("${CTL[@]}" ports | awk '$1=="broker" {print $2}')
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$broker" ] && [ -n "$gw" ] || fail "ports unknown"
KEYS=$STATE/keys

peer() {
    node "$PEERS/curve_call.mjs" --endpoint "tcp://127.0.0.1:$broker" \
        --server-key "$KEYS/public/broker.key" "$@"
}

#   1. An unknown CURVE key gets nothing at all: no reply, no error.
out=$(peer --random-key --service broker --method ping --wait 1500 2>&1)
rc=$?
[ $rc -eq 3 ] || fail "unknown key: expected no reply (exit 3), got $rc: $out"
echo "ok - Node peer with an unknown key gets nothing"

#   2. The same peer with a key added to the allow directory at run time.
"${CTL[@]}" keys gen "$KEYS" tester >/dev/null || fail "keys gen tester"
out=$(peer --cert "$KEYS/secret/tester.key" --service echo --method echo \
    --body "hello from node" --wait 5000) || fail "known key: no reply: $out"
grep -q '"k":2' <<<"$out" || fail "known key: not a reply: $out"
grep -q '"b":"hello from node"' <<<"$out" || fail "known key: wrong body: $out"
echo "ok - Node peer with an allowed key: echo.echo through the C broker over CURVE"

#   3. kill -9 of the only echo worker under traffic: requests are sent
#   while it is down (after the kill, before its successor starts), every
#   request either succeeds or gets a clear 503/504 JSON error within its
#   deadline; the worker is back and ready, and the restart is counted.
get() { # -> "<status> <json error code or ->"
    local body code
    body=$(curl -s -o - -w '\n%{http_code}' --max-time 8 -H 'Content-Type: text/plain' \
        --data-binary "$1" "http://127.0.0.1:$gw/v1/echo")
    code=${body##*$'\n'}
    body=${body%$'\n'*}
    if [ "$code" = 200 ]; then
        [ "$body" = "$1" ] || { echo "200-wrong-body"; return; }
        echo "200 -"
    else
        echo "$code $(echo "$body" | sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p')"
    fi
}
r=$(get warmup)
[ "$r" = "200 -" ] || fail "warm-up request: $r"
pid=$("${CTL[@]}" status | awk '$1=="echo" && $2=="0" {print $3}')
[ -n "$pid" ] && [ "$pid" != "-" ] || fail "no echo pid"
started() { grep -c '"msg":"started"' "$STATE/logs/echo.0.log"; }
n_started=$(started)
tk=$(date +%s%N)
kill -9 "$pid"
#   Traffic from the kill until echo is ready again (and at least 20
#   requests), beside the wait for readiness: "<start ns> <end ns> <answer>".
(
    i=0
    until [ -e "$T/gap.stop" ] && [ $i -ge 20 ]; do
        i=$((i + 1))
        s=$(date +%s%N)
        r=$(get "during-gap-$i")
        echo "$s $(date +%s%N) $r"
    done
) >"$T/gap.txt" &
gap=$!
"${CTL[@]}" wait echo --timeout 20 || fail "echo not ready again after kill -9"
tr=$(date +%s%N)
touch "$T/gap.stop"
wait $gap
ok=0 err=0
while read -r _ _ r; do
    case "$r" in
        "200 -") ok=$((ok + 1)) ;;
        "503 no_worker" | "503 unavailable" | "502 worker_lost" | "504 timeout") err=$((err + 1)) ;;
        *) fail "request during the gap: unexpected answer '$r'" ;;
    esac
done <"$T/gap.txt"
total=$(wc -l <"$T/gap.txt")
[ $((ok + err)) -eq "$total" ] && [ "$total" -ge 20 ] || fail "gap traffic: $((ok + err)) of $total answers"
#   The outage is real for the requests: some were sent after the kill and
#   before the new echo process even logged its start (its "ts", ms).
restarted() { [ "$(started)" -gt "$n_started" ]; }
until_ok 5 restarted || fail "the new echo never logged its start"
ts=$(grep -h '"msg":"started"' "$STATE/logs/echo.0.log" | tail -n 1 | sed -n 's/.*"ts":"\([^"]*\)".*/\1/p')
tn=$(date -d "$ts" +%s%N) || fail "cannot read the new echo's start time '$ts'"
met=$(awk -v a="$tk" -v b="$tn" '$1 >= a && $1 < b' "$T/gap.txt" | wc -l)
[ "$met" -ge 1 ] || fail "no request was sent while echo was down (kill at $tk ns, new echo at $tn ns)"
newpid=$("${CTL[@]}" status | awk '$1=="echo" && $2=="0" {print $3}')
[ "$newpid" != "$pid" ] || fail "echo pid unchanged after kill -9"
restarts=$("${CTL[@]}" status | awk '$1=="echo" && $2=="0" {print $7}')
[ "$restarts" -ge 1 ] || fail "restart not counted: $restarts"
#   Ready at the supervisor means registered at the broker: serves at once.
deadline=$((SECONDS + 10))
until [ "$(get after-restart)" = "200 -" ]; do
    [ $SECONDS -lt $deadline ] || fail "echo not serving after restart"
done
echo "ok - kill -9 echo: $met requests sent while it was down; of $total, $ok served, $err clear errors; ready again in $(((tr - tk) / 1000000)) ms"

#   4. vzctl scale: new replicas take a share of the traffic; scaling down
#   removes them and the service keeps answering.
"${CTL[@]}" scale echo 3 >/dev/null || fail "scale echo 3"
"${CTL[@]}" wait echo --timeout 20 || fail "3 echo replicas not ready"
n=$("${CTL[@]}" status | awk '$1=="echo" && $5=="yes"' | wc -l)
[ "$n" -eq 3 ] || fail "expected 3 ready echo replicas, got $n"
served() { # admin port -> requests served by that replica
    curl -s --max-time 3 "http://127.0.0.1:$1/metrics" |
        awk '/^vz_worker_requests_total\{.*method="echo".*outcome="ok"/ {s += $NF} END {print s + 0}'
}
for i in $(seq 1 60); do
    r=$(get "scaled-$i")
    [ "$r" = "200 -" ] || fail "request after scale-up: $r"
done
for rep in 1 2; do
    port=$("${CTL[@]}" status | awk -v r=$rep '$1=="echo" && $2==r {print $8}')
    c=$(served "$port")
    [ "$c" -gt 0 ] || fail "replica $rep (admin $port) served nothing after scale-up"
    echo "ok - replica $rep served $c requests"
done
pids_before=$("${CTL[@]}" status | awk '$1=="echo" && $2!="0" {print $3}')
"${CTL[@]}" scale echo 1 >/dev/null || fail "scale echo 1"
#   Scaling down drains the extra replicas, so the rows go once they exit.
deadline=$((SECONDS + 10))
until [ "$("${CTL[@]}" status | awk '$1=="echo"' | wc -l)" -eq 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "expected 1 echo row after scale-down"
done
for p in $pids_before; do
    deadline=$((SECONDS + 10))
    while kill -0 "$p" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "replica pid $p still alive after scale-down"
        "${CTL[@]}" status >/dev/null
    done
done
for i in $(seq 1 10); do
    r=$(get "scaled-down-$i")
    [ "$r" = "200 -" ] || fail "request after scale-down: $r"
done
echo "ok - scale 3 -> 1: extra replicas gone, service still answers"

#   5. Key rotation under traffic: echo gets a new key pair by overlap
#   (new public key allowed, rolling restart, old key removed) and no request
#   fails meanwhile.
old_key=$(grep public-key "$KEYS/public/echo.key")
(
    i=0
    until [ -e "$T/rotated" ] || [ $i -ge 2000 ]; do i=$((i + 1)); get "rotating-$i"; done
    get "rotated"
) >"$T/rotate.txt" &
traffic=$!
"${CTL[@]}" keys rotate echo >/dev/null || fail "keys rotate echo"
touch "$T/rotated"
wait $traffic
n=$(wc -l <"$T/rotate.txt")
[ "$n" -ge 3 ] || fail "too little traffic during the rotation ($n requests)"
new_key=$(grep public-key "$KEYS/public/echo.key")
[ "$old_key" != "$new_key" ] || fail "echo key unchanged after rotation"
bad=$(grep -cv '^200 -$' "$T/rotate.txt")
[ "$bad" -eq 0 ] || fail "$bad requests failed during key rotation: $(sort "$T/rotate.txt" | uniq -c)"
[ "$(get after-rotation)" = "200 -" ] || fail "echo not serving with its new key"
echo "ok - keys rotate echo under traffic: $n of $n requests served"

sup_stop_clean
echo "ok - clean shutdown"
