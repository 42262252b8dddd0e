#!/bin/bash
#   test_k8s_config_hash.sh - generated ConfigMaps carry kustomize's content hash; an edit rolls every pod using it
#   SPDX-License-Identifier: MPL-2.0
#
#   1. k8s_tool.mjs hashes like kustomize: the expected values of kustomize's
#      own api/hasher tests (hasher_cases.yaml), and, when `kubectl
#      kustomize` (v4+) is installed, a scratch kustomization with generators
#      built by both.
#   2. Every ConfigMap a pod template or other object references exists in
#      the overlay's build under that very name (kustomize rewrote it),
#      unless the reference is optional (made outside the build, as
#      vizmesh-weights by vzctl rollout --k8s), and
#      every generated one has a hash suffix unless its kustomization says
#      why not.
#   3. An edit of k8s/base/config.env gives vizmesh-config a new name in
#      every Deployment of every overlay (the pods roll), and in no other
#      way changes what the Deployments reference.
set -u
source "$(dirname "$0")/common.sh"
node_deps

# 1. The hash.
want=$(sed -n 's/^# want: //p' "$SRC/tests/k8s/hasher_cases.yaml")
got=$(node "$TOOL" hash "$SRC/tests/k8s/hasher_cases.yaml" | awk '{print $2}')
[ "$(wc -l <<<"$want")" -ge 11 ] || fail "hasher_cases.yaml: expected 11 cases"
diff <(echo "$want") <(echo "$got") >&2 || fail "k8s_tool.mjs hashes differ from kustomize's expected values"
echo "ok - $(wc -l <<<"$want") hashes equal kustomize's published ones"

if have_kustomize; then
    mkdir -p "$T/scratch"
    printf 'x: <a> && b\n\ttab "q" \\ \xe2\x80\xa8 \xc3\xa9\n' >"$T/scratch/file.txt"
    printf '# comment\n  K1=v=1\nK2=with space \n\nK3=\n' >"$T/scratch/vars.env"
    cat >"$T/scratch/kustomization.yaml" <<'YAML'
namespace: scratch
generatorOptions:
  labels: {a: b}
configMapGenerator:
  - name: cm
    files: [file.txt, renamed.txt=file.txt]
    envs: [vars.env]
    literals: ["L=1<2"]
  - name: nohash
    literals: ["L=1"]
    options: {disableNameSuffixHash: true}
secretGenerator:
  - name: sec
    files: [file.txt]
    type: kubernetes.io/opaque-test
resources: [deploy.yaml]
YAML
    cat >"$T/scratch/deploy.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: x
          envFrom: [{configMapRef: {name: cm}}, {secretRef: {name: sec}}]
          env: [{name: E, valueFrom: {configMapKeyRef: {name: nohash, key: L}}}]
      volumes:
        - {name: v, configMap: {name: cm}}
        - {name: s, secret: {secretName: sec}}
        - name: p
          projected: {sources: [{configMap: {name: cm}}, {secret: {name: sec}}]}
YAML
    kubectl kustomize "$T/scratch" >"$T/scratch.kustomize.yaml" || fail "kubectl kustomize of the scratch tree"
    node "$TOOL" build "$T/scratch" >"$T/scratch.tool.yaml" || fail "k8s_tool.mjs build of the scratch tree"
    node "$TOOL" same "$T/scratch.kustomize.yaml" "$T/scratch.tool.yaml" ||
        fail "k8s_tool.mjs and kubectl kustomize disagree on generators (see above)"
    echo "ok - kubectl kustomize names the scratch generators as k8s_tool.mjs does"
else
    echo "kubectl kustomize (v4+) absent: hashes checked against the published values only"
fi

# 2 and 3. The overlays, as they are and with config.env edited.
cp -r "$K8S" "$T/edited"
echo "VZ_CONFIG_EDIT_CHECK=1" >>"$T/edited/base/config.env"
for o in $(ls "$K8S/overlays"); do
    node "$TOOL" build "$K8S/overlays/$o" >"$T/$o.yaml" || fail "build of overlay $o"
    node "$TOOL" build "$T/edited/overlays/$o" >"$T/$o.edited.yaml" || fail "build of edited overlay $o"
    node "$TOOL" refs "$T/$o.yaml" | sort >"$T/$o.refs"
    node "$TOOL" refs "$T/$o.edited.yaml" | sort >"$T/$o.edited.refs"
    # Every ConfigMap referenced is in the build under that name.
    awk '/^kind: ConfigMap$/{k=1} /^---/{k=0} k && /^  name: /{print $2}' "$T/$o.yaml" | sort -u >"$T/$o.cms"
    while read -r holder kind name opt; do
        [ "$kind" = ConfigMap ] && [ "$opt" != optional ] || continue
        grep -qx "$name" "$T/$o.cms" || fail "overlay $o: $holder references ConfigMap $name, which the build does not make"
    done <"$T/$o.refs"
    cm=$(grep -Eo '^vizmesh-config-[a-z0-9]{10}$' "$T/$o.cms") || fail "overlay $o: no hashed vizmesh-config"
    edited=$(awk '/^kind: ConfigMap$/{k=1} /^---/{k=0} k && /^  name: vizmesh-config/{print $2}' "$T/$o.edited.yaml")
    [ -n "$edited" ] && [ "$edited" != "$cm" ] || fail "overlay $o: the edit left the name $cm"
    deployments=$(grep -c '^kind: Deployment$' "$T/$o.yaml")
    users=$(grep -c "^Deployment/[^ ]* ConfigMap $cm\$" "$T/$o.refs")
    [ "$users" -eq "$deployments" ] || fail "overlay $o: $users of $deployments Deployments use $cm"
    moved=$(grep -c "^Deployment/[^ ]* ConfigMap $edited\$" "$T/$o.edited.refs")
    [ "$moved" -eq "$deployments" ] || fail "overlay $o: $moved of $deployments Deployments follow the edit to $edited"
    diff <(sed "s/ $cm\$/ CM/" "$T/$o.refs") <(sed "s/ $edited\$/ CM/" "$T/$o.edited.refs") >&2 ||
        fail "overlay $o: the edit changed other references"
    echo "ok - overlay $o: $cm -> $edited in all $deployments Deployments"
done
# A generator without a hash must say why in its kustomization.
for k in $(grep -rl 'disableNameSuffixHash: true' "$K8S" --include=kustomization.yaml); do
    grep -q '^#.*hash' "$k" || fail "$k turns the name hash off without saying why"
done
echo PASS
