#!/bin/bash
#   mesh.sh - shared setup for the bash tests that boot the real mesh (sourced, not run)
#   SPDX-License-Identifier: MPL-2.0
#
#   After `source mesh.sh TAG`: T (temp dir), STATE, CTL (vzctl argv), SUP
#   (set by mesh_start), fail, until_ok, mesh_config, mesh_start,
#   sup_stop_clean and the gateway helpers (mesh_gateway, http, json,
#   expect). The EXIT
#   trap stops the supervisor (SIGTERM, so every daemon exits and reports
#   its leaks; SIGKILL after 20 s), then fails the test when a daemon's log
#   holds a sanitizer report or a replica crashed or stopped uncleanly
#   (logcheck.sh; VZ_EXPECTED_EXITS allows what the test did on purpose),
#   and removes T.

BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-${1:-mesh}.XXXXXX")
#   Searchable by the services' own uids (isolation = uid, the default as root).
chmod 0711 "$T"
STATE=$T/state
CTL=("$BIN/vzctl" --state "$STATE")
SUP=

source "$(dirname "${BASH_SOURCE[0]}")/logcheck.sh"

#   The supervisor has exited (a zombie until the trap reaps it).
sup_gone() {
    [ ! -e "/proc/$SUP/stat" ] || [ "$(cut -d' ' -f3 "/proc/$SUP/stat")" = Z ]
}

mesh_cleanup() {
    local rc=$?
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kill -TERM "$SUP"
        until_ok 20 sup_gone || kill -9 "$SUP"
        wait "$SUP" 2>/dev/null
    fi
    if [ -d "$STATE/logs" ] && ! check_mesh_logs "$T/sup.log" "$STATE/logs"; then
        echo "FAIL: the mesh's logs show a crash, an unclean stop or a sanitizer report" >&2
        rc=1
    fi
    rm -rf "$T"
    exit "$rc"
}
trap mesh_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    tail -n 30 "$T/sup.log" >&2 2>/dev/null
    "${CTL[@]}" status >&2 2>/dev/null
    for f in "$STATE"/logs/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

#   until_ok TIMEOUT_S CMD...: retry CMD (UNTIL_OK_STEP s apart, default
#   0.1) until it succeeds or the deadline passes.
until_ok() {
    local deadline=$((SECONDS + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep "${UNTIL_OK_STEP:-0.1}"
    done
}

#   mesh_config [POLICY_EXTRA]: configs/mesh.cfg with every port "auto", the
#   state in T, and the other configs/*.cfg beside it (policy.cfg plus the
#   POLICY_EXTRA lines).
mesh_config() {
    for b in vz-supervisor vzctl vz-broker vz-echo vz-gateway vz-ratelimit vz-auth; do
        [ -x "$BIN/$b" ] || fail "$BIN/$b missing"
    done
    command -v curl >/dev/null || fail "curl missing"
    #   ${config_dir} in mesh.cfg is T: every other file of configs/ goes there.
    for f in "$SRC"/configs/*.cfg; do
        [ "$(basename "$f")" = mesh.cfg ] || cp "$f" "$T/" || fail "cannot copy $f"
    done
    cp -r "$SRC/configs/templates" "$T/" || fail "cannot copy configs/templates"
    { cat "$SRC/configs/policy.cfg" && printf '%s' "${1:-}"; } >"$T/policy.cfg" ||
        fail "configs/policy.cfg missing"
    sed -E -e "s|state_dir = \"state\"|state_dir = \"$STATE\"|" \
        -e 's/^( +(redis|broker|gateway|admin_port)) = [0-9]+/\1 = auto/' \
        "$SRC/configs/mesh.cfg" >"$T/mesh.cfg"
    grep -q "= [0-9]\{4\}" "$T/mesh.cfg" && fail "a fixed port survived: $(cat "$T/mesh.cfg")"
}

#   mesh_start: run the supervisor in the background and wait for the whole mesh.
mesh_start() {
    "$BIN/vz-supervisor" --config "$T/mesh.cfg" 2>"$T/sup.log" &
    SUP=$!
    "${CTL[@]}" wait --timeout 30 || fail "mesh not ready"
}

#   mesh_admin GATEWAY_URL EMAIL PASSWORD: print an access token with scope
#   admin. The user registers, redeems auth's one-time bootstrap token from
#   the auth log (docs/operations/first-admin.md) and logs in again.
mesh_admin() {
    local gw=$1 cred="{\"email\":\"$2\",\"password\":\"$3\"}" boot token
    local json=(-s --max-time 10 -H Content-Type:application/json)
    curl "${json[@]}" -o /dev/null -w '%{http_code}' -d "$cred" "$gw/v1/auth/register" |
        grep -q 201 || fail "mesh_admin: register $2"
    token=$(curl "${json[@]}" -d "$cred" "$gw/v1/auth/login" |
        node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0)).access_token||"")')
    [ -n "$token" ] || fail "mesh_admin: login $2"
    boot=$(grep -ho '"bootstrap":"vzb_[^"]*"' "$STATE"/logs/auth.*.log | head -n1 | cut -d'"' -f4)
    [ -n "$boot" ] || fail "mesh_admin: no bootstrap token in the auth logs"
    curl "${json[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
        -d "{\"token\":\"$boot\"}" "$gw/v1/auth/bootstrap" | grep '^2' >/dev/null ||
        fail "mesh_admin: the bootstrap token was refused"
    curl "${json[@]}" -d "$cred" "$gw/v1/auth/login" |
        node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0)).access_token||"")'
}

#   sup_stop_clean: SIGTERM the supervisor and fail unless it exits 0 (every
#   daemon stopped cleanly); SUP is cleared so the EXIT trap has nothing left.
sup_stop_clean() {
    kill -TERM "$SUP"
    wait "$SUP"
    local rc=$?
    SUP=
    [ $rc -eq 0 ] || fail "supervisor exited $rc"
}

#   mesh_gateway: sets GW to the running gateway's base URL.
mesh_gateway() {
    GW=http://127.0.0.1:$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
}

#   http METHOD PATH [BODY] [curl args...] -> $code, $body (a request to $GW)
http() {
    local method=$1 path=$2 data=${3:-}
    shift 3 2>/dev/null || shift $#
    local out
    if [ -n "$data" ]; then
        out=$(curl -s -X "$method" -w '\n%{http_code}' --max-time 10 "$@" --data-binary "$data" "$GW$path")
    else
        out=$(curl -s -X "$method" -w '\n%{http_code}' --max-time 10 "$@" "$GW$path")
    fi
    code=${out##*$'\n'}
    body=${out%$'\n'*}
}

#   json TEXT KEY.PATH: that field of a JSON text ("" when absent; needs node).
json() { node -e 'const o=JSON.parse(process.argv[1]); const v=process.argv[2].split(".").reduce((a,k)=>a==null?a:a[k],o); console.log(v===undefined?"":v)' "$1" "$2"; }
#   expect CODE WHAT: fail unless the last http call answered CODE.
expect() { [ "$code" = "$1" ] || fail "$2: expected $1, got $code: $body"; }
