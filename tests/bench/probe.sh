#!/bin/bash
#   probe.sh - where one daemon's memory and system calls go under wrk (not part of make test)
#   SPDX-License-Identifier: MPL-2.0
#
#   Starts the default mesh (configs/mesh.cfg with every port "auto", state in
#   a temp dir), loads one gateway path with wrk and reports, for the daemon
#   named by PROBE_DAEMON (default vz-gateway):
#     - VmRSS idle and its peak during the load (sampled every 0.25 s), and
#       the Rss of each mapping at that peak from /proc/<pid>/smaps, KiB;
#     - with STRACE=1, `strace -c -f` for 3 s in the middle of the load: the
#       calls by kind, and per response (the gateway's sendmsg count).
#   Environment reaches every daemon (e.g. VZ_GATEWAY_ACCESS_LOG_BUFFER=0).
#   A response is counted as one sendmsg: libmicrohttpd sends each of the
#   gateway's small responses (head and body) with one call.
#   Usage: tests/bench/probe.sh [BUILD_DIR] [PATH]   (default build, /v1/echo/whoami)
#   Knobs: WRK_C (64), WRK_D (8s; at least 5s with STRACE=1), PROBE_DAEMON, STRACE=1.
set -u -o pipefail
BIN=$(cd "${1:-build}" 2>/dev/null && pwd)/bin
[ -x "$BIN/vz-supervisor" ] || { echo "probe: no vz-supervisor in ${1:-build}/bin (make build first)" >&2; exit 1; }
URLPATH=${2:-/v1/echo/whoami}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
WRK_C=${WRK_C:-64} WRK_D=${WRK_D:-8s} DAEMON=${PROBE_DAEMON:-vz-gateway}
for tool in wrk curl $([ "${STRACE:-0}" = 1 ] && echo strace); do
    command -v "$tool" >/dev/null || { echo "probe: $tool missing" >&2; exit 1; }
done
P=$(mktemp -d "${TMPDIR:-/tmp}/vz-probe.XXXXXX")
SUP=
cleanup() { [ -n "$SUP" ] && kill -TERM "$SUP" 2>/dev/null && wait "$SUP"; rm -rf "$P"; }
trap cleanup EXIT
die() { echo "probe: $*" >&2; tail -n 5 "$P/sup.log" >&2; exit 1; }

cp "$SRC"/configs/*.cfg "$P/"
sed -E -i -e "s|state_dir = \"state\"|state_dir = \"$P/state\"|" \
    -e 's/^( +(redis|broker|gateway|admin_port)) = [0-9]+/\1 = auto/' "$P/mesh.cfg"
CTL=("$BIN/vzctl" --state "$P/state")
"$BIN/vz-supervisor" --config "$P/mesh.cfg" 2>"$P/sup.log" &
SUP=$!
"${CTL[@]}" wait --timeout 30 >/dev/null || die "mesh not ready"
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
URL=http://127.0.0.1:$gw$URLPATH
curl -s -o /dev/null "$URL" || die "$URL does not answer"
pid=$(pgrep -P "$SUP" -x "$DAEMON" | head -n 1)
[ -n "$pid" ] || die "no $DAEMON child of the supervisor"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "$DAEMON (pid $pid), $URLPATH, wrk -t2 -c$WRK_C -d$WRK_D"
echo "idle VmRSS: $(rss) KiB"
wrk -t2 -c"$WRK_C" -d"$WRK_D" "$URL" >"$P/wrk.txt" 2>&1 &
W=$!
ST=
if [ "${STRACE:-0}" = 1 ]; then
    (sleep 1; timeout -s INT 3 strace -c -f -p "$pid" -o "$P/strace.txt" >/dev/null 2>&1) &
    ST=$!
fi
peak=0
while kill -0 "$W" 2>/dev/null; do
    r=$(rss)
    [ "${r:-0}" -gt "$peak" ] && { peak=$r; cp "/proc/$pid/smaps" "$P/smaps"; }
    sleep 0.25
done
wait "$W"
[ -n "$ST" ] && wait "$ST"
[ -s "$P/smaps" ] || die "no RSS sample taken (load too short?)"
echo "peak VmRSS during the load: $peak KiB; $(grep -h 'Requests/sec' "$P/wrk.txt")"
echo "Rss by mapping at the peak, KiB (anonymous part in brackets), largest 12:"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6; if (name == "") name = "[anon]"}
     /^Rss:/ {rss[name] += $2} /^Anonymous:/ {anon[name] += $2}
     END {for (n in rss) if (rss[n] > 0) printf "%7d (%d) %s\n", rss[n], anon[n], n}' "$P/smaps" |
    sort -rn | head -n 12
if [ -s "$P/strace.txt" ]; then
    resp=$(awk '$NF == "sendmsg" {print $4}' "$P/strace.txt")
    echo "system calls in 3 s (strace -c -f), per response = per sendmsg (${resp:-0}):"
    awk -v r="${resp:-0}" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
            printf "%9d  %6.2f  %s\n", $4, r ? $4 / r : 0, $NF; all += $4 }
         END {printf "%9d  %6.2f  total\n", all, r ? all / r : 0}' "$P/strace.txt" |
        sort -rn | head -n 12
fi
