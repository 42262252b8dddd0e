#!/bin/bash
#   test_supervisor_mesh - the default-shaped mesh (redis, vz-broker, vz-echo,
#   vz-gateway) under vz-supervisor with auto ports: all ready, gateway answers
#   SPDX-License-Identifier: MPL-2.0
#
#   Needs the real daemons in $VZ_BIN_DIR; fails (does not skip) without them,
#   since they are part of the same build.
set -u -o pipefail

BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-mesh.XXXXXX")
STATE=$T/state
CTL=("$BIN/vzctl" --state "$STATE")
SUP=

cleanup() {
    [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    tail -n 30 "$T/sup.log" >&2 2>/dev/null
    "${CTL[@]}" status >&2 2>/dev/null
    for f in "$STATE"/logs/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

for b in vz-supervisor vzctl vz-broker vz-echo vz-gateway; do
    [ -x "$BIN/$b" ] || fail "$BIN/$b missing"
done
command -v curl >/dev/null || fail "curl missing"
cp "$SRC/configs/policy.cfg" "$T/policy.cfg" || fail "configs/policy.cfg missing"

#   configs/mesh.cfg with every port "auto" and the state in the temp dir.
sed -E -e "s|state_dir = \"state\"|state_dir = \"$STATE\"|" \
    -e 's/^( +(redis|broker|gateway|admin_port)) = [0-9]+/\1 = auto/' \
    "$SRC/configs/mesh.cfg" >"$T/mesh.cfg"
grep -q "= [0-9]\{4\}" "$T/mesh.cfg" && fail "a fixed port survived: $(cat "$T/mesh.cfg")"

"$BIN/vz-supervisor" --config "$T/mesh.cfg" 2>"$T/sup.log" &
SUP=$!
"${CTL[@]}" wait --timeout 20 || fail "mesh not ready"
for s in redis broker echo gateway; do
    "${CTL[@]}" status | awk -v s="$s" '$1==s && $4=="ready" {f=1} END {exit !f}' \
        || fail "$s not ready"
done
echo "ok - redis, broker, echo, gateway ready"

gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
code=
deadline=$((SECONDS + 10))
#   Ready on the notify fd, but the echo worker may still be registering at the broker.
while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -o "$T/readiness.json" -w '%{http_code}' --max-time 2 "http://127.0.0.1:$gw/readiness")
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || fail "GET /readiness on $gw gave $code: $(cat "$T/readiness.json" 2>/dev/null)"
echo "ok - gateway /readiness 200 on port $gw"

kill -TERM "$SUP"
wait "$SUP"
rc=$?
SUP=
[ $rc -eq 0 ] || fail "supervisor exited $rc"
echo "ok - clean shutdown"
