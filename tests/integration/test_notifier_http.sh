#!/bin/bash
#   test_notifier_http - the notifier through the gateway in the default mesh (make run):
#   no SMTP server configured, so mail becomes .eml files under the state dir
#   SPDX-License-Identifier: MPL-2.0
#
#   client -> vz-gateway -> vz-broker -> vz-notifier -> Redis -> <state>/notifier/mail/<id>.eml.
#   An admin (made with the bootstrap token) sends a test message with POST
#   /v1/notifications, reads its status with GET /v1/notifications/{id}, and
#   the .eml written is a parseable MIME message (npm mailparser); a user
#   without scope admin gets 403, a malformed send 422, the dead letters 200.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" notifierhttp
PEERS=$SRC/tests/peers
[ -d "$PEERS/node_modules/mailparser" ] || fail "tests/peers/node_modules missing (run make test-deps)"
[ -x "$BIN/vz-notifier" ] || fail "$BIN/vz-notifier missing"

mesh_config
mesh_start
mesh_gateway

J='-H Content-Type:application/json'

until_ok 20 curl -sf --max-time 2 "$GW/.well-known/jwks.json" || fail "no JWKS at the gateway"
token() {
    http POST /v1/auth/register "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" $J
    expect 201 "register $1"
    http POST /v1/auth/login "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" $J
    expect 200 "login $1"
    json "$body" access_token
}
ADMIN=$(mesh_admin "$GW" root@example.com "correct horse battery")
USER=$(token ada@example.com)
A=(-H "Authorization: Bearer $ADMIN")

SEND='{"channel":"email","template":"test","to":[{"name":"Zoë","address":"zoe@example.com"}],"data":{"message":"hello from make run"}}'
http POST /v1/notifications "$SEND" $J -H "Authorization: Bearer $USER"
expect 403 "send without scope admin"
http POST /v1/notifications '{"channel":"email","template":"test","to":"zoe@example.com"}' $J "${A[@]}"
#   The notifier answers with http_status 422 in the reply ctx, which the
#   gateway (gw_render.c) uses for a code it does not know itself.
expect 422 "send with a missing template variable"
[ "$(json "$body" error.code)" = missing_variable ] || fail "error code: $code $body"
http POST /v1/notifications "$SEND" $J "${A[@]}"
expect 201 "send as admin"
id=$(json "$body" id)
[ -n "$id" ] || fail "no id: $body"
echo "ok - POST /v1/notifications: 403 without admin, missing_variable, 201 with an id"

#   Delivered as a file (no SMTP server in the default mesh).
delivered() {
    http GET "/v1/notifications/$id" '' "${A[@]}"
    [ "$code" = 200 ] && [ "$(json "$body" status)" = delivered ]
}
until_ok 20 delivered || fail "not delivered: $code $body"
EML=$STATE/notifier/mail/$id.eml
[ -f "$EML" ] || fail "no $EML"
grep -q "mail written (no SMTP server configured)" "$STATE"/logs/notifier*.log ||
    fail "the .eml path was not logged"
grep -q "zoe@example.com" "$STATE"/logs/notifier*.log && fail "an address reached the log"
grep -q '"to":"z\*\*\*@example.com"' "$STATE"/logs/notifier*.log || fail "no masked recipient in the log"
subject=$(cd "$PEERS" && node --input-type=module -e '
import { simpleParser } from "mailparser";
import { readFileSync } from "node:fs";
const m = await simpleParser(readFileSync(process.argv[1]));
console.log(`${m.subject}|${m.to.value[0].name}|${m.text.includes("hello from make run")}`);' "$EML")
[ "$subject" = "vizmesh test message: hello from make run|Zoë|true" ] || fail "parsed: $subject"
echo "ok - delivered to $EML, parsed by mailparser, path logged, no address in the log"

http GET "/v1/notifications/$id" '' -H "Authorization: Bearer $USER"
expect 404 "someone else's notification"
http GET /v1/notifications/dead '' "${A[@]}"
expect 200 "dead letters"
http GET /v1/notifications/dead '' -H "Authorization: Bearer $USER"
expect 403 "dead letters without admin"
http POST "/v1/notifications/dead/$id/retry" '' "${A[@]}"
expect 404 "retry of a delivered message"
echo "ok - GET status: 404 for others; dead letters admin only; retry of a non-dead 404"
