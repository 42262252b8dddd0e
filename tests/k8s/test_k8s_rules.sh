#!/bin/bash
#   test_k8s_rules.sh - alert rules pass promtool check and their unit tests; dashboard parses
#   SPDX-License-Identifier: MPL-2.0
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
python3 -m json.tool "$M/vizmesh-dashboard.json" >/dev/null || fail "dashboard is not JSON"
echo PASS
