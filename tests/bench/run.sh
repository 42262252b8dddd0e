#!/bin/bash
#   run.sh - every vizmesh benchmark in one run (`make bench`); not part of make test
#   SPDX-License-Identifier: MPL-2.0
#
#   Prints tables whose ratios are against a baseline measured in the same
#   run (the machines are shared and noisy, so absolute figures drift):
#     1. envelope codec: ns per encode / decode
#     2. broker: round trips through vz-broker vs a direct DEALER/ROUTER pair,
#        CURVE on and off (bench_broker); then through 1, 2 and 3 brokers
#        at once, workers registered with all, clients spread over all
#        (bench_broker --brokers 3; baseline: 1 broker)
#     3. rate-limit decisions through the broker vs redis-benchmark (EVALSHA)
#     4. mesh lifecycle: cold start of the whole mesh to ready, kill -9 of a
#        worker to ready again (median of REPS), idle RSS of every daemon
#     5. the HTTP request path under wrk (issue 6): libmicrohttpd alone
#        (ceiling), nginx proxy_pass with upstream keepalive (baseline), then
#        vizmesh's anonymous, JWT and API-key routes; req/s, p50, p99, ratio to
#        nginx, peak RSS and CPU split of every process during the load
#     6. telemetry on vs off on the JWT route (telemetry.sh): req/s and the ratio
#     7. chaos under load (chaos.sh): kill -9 of every daemon, several
#        rounds; errors by code, hangs, recovery times per victim
#     8. multi-node simulation (multinode.sh): three network namespaces,
#        two brokers, Redis Cluster; one node cut off under load and
#        restored (needs root and `ip netns`; skipped without)
#   Usage: tests/bench/run.sh [BUILD_DIR]   (REPS=5 by default; section 5
#   uses HTTP_REPS, default 3). ONLY=http runs section 5 alone, ONLY=chaos
#   section 7, ONLY=brokers the 1/2/3-broker part of section 2,
#   ONLY=multinode section 8; PROFILE=1
#   adds a perf profile of the gateway on the JWT route. Installs wrk and
#   nginx with apt-get when they are missing (root only).
set -u -o pipefail

BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$BUILD/bin
REPS=${REPS:-5}
export VZ_BIN_DIR=$BIN VZ_SOURCE_DIR=$SRC

for b in bench_envelope bench_broker bench_ratelimit bench_mhd vz-ratelimit vz-supervisor vzctl vz-broker vz-echo vz-gateway vz-auth; do
    [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b missing (make build first)" >&2; exit 1; }
done

#   Load generator and baseline: Debian's wrk and nginx.
for tool in wrk:wrk nginx:nginx-light; do
    command -v "${tool%%:*}" >/dev/null || PATH=$PATH:/usr/sbin command -v "${tool%%:*}" >/dev/null && continue
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${tool#*:}" >/dev/null ||
            { echo "bench: apt-get install ${tool#*:} failed" >&2; exit 1; }
    else
        echo "bench: ${tool%%:*} missing: apt-get install -y ${tool#*:}" >&2
        exit 1
    fi
done
export PATH=$PATH:/usr/sbin

echo "# vizmesh benchmarks  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -r)"
echo
if [ "${ONLY:-}" = http ]; then
    source "$SRC/tests/bench/http.sh"
    exit $?
fi
if [ "${ONLY:-}" = telemetry ]; then
    bash "$SRC/tests/bench/telemetry.sh" "$BUILD"
    exit $?
fi
if [ "${ONLY:-}" = chaos ]; then
    bash "$SRC/tests/bench/chaos.sh" "$BUILD"
    exit $?
fi
#   brokers_n: section 2's round trips through 1, 2 and 3 brokers.
brokers_n() {
    echo "## 2b. round trips through 1, 2 and 3 brokers (baseline: 1 broker)"
    "$BIN/bench_broker" --brokers 3 "${BROKERS_PIPE:-150000}"
}
if [ "${ONLY:-}" = brokers ]; then
    brokers_n
    exit $?
fi
if [ "${ONLY:-}" = multinode ]; then
    bash "$SRC/tests/bench/multinode.sh" "$BUILD"
    exit $?
fi
echo "## 1. envelope codec"
"$BIN/bench_envelope"
echo
echo "## 2. broker round trips (baseline: direct CURVE DEALER/ROUTER pair)"
"$BIN/bench_broker" "${SEQ:-5000}" "${PIPE:-100000}"
echo
brokers_n
echo

echo "## 3. rate-limit decisions (baseline: redis-benchmark EVALSHA on the same script)"
"$BIN/bench_ratelimit" "${RL_SEQ:-3000}" "${RL_PIPE:-40000}" 64
echo

echo "## 4. mesh lifecycle (median of $REPS)"
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-bench.XXXXXX")
SUP=
trap '[ -n "$SUP" ] && kill -9 $SUP 2>/dev/null; rm -rf "$T"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
for f in "$SRC"/configs/*.cfg; do [ "$(basename "$f")" = mesh.cfg ] || cp "$f" "$T/"; done

cold=() gap=()
for r in $(seq 1 "$REPS"); do
    STATE=$T/state$r
    sed -E -e "s|state_dir = \"state\"|state_dir = \"$STATE\"|" \
        -e 's/^( +(redis|broker|gateway|admin_port)) = [0-9]+/\1 = auto/' \
        "$SRC/configs/mesh.cfg" >"$T/mesh.cfg"
    #   A fresh state directory each time: a true first start, keys generated.
    t0=$(now_ms)
    "$BIN/vz-supervisor" --config "$T/mesh.cfg" 2>"$T/sup$r.log" &
    SUP=$!
    "$BIN/vzctl" --state "$STATE" wait --timeout 30 >/dev/null || { echo "mesh not ready" >&2; exit 1; }
    cold+=($(($(now_ms) - t0)))

    pid=$("$BIN/vzctl" --state "$STATE" status | awk '$1=="echo" && $2=="0" {print $3}')
    t0=$(now_ms)
    kill -9 "$pid"
    #   Wait for the supervisor to notice before asking for readiness.
    deadline=$((SECONDS + 10))
    while "$BIN/vzctl" --state "$STATE" status | awk -v p="$pid" '$1=="echo" && $3==p' | grep . >/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "kill not noticed" >&2; exit 1; }
    done
    "$BIN/vzctl" --state "$STATE" wait echo --timeout 30 >/dev/null || { echo "echo not back" >&2; exit 1; }
    gap+=($(($(now_ms) - t0)))

    if [ "$r" -eq "$REPS" ]; then
        echo
        printf '%-12s %-8s %10s\n' daemon pid idle_rss_kib
        "$BIN/vzctl" --state "$STATE" status | awk 'NR>1 {print $1, $3}' | while read -r name p; do
            printf '%-12s %-8s %10s\n' "$name" "$p" "$(awk '/VmRSS/ {print $2}' /proc/"$p"/status)"
        done
        printf '%-12s %-8s %10s\n' supervisor "$SUP" "$(awk '/VmRSS/ {print $2}' /proc/$SUP/status)"
    fi
    kill -TERM "$SUP"
    wait "$SUP"
    SUP=
done
echo
printf 'cold start to ready (ms):      %s  (runs: %s)\n' "$(printf '%s\n' "${cold[@]}" | median)" "${cold[*]}"
printf 'kill -9 echo to ready (ms):    %s  (runs: %s)\n' "$(printf '%s\n' "${gap[@]}" | median)" "${gap[*]}"

echo
source "$SRC/tests/bench/http.sh"

echo
echo "## 6. telemetry on vs off (JWT route)"
bash "$SRC/tests/bench/telemetry.sh" "$BUILD"

echo
bash "$SRC/tests/bench/chaos.sh" "$BUILD"

echo
bash "$SRC/tests/bench/multinode.sh" "$BUILD"
