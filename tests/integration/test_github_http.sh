#!/bin/bash
#   test_github_http - the github routes through the gateway in the shipped mesh:
#   client -> vz-gateway -> vz-broker -> vz-github -> Redis, under vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   configs/mesh.cfg with a webhook secret for vz-github (no App): a signed
#   @octokit/webhooks-examples delivery through POST /v1/webhooks/github is
#   queued and applied; the read routes answer 401 without a credential, 403
#   to a user without admin or github:read, and the contract's JSON to an
#   admin, with ?weeks= and ?repo= forwarded by the routes' query lists;
#   POST /v1/github/reconcile names the missing App setting (503).
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" githubhttp
[ -x "$BIN/vz-github" ] || fail "$BIN/vz-github missing"
command -v node >/dev/null || fail "node missing"
[ -d "$SRC/tests/peers/node_modules/@octokit/webhooks-examples" ] ||
    fail "@octokit/webhooks-examples missing (npm ci in tests/peers)"
SECRET=http-test-webhook-secret

mesh_config
sed -i -e "s|^\( *\)VZ_CONFIG_FILE = \"\${config_dir}/github.cfg\".*|&\n\1VZ_GITHUB_WEBHOOK_SECRETS = \"$SECRET\"|" \
    "$T/mesh.cfg"
grep -q VZ_GITHUB_WEBHOOK_SECRETS "$T/mesh.cfg" || fail "could not adjust mesh.cfg"
mesh_start
GW=http://127.0.0.1:$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')

#   req METHOD PATH TOKEN [JSON BODY] -> $code, $body (TOKEN "" = no credential)
req() {
    local args=(-s -X "$1" -w '\n%{http_code}' --max-time 10)
    [ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
    [ -n "${4:-}" ] && args+=(-H Content-Type:application/json --data-binary "$4")
    local out
    out=$(curl "${args[@]}" "$GW$2")
    code=${out##*$'\n'}
    body=${out%$'\n'*}
}
want() { [ "$code" = "$1" ] || fail "$2: expected $1, got $code: $body"; }
field() { node -e 'const v=process.argv[2].split(".").reduce((a,k)=>a==null?a:a[k],JSON.parse(process.argv[1])); console.log(v==null?"":v)' "$1" "$2"; }

until_ok 20 curl -sf --max-time 2 "$GW/.well-known/jwks.json" || fail "no JWKS at the gateway"
admin=$(mesh_admin "$GW" root@example.com "correct horse battery")
cred='{"email":"ada@example.com","password":"correct horse battery"}'
req POST /v1/auth/register "" "$cred"
want 201 "register"
req POST /v1/auth/login "" "$cred"
want 200 "login"
user=$(field "$body" access_token)

req GET /v1/github/repos ""
want 401 "repos without a credential"
req GET /v1/github/repos "$user"
want 403 "repos without admin or github:read"
req GET /v1/github/repos "$admin"
want 200 "repos as admin"
[ "$(field "$body" configured)" = false ] || fail "configured without an App: $body"
echo "ok - 401 without a credential, 403 without the scope, repos for an admin"

#   A workflow run completed now, signed by @octokit/webhooks-methods.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sig=$(cd "$SRC/tests/peers" && node github_webhook.mjs example workflow_run 1 \
    "{\"workflow_run\":{\"name\":\"Build\",\"updated_at\":\"$now\"}}" "$T/run.json" "$SECRET") ||
    fail "signing the example"
post() {
    code=$(curl -s -o "$T/post.out" -w '%{http_code}' --max-time 10 -H Content-Type:application/json \
        -H "X-Hub-Signature-256: $sig" -H "X-GitHub-Event: workflow_run" \
        -H "X-GitHub-Delivery: $1" --data-binary "@$T/run.json" "$GW/v1/webhooks/github")
    [ "$code" = 200 ]
}
until_ok 20 post 5e1ab2c0-0000-4000-8000-000000000001 || fail "webhook: $code $(cat "$T/post.out")"
grep -q '"duplicate":false' "$T/post.out" || fail "first delivery: $(cat "$T/post.out")"
post 5e1ab2c0-0000-4000-8000-000000000001 || fail "redelivery: $code"
grep -q '"duplicate":true' "$T/post.out" || fail "redelivery not seen as one: $(cat "$T/post.out")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "X-Hub-Signature-256: sha256=00" \
    -H "X-GitHub-Event: ping" -H "X-GitHub-Delivery: x-1" -d '{}' "$GW/v1/webhooks/github")
[ "$code" = 401 ] || fail "a bad signature answered $code"
echo "ok - a signed delivery queued once, its redelivery a duplicate, a bad signature 401"

ci_seen() {
    req GET /v1/github/repos/octo-org/octo-repo/insights/1 "$admin"
    [ "$code" = 200 ] && [ "$(field "$body" ci.0.workflow)" = Build ]
}
until_ok 20 ci_seen || fail "insights never showed the run: $code $body"
[ "$(field "$body" ci.0.pass_rate)" = 1 ] || fail "pass rate: $body"
[ "$(field "$body" weeks)" = 1 ] || fail "weeks: $body"
req GET /v1/github/roadmap "$admin"
want 200 "roadmap"
[ "$(field "$body" velocity.length)" = 4 ] || fail "roadmap velocity: $body"
#   Query parameters the routes forward (ctx query.<name>).
req GET "/v1/github/repos/octo-org/octo-repo/insights?weeks=3" "$admin"
want 200 "insights?weeks=3"
[ "$(field "$body" weeks)" = 3 ] && [ "$(field "$body" velocity.length)" = 3 ] ||
    fail "?weeks=3 not applied: $body"
req GET "/v1/github/repos/octo-org/octo-repo/insights?weeks=99" "$admin"
want 422 "insights?weeks=99"
req GET "/v1/github/roadmap?repo=octo-org/octo-repo&weeks=2" "$admin"
want 200 "roadmap?repo&weeks"
[ "$(field "$body" weeks)" = 2 ] || fail "roadmap ?weeks=2 not applied: $body"
req GET "/v1/github/roadmap?repo=nope" "$admin"
want 422 "roadmap?repo=nope"
echo "ok - ?weeks and ?repo reach the service"
req POST /v1/github/reconcile "$admin"
want 503 "reconcile without the App"
grep -q '"code":"github_not_configured","message":"set VZ_GITHUB_APP_ID' <<<"$body" || fail "reconcile: $body"
echo "ok - insights, roadmap; reconcile names the missing App setting"
sup_stop_clean
echo PASS
