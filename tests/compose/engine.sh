#!/bin/bash
#   engine.sh - make a Docker engine and the debian:bookworm-slim base available (sourced)
#   SPDX-License-Identifier: MPL-2.0
#
#   No image registry is reachable from the project's machines, so the base
#   image is made locally (debootstrap | docker import) and cached in the
#   engine; the Dockerfiles stay what a user anywhere would build. Defines
#   DOCKER, COMPOSE and engine_ready; every failure names its reason.
#   Paths: /usr/bin/docker, because the client first on PATH may be a newer
#   one without compose support (TOOLING.md).

DOCKER=/usr/bin/docker
COMPOSE=/usr/bin/docker-compose
ENGINE_LOG=${ENGINE_LOG:-/var/tmp/vz-dockerd.log}

#   s_apt PKG...: install Debian packages only when their command is missing.
s_apt() {
    [ "$(id -u)" = 0 ] || { echo "cannot install $* (not root)"; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; } ||
        { echo "apt-get install $* failed"; return 1; }
}

#   engine_ready: 0 when a daemon answers; otherwise prints why and returns 1.
engine_ready() {
    [ -x "$DOCKER" ] && [ -x /usr/sbin/dockerd ] || s_apt docker.io || return 1
    [ -x "$COMPOSE" ] || s_apt docker-compose || return 1
    if ! "$DOCKER" info >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || { echo "no Docker engine runs and only root may start dockerd"; return 1; }
        # Left running on purpose: the engine holds the image and build caches.
        nohup /usr/sbin/dockerd >"$ENGINE_LOG" 2>&1 </dev/null &
        local deadline=$((SECONDS + 60))
        until "$DOCKER" info >/dev/null 2>&1; do
            if [ $SECONDS -ge $deadline ] || ! kill -0 $! 2>/dev/null; then
                echo "dockerd did not start within 60 s; its log ($ENGINE_LOG) ends with:"
                tail -n 15 "$ENGINE_LOG"
                return 1
            fi
            sleep 0.5
        done
    fi
    base_image || return 1
}

#   base_image: debian:bookworm-slim from the engine, else made with debootstrap.
base_image() {
    "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null || s_apt debootstrap || return 1
    local root
    root=$(mktemp -d /var/tmp/vz-bookworm.XXXXXX)
    echo "making debian:bookworm-slim with debootstrap (about a minute, once)"
    if ! debootstrap --variant=minbase bookworm "$root" >"$root.log" 2>&1; then
        echo "debootstrap failed:"; tail -n 15 "$root.log"; rm -rf "$root" "$root.log"
        return 1
    fi
    # A slim image keeps no apt lists or docs, like the official one.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
        "$root"/usr/share/man/*
    tar -C "$root" -c . | "$DOCKER" import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
    local rc=$?
    rm -rf "$root" "$root.log"
    [ $rc -eq 0 ] || { echo "docker import of the debootstrap tree failed"; return 1; }
}
