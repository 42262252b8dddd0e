#!/bin/bash
#   test_gateway_slow - slow clients (slowloris) against the gateway of the
#   live mesh started by vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   With VZ_GATEWAY_IDLE_TIMEOUT_MS = 1 s: clients that send their request
#   head byte by byte, slower than the idle timeout, have their connections
#   closed by the gateway; meanwhile ordinary clients are served; a client
#   that pauses for less than the timeout mid-head is served too. The raw
#   clients are bash /dev/tcp sockets; waits are reads bounded by a timeout,
#   so a close by the gateway ends them at once.
set -u -o pipefail
source "$(dirname "$0")/mesh.sh" gwslow
SLOW=24 #   slowloris connections held at the same time
mesh_config
sed -i -e 's|^\( *\)VZ_GATEWAY_PORT = .*|&\n\1VZ_GATEWAY_IDLE_TIMEOUT_MS = "1000"|' "$T/mesh.cfg"
grep -q 'VZ_GATEWAY_IDLE_TIMEOUT_MS = "1000"' "$T/mesh.cfg" || fail "could not set the idle timeout"
mesh_start
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
GW=http://127.0.0.1:$gw
until_ok 10 curl -sf --max-time 2 "$GW/v1/echo/whoami" || fail "gateway does not serve /v1/echo/whoami"

#   us: microseconds since the epoch, for elapsed times without a clock tool.
us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }

#   slowloris N: open a connection, then send the request head one byte at a
#   time, waiting up to 4 s on the socket after each byte (far slower than
#   the 1 s idle timeout); two bytes without a close is enough. Writes "closed BYTES MS" (the gateway hung up
#   BYTES bytes in, MS after the last byte), "answered BYTES LINE" or
#   "survived" to $T/slow.N; "connected" to $T/conn.N once the socket is open.
slowloris() {
    local n=$1 head=$'GET /v1/echo/whoami HTTP/1.1\r\nHost: vizmesh\r\n\r\n' fd i t0 line rc
    exec {fd}<>"/dev/tcp/127.0.0.1/$gw" || { echo "connect failed" >"$T/slow.$n"; return; }
    echo connected >"$T/conn.$n"
    for ((i = 0; i < 2; i++)); do
        printf '%s' "${head:i:1}" >&"$fd" 2>/dev/null || { echo "closed $i write" >"$T/slow.$n"; return; }
        t0=$(us)
        IFS= read -r -t 4 -u "$fd" line
        rc=$?
        if [ $rc -gt 128 ]; then
            continue #   still open after 4 s: send the next byte
        elif [ $rc -eq 0 ] || [ -n "$line" ]; then
            echo "answered $((i + 1)) ${line%$'\r'}" >"$T/slow.$n"
        else
            echo "closed $((i + 1)) $((($(us) - t0) / 1000))" >"$T/slow.$n"
        fi
        exec {fd}>&-
        return
    done
    echo survived >"$T/slow.$n"
}

t_start=$(us)
pids=()
for ((n = 0; n < SLOW; n++)); do
    slowloris "$n" &
    pids+=($!)
done
connected() { [ "$(find "$T" -maxdepth 1 -name 'conn.*' | wc -l)" -ge "$SLOW" ]; }
until_ok 10 connected ||
    fail "slow clients could not connect: $(find "$T" -maxdepth 1 -name 'conn.*' | wc -l) of $SLOW"

#   While the slow clients hold their connections, others are served at once.
served=0
for ((i = 0; i < 20; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GW/v1/echo/whoami")
    [ "$code" = 200 ] || fail "request $i during the slowloris got $code"
    served=$((served + 1))
done
during_ms=$((($(us) - t_start) / 1000))
pending=0
for ((n = 0; n < SLOW; n++)); do [ -f "$T/slow.$n" ] || pending=$((pending + 1)); done
[ "$pending" -gt 0 ] || fail "every slow client was gone before the others were served"
echo "ok - $served requests served in ${during_ms} ms while $pending of $SLOW slow clients were still connected"

wait "${pids[@]}"
for ((n = 0; n < SLOW; n++)); do
    read -r verdict bytes ms <"$T/slow.$n" || fail "slow client $n left no verdict"
    case "$verdict" in
    closed)
        #   Closed after the first byte, once the idle timeout (1 s, checked
        #   by libmicrohttpd at about that resolution) had passed.
        [ "$bytes" = 1 ] || fail "slow client $n: closed after $bytes bytes ($ms)"
        [ "$ms" -ge 800 ] && [ "$ms" -le 3500 ] || fail "slow client $n: closed after $ms ms (timeout 1000)"
        ;;
    answered)
        #   An error answer before the close is fine; a served request is not.
        case "$ms" in HTTP/1.1\ 2* | HTTP/1.0\ 2*) fail "slow client $n was served: $ms" ;; esac
        ;;
    *) fail "slow client $n: $(cat "$T/slow.$n")" ;;
    esac
done
echo "ok - $SLOW slowloris clients (one byte, then silence) closed by the gateway after the 1 s idle timeout"

#   A client that pauses mid-head for less than the timeout is served: the
#   pause is a read bounded by 0.4 s that must end by timing out, not by a close.
exec {fd}<>"/dev/tcp/127.0.0.1/$gw" || fail "connect"
for part in 'GET /v1/echo/who' $'ami HTTP/1.1\r\nHo' $'st: vizmesh\r\nConnection: close\r\n'; do
    printf '%s' "$part" >&"$fd" || fail "write refused mid-head"
    IFS= read -r -t 0.4 -u "$fd" line
    [ $? -gt 128 ] || fail "gateway reacted to a pause shorter than the idle timeout: '$line'"
done
printf '\r\n' >&"$fd"
IFS= read -r -t 5 -u "$fd" line || fail "no answer to the slow but steady client"
exec {fd}>&-
[[ "$line" == "HTTP/1.1 200"* ]] || fail "slow but steady client got: $line"
echo "ok - a client pausing 0.4 s between parts of its head is served ($line)"

code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GW/readiness")
[ "$code" = 200 ] || fail "gateway not ready after the slow clients: $code"
sup_stop_clean
echo "ok - gateway ready after the attack; clean shutdown"
