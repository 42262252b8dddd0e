#!/bin/bash
#   test_chaos - kill -9 of every daemon of the mesh, one at a time, under steady HTTP load
#   SPDX-License-Identifier: MPL-2.0
#
#   The whole mesh under vz-supervisor (auto ports, every rate limit raised
#   so the load is not 429ed). For each victim — broker, Redis, each worker
#   service, the gateway — chaos_load.mjs sends a route mix that goes
#   through the victim over CHAOS_CONC keep-alive connections, each request
#   with a client deadline (CHAOS_DEADLINE_MS, twice the gateway's own 5 s
#   upstream deadline); after CHAOS_PRE s the victim's replica 0 is killed
#   with SIGKILL; the load goes on until the supervisor has the new process
#   ready and the client saw a healthy second (every route of the mix
#   answered 2xx after the last error, nothing older pending), then
#   CHAOS_POST s more. It fails on a request that hung past its deadline,
#   an answer that is neither a 2xx nor an error documented in
#   docs/services/gateway.md (and docs/protocol.md for the codes it passes
#   through), a connection error while the gateway was up, a request still
#   waiting CHAOS_MAX_WAIT_MS (half the gateway's 5 s deadline) after the
#   new process was ready, or no recovery within CHAOS_RECOVER_S.
#   Each victim prints one "chaos:" line (tests/bench/chaos.sh reads them):
#   requests, answers by outcome:code, hangs, the longest wait, kill ->
#   first success, kill -> last error, kill -> every route of the mix
#   answering 2xx after the last error (recovered), kill -> the new process
#   ready (vzctl status).
#
#   Redis with AOF (the supervisor runs it with --appendonly yes): before
#   its kill a user registers, logs in and rotates a refresh token, and a
#   rate-limit bucket is partly spent; once the writes are in the AOF file
#   (observed, not slept on), Redis is killed under load. After its restart
#   the user logs in, the bucket is not refilled, and the rotated-out
#   refresh token is still detected as reuse (the family survived).
#
#   Knobs (tests/bench/chaos.sh sets them): CHAOS_ROUNDS (1), CHAOS_PRE
#   (0.5), CHAOS_POST (0.5), CHAOS_CONC (4), CHAOS_DEADLINE_MS (10000),
#   CHAOS_MAX_WAIT_MS (2500), CHAOS_RECOVER_S (20), CHAOS_VICTIMS (all, in
#   the order below).
set -u -o pipefail
# shellcheck source=mesh.sh
source "$(dirname "$0")/mesh.sh" chaos
LOAD=
#   mesh_cleanup reads the script's exit status from $?: keep it past the kill.
trap 'rc=$?; [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null; (exit $rc); mesh_cleanup' EXIT

ROUNDS=${CHAOS_ROUNDS:-1} PRE=${CHAOS_PRE:-0.5} POST=${CHAOS_POST:-0.5}
CONC=${CHAOS_CONC:-4} DEADLINE_MS=${CHAOS_DEADLINE_MS:-10000} RECOVER_S=${CHAOS_RECOVER_S:-20}
#   A request the dead daemon held must end when it dies (worker_lost,
#   retried when idempotent), not at its deadline (the gateway's
#   VZ_GATEWAY_TIMEOUT_MS, 5 s): none may still wait half of that once the
#   new process is ready. (Waiting while the victim is away is fine: the
#   broker keeps a request until a worker comes.)
MAX_WAIT_MS=${CHAOS_MAX_WAIT_MS:-2500}
VICTIMS=${CHAOS_VICTIMS:-broker redis echo auth ratelimit notifier telemetry billing github reporter gateway}
LOADER=$SRC/tests/integration/chaos_load.mjs
START=$SECONDS
command -v node >/dev/null || fail "node missing"

now_ms() { date +%s%3N; }
#   The status --json row of replica 0 of SERVICE, and its pid.
row() { "${CTL[@]}" status --json | grep "\"service\":\"$1\",\"replica\":0,"; }
pid_of() { row "$1" | sed -E 's/.*"pid":([0-9]+).*/\1/'; }
#   replaced SERVICE OLD_PID: replica 0 is a new process, started and ready.
replaced() { row "$1" | grep -Eq "\"pid\":([0-9]+),\"state\":\"ready\",\"ready\":true" &&
    [ "$(pid_of "$1")" != "$2" ]; }
#   ok_since LOG MS: a request started at or after MS (epoch ms) got a 2xx.
ok_since() { awk -F'\t' -v k="$2" '$1 >= k && $4 ~ /^2[0-9][0-9]$/ {f = 1; exit} END {exit !f}' "$1"; }
#   recovered LOG MS ROUTES: a healthy second since MS and since the last
#   error so far: each of the ROUTES routes of the mix got a 2xx to a
#   request started after both, it is at least 1 s later, and nothing sent
#   more than 1 s ago is still in flight (it may fail yet: a request the
#   dead broker held waits for its deadline).
recovered() {
    awk -F'\t' -v k="$2" -v n="$3" -v now="$(now_ms)" -v o="$(cat "$1.inflight" 2>/dev/null || echo 0)" \
        '$4 !~ /^2[0-9][0-9]$/ {if ($2 + 0 > e) e = $2 + 0; next}
        {if ($1 + 0 > ok[$3]) ok[$3] = $1 + 0}
        END {t = e > k ? e : k; for (r in ok) c += ok[r] >= t
             exit !(c >= n && now - t >= 1000 && o + 0 >= now - 1000)}' "$1"
}
#   poll TIMEOUT_S CMD...: until_ok 20 ms apart (recovery is timed).
poll() { UNTIL_OK_STEP=0.02 until_ok "$@"; }
#   --- the mesh: limits raised for the load; one budget kept small (a token
#   bucket of 50 an hour per user on /v1/echo/me) for the AOF check.
mesh_config
sed -i -E 's/^( +limit) = [0-9]+/\1 = 50000000/' "$T/ratelimit.cfg"
grep -E '^ +limit = ' "$T/ratelimit.cfg" | grep -v '= 50000000$' >/dev/null && fail "a rate limit was not raised"
awk '{print} /^policy$/ {
    print "    chaos_budget"
    print "        route = \"echo_me\""
    print "        tier = \"*\""
    print "        by = \"sub\""
    print "        algorithm = \"token_bucket\""
    print "        limit = 50"
    print "        window = \"3600s\""
}' "$T/ratelimit.cfg" >"$T/rl.cfg" && mv "$T/rl.cfg" "$T/ratelimit.cfg"
mesh_start
mesh_gateway
until_ok 15 curl -sf --max-time 2 "$GW/v1/echo" || fail "the gateway does not answer"
ADMIN=$(mesh_admin "$GW" "chaos-admin@example.com" "chaos-admin-password-1") || exit 1
[ -n "$ADMIN" ] || fail "no admin token"
echo "ok - mesh ready, admin token ($((SECONDS - START)) s)"

#   Route mixes: each goes through its victim (all successes when healthy).
#   mix NAME ROUTE:PATH...: GETs with the admin's bearer token.
mix() {
    local name=$1 first=1 r
    shift
    {
        printf '['
        for r in "$@"; do
            [ $first = 1 ] || printf ','
            first=0
            printf '{"route":"%s","method":"GET","path":"%s","headers":{"Authorization":"Bearer %s"}}' \
                "${r%%:*}" "${r#*:}" "$ADMIN"
        done
        printf ']'
    } >"$T/mix.$name.json"
}
mix echo echo:/v1/echo whoami:/v1/echo/whoami
mix auth profile:/v1/auth/profile jwks:/.well-known/jwks.json
mix ratelimit echo:/v1/echo
mix notifier dead:/v1/notifications/dead
mix telemetry signals:/v1/telemetry/signals slo:/v1/telemetry/slo
mix billing subscriptions:/v1/billing/subscriptions invoices:/v1/billing/invoices
mix github repos:/v1/github/repos
mix reporter reports:/v1/reports
mix all echo:/v1/echo profile:/v1/auth/profile subscriptions:/v1/billing/subscriptions \
    signals:/v1/telemetry/signals
#   The victim's mix: broker, Redis and the gateway carry everything.
mix_of() { case $1 in broker | redis | gateway) echo all ;; *) echo "$1" ;; esac; }
routes_of() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).length)' \
    "$T/mix.$(mix_of "$1").json"; }
for m in "$T"/mix.*.json; do
    node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' "$m" || fail "bad mix $m"
done

#   Every mix answers 2xx on the healthy mesh (else a failure below would
#   not be the kill's doing).
for m in echo auth ratelimit notifier telemetry billing github reporter; do
    for p in $(node -e 'for (const r of JSON.parse(require("fs").readFileSync(process.argv[1]))) console.log(r.path)' \
        "$T/mix.$m.json"); do
        http GET "$p" "" -H "Authorization: Bearer $ADMIN"
        [[ $code == 2* ]] || fail "healthy mesh: GET $p answered $code: $body"
    done
done
echo "ok - every route of the mixes answers 2xx before the chaos"

RESULTS=()
#   chaos VICTIM ROUND: load, kill -9, recovery, verdict.
chaos() {
    local victim=$1 round=$2 log=$T/load.$1.$2.log allow=0 old k ready verdict rc
    [ "$victim" = gateway ] && allow=1
    : >"$log"
    node "$LOADER" run "$GW" "$T/mix.$(mix_of "$victim").json" "$log" "$CONC" "$DEADLINE_MS" 300 &
    LOAD=$!
    poll 15 ok_since "$log" 0 || fail "$victim: no success under load before the kill"
    sleep "$PRE" # the bounded load window before the kill
    old=$(pid_of "$victim")
    [ -n "$old" ] || fail "$victim: no pid"
    k=$(now_ms)
    kill -9 "$old" || fail "kill -9 $victim ($old)"
    poll "$RECOVER_S" replaced "$victim" "$old" ||
        fail "$victim: not restarted and ready within $RECOVER_S s: $(row "$victim")"
    ready=$(($(now_ms) - k)) # as seen by polling vzctl status every 20 ms
    poll "$RECOVER_S" recovered "$log" "$k" "$(routes_of "$victim")" ||
        fail "$victim: not every route answered 2xx again within $RECOVER_S s of the kill"
    sleep "$POST" # the bounded load window after recovery
    kill -TERM "$LOAD"
    wait "$LOAD" || fail "$victim: the load generator failed"
    LOAD=
    verdict=$(node "$LOADER" report "$log" "$k" "$SRC" "$allow" "$MAX_WAIT_MS" "$((k + ready))" \
        2>"$T/verdict.err")
    rc=$?
    echo "chaos: victim=$victim round=$round ready_ms=$ready $verdict"
    [ $rc -eq 0 ] || fail "$victim: $(cat "$T/verdict.err")"
    RESULTS+=("$victim $round $ready $verdict")
}

#   --- Redis with AOF: state written before the kill.
rl_remaining() { # -> "POLICY REMAINING" of a GET /v1/echo/me with the user's token
    curl -s -o /dev/null -D - --max-time 10 -H "Authorization: Bearer $1" "$GW/v1/echo/me" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="ratelimit-policy" {split($2, a, "\""); p = a[2]}
            tolower($1)=="x-ratelimit-remaining" {r = $2} END {print p, r}'
}
aof_has() { grep -aqF "$1" "$STATE"/redis/appendonlydir/*.incr.aof; }
aof_prepare() {
    local cred='{"email":"chaos-user@example.com","password":"chaos-user-password-1"}' j
    j=(-H Content-Type:application/json)
    http POST /v1/auth/register "$cred" "${j[@]}"
    expect 201 "register the AOF user"
    http POST /v1/auth/login "$cred" "${j[@]}"
    expect 200 "login before the kill"
    USER_TOKEN=$(json "$body" access_token)
    RT1=$(json "$body" refresh_token)
    http POST /v1/auth/refresh "{\"refresh_token\":\"$RT1\"}" "${j[@]}"
    expect 200 "rotate the refresh token"
    RT2=$(json "$body" refresh_token)
    [ -n "$RT2" ] && [ "$RT2" != "$RT1" ] || fail "no new refresh token: $body"
    #   Spend the bucket down to 20 (decisions of the limiter, not the gateway's local fallback).
    local out
    RL_LEFT=
    for _ in $(seq 1 60); do
        out=$(rl_remaining "$USER_TOKEN")
        [ "${out% *}" = chaos_budget ] && RL_LEFT=${out#* }
        [ -n "$RL_LEFT" ] && [ "$RL_LEFT" -le 20 ] && break
    done
    [ -n "$RL_LEFT" ] && [ "$RL_LEFT" -le 20 ] || fail "the chaos_budget bucket was not spent: $out"
    #   The last write, in the AOF file means every earlier one is: AOF is
    #   appended in execution order. (appendfsync everysec may keep an
    #   acknowledged write in Redis' buffer while a background fsync runs;
    #   a kill -9 would lose it. What is in the file survives a kill.)
    http POST /v1/auth/register '{"email":"aof-marker@example.com","password":"chaos-user-password-1"}' "${j[@]}"
    expect 201 "register the AOF marker"
    until_ok 10 aof_has aof-marker@example.com || fail "the AOF marker did not reach the AOF file in 10 s"
    echo "ok - AOF state written: user, refresh family (rotated once), bucket at $RL_LEFT of 50"
}
aof_verify() {
    local j=(-H Content-Type:application/json) out
    "${CTL[@]}" wait --timeout "$RECOVER_S" >/dev/null || fail "mesh not ready after the Redis kill"
    http POST /v1/auth/login '{"email":"chaos-user@example.com","password":"chaos-user-password-1"}' "${j[@]}"
    expect 200 "login of a user registered before the Redis kill"
    out=$(rl_remaining "$USER_TOKEN")
    [ "${out% *}" = chaos_budget ] || fail "after the Redis kill the limiter did not decide: $out"
    [ "${out#* }" -lt "$RL_LEFT" ] || fail "the bucket was refilled: $RL_LEFT left before, ${out#* } after"
    http POST /v1/auth/refresh "{\"refresh_token\":\"$RT1\"}" "${j[@]}"
    expect 401 "reuse of the rotated-out refresh token"
    [[ $body == *"already used; session revoked"* ]] || fail "reuse not detected (family lost?): $body"
    http POST /v1/auth/refresh "{\"refresh_token\":\"$RT2\"}" "${j[@]}"
    expect 401 "the family's current token after the reuse"
    echo "ok - after the Redis kill: the user logs in, bucket at ${out#* } (not refilled), refresh reuse detected"
}

for round in $(seq 1 "$ROUNDS"); do
    for v in $VICTIMS; do
        [ "$v" = redis ] && [ "$round" = 1 ] && aof_prepare
        chaos "$v" "$round"
        [ "$v" = redis ] && [ "$round" = 1 ] && aof_verify
        #   The next victim starts on a whole mesh.
        "${CTL[@]}" wait --timeout "$RECOVER_S" >/dev/null || fail "mesh not ready after the kill of $v"
    done
done

echo
#   The summary: one row per kill, times in ms.
field() { printf '%s\n' "${@:2}" | sed -n "s/^$1=//p"; }
printf '%-10s %5s %6s %6s %5s %5s %6s %8s %8s %9s %6s  %s\n' victim round sent errors hangs undoc \
    max first_ok last_err recovered ready by
for r in "${RESULTS[@]}"; do
    read -ra w <<<"$r"
    printf '%-10s %5s %6s %6s %5s %5s %6s %8s %8s %9s %6s  %s\n' "${w[0]}" "${w[1]}" "$(field sent "${w[@]}")" \
        "$(field errors "${w[@]}")" "$(field hangs "${w[@]}")" "$(field undocumented "${w[@]}")" \
        "$(field max_ms "${w[@]}")" "$(field first_ok_ms "${w[@]}")" "$(field last_err_ms "${w[@]}")" \
        "$(field recovered_ms "${w[@]}")" "${w[2]}" "$(field by "${w[@]}")"
done
echo "ok - every victim recovered, no hang, no undocumented answer ($((SECONDS - START)) s)"
sup_stop_clean
