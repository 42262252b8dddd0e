#!/bin/bash
#   test_gateway_openapi - docs/openapi.yaml passes spectral's OpenAPI rules,
#   names every route of configs/routes.cfg and marks exactly its deprecated ones
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

#   The route table is the one source of deprecations: an operation is
#   "deprecated: true" in openapi.yaml exactly when its route (path and
#   method) has a deprecated date in configs/routes.cfg.
routes_deprecated() {
    awk '
        function flush() { if (path != "" && dep) { n = split(methods, m, /[ ,]+/)
                              for (i = 1; i <= n; i++) if (m[i] != "") print path, tolower(m[i]) } }
        /^    [A-Za-z0-9_.-]+/ { flush(); path = ""; methods = ""; dep = 0; next }
        $1 == "path" { p = $3; gsub(/"/, "", p); path = p }
        $1 == "methods" { v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); methods = v }
        $1 == "deprecated" { dep = 1 }
        END { flush() }' "$SRC/configs/routes.cfg" | sort -u
}
openapi_deprecated() {
    awk '
        /^  \/[^ ]*:$/ { path = $1; sub(/:$/, "", path); next }
        /^[a-z]/ { path = "" }
        path != "" && /^    (get|post|put|patch|delete):$/ { op = $1; sub(/:$/, "", op); next }
        path != "" && /^    [a-z]/ { op = "" }
        path != "" && op != "" && /^      deprecated: true$/ { print path, op }' "$DOC" | sort -u
}
routes_deprecated >"$T/routes.dep"
openapi_deprecated >"$T/openapi.dep"
[ -s "$T/routes.dep" ] || fail "no deprecated route found in configs/routes.cfg (the check would prove nothing)"
if ! diff -u "$T/routes.dep" "$T/openapi.dep" >&2; then
    fail "deprecated routes (-) and deprecated operations (+) differ"
fi
echo "ok - the $(wc -l <"$T/routes.dep") deprecated operations of configs/routes.cfg, and only they, are deprecated in openapi.yaml"
