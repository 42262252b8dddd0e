#!/bin/bash
#   test_supervisor_isolation - each daemon reads its own secrets only
#   (docs/operations/isolation.md): the default mesh under vz-supervisor with
#   isolation uid (each service its own uid; checked from echo's uid that
#   echo's CURVE secret is readable and the gateway's, the broker's, auth's
#   KEK, other daemons' environments and the logs are not; rotation hands
#   the new secret to its uid; uids survive a restart), then with isolation
#   fd (the secret comes through fd 4, no daemon is given a path to a secret
#   file, and the mesh serves)
#   SPDX-License-Identifier: MPL-2.0
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" iso

[ "$(id -u)" = 0 ] || { echo "ok - skipped: isolation uid needs root (CI runs as root)"; exit 0; }
command -v setpriv >/dev/null || fail "setpriv (util-linux) missing"

#   pid of SERVICE replica N (default 0), from status --json.
pid_of() {
    "${CTL[@]}" status --json | grep -o "\"service\":\"$1\",\"replica\":${2:-0},[^}]*" |
        sed -nE 's/.*"pid":([0-9]+).*/\1/p'
}
#   Real uid of a pid (first field of the Uid line).
uid_of() { awk '/^Uid:/ {print $2}' "/proc/$1/status"; }
#   as UID CMD...: run CMD with uid and gid UID, no supplementary groups.
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
health_ok() { curl -sf --max-time 2 "$GW/health" | grep '^{"status":"ok"' >/dev/null; }

mesh_config
grep -q '^ *isolation' "$T/mesh.cfg" && fail "configs/mesh.cfg sets isolation: the test needs the default"
#   Services under other uids exec the build's binaries: its path must be
#   searchable by them (else "auto" picks fd, as docs/operations/isolation.md
#   says). A checkout under a private directory (/root) runs copies from T.
if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN/vz-echo"; then
    mkdir -p "$T/bin" && chmod 0755 "$T/bin" && cp "$BIN"/vz-* "$BIN/vzctl" "$T/bin/" ||
        fail "cannot copy the daemons to $T/bin"
    echo "# $BIN is not reachable by other uids: running copies from $T/bin"
    BIN=$T/bin
    CTL=("$BIN/vzctl" "${CTL[@]:1}")
    setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN/vz-echo" ||
        fail "$T/bin is not reachable by other uids either (a directory above it lacks o+x)"
fi
mesh_start
grep -q '"msg":"supervisor started".*"isolation":"uid"' "$T/sup.log" || fail "auto did not pick uid as root"
mesh_gateway
until_ok 15 health_ok || fail "/health not ok under isolation uid"
echo "ok - mesh serves with isolation uid (the default as root)"

#   Every child runs under its service's uid: not root, one per service.
declare -A uid
services=$("${CTL[@]}" status --json | grep -o '"service":"[^"]*","replica":0' | cut -d'"' -f4)
for s in $services; do
    p=$(pid_of "$s")
    [ -n "$p" ] || fail "no pid for $s"
    uid[$s]=$(uid_of "$p")
    [ "${uid[$s]}" != 0 ] || fail "$s runs as root"
    for t in "${!uid[@]}"; do
        [ "$t" = "$s" ] || [ "${uid[$t]}" != "${uid[$s]}" ] || fail "$s and $t share uid ${uid[$s]}"
    done
    [ "$(awk '/^Groups:/ {print NF}' "/proc/$p/status")" = 1 ] || fail "$s kept supplementary groups"
done
[ "$(uid_of "$(pid_of auth 1)")" = "${uid[auth]}" ] || fail "auth's replicas differ in uid"
echo "ok - ${#uid[@]} services, each under a uid of its own: $(for s in $services; do printf '%s=%s ' "$s" "${uid[$s]}"; done)"

E=${uid[echo]}
SEC=$STATE/keys/secret
as "$E" cat "$SEC/echo.key_secret" | grep secret-key >/dev/null || fail "echo cannot read its own secret"
for s in gateway broker auth; do
    as "$E" cat "$SEC/$s.key_secret" >/dev/null 2>&1 && fail "echo's uid can read $s's secret"
done
as "$E" cat "$SEC/auth.kek" >/dev/null 2>&1 && fail "echo's uid can read auth's KEK"
as "${uid[auth]}" cat "$SEC/auth.kek" | grep -E '^[0-9a-f]{64}$' >/dev/null || fail "auth cannot read its KEK"
as "$E" ls "$SEC" >/dev/null 2>&1 && fail "echo's uid can list keys/secret"
[ "$(stat -c '%a %u' "$SEC/echo.key_secret")" = "400 $E" ] || fail "echo's secret: $(stat -c '%a %u' "$SEC/echo.key_secret")"
as "$E" cat "$STATE/keys/public/gateway.key" | grep public-key >/dev/null || fail "public keys not readable"
echo "ok - from echo's uid: its secret readable, the gateway's, broker's, auth's and auth's KEK not"

#   The other secrets a daemon holds: its Redis password (environment) and the logs.
as "$E" cat "/proc/$(pid_of gateway)/environ" >/dev/null 2>&1 && fail "echo's uid reads the gateway's environment"
as "$E" cat "/proc/$(pid_of echo)/environ" | tr '\0' '\n' | grep '^VZ_REDIS_URL=redis://echo:' >/dev/null ||
    fail "echo has no Redis user of its own"
as "$E" cat "$STATE/logs/auth.0.log" >/dev/null 2>&1 && fail "echo's uid reads auth's log (bootstrap token)"
for f in secret users.acl; do
    as "$E" cat "$STATE/redis/$f" >/dev/null 2>&1 && fail "echo's uid reads redis/$f"
done
as "${uid[redis]}" cat "$STATE/redis/secret" >/dev/null 2>&1 && fail "redis reads the secret of the passwords"
[ "$(stat -c %u "$STATE/redis/users.acl")" = "${uid[redis]}" ] || fail "users.acl is not redis's"
as "$E" touch "$STATE/notifier/x" 2>/dev/null && fail "echo's uid writes notifier's state"
as "${uid[notifier]}" touch "$STATE/notifier/x" || fail "notifier cannot write its state_dirs"
echo "ok - environments (Redis passwords), logs, Redis's files and state dirs are their owners' only"

#   Rotation: the new secret is echo's, echo restarts with it and the mesh serves.
old=$(grep public-key "$STATE/keys/public/echo.key")
"${CTL[@]}" keys rotate echo >/dev/null || fail "keys rotate echo"
[ "$(grep public-key "$STATE/keys/public/echo.key")" != "$old" ] || fail "echo's key did not change"
[ "$(stat -c '%a %u' "$SEC/echo.key_secret")" = "400 $E" ] || fail "rotated secret: $(stat -c '%a %u' "$SEC/echo.key_secret")"
[ "$(uid_of "$(pid_of echo)")" = "$E" ] || fail "echo restarted under another uid"
until_ok 10 health_ok || fail "/health not ok after the rotation"
echo "ok - keys rotate echo: the new secret is echo's (0400), echo serves with it"

#   A restart keeps every uid (<state_dir>/uids), so files stay their owners'.
sup_stop_clean
check_mesh_logs "$T/sup.log" "$STATE/logs" || fail "the uid mesh's logs show a crash or an unclean stop"
mesh_start
for s in $services; do
    [ "$(uid_of "$(pid_of "$s")")" = "${uid[$s]}" ] || fail "$s changed uid across a restart"
done
echo "ok - the uids survive a supervisor restart"
sup_stop_clean
check_mesh_logs "$T/sup.log" "$STATE/logs" || fail "the restarted mesh's logs show a crash"

#   --- isolation fd: one uid, the secret through a pipe on fd 4
STATE=$T/state-fd
CTL=("$BIN/vzctl" --state "$STATE")
mesh_config
sed -i 's/^supervisor$/supervisor\n    isolation = "fd"/' "$T/mesh.cfg"
mesh_start
mesh_gateway
until_ok 15 health_ok || fail "/health not ok under isolation fd"
for s in $services; do
    [ "$s" = redis ] && continue
    p=$(pid_of "$s")
    env=$(tr '\0' '\n' <"/proc/$p/environ")
    grep -q '^VZ_CURVE_SECRET_FD=4$' <<<"$env" || fail "$s got no VZ_CURVE_SECRET_FD"
    grep -q '^VZ_CURVE_CERT=' <<<"$env" && fail "$s was given a path to its secret"
    ls -l "/proc/$p/fd" | grep 'keys/secret' >/dev/null && fail "$s holds a secret file open"
done
[ "$(stat -c %a "$STATE/keys/secret")" = 700 ] || fail "keys/secret is not owner-only"
grep -q '"msg":"started"' "$STATE/logs/echo.0.log" || fail "echo did not start"
old=$(grep public-key "$STATE/keys/public/echo.key")
"${CTL[@]}" keys rotate echo >/dev/null || fail "keys rotate echo (fd)"
[ "$(grep public-key "$STATE/keys/public/echo.key")" != "$old" ] || fail "echo's key did not change (fd)"
until_ok 10 health_ok || fail "/health not ok after the rotation (fd)"
echo "ok - isolation fd: every daemon's key came through fd 4, no secret path given, rotation works"
sup_stop_clean
