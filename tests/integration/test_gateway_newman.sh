#!/bin/bash
#   test_gateway_newman - docs/postman-collection.json run by newman against the
#   live mesh started by vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
set -u -o pipefail
source "$(dirname "$0")/mesh.sh" gwnewman
NEWMAN=$SRC/tests/peers/node_modules/.bin/newman
[ -x "$NEWMAN" ] || fail "newman missing (npm ci in tests/peers)"
mesh_config
mesh_start
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "no gateway port"
"$NEWMAN" run "$SRC/docs/postman-collection.json" --env-var "baseUrl=http://127.0.0.1:$gw" --env-var exhaustRateLimit=true \
    --reporters cli --disable-unicode --timeout-request 15000 >"$T/newman.log" 2>&1 ||
    { cat "$T/newman.log" >&2; fail "newman"; }
grep -E "assertions|requests" "$T/newman.log"
echo "ok - postman collection passes against the live mesh"
