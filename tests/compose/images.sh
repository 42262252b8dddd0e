#!/bin/bash
#   images.sh - the build context and the images of compose/Dockerfile, for every test that runs them (sourced)
#   SPDX-License-Identifier: MPL-2.0
#
#   One build for test_compose.sh and tests/k8s/test_k8s_overlay_run.sh:
#   `docker-compose build` of compose/docker-compose.yml, which tags
#   vizmesh:TAG and vizmesh-redis:TAG (VZ_IMAGE_TAG). Source engine.sh first.
#
#   The build context is the committed tree (git archive HEAD) plus the
#   working copy of compose/ and .dockerignore, so half-written files of
#   others in a shared checkout cannot break it; VZ_COMPOSE_WORKTREE=1 builds
#   the working tree as it is. Layers stay in the engine's cache, so a second
#   build of the same sources (the other test) takes seconds.

#   images_context SRC CTX: fill the new directory CTX with the build context.
images_context() {
    local src=$1 ctx=$2
    mkdir -p "$ctx" || return 1
    if [ "${VZ_COMPOSE_WORKTREE:-0}" != 1 ] && git -C "$src" rev-parse HEAD >/dev/null 2>&1; then
        git -C "$src" archive HEAD | tar -x -C "$ctx" || { echo "git archive of $src failed"; return 1; }
        rm -rf "$ctx/compose"
        cp -r "$src/compose" "$ctx/compose" && cp "$src/.dockerignore" "$ctx/" ||
            { echo "copy of compose/ failed"; return 1; }
    else
        (cd "$src" && tar --exclude='./build*' --exclude=node_modules --exclude=./state -c .) |
            tar -x -C "$ctx" || { echo "copy of the source tree failed"; return 1; }
    fi
}

#   images_build CTX TAG LOG: vizmesh:TAG and vizmesh-redis:TAG from the
#   context CTX (compose project TAG); the build's output goes to LOG,
#   whose tail is printed on failure.
images_build() {
    local ctx=$1 tag=$2 log=$3
    VZ_IMAGE_TAG=$tag timeout 900 "$COMPOSE" -p "$tag" -f "$ctx/compose/docker-compose.yml" build \
        >"$log" 2>&1 || { tail -n 40 "$log"; echo "image build failed"; return 1; }
}
