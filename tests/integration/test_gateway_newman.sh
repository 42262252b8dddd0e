#!/bin/bash
#   test_gateway_newman - docs/postman-collection.json run by newman against the
#   live mesh started by vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   The collection gets an admin address (adminEmail) and the one-time admin
#   bootstrap token auth logged at start (bootstrapToken), so the admin and
#   OAuth client-credentials requests run here (the compose test leaves them
#   empty and they are skipped). Billing gets an endpoint secret
#   (VZ_BILLING_WEBHOOK_SECRETS, from the supervisor's environment) and the
#   collection the same one (webhookSecret): the signed webhooks run too.
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
sed -i -e "s|^\( *\)VZ_GATEWAY_PORT = .*|&\n\1VZ_GATEWAY_ROUTES = \"$T/routes.cfg\"|" "$T/mesh.cfg"
grep -q VZ_GATEWAY_ROUTES "$T/mesh.cfg" || fail "could not adjust mesh.cfg"
sed -i 's/timeout = "10s"/timeout = "2s"/' "$T/routes.cfg"
[ "$(grep -c 'timeout = "2s"' "$T/routes.cfg")" = 2 ] || fail "could not shorten the webhook timeouts"
WHSEC=whsec_newman_$RANDOM$RANDOM
export VZ_BILLING_WEBHOOK_SECRETS=$WHSEC
mesh_start
BOOT=$(grep -ho '"bootstrap":"vzb_[^"]*"' "$STATE"/logs/auth.*.log | cut -d'"' -f4)
[ -n "$BOOT" ] || fail "no admin bootstrap token in the auth logs"
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
#   Bearer requests need the auth service's JWKS at the gateway, which may
#   still be on its first fetch right after start.
until_ok 20 curl -sf --max-time 2 "http://127.0.0.1:$gw/.well-known/jwks.json" || fail "no JWKS at the gateway"
"$NEWMAN" run "$SRC/docs/postman-collection.json" --env-var "baseUrl=http://127.0.0.1:$gw" \
    --env-var exhaustRateLimit=true --env-var "adminEmail=$ADMIN" --env-var "bootstrapToken=$BOOT" \
    --env-var "webhookSecret=$WHSEC" \
    --reporters cli,json --reporter-json-export "$T/newman.json" --disable-unicode \
    --timeout-request 15000 >"$T/newman.log" 2>&1 || { cat "$T/newman.log" >&2; fail "newman"; }
#   The admin part must have run, not been skipped: every request whose
#   pre-request script may skip it (the OAuth block) was sent, got a
#   response, and ran its assertions, all passing (newman's JSON report).
node - "$SRC/docs/postman-collection.json" "$T/newman.json" <<'EOF' ||
const fs = require("fs");
const [collection, report] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f)));
const guarded = [];
(function walk(items) {
    for (const it of items) {
        if (it.item) walk(it.item);
        else if ((it.event || []).some((e) => e.listen === "prerequest" &&
                 [].concat(e.script.exec).join("\n").includes("skipRequest")))
            guarded.push(it.name);
    }
})(collection.item);
if (guarded.length < 5) throw new Error(`expected the OAuth block, found: ${guarded}`);
for (const name of guarded) {
    const runs = report.run.executions.filter((x) => x.item.name === name);
    const ok = runs.length === 1 && runs[0].response && runs[0].response.code > 0 &&
        (runs[0].assertions || []).length > 0 && runs[0].assertions.every((a) => !a.error);
    if (!ok) throw new Error(`guarded request "${name}" did not run (or failed)`);
}
console.log(`admin, OAuth and signed-webhook blocks: ${guarded.length} requests executed with passing assertions`);
EOF
    { cat "$T/newman.log" >&2; fail "the OAuth block did not run"; }
grep -E "assertions|requests|total run duration" "$T/newman.log"
echo "ok - postman collection passes against the live mesh"
