#!/bin/bash
#   test_config_docs - docs/configuration.md is exactly what the daemons' --help prints
#   SPDX-License-Identifier: MPL-2.0
#
#   The settings tables live once, in each daemon's static config table; the
#   page is generated from them so it cannot drift. Regenerate with:
#     VZ_BIN_DIR=build/bin VZ_SOURCE_DIR=. bash tests/integration/test_config_docs.sh --write
set -u -o pipefail
BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
DOC=$SRC/docs/configuration.md
#   Every daemon under services/ (vz-<dir>), in a stable order.
DAEMONS=$(cd "$SRC/services" && for d in */; do [ -f "$d/CMakeLists.txt" ] && echo "vz-${d%/}"; done | sort)

#   The prose before the first "## vz-" heading is the page's own (edited in
#   place); everything from there on is generated.
PROSE=$(sed '/^## vz-/,$d' "$DOC")

generate() {
    printf '%s\n' "$PROSE"
    for d in $DAEMONS; do
        printf '\n## %s\n\n```\n' "$d"
        "$BIN/$d" --help 2>&1 | sed -e "s|^Usage: .*/$d|Usage: $d|"
        printf '```\n'
    done
}

for d in $DAEMONS; do
    [ -x "$BIN/$d" ] || { echo "FAIL: $BIN/$d missing" >&2; exit 1; }
    "$BIN/$d" --help >/dev/null 2>&1 || { echo "FAIL: $d --help exited non-zero" >&2; exit 1; }
done
if [ "${1:-}" = "--write" ]; then
    generate >"$DOC"
    echo "wrote $DOC"
    exit 0
fi
if ! diff -u "$DOC" <(generate); then
    echo "FAIL: docs/configuration.md differs from the daemons' --help; regenerate it (see the header of this script)" >&2
    exit 1
fi
echo "ok - docs/configuration.md matches every daemon's settings table"
