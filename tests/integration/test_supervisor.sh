#!/bin/bash
#   test_supervisor - vz-supervisor and vzctl with fake bash daemons and a real Redis
#   SPDX-License-Identifier: MPL-2.0
#
#   Every wait is a poll loop with a deadline (or `vzctl wait`), never a fixed sleep.
set -u -o pipefail

BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
SUPBIN=$BIN/vz-supervisor
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-sup.XXXXXX")
#   Searchable by the services' own uids (isolation = uid, the default as root).
chmod 0711 "$T"
STATE=$T/state
CTL=("$BIN/vzctl" --state "$STATE")
SUP=
START=$SECONDS

RPID=
cleanup() {
    #   A Redis left SIGSTOPped would never act on its PDEATHSIG.
    [ -n "$RPID" ] && kill -CONT "$RPID" 2>/dev/null
    [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "--- supervisor log" >&2
    tail -n 40 "$T/sup.log" >&2 2>/dev/null
    echo "--- status" >&2
    "${CTL[@]}" status >&2 2>/dev/null
    exit 1
}
ok() { echo "ok - $*"; }

#   until TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds or the deadline passes.
until_ok() {
    local deadline=$((SECONDS + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}

#   field SERVICE REPLICA COLUMN (1 service, 3 pid, 4 state, 5 ready, 7 restarts)
field() { "${CTL[@]}" status | awk -v s="$1" -v r="$2" -v c="$3" '$1==s && $2==r {print $c}'; }
rows() { "${CTL[@]}" status | awk -v s="$1" '$1==s' | wc -l; }
state_is() { [ "$(field "$1" "$2" 4)" = "$3" ]; }
#   A pid is gone when /proc has no entry or only a zombie nobody reaped yet.
gone() { [ ! -e "/proc/$1" ] || awk '{exit !($3=="Z")}' "/proc/$1/stat" 2>/dev/null; }
all_gone() { local p; for p in "$@"; do gone "$p" || return 1; done; }
pid_changed() { local p; p=$(field "$1" "$2" 3); [ -n "$p" ] && [ "$p" != "-" ] && [ "$p" != "$3" ]; }
line_of() { grep -n "\"msg\":\"$1\".*\"target\":\"$2\"" "$T/sup.log" | head -n 1 | cut -d: -f1; }

#   Fake daemons: announce readiness on $VZ_NOTIFY_FD (after an optional delay), then idle.
cat >"$T/fake.sh" <<'EOF'
echo "fake $1 up replica=$VZ_REPLICA admin=$VZ_ADMIN_PORT redis=$VZ_REDIS_URL extra=${EXTRA:-}"
trap 'echo "fake $1 reloaded"' HUP
[ -n "${2:-}" ] && sleep "$2"
printf '\n' >&"$VZ_NOTIFY_FD"
exec {VZ_NOTIFY_FD}>&-
while :; do sleep 1 & wait $!; done
EOF
echo 'echo "crashing"; exit 1' >"$T/crash.sh"
echo 'echo "bad config"; exit 100' >"$T/perm.sh"
#   Ignores SIGTERM: only the stop timeout's SIGKILL ends it.
#   Never announces readiness: the start timeout must kill it.
echo 'echo "silent up"; while :; do sleep 1 & wait $!; done' >"$T/silent.sh"
printf '%s\n' "trap '' TERM" 'printf "\n" >&"$VZ_NOTIFY_FD"' 'while :; do sleep 1 & wait $!; done' >"$T/stubborn.sh"

cat >"$T/mesh.cfg" <<EOF
supervisor
    state_dir = "$STATE"
    stop_timeout = "1s"
    ready_poll = "0"               # the fake daemons serve no /readyz; Redis is polled below
ports
    redis = auto
    broker = auto
services
    redis
        ready_poll = "200ms"
    broker
        command = "bash \${config_dir}/fake.sh broker 0.3"
        admin_port = auto
        depends = "redis"
    echo
        command = "bash \${config_dir}/fake.sh echo"
        admin_port = auto
        depends = "broker"
        env
            EXTRA = "tcp://127.0.0.1:\${port.broker}"
    crashy
        command = "bash \${config_dir}/crash.sh"
        admin_port = auto
        depends = "redis"
    perm
        command = "bash \${config_dir}/perm.sh"
        admin_port = 19990
    stubborn
        command = "bash \${config_dir}/stubborn.sh"
        admin_port = auto
    silent
        command = "bash \${config_dir}/silent.sh"
        admin_port = auto
        start_timeout = "300ms"
EOF

#   --- invalid configurations exit 100 naming the item
bad_config() {
    local name=$1 expect=$2
    "$SUPBIN" --config "$T/$name.cfg" >"$T/$name.out" 2>&1
    local rc=$?
    [ $rc -eq 100 ] || fail "$name: exit $rc, expected 100"
    grep -q "$expect" "$T/$name.out" || fail "$name: message lacks \"$expect\": $(cat "$T/$name.out")"
    ok "$name config exits 100 naming \"$expect\""
}
printf 'services\n    a\n        command = "x"\n        admin_port = 1\n        depends = "c"\n    b\n        command = "x"\n        admin_port = 2\n        depends = "a"\n    c\n        command = "x"\n        admin_port = 3\n        depends = "b"\n' >"$T/cycle.cfg"
bad_config cycle "dependency cycle: a -> c -> b -> a"
printf 'services\n    a\n        command = "x"\n        admin_port = 1\n        depends = "nope"\n' >"$T/unknown.cfg"
bad_config unknown 'unknown dependency "nope"'
printf 'services\n    a\n        command = "x"\n        admin_port = 1\n        replicas = -2\n' >"$T/replicas.cfg"
bad_config replicas "services/a/replicas"
printf 'supervisor\n    start_timeout = "soon"\nservices\n    a\n        command = "x"\n        admin_port = 1\n' >"$T/timeout.cfg"
bad_config timeout 'supervisor/start_timeout="soon"'
printf 'services\n    a\n        command = "x"\n        admin_port = 1\n        ready_poll = "-1s"\n' >"$T/poll.cfg"
bad_config poll 'services/a/ready_poll'
printf 'ports\n    web = 70000\nservices\n    a\n        command = "x"\n        admin_port = 1\n' >"$T/port.cfg"
bad_config port "ports/web"
printf 'services\n    a\n        command = "x ${port.nope}"\n        admin_port = 1\n' >"$T/ref.cfg"
bad_config ref 'port.nope'

#   --- no supervisor: exit 3; usage: exit 2
"$BIN/vzctl" --state "$T/none" status >/dev/null 2>&1
[ $? -eq 4 ] || fail "vzctl without a supervisor should exit 4"
"$BIN/vzctl" frobnicate >/dev/null 2>&1
[ $? -eq 2 ] || fail "vzctl with a bad command should exit 2"
ok "vzctl exit codes 4 (unreachable) and 2 (usage)"

#   --- boot: everything reaches ready in dependency order
"$SUPBIN" --config "$T/mesh.cfg" 2>"$T/sup.log" &
SUP=$!
"${CTL[@]}" wait echo --timeout 10 || fail "echo never became ready"
"${CTL[@]}" wait broker --timeout 1 || fail "broker not ready"
"${CTL[@]}" wait redis --timeout 1 || fail "redis not ready"
r_ready=$(line_of "replica ready" redis)
b_start=$(line_of "replica started" broker)
b_ready=$(line_of "replica ready" broker)
e_start=$(line_of "replica started" echo)
[ -n "$r_ready" ] && [ -n "$b_start" ] && [ -n "$b_ready" ] && [ -n "$e_start" ] || fail "log lines missing"
[ "$r_ready" -lt "$b_start" ] || fail "broker started before redis was ready"
[ "$b_ready" -lt "$e_start" ] || fail "echo started before broker was ready"
ok "redis, broker, echo ready in dependency order"
"$BIN/vzctl" --state "$STATE" logs echo | grep "fake echo up replica=0 admin=[0-9]* redis=redis://echo:[0-9a-f]\{32\}@127.0.0.1:[0-9]* extra=tcp://127.0.0.1:[0-9]" >/dev/null \
    || fail "echo's environment or log is wrong: $("${CTL[@]}" logs echo)"
ok "logs show the child's output and the substituted environment"
"${CTL[@]}" status echo --json | grep '"service":"echo","replica":0,"pid":[1-9][0-9]*,"state":"ready","ready":true' >/dev/null \
    || fail "status --json: $("${CTL[@]}" status echo --json)"
ok "status --json"

#   --- file modes
[ "$(stat -c %a "$STATE/vzctl.sock")" = 600 ] || fail "control socket mode $(stat -c %a "$STATE/vzctl.sock")"
#   As root (isolation uid) the key dirs can be crossed, not listed, and each
#   secret is its service's alone (test_supervisor_isolation.sh); else owner-only.
dirs=700 secrets=600
[ "$(id -u)" = 0 ] && dirs=711 secrets=400
[ "$(stat -c %a "$STATE/keys")" = $dirs ] || fail "keys dir mode"
[ "$(stat -c %a "$STATE/keys/secret")" = $dirs ] || fail "secret dir mode"
for s in broker echo crashy perm; do
    [ "$(stat -c %a "$STATE/keys/secret/$s.key_secret")" = $secrets ] || fail "$s secret mode"
    [ -f "$STATE/keys/public/$s.key" ] || fail "$s public key missing"
done
ok "socket 0600, key dirs $dirs, secrets $secrets"

#   --- permanent error and crash loop
until_ok 3 state_is perm 0 failed || fail "exit 100 did not fail at once"
[ "$(field perm 0 7)" = 0 ] || fail "perm was restarted"
ok "exit 100 -> failed at once, no restart"
until_ok 12 state_is crashy 0 failed || fail "crash loop never ended in failed"
[ "$(field crashy 0 7)" = 5 ] || fail "crashy restarts $(field crashy 0 7), expected 5"
"${CTL[@]}" wait crashy --timeout 1 >/dev/null 2>&1 && fail "wait on a failed service succeeded"
"${CTL[@]}" start crashy --no-wait >/dev/null || fail "start crashy"
state_is crashy 0 failed && fail "start did not clear failed"
"${CTL[@]}" stop crashy >/dev/null || fail "stop crashy"
until_ok 3 state_is crashy 0 stopped || fail "crashy not stopped"
ok "always-exit-1 child ends failed after 6 deaths; start clears it"

#   --- kill -9 of a child: restarted, ready again, restart count increments
old=$(field echo 0 3)
kill -9 "$old"
until_ok 5 pid_changed echo 0 "$old" || fail "echo not restarted"
"${CTL[@]}" wait echo --timeout 5 || fail "echo not ready after restart"
[ "$(field echo 0 7)" = 1 ] || fail "restart count $(field echo 0 7), expected 1"
ok "kill -9 -> restarted with backoff, ready, restarts=1"

#   --- live readiness of Redis (PING every ready_poll): a frozen Redis is
#   alive but not ready, and is not restarted; it is ready again once thawed.
RPID=$(field redis 0 3)
kill -STOP "$RPID"
until_ok 5 eval '[ "$(field redis 0 5)" = no ]' || fail "a SIGSTOPped redis still shows ready"
state_is redis 0 ready || fail "redis left the ready state while frozen"
"${CTL[@]}" status redis | grep "^redis .*not ready: no answer in time" >/dev/null || fail "no not-ready reason for redis"
"${CTL[@]}" wait redis --timeout 0 >/dev/null 2>&1 && fail "vzctl wait redis succeeded while it is not ready"
grep -q '"msg":"replica not ready","target":"redis"' "$T/sup.log" || fail "no 'replica not ready' log line"
kill -CONT "$RPID"
"${CTL[@]}" wait redis --timeout 5 || fail "redis not ready again after SIGCONT"
[ "$(field redis 0 3)" = "$RPID" ] && [ "$(field redis 0 7)" = 0 ] || fail "redis was restarted"
RPID=
grep -q '"msg":"replica ready again","target":"redis".*"via":"redis PING"' "$T/sup.log" || fail "no 'ready again' log line"
ok "frozen redis: not ready (same pid, no restart), ready again after SIGCONT"

#   --- scale up and down
"${CTL[@]}" scale echo 3 >/dev/null || fail "scale up"
"${CTL[@]}" wait echo --timeout 5 || fail "scaled replicas not ready"
[ "$(rows echo)" = 3 ] || fail "rows after scale 3: $(rows echo)"
p1=$(field echo 1 3)
p2=$(field echo 2 3)
[ "$p1" != "$p2" ] && [ "$p1" != "$(field echo 0 3)" ] || fail "replica pids not distinct"
"${CTL[@]}" scale echo 1 >/dev/null || fail "scale down"
until_ok 5 all_gone "$p1" "$p2" || fail "scaled-down replicas still running"
until_ok 5 eval '[ "$(rows echo)" = 1 ]' || fail "rows after scale 1: $(rows echo)"
ok "scale 3 then 1 changes rows and pids"

#   --- stop / start
bpid=$(field broker 0 3)
"${CTL[@]}" stop broker >/dev/null || fail "stop broker"
until_ok 5 state_is broker 0 stopped || fail "broker not stopped"
until_ok 3 gone "$bpid" || fail "broker process still there"
"${CTL[@]}" start broker >/dev/null || fail "start broker"
"${CTL[@]}" wait broker --timeout 5 || fail "broker not ready after start"
ok "stop and start"

#   --- a child ignoring SIGTERM is killed after stop_timeout
"${CTL[@]}" wait stubborn --timeout 5 || fail "stubborn not ready"
spid=$(field stubborn 0 3)
#   stop returns once the process is gone: after the SIGKILL here.
"${CTL[@]}" stop stubborn >/dev/null || fail "stop stubborn"
state_is stubborn 0 stopped || fail "stop returned before stubborn was stopped"
gone "$spid" || fail "stubborn still running"
grep -q '"msg":"replica did not stop in time".*"signal":"SIGKILL"' "$T/sup.log" || fail "no SIGKILL logged"
ok "SIGTERM ignored -> SIGKILL after stop_timeout"

#   --- rolling restart and reload
old=$(field echo 0 3)
"${CTL[@]}" restart echo >/dev/null || fail "restart echo"
pid_changed echo 0 "$old" || fail "restart kept the old pid"
state_is echo 0 ready || fail "restart returned before the replica was ready"
ok "rolling restart returns once the new replica is ready"
"${CTL[@]}" reload >/dev/null || fail "reload"
until_ok 3 grep -q "fake echo reloaded" "$STATE/logs/echo.0.log" || fail "SIGHUP not forwarded"
ok "reload forwards SIGHUP"

#   --- key rotation
before=$(cat "$STATE/keys/public/echo.key")
old=$(field echo 0 3)
"${CTL[@]}" keys rotate echo >/dev/null || fail "keys rotate echo"
after=$(cat "$STATE/keys/public/echo.key")
[ "$before" != "$after" ] || fail "public key unchanged"
[ ! -e "$STATE/keys/public/echo.rotating.key" ] || fail "overlap key not retired"
pid_changed echo 0 "$old" || fail "rotation did not restart echo"
out=$("${CTL[@]}" keys rotate broker 2>&1)
[ $? -eq 1 ] && grep -q "VZ_BROKER_KEY" <<<"$out" || fail "broker rotation not refused: $out"
ok "keys rotate: new key, rolling restart, old key removed; broker refused"

#   --- keys gen (local)
"$BIN/vzctl" keys gen "$T/kg" alpha beta >/dev/null || fail "keys gen"
[ "$(stat -c %a "$T/kg/secret/alpha.key_secret")" = 600 ] && [ -f "$T/kg/public/beta.key" ] || fail "keys gen files"
"$BIN/vzctl" keys gen "$T/kg" alpha --k8s | grep "kind: Secret" >/dev/null || fail "keys gen --k8s"
ok "keys gen and --k8s"

#   --- start timeout: a child that never notifies is killed and counted as a death
until_ok 10 state_is silent 0 failed || fail "silent never ended in failed"
[ "$(field silent 0 7)" = 5 ] || fail "silent restarts $(field silent 0 7), expected 5"
#   status exits 3 while a replica it shows is failed.
"${CTL[@]}" status silent >"$T/silent.out"
[ $? -eq 3 ] && grep -q "^silent .*6 deaths within 30 s (last: start timeout)" "$T/silent.out" || fail "silent's failure reason or exit code"
grep -q '"msg":"replica start timed out","target":"silent".*"reason":"not ready within start_timeout (300 ms)"' "$T/sup.log" \
    || fail "no start timeout log line"
[ "$(field silent 0 3)" = - ] || fail "failed silent still has a pid"
ok "never-notifying child killed after start_timeout, backoff, failed after 6 deaths"

#   --- SIGTERM: reverse order, exit 0
pids=$("${CTL[@]}" status | awk 'NR>1 && $3!="-" {print $3}')
kill -TERM "$SUP"
wait "$SUP"
rc=$?
SUP=
[ $rc -eq 0 ] || fail "supervisor exited $rc after SIGTERM"
e_stop=$(line_of "replica stopped" echo)
b_stop=$(line_of "replica stopped" broker)
r_stop=$(line_of "replica stopped" redis)
[ -n "$e_stop" ] && [ -n "$b_stop" ] && [ -n "$r_stop" ] || fail "stop lines missing"
[ "$e_stop" -lt "$b_stop" ] && [ "$b_stop" -lt "$r_stop" ] || fail "shutdown order not echo, broker, redis"
# shellcheck disable=SC2086
all_gone $pids || fail "children left after shutdown"
[ ! -e "$STATE/vzctl.sock" ] || fail "socket left behind"
ok "SIGTERM stops echo, broker, redis in that order and exits 0"

#   --- SIGKILL to the supervisor leaves no orphan
"$SUPBIN" --config "$T/mesh.cfg" 2>>"$T/sup.log" &
SUP=$!
"${CTL[@]}" wait echo --timeout 10 || fail "second boot not ready"
#   PDEATHSIG sends SIGTERM, which stubborn ignores by design: take it out first.
"${CTL[@]}" stop stubborn >/dev/null
until_ok 4 state_is stubborn 0 stopped || fail "stubborn never stopped (second boot)"
pids=$("${CTL[@]}" status | awk 'NR>1 && $3!="-" {print $3}')
[ -n "$pids" ] || fail "no pids"
kill -9 "$SUP"
wait "$SUP" 2>/dev/null
SUP=
# shellcheck disable=SC2086
until_ok 5 all_gone $pids || fail "orphans after SIGKILL: $pids"
ok "SIGKILL to the supervisor: every child gone (PDEATHSIG)"

#   --- no sanitizer report in any log (the supervisor's own, the children's);
#   the fake daemons crash and are killed on purpose, so exits are not judged.
source "$(dirname "$0")/logcheck.sh"
VZ_EXPECTED_EXITS=. check_mesh_logs "$T/sup.log" "$STATE/logs" || fail "sanitizer report in the logs"
ok "no sanitizer report in the supervisor's or the children's logs"

echo "all supervisor tests passed in $((SECONDS - START)) s"
