#!/bin/bash
#   test_gateway_reload - `vzctl reload` reaches the gateway under vz-supervisor:
#   the route table is reloaded (SIGHUP) while requests keep being answered,
#   and each reload serves the table as changed on disk (a route added, then
#   removed again)
#   SPDX-License-Identifier: MPL-2.0
set -u -o pipefail
source "$(dirname "$0")/mesh.sh" gwreload

mesh_config
#   201 anonymous requests from one IP: above the shipped 100 a minute, so
#   this mesh's limiter gets a generous anonymous policy (429s are
#   test_gateway_auth's subject, not this test's).
sed -i -E 's/^( +limit = )100$/\1100000/' "$T/ratelimit.cfg" || fail "cannot edit ratelimit.cfg"
grep -q "limit = 100000" "$T/ratelimit.cfg" || fail "anonymous limit not raised"
#   The gateway reads the copy in T, which the test changes between reloads.
sed -i "s|^\( *\)VZ_GATEWAY_PORT = .*|&\n\1VZ_GATEWAY_ROUTES = \"$T/routes.cfg\"|" "$T/mesh.cfg"
grep -q VZ_GATEWAY_ROUTES "$T/mesh.cfg" || fail "could not point the gateway at $T/routes.cfg"
cp "$T/routes.cfg" "$T/routes.orig" || fail "cannot keep the shipped table"
mesh_start
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
base=http://127.0.0.1:$gw

#   Metrics are on the gateway's admin port (not the public one).
admin=$("${CTL[@]}" status --json | grep '"service":"gateway","replica":0,' |
    sed -E 's/.*"admin_port":([0-9]+).*/\1/')
[ -n "$admin" ] || fail "no gateway admin port"
metric() {
    curl -fsS "http://127.0.0.1:$admin/metrics" | awk -v s="$1" '$1==s {print $2}'
}
reloaded() {
    local n
    n=$(metric 'vz_gateway_route_reloads_total{result="ok"}')
    [ -n "$n" ] && [ "${n%.*}" -ge "$1" ]
}

code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data x "$base/v1/echo")
[ "$code" = 200 ] || fail "echo before reload: $code"

#   A route only the changed table has; written whole, then renamed in.
probe() { curl -s -o /dev/null -w '%{http_code}' "$base/v1/reload-probe"; }
table() {
    { cat "$T/routes.orig" && printf '%s' "${1:-}"; } >"$T/routes.new" &&
        mv "$T/routes.new" "$T/routes.cfg" || fail "cannot write routes.cfg"
}
[ "$(probe)" = 404 ] || fail "/v1/reload-probe answered before it was added: $(probe)"
table '    reload_probe
        methods = "GET"
        path = "/v1/reload-probe"
        service = "echo"
        call = "whoami"
'

#   Requests in a loop while reloading: every one must be answered 200.
(
    for _ in $(seq 1 200); do
        curl -s -o /dev/null -w '%{http_code}\n' -X POST --data x "$base/v1/echo"
    done
) >"$T/codes" &
load=$!
"${CTL[@]}" reload || fail "vzctl reload failed"
until_ok 10 reloaded 1 || fail "gateway did not reload its route table"
[ "$(probe)" = 200 ] || fail "the added route is not served after the reload: $(probe)"
table "" #  back to the shipped table: the route goes away again
"${CTL[@]}" reload || fail "second vzctl reload failed"
until_ok 10 reloaded 2 || fail "gateway did not reload twice"
[ "$(probe)" = 404 ] || fail "the removed route is still served after the reload: $(probe)"
wait $load
bad=$(grep -vc '^200$' "$T/codes")
if [ "$bad" != 0 ]; then
    grep -h '"msg":"access"' "$STATE"/logs/gateway.*.log | grep -v '"status":"200"' >&2
    fail "$bad requests failed during reloads: $(sort "$T/codes" | uniq -c)"
fi
echo "ok - vzctl reload: a route added then removed on disk, served then gone after each reload; $(wc -l <"$T/codes") requests all 200"

#   The access log is buffered (VZ_GATEWAY_ACCESS_LOG_BUFFER) and flushed by
#   the reactor's tick: with no more traffic, every request's line arrives.
access_lines() { cat "$STATE"/logs/gateway.*.log | grep '"msg":"access"' | grep -c '"path":"/v1/echo"'; }
access_at_least() { [ "$(access_lines)" -ge "$1" ]; }
until_ok 5 access_at_least 201 ||
    fail "access log: $(access_lines) lines for the 201 requests to /v1/echo after 5 s"
echo "ok - access log: a whole line for each of the 201 requests, flushed without more traffic"

#   The reloaded table still routes (params, 405 with Allow from the file).
allow=$(curl -s -D - -o /dev/null -X PUT "$base/v1/auth/api-keys/k1" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="allow" {print $2}')
[ "$allow" = "DELETE" ] || fail "Allow for /v1/auth/api-keys/{id}: '$allow'"
echo "ok - routes from configs/routes.cfg after reload"
