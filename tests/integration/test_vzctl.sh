#!/bin/bash
#   test_vzctl - vzctl as people use supervisorctl and systemctl, on fake bash daemons
#   SPDX-License-Identifier: MPL-2.0
#
#   help and version, exit codes, status of one service or replica, start,
#   stop and restart of S.i and all, start waiting for readiness, messages,
#   reread/update, log rotation, logs -f, the supervisor's own SIGHUP, a
#   second supervisor on the same state directory, shutdown, keys gen modes.
#   Every wait is `vzctl wait` or a poll loop with a deadline, never a sleep.
set -u -o pipefail
# shellcheck source=mesh.sh
source "$(dirname "$0")/mesh.sh" vzctl
#   Its fake daemons exit 100 and crash on purpose: the log check at exit
#   looks for sanitizer reports only (tests/integration/logcheck.sh).
export VZ_EXPECTED_EXITS=.
START=$SECONDS
LOGS_PID=
#   mesh_cleanup reads the script's exit status from $?: keep it past the kill.
trap 'rc=$?; [ -n "$LOGS_PID" ] && kill "$LOGS_PID" 2>/dev/null; (exit $rc); mesh_cleanup' EXIT
ok() { echo "ok - $*"; }

#   field TARGET COLUMN (3 pid, 4 state, 5 ready) of the one row of TARGET (S.i)
field() { "${CTL[@]}" status "$1" | awk -v c="$2" 'NR==2 {print $c}'; }
rows() { "${CTL[@]}" status "$1" | awk 'NR>1' | wc -l; }
gone() { [ ! -e "/proc/$1" ] || awk '{exit !($3=="Z")}' "/proc/$1/stat" 2>/dev/null; }
#   run CMD...: stdout in OUT, stderr in ERR, exit code in RC
run() {
    "$@" >"$T/out" 2>"$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}

#   Fake daemon: says what it got, notifies after an optional delay, idles;
#   SIGHUP logs a line (and, for "chatty", 5 KiB of filler to rotate).
cat >"$T/fake.sh" <<'EOF'
echo "fake $1 up replica=$VZ_REPLICA extra=${EXTRA:-}"
n=0
hup() {
    n=$((n + 1))
    echo "fake $1 reloaded"
    [ "$1" = chatty ] && for i in $(seq 80); do echo "chatty filler line $n.$i of about sixty-four bytes ......."; done
}
trap 'hup "$1"' HUP
[ -n "${2:-}" ] && sleep "$2"
printf '\n' >&"$VZ_NOTIFY_FD"
exec {VZ_NOTIFY_FD}>&-
while :; do sleep 1 & wait $!; done
EOF
echo 'echo "bad config"; exit 100' >"$T/perm.sh"

#   write_config EXTRA_ENV DELTA_OR_GAMMA BETA_REPLICAS
write_config() {
    cat >"$T/mesh.cfg" <<EOF
supervisor
    state_dir = "$STATE"
    stop_timeout = "1s"
    ready_poll = "0"
    log_max_bytes = "4K"
    log_backups = 2
services
    alpha
        command = "bash \${config_dir}/fake.sh alpha"
        admin_port = auto
        replicas = 2
        env
            EXTRA = "$1"
    beta
        command = "bash \${config_dir}/fake.sh beta"
        admin_port = auto
        replicas = $3
        depends = "alpha"
    $2
        command = "bash \${config_dir}/fake.sh $2"
        admin_port = auto
    chatty
        command = "bash \${config_dir}/fake.sh chatty"
        admin_port = auto
    sleepy
        command = "bash \${config_dir}/fake.sh sleepy 2"
        admin_port = auto
        replicas = 0
    perm
        command = "bash \${config_dir}/perm.sh"
        admin_port = auto
        replicas = 0
EOF
}
write_config one delta 1

#   --- help, version, usage and unreachable exit codes (no supervisor yet)
run "$BIN/vzctl" --help
[ $RC -eq 0 ] && [ -z "$ERR" ] && grep -q "^usage: vzctl" <<<"$OUT" || fail "--help: rc $RC, stderr '$ERR'"
grep -q "restart TARGET" <<<"$OUT" && grep -q "update" <<<"$OUT" || fail "--help lacks commands"
run "$BIN/vzctl" help
[ $RC -eq 0 ] && grep -q "^usage: vzctl" <<<"$OUT" || fail "vzctl help: rc $RC"
run "$BIN/vzctl" --version
[ $RC -eq 0 ] && echo "$OUT" | grep -Eq "^vzctl \(vizmesh\) [0-9]+\.[0-9]+\.[0-9]+$" || fail "--version: rc $RC, '$OUT'"
run "$BIN/vz-supervisor" --version
[ $RC -eq 0 ] && echo "$OUT" | grep -Eq "^vz-supervisor \(vizmesh\) [0-9]+\." || fail "vz-supervisor --version: '$OUT'"
run "$BIN/vzctl" frobnicate
[ $RC -eq 2 ] && [ -z "$OUT" ] && grep -q "^usage" <<<"$ERR" || fail "bad command: rc $RC"
run "${CTL[@]}" status
[ $RC -eq 4 ] && grep -q "not reachable" <<<"$ERR" || fail "no supervisor: rc $RC, '$ERR'"
ok "--help and help to stdout (0), --version, usage 2 on stderr, unreachable 4"

mesh_start

#   --- a second supervisor on the same state directory is refused (111),
#   even with another control socket, and the first one keeps running.
run "$BIN/vz-supervisor" --config "$T/mesh.cfg"
[ $RC -eq 111 ] || fail "second supervisor: exit $RC, expected 111"
grep -q "another vz-supervisor (pid $SUP) is running on the state directory" <<<"$ERR" ||
    fail "second supervisor's message: $ERR"
sed "s|^supervisor$|supervisor\n    control = \"$T/other.sock\"|" "$T/mesh.cfg" >"$T/other.cfg"
run "$BIN/vz-supervisor" --config "$T/other.cfg"
[ $RC -eq 111 ] && grep -q "supervisor.lock is locked" <<<"$ERR" || fail "other socket, same state: exit $RC: $ERR"
[ ! -e "$T/other.sock" ] || fail "the refused supervisor bound its socket"
"${CTL[@]}" wait --timeout 5 >/dev/null || fail "the first supervisor stopped serving"
ok "second supervisor on the same state directory exits 111 naming the holder's pid"

#   --- status of one service or replica; exit 0 while nothing is failed
[ "$(rows alpha)" = 2 ] && [ "$(rows alpha.1)" = 1 ] || fail "status alpha rows $(rows alpha), alpha.1 $(rows alpha.1)"
"${CTL[@]}" status alpha.1 | awk 'NR==2' | grep "^alpha  *1 " >/dev/null || fail "status alpha.1: $("${CTL[@]}" status alpha.1)"
"${CTL[@]}" status >/dev/null || fail "status exits non-zero with nothing failed"
run "${CTL[@]}" status nope
[ $RC -eq 1 ] && grep -q 'unknown service "nope"' <<<"$ERR" || fail "status nope: rc $RC, '$ERR'"
run "${CTL[@]}" status alpha.7
[ $RC -eq 1 ] && grep -q 'alpha has no replica "7"' <<<"$ERR" || fail "status alpha.7: rc $RC, '$ERR'"
ok "status S and S.i show only those rows; unknown ones exit 1"

#   --- stop, start and restart of one replica
a0=$(field alpha.0 3)
a1=$(field alpha.1 3)
run "${CTL[@]}" stop alpha.1
[ $RC -eq 0 ] && [ "$OUT" = "stopped alpha.1" ] || fail "stop alpha.1: rc $RC, '$OUT' '$ERR'"
[ "$(field alpha.1 4)" = stopped ] && gone "$a1" || fail "stop returned before alpha.1 was gone"
[ "$(field alpha.0 3)" = "$a0" ] && [ "$(field alpha.0 4)" = ready ] || fail "stop alpha.1 touched alpha.0"
run "${CTL[@]}" start alpha.1
[ $RC -eq 0 ] && [ "$OUT" = "started alpha.1: ready" ] || fail "start alpha.1: rc $RC, '$OUT' '$ERR'"
[ "$(field alpha.1 5)" = yes ] || fail "start returned before alpha.1 was ready"
a1=$(field alpha.1 3)
run "${CTL[@]}" restart alpha.0
[ $RC -eq 0 ] && [ "$OUT" = "restarted alpha.0" ] || fail "restart alpha.0: rc $RC, '$OUT' '$ERR'"
[ "$(field alpha.0 3)" != "$a0" ] && [ "$(field alpha.0 5)" = yes ] || fail "alpha.0 not restarted and ready"
[ "$(field alpha.1 3)" = "$a1" ] || fail "restart alpha.0 restarted alpha.1"
ok "stop, start and restart of S.i touch only that replica and say what they did"

#   --- restart all: each service in dependency order; stop all; start all
before=$("${CTL[@]}" status | awk 'NR>1 && $3!="-" {print $1"."$2"="$3}')
run "${CTL[@]}" restart all
[ $RC -eq 0 ] || fail "restart all: rc $RC, '$ERR'"
head -n 1 <<<"$OUT" | grep -q "^restarted alpha (2 replicas)$" || fail "restart all output: $OUT"
grep -q "^restarted beta (1 replica)$" <<<"$OUT" || fail "restart all output lacks beta: $OUT"
for entry in $before; do
    [ "$(field "${entry%%=*}" 3)" != "${entry#*=}" ] || fail "restart all kept $entry"
done
pids=$("${CTL[@]}" status | awk 'NR>1 && $3!="-" {print $3}')
run "${CTL[@]}" stop all
[ $RC -eq 0 ] && [ "$OUT" = "stopped all" ] || fail "stop all: rc $RC, '$OUT'"
[ -z "$("${CTL[@]}" status | awk 'NR>1 && ($3!="-" || $4!="stopped")')" ] || fail "stop all left: $("${CTL[@]}" status)"
for p in $pids; do gone "$p" || fail "pid $p survived stop all"; done
run "${CTL[@]}" start all
[ $RC -eq 0 ] && [ "$OUT" = "started all: ready" ] || fail "start all: rc $RC, '$OUT' '$ERR'"
[ "$(rows sleepy)" = 0 ] || fail "start all started sleepy, configured with 0 replicas"
[ -z "$("${CTL[@]}" status | awk 'NR>1 && $5!="yes"')" ] || fail "start all returned before everything was ready"
ok "restart all (alpha then beta), stop all (every process gone), start all (ready)"

#   --- start waits with a timeout, and fails on a failed replica
run "${CTL[@]}" start sleepy --timeout 0.3
[ $RC -eq 1 ] && grep -q "timeout: sleepy not ready" <<<"$ERR" || fail "start sleepy --timeout 0.3: rc $RC, '$ERR'"
run "${CTL[@]}" wait sleepy --timeout 10
[ $RC -eq 0 ] && [ "$OUT" = "sleepy ready" ] || fail "sleepy never ready: $ERR"
run "${CTL[@]}" start perm
[ $RC -eq 1 ] && grep -q "perm.0 failed: exit 100" <<<"$ERR" || fail "start perm: rc $RC, '$ERR'"
ok "start waits for readiness: exit 1 on timeout and on a failed replica"

#   --- status exits 3 while a replica shown is failed (systemctl's "not running")
run "${CTL[@]}" status
[ $RC -eq 3 ] && grep -q "^perm .*failed" <<<"$OUT" || fail "status with a failed replica: rc $RC"
run "${CTL[@]}" status --json
[ $RC -eq 3 ] && grep -q '"state":"failed"' <<<"$OUT" || fail "status --json with a failed replica: rc $RC"
"${CTL[@]}" status alpha >/dev/null || fail "status alpha exits non-zero because of perm"
run "${CTL[@]}" stop perm
[ $RC -eq 0 ] && "${CTL[@]}" status >/dev/null || fail "status still non-zero after stop perm"
ok "status exits 3 with a failed replica shown, 0 otherwise"

#   --- messages of scale, reload and wait
run "${CTL[@]}" scale beta 2
[ "$OUT" = "scaled beta from 1 to 2 replicas" ] || fail "scale: '$OUT'"
"${CTL[@]}" wait beta --timeout 5 >/dev/null || fail "beta.1 not ready"
run "${CTL[@]}" scale beta 1
until_ok 5 eval '[ "$(rows beta)" = 1 ]' || fail "beta not scaled back"
run "${CTL[@]}" reload
echo "$OUT" | grep -Eq "^sent SIGHUP to [0-9]+ processes$" || fail "reload: '$OUT'"
ok "scale and reload say what they did"

#   --- the supervisor's own SIGHUP: forwarded to the children, nothing restarted
b0=$(field beta.0 3)
n=$(grep -c "fake beta reloaded" "$STATE/logs/beta.0.log")
kill -HUP "$SUP"
until_ok 5 eval '[ "$(grep -c "fake beta reloaded" "$STATE/logs/beta.0.log")" -gt '"$n"' ]' ||
    fail "SIGHUP to the supervisor not forwarded to beta"
kill -0 "$SUP" && [ "$(field beta.0 3)" = "$b0" ] || fail "SIGHUP stopped the supervisor or restarted beta"
"${CTL[@]}" wait --timeout 2 >/dev/null || fail "mesh not ready after SIGHUP"
ok "SIGHUP to the supervisor reaches every daemon; the supervisor and the daemons keep running"

#   --- logs -f follows new lines, also across a rotation (the file is emptied in place)
#   Earlier reloads made chatty write past 4K: let that rotation settle, then
#   a marker line shows when logs -f is running.
until_ok 5 eval '[ "$(stat -c %s "$STATE/logs/chatty.0.log")" -lt 4096 ]' || fail "chatty.0.log never rotated"
rm -f "$STATE/logs/chatty.0.log".[0-9]
echo "marker before follow" >>"$STATE/logs/chatty.0.log"
"${CTL[@]}" logs -f -n 1 chatty >"$T/follow" 2>&1 &
LOGS_PID=$!
until_ok 5 grep -q "marker before follow" "$T/follow" || fail "logs -f -n 1 did not show the last line"
"${CTL[@]}" reload >/dev/null
until_ok 5 grep -q "fake chatty reloaded" "$T/follow" || fail "logs -f did not show the new line"
ok "logs -f shows lines written after it started"

#   --- size rotation: log_max_bytes 4K, log_backups 2
until_ok 5 test -e "$STATE/logs/chatty.0.log.1" || fail "chatty.0.log never rotated past 4K"
until_ok 5 eval '[ "$(stat -c %s "$STATE/logs/chatty.0.log")" -lt 4096 ]' || fail "chatty.0.log not emptied"
grep -q "fake chatty reloaded" "$STATE/logs/chatty.0.log.1" || fail "the rotated file lacks the old lines"
for round in 2 3; do
    "${CTL[@]}" reload >/dev/null
    until_ok 5 eval '[ "$(grep -c "fake chatty reloaded" "$T/follow")" -ge '"$round"' ]' ||
        fail "logs -f lost the lines after rotation $((round - 1))"
    until_ok 5 eval '[ "$(stat -c %s "$STATE/logs/chatty.0.log")" -lt 4096 ]' || fail "round $round not rotated"
done
[ -e "$STATE/logs/chatty.0.log.2" ] && [ ! -e "$STATE/logs/chatty.0.log.3" ] ||
    fail "backups: $(ls "$STATE/logs" | grep chatty)"
kill "$LOGS_PID"
LOGS_PID=
ok "logs rotated at log_max_bytes, log_backups files kept; logs -f follows across rotations"

#   --- reread shows, update applies: alpha changed, delta removed, gamma
#   added, beta scaled; chatty and the kept beta replica keep running.
a0=$(field alpha.0 3)
b0=$(field beta.0 3)
c0=$(field chatty.0 3)
d0=$(field delta.0 3)
write_config two gamma 2
run "${CTL[@]}" reread
[ $RC -eq 0 ] || fail "reread: rc $RC, '$ERR'"
for line in "removed delta" "changed (restarted) alpha" "scaled beta from 1 to 2 replicas" "added gamma"; do
    grep -qxF "$line" <<<"$OUT" || fail "reread lacks '$line': $OUT"
done
[ "$(field alpha.0 3)" = "$a0" ] && [ "$(rows gamma 2>/dev/null)" = 0 ] && [ "$(field delta.0 3)" = "$d0" ] ||
    fail "reread changed something"
run "${CTL[@]}" update
[ $RC -eq 0 ] && grep -qxF "added gamma" <<<"$OUT" || fail "update: rc $RC, '$OUT' '$ERR'"
"${CTL[@]}" wait --timeout 10 >/dev/null || fail "mesh not ready after update"
gone "$d0" && [ "$(rows delta 2>/dev/null)" = 0 ] || fail "delta still there"
[ "$(field gamma.0 5)" = yes ] || fail "gamma not ready"
[ "$(field alpha.0 3)" != "$a0" ] || fail "changed alpha was not restarted"
grep -q "fake alpha up replica=0 extra=two" "$STATE/logs/alpha.0.log" || fail "alpha did not get the new environment"
[ "$(field beta.0 3)" = "$b0" ] && [ "$(field chatty.0 3)" = "$c0" ] || fail "update restarted an unchanged service"
[ "$(rows beta)" = 2 ] || fail "beta not scaled to 2"
run "${CTL[@]}" update
[ $RC -eq 0 ] && [ "$OUT" = "no changes" ] || fail "second update: '$OUT'"
echo "services" >"$T/mesh.cfg"
run "${CTL[@]}" update
[ $RC -eq 1 ] && grep -q "nothing changed" <<<"$ERR" || fail "update with a bad file: rc $RC, '$ERR'"
[ "$(field chatty.0 3)" = "$c0" ] || fail "a bad file changed something"
ok "reread lists added, removed, changed and scaled services; update applies them and leaves the rest running"

#   --- shutdown: says so, exits 0, every child gone, socket removed
pids=$("${CTL[@]}" status | awk 'NR>1 && $3!="-" {print $3}')
run "${CTL[@]}" shutdown
[ $RC -eq 0 ] && grep -q "^shutting down" <<<"$OUT" || fail "shutdown: rc $RC, '$OUT'"
wait "$SUP"
rc=$?
SUP=
[ $rc -eq 0 ] || fail "supervisor exited $rc after vzctl shutdown"
for p in $pids; do gone "$p" || fail "pid $p survived shutdown"; done
[ ! -e "$STATE/vzctl.sock" ] || fail "socket left behind"
ok "vzctl shutdown: exit 0, every child gone, socket removed"

#   --- keys gen leaves the mode of an existing directory alone
mkdir -m 0750 "$T/kd"
"$BIN/vzctl" keys gen "$T/kd" alpha >/dev/null || fail "keys gen into an existing dir"
[ "$(stat -c %a "$T/kd")" = 750 ] || fail "keys gen changed $T/kd to $(stat -c %a "$T/kd")"
[ "$(stat -c %a "$T/kd/secret")" = 700 ] && [ "$(stat -c %a "$T/kd/public")" = 755 ] || fail "created dir modes"
(umask 077 && "$BIN/vzctl" keys gen "$T/kn" alpha >/dev/null) || fail "keys gen into a new dir"
[ "$(stat -c %a "$T/kn")" = 755 ] || fail "a created DIR is $(stat -c %a "$T/kn"), expected 755"
ok "keys gen: an existing DIR keeps its mode, created directories get theirs"

echo "all vzctl tests passed in $((SECONDS - START)) s"
