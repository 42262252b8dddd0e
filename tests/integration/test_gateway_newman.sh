#!/bin/bash
#   test_gateway_newman - docs/postman-collection.json run by newman against the
#   live mesh started by vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   The mesh gets one admin address (VZ_AUTH_ADMIN_EMAILS) and the collection
#   learns it through adminEmail, so the OAuth client-credentials requests run
#   here (the compose test leaves adminEmail empty and they are skipped).
#   exhaustRateLimit=true makes the last request loop until the 429.
set -u -o pipefail
source "$(dirname "$0")/mesh.sh" gwnewman
NEWMAN=$SRC/tests/peers/node_modules/.bin/newman
[ -x "$NEWMAN" ] || fail "newman missing (npm ci in tests/peers)"
ADMIN=admin-newman@example.com
mesh_config
#   The webhook requests wait for the broker's no_worker verdict at the
#   route's deadline: the gateway reads a copy of routes.cfg whose webhook
#   timeouts are 2 s instead of 10 s, which keeps the run short.
sed -i -e "s|^\( *\)VZ_AUTH_AUDIENCE = \"vizmesh\"|&\n\1VZ_AUTH_ADMIN_EMAILS = \"$ADMIN\"|" \
    -e "s|^\( *\)VZ_GATEWAY_PORT = .*|&\n\1VZ_GATEWAY_ROUTES = \"$T/routes.cfg\"|" "$T/mesh.cfg"
grep -q "VZ_AUTH_ADMIN_EMAILS = \"$ADMIN\"" "$T/mesh.cfg" && grep -q VZ_GATEWAY_ROUTES "$T/mesh.cfg" ||
    fail "could not adjust mesh.cfg"
sed -i 's/timeout = "10s"/timeout = "2s"/' "$T/routes.cfg"
[ "$(grep -c 'timeout = "2s"' "$T/routes.cfg")" = 2 ] || fail "could not shorten the webhook timeouts"
mesh_start
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
#   Bearer requests need the auth service's JWKS at the gateway, which may
#   still be on its first fetch right after start.
until_ok 20 curl -sf --max-time 2 "http://127.0.0.1:$gw/.well-known/jwks.json" || fail "no JWKS at the gateway"
"$NEWMAN" run "$SRC/docs/postman-collection.json" --env-var "baseUrl=http://127.0.0.1:$gw" \
    --env-var exhaustRateLimit=true --env-var "adminEmail=$ADMIN" \
    --reporters cli,json --reporter-json-export "$T/newman.json" --disable-unicode \
    --timeout-request 15000 >"$T/newman.log" 2>&1 || { cat "$T/newman.log" >&2; fail "newman"; }
#   The admin part must have run, not been skipped: every request whose
#   pre-request script may skip it (the OAuth block) was sent, got a
#   response, and ran its assertions, all passing (newman's JSON report).
command -v jq >/dev/null || fail "jq missing"
mapfile -t guarded < <(jq -r '.. | objects | select(has("request") and has("name"))
    | select([.event[]? | select(.listen == "prerequest") | .script.exec | join("\n")
              | test("skipRequest")] | any) | .name' "$SRC/docs/postman-collection.json")
[ "${#guarded[@]}" -ge 5 ] || fail "expected the OAuth block in the collection, found: ${guarded[*]}"
for name in "${guarded[@]}"; do
    jq -e --arg n "$name" '[.run.executions[] | select(.item.name == $n)]
        | length == 1 and ((.[0].response.code // 0) > 0)
          and ((.[0].assertions // []) | length > 0 and all(.error == null))' \
        "$T/newman.json" >/dev/null ||
        { cat "$T/newman.log" >&2; fail "OAuth request \"$name\" did not run (or failed)"; }
done
echo "OAuth block: ${#guarded[@]} requests executed with passing assertions"
grep -E "assertions|requests|total run duration" "$T/newman.log"
echo "ok - postman collection passes against the live mesh"
