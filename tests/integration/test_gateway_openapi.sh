#!/bin/bash
#   test_gateway_openapi - docs/openapi.yaml passes spectral's OpenAPI rules and
#   names every route of configs/routes.cfg
#   SPDX-License-Identifier: MPL-2.0
set -u -o pipefail
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
DOC=$SRC/docs/openapi.yaml
SPECTRAL=$SRC/tests/peers/node_modules/.bin/spectral
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$SPECTRAL" ] || fail "spectral missing (npm ci in tests/peers)"
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-openapi.XXXXXX")
trap 'rm -rf "$T"' EXIT
echo 'extends: ["spectral:oas"]' >"$T/.spectral.yaml"
"$SPECTRAL" lint --ruleset "$T/.spectral.yaml" --fail-severity warn "$DOC" >"$T/out" 2>&1 ||
    { cat "$T/out" >&2; fail "spectral lint"; }
echo "ok - spectral:oas, no warnings"
#   Every route path of the table is documented (params spelt alike).
missing=0
while read -r p; do
    grep -q "^  $p:\$" "$DOC" || { echo "undocumented: $p" >&2; missing=1; }
done < <(awk '$1=="path" {gsub(/"/, "", $3); print $3}' "$SRC/configs/routes.cfg" | sort -u)
[ $missing = 0 ] || fail "routes missing from openapi.yaml"
echo "ok - every route of configs/routes.cfg is in openapi.yaml"
