#!/bin/bash
#   test_auth_http - the auth flows end to end over HTTP: client -> vz-gateway
#   -> vz-broker -> vz-auth (2 replicas) -> Redis, all under vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   register -> login -> profile -> refresh -> reuse detected -> logout;
#   API key create -> use -> list -> revoke; the first admin by the one-time
#   bootstrap token from auth's log; client credentials -> call -> introspect,
#   token errors in RFC 6749 §5.2 form; tokens checked by npm `jose` against
#   the JWKS the gateway serves.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" authhttp
PEERS=$SRC/tests/peers
[ -d "$PEERS/node_modules/jose" ] || fail "tests/peers/node_modules missing (run make test-deps)"

mesh_config
#   API-key answers not cached, so a revoked key is refused at once (the
#   default caches valid keys 30 s).
sed -i -e 's|^\( *\)VZ_GATEWAY_PORT = .*|&\n\1VZ_GATEWAY_APIKEY_TTL_MS = "0"|' "$T/mesh.cfg"
grep -q VZ_GATEWAY_APIKEY_TTL_MS "$T/mesh.cfg" || fail "could not adjust mesh.cfg"
mesh_start
mesh_gateway
ISS=$(grep -o 'VZ_AUTH_ISSUER = "[^"]*"' "$T/mesh.cfg" | cut -d'"' -f2)
ISS=${ISS/\$\{port.gateway\}/${GW##*:}}

#   hdr NAME: that response header of the last http call (curl -D "$T/h").
hdr() { tr -d '\r' <"$T/h" | awk -v n="$(echo "$1" | tr A-Z a-z)" -F': ' 'tolower($1)==n {print $2}'; }
J='-H Content-Type:application/json'

#   The gateway may still be fetching auth's JWKS right after start.
until_ok 20 curl -sf --max-time 2 "$GW/.well-known/jwks.json" || fail "no JWKS at the gateway"

# ---------------------------------------------------------------- users
http POST /v1/auth/register '{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}' $J
expect 201 register
uid=$(json "$body" id)
http POST /v1/auth/register '{"email":"ada@example.com","password":"another password"}' $J
expect 409 "duplicate register"
http POST /v1/auth/register '{"email":"not-an-email","password":"correct horse battery"}' $J
expect 422 "bad e-mail"
grep -q '"code":"validation_failed"' <<<"$body" || fail "validation error body: $body"

http POST /v1/auth/login '{"email":"ada@example.com","password":"wrong password!"}' $J
expect 401 "wrong password"
wrong=$body
http POST /v1/auth/login '{"email":"nobody@example.com","password":"wrong password!"}' $J
expect 401 "unknown user"
[ "$(json "$wrong" error.message)" = "$(json "$body" error.message)" ] ||
    fail "unknown user and wrong password differ: $wrong / $body"

http POST /v1/auth/login '{"email":"ada@example.com","password":"correct horse battery"}' $J
expect 200 login
access=$(json "$body" access_token)
refresh=$(json "$body" refresh_token)
[ -n "$access" ] && [ -n "$refresh" ] || fail "login body: $body"

http GET /v1/auth/profile '' -H "Authorization: Bearer $access"
expect 200 profile
[ "$(json "$body" email)" = ada@example.com ] || fail "profile: $body"
http GET /v1/auth/profile ''
expect 401 "profile without a token"
http GET /v1/auth/profile '' -H "Authorization: Bearer ${access%?}x"
expect 401 "profile with a tampered token"
echo "ok - register (201), duplicate 409, validation 422, same error for unknown user and wrong password, login, profile, 401s"

#   An independent verifier: jose against the JWKS the gateway publishes.
curl -sf --max-time 5 "$GW/.well-known/jwks.json" >"$T/jwks.json" || fail "GET jwks"
v=$(node "$PEERS/auth_jose.mjs" "$T/jwks.json" "$ISS" vizmesh "$access")
case "$v" in "ok $uid "*" ES256") ;; *) fail "jose: $v (issuer $ISS)" ;; esac
echo "ok - jose verifies the access token against /.well-known/jwks.json ($v)"

http POST /v1/auth/refresh "{\"refresh_token\":\"$refresh\"}" $J
expect 200 refresh
access2=$(json "$body" access_token)
refresh2=$(json "$body" refresh_token)
http POST /v1/auth/refresh "{\"refresh_token\":\"$refresh\"}" $J
expect 401 "refresh-token reuse"
http POST /v1/auth/refresh "{\"refresh_token\":\"$refresh2\"}" $J
expect 401 "refresh after the family was revoked"
echo "ok - refresh rotates; reusing a used refresh token revokes the whole family"

http POST /v1/auth/login '{"email":"ada@example.com","password":"correct horse battery"}' $J
expect 200 "login again"
access=$(json "$body" access_token)
refresh=$(json "$body" refresh_token)
http POST /v1/auth/logout "{\"refresh_token\":\"$refresh\"}" $J -H "Authorization: Bearer $access"
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "logout: $code $body"
http POST /v1/auth/refresh "{\"refresh_token\":\"$refresh\"}" $J
expect 401 "refresh after logout"
echo "ok - logout revokes the refresh token"

# ---------------------------------------------------------------- API keys
http POST /v1/auth/api-keys '{"name":"ci"}' $J -H "Authorization: Bearer $access"
expect 201 "api key create"
kid=$(json "$body" id)
key=$(json "$body" key)
[ -n "$key" ] || fail "no key: $body"
http GET /v1/echo/me '' -H "X-API-Key: $key"
expect 200 "call with the API key"
grep -q 'api_key' <<<"$body" || fail "worker did not see auth=api_key: $body"
grep -q "$uid" <<<"$body" || fail "worker did not see the key's owner: $body"
grep -q "$key" <<<"$body" && fail "the raw key reached the worker: $body"
http GET /v1/auth/api-keys '' -H "Authorization: Bearer $access"
expect 200 "api key list"
grep -q "$kid" <<<"$body" || fail "list misses the key: $body"
grep -q "$key" <<<"$body" && fail "list shows the secret: $body"
http DELETE "/v1/auth/api-keys/$kid" '' -H "Authorization: Bearer $access"
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "api key delete: $code $body"
http GET /v1/echo/me '' -H "X-API-Key: $key"
expect 401 "revoked API key"
echo "ok - API key: created (shown once), used, listed without its secret, revoked -> 401"

# ---------------------------------------------------------------- first admin
#   Registration never grants admin: the first replica to start logged a
#   one-time bootstrap token, which a registered user redeems.
http POST /v1/auth/register '{"email":"root@example.com","password":"correct horse battery"}' $J
expect 201 "admin register"
[ "$(json "$body" scope)" = user ] || fail "registration granted more than user: $body"
http POST /v1/auth/login '{"email":"root@example.com","password":"correct horse battery"}' $J
expect 200 "admin login"
admin=$(json "$body" access_token)
http POST /v1/oauth/clients '{"name":"partner"}' $J -H "Authorization: Bearer $admin"
expect 403 "client registration before the bootstrap"
btok=$(grep -ho '"bootstrap":"vzb_[^"]*"' "$STATE"/logs/auth.*.log | cut -d'"' -f4)
[ "$(echo "$btok" | grep -c vzb_)" = 1 ] || fail "expected one bootstrap token in the auth logs, got: $btok"
http POST /v1/auth/bootstrap '{"token":"vzb_wrong"}' $J -H "Authorization: Bearer $admin"
expect 403 "a wrong bootstrap token"
http POST /v1/auth/bootstrap "{\"token\":\"$btok\"}" $J
expect 401 "bootstrap without a user token"
http POST /v1/auth/bootstrap "{\"token\":\"$btok\"}" $J -H "Authorization: Bearer $admin"
expect 200 "bootstrap"
[ "$(json "$body" scope)" = "user admin" ] || fail "bootstrap: $body"
http POST /v1/auth/bootstrap "{\"token\":\"$btok\"}" $J -H "Authorization: Bearer $access"
expect 403 "the bootstrap token a second time"
http POST /v1/auth/login '{"email":"root@example.com","password":"correct horse battery"}' $J
expect 200 "admin login after the bootstrap"
admin=$(json "$body" access_token)
echo "ok - registration grants user only; the logged one-time bootstrap token makes an admin, once"

# ---------------------------------------------------------------- OAuth2
http POST /v1/oauth/clients '{"name":"partner"}' $J -H "Authorization: Bearer $access"
expect 403 "client registration by a non-admin"
http POST /v1/oauth/clients '{"name":"partner","scope":"reports:read"}' $J -H "Authorization: Bearer $admin"
expect 201 "client registration"
cid=$(json "$body" client_id)
csec=$(json "$body" client_secret)
F='-H Content-Type:application/x-www-form-urlencoded'
http POST /v1/oauth/token "grant_type=client_credentials&client_id=$cid&client_secret=$csec" $F
expect 200 "client credentials"
ctok=$(json "$body" access_token)
http POST /v1/oauth/token grant_type=client_credentials $F -u "$cid:$csec"
expect 200 "client credentials over HTTP Basic"
#   Errors in RFC 6749 §5.2 form: {"error","error_description"}, 400, and
#   401 with a Basic challenge when the client used HTTP Basic.
oauth_error() { # STATUS ERROR WHAT
    expect "$1" "$3"
    [ "$(json "$body" error)" = "$2" ] && [ -n "$(json "$body" error_description)" ] ||
        fail "$3: expected {\"error\":\"$2\",\"error_description\":...}, got $body"
}
http POST /v1/oauth/token "grant_type=client_credentials&client_id=$cid&client_secret=wrong" $F
oauth_error 400 invalid_client "client credentials with a wrong secret"
http POST /v1/oauth/token grant_type=client_credentials $F -u "$cid:wrong" -D "$T/h"
oauth_error 401 invalid_client "HTTP Basic with a wrong secret"
case "$(hdr WWW-Authenticate)" in Basic*) ;; *) fail "401 challenge: $(hdr WWW-Authenticate)" ;; esac
http POST /v1/oauth/token "client_id=$cid&client_secret=$csec" $F
oauth_error 400 invalid_request "no grant_type"
http POST /v1/oauth/token "grant_type=password&client_id=$cid&client_secret=$csec" $F
oauth_error 400 unsupported_grant_type "grant_type password"
http POST /v1/oauth/token "grant_type=client_credentials&scope=admin" $F -u "$cid:$csec"
oauth_error 400 invalid_scope "a scope the client lacks"
echo "ok - token endpoint: client_secret_post and _basic; errors in RFC 6749 §5.2 form"
http GET /v1/echo/me '' -H "Authorization: Bearer $ctok"
expect 200 "call with the client token"
grep -q 'oauth' <<<"$body" || fail "worker did not see auth=oauth: $body"
http POST /v1/oauth/introspect "token=$ctok&client_id=$cid&client_secret=$csec" $F
expect 200 introspect
[ "$(json "$body" active)" = true ] || fail "introspect: $body"
[ "$(json "$body" client_id)" = "$cid" ] || fail "introspect client_id: $body"
http POST /v1/oauth/introspect "token=garbage&client_id=$cid&client_secret=$csec" $F
expect 200 "introspect garbage"
[ "$(json "$body" active)" = false ] || fail "garbage token active: $body"
echo "ok - client credentials -> token -> call (auth=oauth) -> introspection active; garbage inactive"

sup_stop_clean
echo "ok - clean shutdown"
