#!/bin/bash
#   test_rollout - vzctl rollout: a canary of echo stepped through the broker's weights
#   SPDX-License-Identifier: MPL-2.0
#
#   The real mesh under the supervisor, traffic through the gateway to
#   /v1/echo all along (the rate limiter in shadow mode). Releases of
#   echo from the same binary (VZ_SERVICE_VERSION).
#   What reads what: the weights and the canaries' registration are read
#   from the broker's /metrics (vz_broker_version_weight, _workers); the
#   gates (error rate, p95) from the telemetry sink's /metrics
#   (vz_telemetry_version_*, counted from the echo workers' snapshots, which
#   carry their service_version; echo reports every 500 ms here) in 1, 1b
#   and 2 (state gates=telemetry); from the broker's vz_broker_version_* in 5,
#   whose --telemetry page has no per-version series (the fallback); from a
#   fake sink page in 6, which fails a canary the broker sees healthy.
#     1. a version answering 10 % of its calls "internal"
#        (VZ_ECHO_FAIL_PERMILLE=100): the error gate trips at the first
#        step, the rollout rolls back (weights to the old version, canary
#        stopped, an ALERT line) and exits 1; the errors are on telemetry's
#        per-version series;
#     1b. a version 40 ms slower per call: the p95 gate trips;
#     2. a healthy version: paused at a step it stays there (its dwell clock
#        stops while traffic flows), resumed it reaches 100 % and exits 0;
#        `clear` removes its weights and canary;
#     3. with telemetry reporting a spent error budget (a fake telemetry
#        admin page: vz_telemetry_deploy_freeze 1), `start` refuses;
#     4. forced with a reason (logged), it starts, and `abort` rolls it back;
#     5. blue/green: one step 0 -> 100 %, complete, cleared (gates: the broker);
#     6. gates read the sink given by --telemetry: a fake page counting 50 %
#        errors for a healthy canary rolls it back, the broker counting none;
#     7. --k8s with a stand-in kubectl (not a cluster): the runner scales
#        deploy/echo-canary and applies the vizmesh-weights ConfigMap; the
#        stand-in turns those into the supervisor's canaries and the broker's
#        weights file, which the broker rereads without a signal. A healthy
#        version completes and is cleared, a failing one is rolled back
#        (ConfigMap back, canary scaled to 0).
#   Every wait is a poll with a deadline on observable state, never a sleep
#   of fixed length.
set -u -o pipefail
# shellcheck source=mesh.sh
source "$(dirname "$0")/mesh.sh" rollout
LOAD_PID=
FAKE_PID=
SINK_PID=
stop_helpers() { for pid in $LOAD_PID $FAKE_PID $SINK_PID; do kill "$pid" 2>/dev/null; done; }
trap 'rc=$?; stop_helpers; (exit $rc); mesh_cleanup' EXIT
ok() { echo "ok - $*"; }

command -v python3 >/dev/null || fail "python3 missing (the fake telemetry page)"
mesh_config
#   Traffic the test makes must not be limited.
sed -i 's/^    shadow = "false"/    shadow = "true"/' "$T/ratelimit.cfg"
#   Rollback alerts (severity error) go to the daily digest: no pager in a test.
sed -i 's/^    error = "pagerduty"/    error = "digest"/' "$T/notifier.cfg"
grep -q VZ_BROKER_WEIGHTS "$T/mesh.cfg" || fail "mesh.cfg does not give the broker a weights file"
#   echo (and its canaries, which inherit its settings) reports every 500 ms.
sed -i '/^    echo$/,/^    auth/ s/^        depends = "broker"$/&\n        env\n            VZ_TELEMETRY_INTERVAL_MS = "500"/' \
    "$T/mesh.cfg"
grep -q 'VZ_TELEMETRY_INTERVAL_MS = "500"' "$T/mesh.cfg" || fail "echo's report interval not set"
mesh_start
mesh_gateway
ok "mesh ready"

#   Background traffic: batches of 40 parallel GETs, forever.
load() {
    local args=()
    for i in $(seq 40); do args+=(-o /dev/null "$GW/v1/echo?n=$i"); done
    while :; do curl -s --no-progress-meter -Z --parallel-max 8 --max-time 10 "${args[@]}" || true; done
}
load &
LOAD_PID=$!
BROKER_ADMIN=$("${CTL[@]}" status broker | awk 'NR==2 {print $8}')
TL_ADMIN=$("${CTL[@]}" status telemetry | awk 'NR==2 {print $8}')
metric() { curl -s "http://127.0.0.1:$BROKER_ADMIN/metrics" | awk -v s="$1" '$1==s {print $2}'; }
tl_metric() { curl -s "http://127.0.0.1:$TL_ADMIN/metrics" | awk -v s="$1" '$1==s {print $2}'; }
#   Counted by the worker: the gateway's idempotent GETs go to echo directly
#   (docs/protocol.md, "Direct calls") until weights split echo; then
#   through the broker, whose per-version series the broker gates read.
ECHO_ADMIN=$("${CTL[@]}" status echo | awk 'NR==2 {print $8}')
replied() {
    local n
    n=$(curl -s "http://127.0.0.1:$ECHO_ADMIN/metrics" |
        awk '$1=="vz_worker_requests_total{service=\"echo\",method=\"echo\",outcome=\"ok\"}" {print $2}')
    [ "${n%.*}" -gt "$1" ] 2>/dev/null
}
until_ok 30 replied 100 || fail "no traffic reaches echo"
ok "traffic flows"

field() { awk -F= -v k="$2" '$1==k {print substr($0, length(k) + 2)}' "$STATE/rollout-$1.state"; }
canaries() { "${CTL[@]}" status echo | awk 'NR>1' | wc -l; }
one_echo() { [ "$(canaries)" = 1 ]; }
ROLL=("${CTL[@]}" rollout)

#   1. The error gate trips at the first step and rolls back.
#   (5 s: the first step sees its window fill snapshot by snapshot, 500 ms each)
"${ROLL[@]}" start echo --version 9.1.0 --env VZ_ECHO_FAIL_PERMILLE=100 --steps 10,50,100 \
    --dwell 5s --min-requests 20 >"$T/r1.out" 2>"$T/r1.err"
rc=$?
cat "$T/r1.err"
[ $rc -eq 1 ] || fail "a failing canary: exit $rc, want 1"
[ "$(field echo phase)" = rolled_back ] || fail "phase $(field echo phase), want rolled_back"
[ "$(field echo step)" = 0 ] || fail "rolled back at step $(field echo step), want the first (0)"
field echo reason | grep "error rate" >/dev/null || fail "reason: $(field echo reason)"
grep -q "ALERT rolled_back at 10 %.*(notifier alerted)" "$STATE/rollout.log" ||
    fail "no alert through the notifier: $(cat "$STATE/rollout.log")"
w=$(metric 'vz_broker_version_weight{service="echo",version="9.1.0"}')
[ "$w" = 0 ] || fail "the failing version keeps weight $w"
until_ok 20 one_echo || fail "the canary was not stopped: $("${CTL[@]}" status echo)"
#   The gates read telemetry, which counted the canary's errors per version.
[ "$(field echo gates)" = telemetry ] || fail "gates read $(field echo gates), want telemetry"
grep -q "echo .*gates read telemetry (http://127.0.0.1:$TL_ADMIN" "$STATE/rollout.log" ||
    fail "no gates line: $(cat "$STATE/rollout.log")"
errors=$(tl_metric 'vz_telemetry_version_requests_total{service="echo",version="9.1.0",outcome="error"}')
[ "${errors:-0}" -gt 0 ] 2>/dev/null || fail "telemetry counts no error of 9.1.0: '$errors'"
OLD=$(field echo old)
ok "failing canary rolled back at 10 % by telemetry's series ($errors errors): $(field echo reason)"

#   1b. The latency gate: a version 40 ms slower per call trips p95 > 20 ms.
"${ROLL[@]}" start echo --version 9.1.5 --env VZ_ECHO_DELAY_MS=40 --steps 10,50,100 \
    --dwell 3s --min-requests 20 --max-p95-ms 20 >"$T/r1b.out" 2>"$T/r1b.err"
rc=$?
cat "$T/r1b.err"
[ $rc -eq 1 ] || fail "a slow canary: exit $rc, want 1"
[ "$(field echo phase)" = rolled_back ] || fail "phase $(field echo phase), want rolled_back"
field echo reason | grep "p95" >/dev/null || fail "reason: $(field echo reason)"
[ "$(field echo gates)" = telemetry ] || fail "p95 gate read $(field echo gates)"
until_ok 20 one_echo || fail "the slow canary was not stopped: $("${CTL[@]}" status echo)"
ok "slow canary rolled back: $(field echo reason)"

#   2. A healthy version: pause holds it, resume finishes it.
"${ROLL[@]}" start echo --version 9.2.0 --steps 10,50,100 --dwell 1s,3s,1s --min-requests 10 \
    >"$T/r2.out" 2>"$T/r2.err" &
RUN=$!
at_step() { [ "$(field echo step 2>/dev/null)" = "$1" ] && [ "$(field echo applied)" = "$1" ]; }
until_ok 60 at_step 1 || fail "the healthy canary did not reach step 2: $(cat "$T/r2.err")"
"${ROLL[@]}" pause echo || fail "pause"
[ "$(field echo phase)" = paused ] || fail "phase $(field echo phase) after pause"
#   A loaded machine may have let it pass step 2 already: hold whatever step it is at.
step=$(field echo step)
weight=$(field echo weight)
held=$(field echo waited_ms)
seen=$(field echo new_requests)
more_traffic() { [ "$(field echo new_requests)" -gt $((seen + 20)) ]; }
until_ok 30 more_traffic || fail "no traffic to the canary while paused"
[ "$(field echo waited_ms)" = "$held" ] || fail "the dwell clock ran while paused"
[ "$(field echo step)" = "$step" ] || fail "a paused rollout advanced"
ok "paused at $weight %: traffic flows, the step holds"
"${ROLL[@]}" resume echo || fail "resume"
wait $RUN
rc=$?
[ $rc -eq 0 ] || fail "healthy canary: exit $rc: $(cat "$T/r2.err")"
[ "$(field echo phase)" = complete ] || fail "phase $(field echo phase), want complete"
w=$(metric 'vz_broker_version_weight{service="echo",version="9.2.0"}')
[ "$w" = 100 ] || fail "the new version has weight $w at the end"
p95=$(field echo new_p95_ms)
awk -v p="$p95" 'BEGIN { exit !(p > 0 && p < 1200) }' || fail "the new version's p95 reads $p95 ms"
ok "healthy canary reached 100 % (p95 $p95 ms, error rate $(field echo new_error_rate))"
"${ROLL[@]}" clear echo || fail "clear"
until_ok 20 one_echo || fail "clear left canaries"
ok "cleared"

#   3. Freeze: telemetry says the error budget is spent.
mkdir -p "$T/fake"
printf 'vz_telemetry_deploy_freeze 1\n' >"$T/fake/metrics"
(cd "$T/fake" && exec python3 -u -m http.server 0 --bind 127.0.0.1) >"$T/fake.log" 2>&1 &
FAKE_PID=$!
fake_port() { grep -o 'port [0-9]*' "$T/fake.log" | head -n1 | cut -d' ' -f2; }
fake_up() { [ -n "$(fake_port)" ]; }
until_ok 10 fake_up || fail "fake telemetry did not start"
FAKE=http://127.0.0.1:$(fake_port)
"${ROLL[@]}" start echo --version 9.3.0 --telemetry "$FAKE" --dwell 1s >"$T/r3.out" 2>"$T/r3.err"
rc=$?
[ $rc -eq 1 ] || fail "start under a freeze: exit $rc"
grep -q "frozen" "$T/r3.err" || fail "no freeze message: $(cat "$T/r3.err")"
[ "$(canaries)" = 1 ] || fail "a refused rollout started canaries"
ok "deploy freeze refuses: $(cat "$T/r3.err")"

#   4. Forced with a reason: logged, started, then aborted by the operator.
"${ROLL[@]}" start echo --version 9.3.0 --telemetry "$FAKE" --force >/dev/null 2>&1
[ $? -eq 2 ] || fail "--force without --reason must be a usage error"
"${ROLL[@]}" start echo --version 9.3.0 --telemetry "$FAKE" --force --reason "hotfix INC-7" \
    --steps 50,100 --dwell 60s --min-requests 10 >"$T/r4.out" 2>"$T/r4.err" &
RUN=$!
until_ok 10 grep -q 'forced start of 9.3.0 (freeze on): hotfix INC-7' "$STATE/rollout.log" ||
    fail "the forced start was not logged"
until_ok 60 at_step 0 || fail "the forced rollout did not start: $(cat "$T/r4.err")"
"${ROLL[@]}" abort echo || fail "abort"
wait $RUN
rc=$?
[ $rc -eq 1 ] || fail "aborted run: exit $rc"
[ "$(field echo phase)" = aborted ] || fail "phase $(field echo phase), want aborted"
until_ok 20 one_echo || fail "abort left canaries"
ok "forced start logged, abort rolled back"

#   5. Blue/green: one switch 0 -> 100 % with the same gates (the budget is back).
printf 'vz_telemetry_deploy_freeze 0\n' >"$T/fake/metrics"
"${ROLL[@]}" start echo --version 9.4.0 --blue-green --telemetry "$FAKE" --dwell 1s \
    --min-requests 10 >"$T/r5.out" 2>"$T/r5.err" || fail "blue/green: $(cat "$T/r5.err")"
if [ "$(field echo phase)" != complete ] || [ "$(field echo weight)" != 100 ]; then
    fail "blue/green ended $(field echo phase) at $(field echo weight) %"
fi
grep -c "step [0-9]*: 9.4.0 at" "$T/r5.err" | grep -x 1 >/dev/null || fail "blue/green took more than one step"
#   That page has no per-version series: the gates fell back to the broker.
[ "$(field echo gates)" = broker ] || fail "gates read $(field echo gates), want broker"
grep -q "gates read the broker: telemetry has no per-version series" "$T/r5.err" ||
    fail "the fallback was not said: $(cat "$T/r5.err")"
"${ROLL[@]}" clear echo || fail "clear after blue/green"
ok "blue/green switched 0 -> 100 % in one step (gates: the broker, the fallback)"

#   6. The gates read the sink's page, not the broker: a fake sink counts 50 %
#   errors for 9.5.0 (a healthy canary), 0 for the old version, growing.
fake_sink() {
    local n=0
    while :; do
        n=$((n + 20))
        {
            echo 'vz_telemetry_deploy_freeze 0'
            echo 'vz_telemetry_version_series 2'
            echo "vz_telemetry_version_requests_total{service=\"echo\",version=\"$OLD\",outcome=\"ok\"} $n"
            echo "vz_telemetry_version_requests_total{service=\"echo\",version=\"9.5.0\",outcome=\"ok\"} $n"
            echo "vz_telemetry_version_requests_total{service=\"echo\",version=\"9.5.0\",outcome=\"error\"} $n"
        } >"$T/fake/metrics.tmp"
        mv "$T/fake/metrics.tmp" "$T/fake/metrics"
        sleep 0.1
    done
}
fake_sink &
SINK_PID=$!
until_ok 10 grep -q vz_telemetry_version_series "$T/fake/metrics" || fail "the fake sink did not start"
"${ROLL[@]}" start echo --version 9.5.0 --telemetry "$FAKE" --steps 10,100 --dwell 30s \
    --min-requests 20 >"$T/r6.out" 2>"$T/r6.err"
rc=$?
kill "$SINK_PID"
wait "$SINK_PID" 2>/dev/null
SINK_PID=
[ $rc -eq 1 ] || fail "a canary failing on the sink's page: exit $rc: $(cat "$T/r6.err")"
[ "$(field echo gates)" = telemetry ] || fail "gates read $(field echo gates), want telemetry"
field echo reason | grep "error rate 50.00 %" >/dev/null || fail "reason: $(field echo reason)"
broker_errors=$(metric 'vz_broker_version_requests_total{service="echo",version="9.5.0",outcome="error"}')
[ "${broker_errors:-0}" = 0 ] || fail "the broker counted $broker_errors errors of the healthy 9.5.0"
until_ok 20 one_echo || fail "the canary was not stopped: $("${CTL[@]}" status echo)"
ok "gates read the sink: rolled back on its page ($(field echo reason)), the broker saw no error"

#   7. --k8s, against a stand-in kubectl that records its commands: `apply -f -`
#   of the vizmesh-weights ConfigMap writes its weights.cfg where the broker
#   reads it (the broker polls the file: no SIGHUP, as with a mounted
#   ConfigMap); `scale deploy/echo-canary --replicas=N` becomes the
#   supervisor's `canary echo N` with the version (and env) of the test.
mkdir -p "$T/fakebin"
cat >"$T/fakebin/kubectl" <<'KUBECTL'
#!/bin/bash
echo "$*" >>"$KUBE_LOG"
[ "$1" = -n ] && shift 2
case "$1" in
apply)
    [ "$2 $3" = "-f -" ] || exit 1
    awk 'f && /^    / {print substr($0, 5); next} f {f = 0} /^  weights.cfg: [|]$/ {f = 1}' \
        >"$KUBE_WEIGHTS.tmp" && mv "$KUBE_WEIGHTS.tmp" "$KUBE_WEIGHTS" ;;
scale)
    svc=${2#deploy/}
    python3 - "$KUBE_SOCKET" "canary ${svc%-canary} ${3#--replicas=} VZ_SERVICE_VERSION=$KUBE_VERSION $KUBE_ENV" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2].strip() + "\n").encode())
out = b""
while not out.endswith(b"\n\n"):
    got = s.recv(4096)
    if not got:
        break
    out += got
sys.exit(0 if out.startswith(b"ok") else 1)
PY
    ;;
*) exit 1 ;;
esac
KUBECTL
chmod +x "$T/fakebin/kubectl"
export KUBE_LOG=$T/kubectl.log KUBE_WEIGHTS=$STATE/weights.cfg KUBE_SOCKET=$STATE/vzctl.sock
K8S=(--k8s --namespace vizmesh-test --kubectl "$T/fakebin/kubectl" --broker "http://127.0.0.1:$BROKER_ADMIN"
    --telemetry "http://127.0.0.1:$TL_ADMIN" --weights "$T/k8s-weights.cfg")
KUBE_VERSION=9.6.0 KUBE_ENV= "${ROLL[@]}" start echo --version 9.6.0 "${K8S[@]}" --steps 50,100 \
    --dwell 1s --min-requests 10 >"$T/r7.out" 2>"$T/r7.err" || fail "--k8s rollout: $(cat "$T/r7.err")"
[ "$(field echo phase)" = complete ] || fail "--k8s ended $(field echo phase)"
[ "$(field echo gates)" = telemetry ] || fail "--k8s gates read $(field echo gates)"
w=$(metric 'vz_broker_version_weight{service="echo",version="9.6.0"}')
[ "$w" = 100 ] || fail "the broker has weight $w for 9.6.0 after --k8s"
grep -x -- "-n vizmesh-test scale deploy/echo-canary --replicas=1" "$KUBE_LOG" >/dev/null ||
    fail "no canary scaled up: $(cat "$KUBE_LOG")"
[ "$(grep -cx -- "-n vizmesh-test apply -f -" "$KUBE_LOG")" -ge 3 ] ||
    fail "want the ConfigMap applied at 0, 50 and 100 %: $(cat "$KUBE_LOG")"
grep -q "kubectl -n vizmesh-test scale deploy/echo-canary --replicas=1" "$STATE/rollout.log" ||
    fail "the kubectl commands are not in rollout.log"
"${ROLL[@]}" clear echo || fail "clear after --k8s"
grep -x -- "-n vizmesh-test scale deploy/echo-canary --replicas=0" "$KUBE_LOG" >/dev/null ||
    fail "clear did not scale the canary to 0"
until_ok 20 one_echo || fail "clear left canaries"
ok "--k8s (stand-in kubectl): 9.6.0 stepped to 100 % through the ConfigMap, cleared"
: >"$KUBE_LOG"
KUBE_VERSION=9.6.5 KUBE_ENV=VZ_ECHO_FAIL_PERMILLE=300 "${ROLL[@]}" start echo --version 9.6.5 \
    "${K8S[@]}" --steps 10,100 --dwell 5s --min-requests 20 >"$T/r7b.out" 2>"$T/r7b.err"
rc=$?
[ $rc -eq 1 ] || fail "a failing --k8s canary: exit $rc: $(cat "$T/r7b.err")"
[ "$(field echo phase)" = rolled_back ] || fail "--k8s failing canary ended $(field echo phase)"
field echo reason | grep "error rate" >/dev/null || fail "reason: $(field echo reason)"
tail -n 2 "$KUBE_LOG" | head -n 1 | grep -x -- "-n vizmesh-test apply -f -" >/dev/null &&
    tail -n 1 "$KUBE_LOG" | grep -x -- "-n vizmesh-test scale deploy/echo-canary --replicas=0" >/dev/null ||
    fail "rollback is not the ConfigMap back, then the canary scaled to 0: $(cat "$KUBE_LOG")"
grep -q "echo\$" "$STATE/weights.cfg" && grep -q '9.6.5=0"' "$STATE/weights.cfg" ||
    fail "the broker's weights file is not the rolled back ConfigMap: $(cat "$STATE/weights.cfg")"
until_ok 20 one_echo || fail "the --k8s canary was not stopped"
ok "--k8s: a failing canary rolled back ($(field echo reason))"

kill "$LOAD_PID" 2>/dev/null
wait "$LOAD_PID" 2>/dev/null
LOAD_PID=
sup_stop_clean
ok "done in $SECONDS s"
