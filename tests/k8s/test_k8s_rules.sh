#!/bin/bash
#   test_k8s_rules.sh - alert rules pass promtool check and their unit tests; dashboard parses
#   SPDX-License-Identifier: MPL-2.0
#   The PrometheusRule of k8s/monitoring/operator is the rule file, generated
#   (one source), and validates against prometheus-operator's CRD schema.
#   (promtool check config is not run: Debian's promtool is built without
#   kubernetes_sd_configs, which k8s/monitoring/prometheus.yml needs.)
set -u
source "$(dirname "$0")/common.sh"
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus)"
M=$K8S/monitoring
promtool check rules "$M/vizmesh-rules.yml" || fail "promtool check rules"
(cd "$M" && promtool test rules vizmesh-rules.test.yml) || fail "promtool test rules"
# Every alert has a unit test.
for a in $(grep -oE 'alert: \w+' "$M/vizmesh-rules.yml" | cut -d' ' -f2); do
    grep -q "alertname: $a\$" "$M/vizmesh-rules.test.yml" || fail "alert $a has no promtool unit test"
done
# The PrometheusRule: what k8s_tool.mjs makes of vizmesh-rules.yml, byte for byte.
node_deps
node "$TOOL" prometheusrule "$M/vizmesh-rules.yml" >"$T/rules.yaml" || fail "PrometheusRule generation"
diff -u "$M/operator/vizmesh-rules.yaml" "$T/rules.yaml" >&2 ||
    fail "k8s/monitoring/operator/vizmesh-rules.yaml is not vizmesh-rules.yml (regenerate it: see its header)"
node "$TOOL" validate "$M/operator/vizmesh-rules.yaml" || fail "the PrometheusRule does not validate"
for d in "$M"/vizmesh-*.json; do
    python3 -m json.tool "$d" >/dev/null || fail "$(basename "$d") is not JSON"
done
#   The platform docs' four dashboards, each listed in the ConfigMap; every
#   metric their panels read is one the mesh exports (docs or rules name it).
for n in system-health service-performance business-metrics error-tracking; do
    [ -f "$M/vizmesh-$n.json" ] || fail "dashboard vizmesh-$n.json missing"
    grep -q "vizmesh-$n.json" "$M/kustomization.yaml" || fail "vizmesh-$n.json not in the ConfigMap"
done
for m in $(grep -ohE 'vz_telemetry_[a-z0-9_]+' "$M"/vizmesh-*.json | sort -u); do
    grep -q "$m" "$K8S/../docs/services/telemetry.md" || fail "dashboard metric $m is not documented"
done
echo PASS
