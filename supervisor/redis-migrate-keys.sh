#!/usr/bin/env bash
# redis-migrate-keys - rename a single-instance deployment's keys to the hash-tagged layout
# SPDX-License-Identifier: MPL-2.0
#
# Since the Redis Cluster work every daemon keeps its keys under one hash
# tag: auth:* became {auth}:*, billing:* {billing}:*, github:* {github}:*,
# nt:* {nt}:*, tl:* {tl}:*, rp:* {rp}:* (vz:rl:* stays: single-key scripts).
# This renames the old keys in place with RENAMENX, which keeps values,
# TTLs and stream consumer groups. Idempotent: a second run finds nothing;
# a key whose new name already exists (written by an upgraded daemon) is
# left alone and counted as a conflict. Run it on the single instance with
# the daemons stopped, before starting the new version (then move the data
# into a cluster with `redis-cli --cluster import` if that is the plan).
#
# Usage: redis-migrate-keys.sh [redis-cli connection options]
#        e.g. redis-migrate-keys.sh -u redis://:secret@10.0.0.5:6379/0
# DRY_RUN=1 lists what would be renamed. Prints "renamed N conflicts M";
# exit 0, or 1 when there were conflicts (2 when redis-cli fails).
set -euo pipefail

prefixes=(auth billing github nt tl rp)
cli=(redis-cli "$@")

# A key as a double-quoted argument of redis-cli's command reader.
quote() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

renamed=0
conflicts=0
for p in "${prefixes[@]}"; do
    keys=$("${cli[@]}" --scan --pattern "$p:*") || exit 2
    [ -n "$keys" ] || continue
    commands=""
    count=0
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        new="{$p}:${key#"$p:"}"
        if [ "${DRY_RUN:-0}" = 1 ]; then
            echo "$key -> $new"
            continue
        fi
        commands+="RENAMENX $(quote "$key") $(quote "$new")"$'\n'
        count=$((count + 1))
    done <<<"$keys"
    [ "$count" -gt 0 ] || continue
    replies=$(printf '%s' "$commands" | "${cli[@]}") || exit 2
    done_now=$(grep -c '^1$' <<<"$replies" || true)
    renamed=$((renamed + done_now))
    conflicts=$((conflicts + count - done_now))
done
echo "renamed $renamed conflicts $conflicts"
[ "$conflicts" -eq 0 ]
