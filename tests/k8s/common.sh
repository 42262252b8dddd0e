#!/bin/bash
#   common.sh - shared setup of the k8s tests (sourced): paths, fail, node modules
#   SPDX-License-Identifier: MPL-2.0
SRC=${VZ_SOURCE_DIR:?VZ_SOURCE_DIR not set}
K8S=$SRC/k8s
TOOL=$SRC/tests/k8s/k8s_tool.mjs
T=$(mktemp -d "${TMPDIR:-/tmp}/vz-k8s.XXXXXX")
trap 'rm -rf "$T"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

#   node_deps: kubernetes-models and yaml from tests/k8s/package-lock.json,
#   installed here when missing (make test-deps only covers tests/peers).
node_deps() {
    command -v node >/dev/null || fail "node missing (.ci/install-deps --test installs it)"
    local dir=$SRC/tests/k8s
    if ! [ -d "$dir/node_modules/kubernetes-models" ] ||
        ! [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        (cd "$dir" && flock "$dir/package.json" npm ci --no-audit --no-fund --loglevel=error) ||
            fail "npm ci in tests/k8s"
    fi
}

#   have_kustomize: true when `kubectl kustomize` (kustomize >= 4) exists, to
#   compare k8s_tool.mjs's builds with.
have_kustomize() {
    command -v kubectl >/dev/null &&
        kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])'
}
