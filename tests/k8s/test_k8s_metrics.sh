#!/bin/bash
#   test_k8s_metrics.sh - every metric the dashboard and the alert rules use exists on a live mesh
#   SPDX-License-Identifier: MPL-2.0
#
#   Boots the mesh with vz-supervisor (tests/integration/mesh.sh), drives
#   traffic including an upstream error, scrapes every admin port's /metrics
#   and checks each name from k8s/monitoring against the sample names and
#   the "# TYPE" names. Exempt: `up` (Prometheus makes it itself) and
#   kube-state-metrics' kube_* series.
set -u
source "$(dirname "$0")/common.sh"
node_deps
node "$TOOL" names "$K8S/monitoring/vizmesh-rules.yml" "$K8S/monitoring/vizmesh-dashboard.json" \
    >"$T/used" || fail "extracting metric names"
KT=$T
source "$SRC/tests/integration/mesh.sh" k8s-metrics
trap 'mesh_cleanup; rm -rf "$KT"' EXIT
mesh_config
mesh_start
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
[ -n "$gw" ] || fail "gateway port unknown"
for i in 1 2 3 4 5; do curl -fsS -d "m$i" "http://127.0.0.1:$gw/v1/echo" >/dev/null || fail "echo $i"; done
curl -s "http://127.0.0.1:$gw/health" >/dev/null
# invalid_request from the worker: an upstream error series on the gateway.
code=$(curl -s -o /dev/null -w '%{http_code}' -d 'not-a-number' "http://127.0.0.1:$gw/v1/echo/slow")
[ "$code" = 400 ] || fail "slow with a bad body gave $code, expected 400"
ports=$("${CTL[@]}" status | awk 'NR>1 && $8 ~ /^[0-9]+$/ {print $8}')
[ "$(echo "$ports" | wc -w)" -ge 3 ] || fail "admin ports: $ports"
for p in $ports; do
    curl -fsS "http://127.0.0.1:$p/metrics" >>"$KT/scrape" || fail "scrape of admin port $p"
done
{ awk '!/^#/ && NF {sub(/[{ ].*/, "", $1); print $1}' "$KT/scrape"
  awk '/^# TYPE/ {print $3}' "$KT/scrape"; } | sort -u >"$KT/live"
[ -s "$KT/used" ] && [ -s "$KT/live" ] || fail "nothing to compare"
missing=0
while read -r name; do
    #   up is Prometheus' own; kube_* come from kube-state-metrics (the
    #   memory alert compares with the container's limit).
    [ "$name" = up ] && continue
    [[ $name == kube_* ]] && continue
    grep -qx "$name" "$KT/live" || { echo "not on any live /metrics: $name" >&2; missing=$((missing + 1)); }
done <"$KT/used"
[ $missing -eq 0 ] || fail "$missing metric names of k8s/monitoring are not exported"
echo "PASS: $(wc -l <"$KT/used") names used, all live"
