#!/bin/bash
#   test_k8s_manifests.sh - every object of every overlay validates; overlays cover every daemon
#   SPDX-License-Identifier: MPL-2.0
#
#   Each overlay is built by k8s_tool.mjs (the kustomize subset k8s/ uses) and,
#   when `kubectl kustomize` (kustomize >= 4) is installed, by kustomize too;
#   both must give the same objects. Every object passes kubernetes-models v4
#   plus the unknown-field check; so do the Secrets `vzctl keys gen --k8s`
#   prints. Every daemon binary (vz-* but the supervisor) must have a
#   Deployment in k8s/base and a service in compose/docker-compose.yml. The
#   broker runs several replicas behind a headless Service.
set -u
source "$(dirname "$0")/common.sh"
node_deps
BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}

kustomize_ok=0
have_kustomize && kustomize_ok=1
n=0
for dir in "$K8S"/overlays/*/; do
    o=$(basename "$dir")
    node "$TOOL" build "$dir" >"$T/$o.yaml" || fail "build of overlay $o"
    if [ $kustomize_ok = 1 ]; then
        kubectl kustomize "$dir" >"$T/$o.kustomize.yaml" || fail "kubectl kustomize $dir"
        node "$TOOL" same "$T/$o.kustomize.yaml" "$T/$o.yaml" ||
            fail "k8s_tool.mjs and kustomize disagree on overlay $o"
    fi
    node "$TOOL" validate "$T/$o.yaml" || fail "overlay $o has invalid objects"
    n=$((n + 1))
done
[ $n -ge 2 ] || fail "expected the dev and prod overlays, found $n"
# The prometheus-operator objects (k8s/monitoring/operator): valid against
# the operator's CRD schema, and a ServiceMonitor scrapes every pod
# prometheus.yml scrapes, in every overlay's namespace.
node "$TOOL" build "$K8S/monitoring/operator" >"$T/operator.yaml" || fail "build of monitoring/operator"
if [ $kustomize_ok = 1 ]; then
    kubectl kustomize "$K8S/monitoring/operator" >"$T/operator.kustomize.yaml" || fail "kubectl kustomize operator"
    node "$TOOL" same "$T/operator.kustomize.yaml" "$T/operator.yaml" || fail "kustomize disagrees on monitoring/operator"
fi
node "$TOOL" validate "$T/operator.yaml" || fail "monitoring/operator has invalid objects"
for dir in "$K8S"/overlays/*/; do
    o=$(basename "$dir")
    node "$TOOL" scrapes "$T/$o.yaml" "$T/operator.yaml" || fail "overlay $o: pods no ServiceMonitor scrapes"
done
[ $kustomize_ok = 1 ] && echo "kustomize agrees on all $n overlays" ||
    echo "kubectl kustomize (v4+) absent: overlays built by k8s_tool.mjs only"

# The key Secrets the Deployments mount, as an operator makes them.
daemons=()
for b in "$BIN"/vz-*; do
    name=${b##*/vz-}
    [ "$name" = supervisor ] || daemons+=("$name")
done
[ ${#daemons[@]} -ge 3 ] || fail "expected daemon binaries in $BIN, found: ${daemons[*]}"
"$BIN/vzctl" keys gen "$T/keys" "${daemons[@]}" --k8s >"$T/secrets.yaml" || fail "vzctl keys gen --k8s"
node "$TOOL" validate "$T/secrets.yaml" || fail "vzctl keys gen --k8s output"

# Every daemon that exists is deployed by both compose and Kubernetes.
for d in "${daemons[@]}"; do
    grep -q "^kind: Deployment" <(awk -v d="$d" '/^---/{k=""} /^kind:/{k=$0} /^  name: /{if ($2==d && k=="kind: Deployment") print k}' "$T/prod.yaml") ||
        fail "vz-$d has no Deployment in k8s/base (copy k8s/base/echo.yaml; docs/operations/scaling.md)"
    grep -Eq "secretName: vizmesh-key-$d\$" "$T/prod.yaml" || fail "Deployment $d does not mount Secret vizmesh-key-$d"
    grep -Eq "^  $d:\$" "$SRC/compose/docker-compose.yml" ||
        fail "vz-$d has no service in compose/docker-compose.yml (copy the echo block)"
done
# Issuer and audience come from one place: every issuer/audience setting of
# every overlay references vizmesh-config's VZ_JWT_ISSUER / VZ_JWT_AUDIENCE
# (a literal in one Deployment made every JWT route answer 401), and the
# gateway and auth both have them.
for dir in "$K8S"/overlays/*/; do
    o=$(basename "$dir")
    bad=$(grep -A1 -E 'name: VZ_(AUTH|GATEWAY_JWT)_(ISSUER|AUDIENCE)$' "$T/$o.yaml" | grep 'value:' |
        grep -vE 'value: "?\$\(VZ_JWT_(ISSUER|AUDIENCE)\)"?$')
    [ -z "$bad" ] || fail "overlay $o sets an issuer or audience of its own: $bad"
    for v in VZ_AUTH_ISSUER VZ_AUTH_AUDIENCE VZ_GATEWAY_JWT_ISSUER VZ_GATEWAY_JWT_AUDIENCE; do
        grep -q "name: $v\$" "$T/$o.yaml" || fail "overlay $o: no $v (auth and gateway would disagree)"
    done
    grep -Eq '^  VZ_JWT_ISSUER: ' "$T/$o.yaml" || fail "overlay $o: vizmesh-config lacks VZ_JWT_ISSUER"
done
echo "ok - issuer and audience from vizmesh-config alone in every overlay"

# Drain and spread: the gateway sleeps in preStop (out of the endpoints
# before SIGTERM) within a grace period that covers the sleep and the drain;
# every Deployment spreads its replicas over nodes.
gw=$(awk '/^---/{d=0} /^kind: Deployment/{k=1} /^  name: gateway$/{if (k) d=1} /^kind:/{if ($2!="Deployment") k=0} d' "$T/prod.yaml")
grep -q 'preStop:' <<<"$gw" || fail "the gateway Deployment has no preStop hook"
grace=$(sed -n 's/^ *terminationGracePeriodSeconds: //p' <<<"$gw")
[ "${grace:-0}" -ge 20 ] || fail "gateway grace period ${grace:-unset} s is shorter than preStop + drain"
deployments=$(grep -c '^kind: Deployment' "$T/prod.yaml")
spread=$(grep -c 'topologyKey: kubernetes.io/hostname' "$T/prod.yaml")
[ "$spread" -ge "$deployments" ] || fail "$spread of $deployments Deployments spread over nodes"
echo "ok - gateway preStop drain (grace $grace s); $deployments Deployments spread over nodes"

# Redis has one ACL user per service (Secret vizmesh-redis-acl, from
# `vzctl redis-acl --k8s`, which also prints one password Secret per
# service): every Deployment that talks to Redis logs in as its own user
# with the password of its own Secret vizmesh-redis-<d>, mounts no other
# service's, and nothing else mounts any; auth encrypts its signing keys
# with the KEK of Secret vizmesh-auth-kek.
redis_users=(auth ratelimit billing notifier telemetry github reporter gateway)
for dir in "$K8S"/overlays/*/; do
    o=$(basename "$dir")
    node "$TOOL" refs "$T/$o.yaml" >"$T/$o.refs" || fail "references of overlay $o"
    sts=$(awk '/^---/{on=0} /^kind: StatefulSet/{on=1} on' "$T/$o.yaml")
    grep -q -- '--aclfile' <<<"$sts" || fail "overlay $o: Redis runs without an ACL file"
    grep -q 'requirepass' <<<"$sts" && fail "overlay $o: Redis still has one shared requirepass"
    grep -qx 'StatefulSet/redis Secret vizmesh-redis-acl' "$T/$o.refs" || fail "overlay $o: Redis does not mount vizmesh-redis-acl"
    for d in "${redis_users[@]}"; do
        dep=$(awk -v d="$d" '/^---/{on=0} /^kind: /{k=$2} /^  name: /{if (k=="Deployment" && $2==d) on=1} on' "$T/$o.yaml")
        [ -n "$dep" ] || fail "overlay $o: no Deployment $d"
        grep -A1 'name: VZ_REDIS_URL$' <<<"$dep" | grep -Eq "value: \"?\\\$\(VZ_REDIS_SCHEME\)://$d@\\\$\(VZ_REDIS_ADDR\)\"?\$" ||
            fail "overlay $o: $d does not log in to Redis as user $d"
        grep -q 'name: VZ_REDIS_PASSWORD_FILE' <<<"$dep" || fail "overlay $o: $d does not read a Redis password"
        mounts=$(grep "^Deployment/$d Secret vizmesh-redis" "$T/$o.refs" | awk '{print $3}' | sort -u)
        [ "$mounts" = "vizmesh-redis-$d" ] || fail "overlay $o: $d mounts Redis Secrets '$mounts', not vizmesh-redis-$d alone"
    done
    others=$(grep -E ' Secret vizmesh-redis' "$T/$o.refs" | grep -vE '^StatefulSet/redis ' |
        awk '{split($1, a, "/"); if ($3 != "vizmesh-redis-" a[2]) print}')
    [ -z "$others" ] || fail "overlay $o: Redis Secrets mounted by the wrong pods: $others"
    grep -q 'Secret vizmesh-auth-kek$' "$T/$o.refs" || fail "overlay $o: auth does not mount its KEK"
done
# The Secrets an operator makes with vzctl validate, and are every Redis
# Secret the manifests mount.
"$BIN/vzctl" redis-acl "$T/redis" "${redis_users[@]}" --k8s >"$T/redis-secrets.yaml" || fail "vzctl redis-acl --k8s"
node "$TOOL" validate "$T/redis-secrets.yaml" || fail "vzctl redis-acl --k8s output"
made=$(awk '/^  name: /{print $2}' "$T/redis-secrets.yaml" | sort -u)
used=$(awk '$3 ~ /^vizmesh-redis/ {print $3}' "$T/prod.refs" | sort -u)
[ "$made" = "$used" ] || fail "vzctl redis-acl --k8s makes $(echo $made), the manifests mount $(echo $used)"
echo "ok - Redis: an ACL user and a password Secret of its own for each of ${redis_users[*]}; auth's KEK mounted"

# Autoscaling: prod scales each broker worker with KEDA on the broker's
# queue (depth and wait, for that service) and no plain HPA; dev on CPU.
node --input-type=module - "$T/prod.yaml" "$T/dev.yaml" <<'JS' || fail "autoscaling"
import fs from "node:fs";
import { createRequire } from "node:module";
const YAML = createRequire(process.env.VZ_SOURCE_DIR + "/tests/k8s/")("yaml");
const load = (f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJS()).filter(Boolean);
const [prod, dev] = process.argv.slice(2).map(load);
const workers = ["echo", "auth", "ratelimit", "notifier", "billing", "github", "telemetry"];
let bad = 0;
const no = (m) => { console.error(m); bad++; };
for (const w of workers) {
    const so = prod.filter((o) => o.kind === "ScaledObject" && o.spec.scaleTargetRef.name === w);
    if (so.length !== 1) { no(`prod: ${so.length} ScaledObjects for ${w}`); continue; }
    const queries = so[0].spec.triggers.filter((t) => t.type === "prometheus").map((t) => t.metadata.query);
    for (const metric of ["vz_broker_queue_depth", "vz_broker_queue_wait_seconds_bucket"])
        if (!queries.some((q) => q.includes(metric) && q.includes(`service="${w}"`)))
            no(`prod: ${w}'s ScaledObject has no trigger on ${metric}{service="${w}"}`);
    if (prod.some((o) => o.kind === "HorizontalPodAutoscaler" && o.spec.scaleTargetRef.name === w))
        no(`prod: ${w} has a plain HPA beside its ScaledObject`);
    if (!dev.some((o) => o.kind === "HorizontalPodAutoscaler" && o.spec.scaleTargetRef.name === w))
        no(`dev: ${w} has no HPA`);
}
process.exit(bad ? 1 : 0);
JS
echo "ok - prod scales ${#redis_users[@]} workers on the broker's queue (KEDA), dev on CPU"

# Several brokers: in every overlay the broker is a Deployment of 2 or more
# replicas that rolls (RollingUpdate, never more than one down, never all),
# a PDB keeps at least one (and still lets a drain evict one), and the
# Service the daemons' VZ_BROKER_ENDPOINTS names is headless and leaves out
# unready pods, so its DNS name gives every ready broker.
node --input-type=module - "$T/dev.yaml" "$T/prod.yaml" <<'JS' || fail "several brokers, echo canary"
import fs from "node:fs";
import { createRequire } from "node:module";
const YAML = createRequire(process.env.VZ_SOURCE_DIR + "/tests/k8s/")("yaml");
const load = (f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJS()).filter(Boolean);
let bad = 0;
for (const f of process.argv.slice(2)) {
    const o = f.replace(/.*\//, "").replace(/\.yaml$/, "");
    const objs = load(f);
    const no = (m) => { console.error(`${o}: ${m}`); bad++; };
    const sel = (s, labels) => s && Object.keys(s).length && Object.entries(s).every(([k, v]) => labels[k] === v);
    const dep = objs.find((x) => x.kind === "Deployment" && x.metadata.name === "broker");
    if (!dep) { no("no Deployment broker"); continue; }
    const labels = dep.spec.template.metadata.labels;
    const n = dep.spec.replicas ?? 1;
    if (n < 2) no(`broker has ${n} replica(s), not 2 or more`);
    const st = dep.spec.strategy || {};
    const ru = st.rollingUpdate || {};
    const maxUn = ru.maxUnavailable ?? "25%";
    if (st.type !== "RollingUpdate") no(`broker strategy ${st.type}, not RollingUpdate`);
    else if (![0, 1].includes(maxUn) || ru.maxSurge !== 1)
        no(`broker rolls with maxUnavailable ${maxUn}, maxSurge ${ru.maxSurge} (want 0 or 1, and 1)`);
    const c = dep.spec.template.spec.containers.find((x) => x.name === "broker");
    if (!c?.readinessProbe?.httpGet) no("broker has no HTTP readiness probe");
    // Every replica reads the routing weights from one ConfigMap (vzctl rollout --k8s applies it),
    // mounted whole: a subPath mount never sees an update.
    const wv = (dep.spec.template.spec.volumes || []).find((v) => v.configMap?.name === "vizmesh-weights");
    const wm = wv && (c?.volumeMounts || []).find((m) => m.name === wv.name && !m.subPath);
    const wf = (c?.env || []).find((e) => e.name === "VZ_BROKER_WEIGHTS")?.value || "";
    if (!wm || !wf.startsWith(wm.mountPath.replace(/\/?$/, "/")))
        no("broker does not read VZ_BROKER_WEIGHTS from ConfigMap vizmesh-weights mounted without subPath");
    const spread = dep.spec.template.spec.topologySpreadConstraints || [];
    if (!spread.some((t) => t.topologyKey === "kubernetes.io/hostname" && sel(t.labelSelector?.matchLabels, labels)))
        no("broker replicas are not spread over nodes");
    const pdbs = objs.filter((x) => x.kind === "PodDisruptionBudget" && sel(x.spec.selector?.matchLabels, labels));
    if (pdbs.length !== 1) no(`${pdbs.length} PodDisruptionBudgets select the broker, want 1`);
    else {
        const min = pdbs[0].spec.minAvailable;
        if (!(Number.isInteger(min) && min >= 1 && min < n))
            no(`broker PDB minAvailable ${min}: want 1 or more and fewer than the ${n} replicas (a drain must still evict one)`);
    }
    const cfg = objs.find((x) => x.kind === "ConfigMap" && x.metadata.name.startsWith("vizmesh-config"));
    const host = /^tcp:\/\/([^:,]+):(\d+)$/.exec(cfg?.data?.VZ_BROKER_ENDPOINTS || "");
    if (!host) { no(`VZ_BROKER_ENDPOINTS ${cfg?.data?.VZ_BROKER_ENDPOINTS} is not one tcp://NAME:PORT`); continue; }
    const svc = objs.find((x) => x.kind === "Service" && x.metadata.name === host[1]);
    if (!svc) no(`no Service ${host[1]} (VZ_BROKER_ENDPOINTS)`);
    else {
        if (!sel(svc.spec.selector, labels)) no(`Service ${host[1]} does not select the broker pods`);
        if (svc.spec.clusterIP !== "None") no(`Service ${host[1]} is not headless (clusterIP ${svc.spec.clusterIP})`);
        if (svc.spec.publishNotReadyAddresses) no(`Service ${host[1]} publishes unready brokers`);
        if (!svc.spec.ports.some((p) => p.port === Number(host[2])))
            no(`Service ${host[1]} has no port ${host[2]}`);
    }
    if (!bad) console.log(`${o}: ${n} brokers, RollingUpdate (maxUnavailable ${maxUn}), PDB minAvailable ${pdbs[0].spec.minAvailable}, headless Service ${host[1]}`);
}
// vzctl rollout --k8s: the canary track of echo exists at zero replicas,
// serves as echo (same key, same Redis user) and announces a version, and
// neither Deployment selects the other's pods.
for (const f of process.argv.slice(2)) {
    const o = f.replace(/.*\//, "").replace(/\.yaml$/, "");
    const objs = load(f);
    const no = (m) => { console.error(`${o}: ${m}`); bad++; };
    const dep = (n) => objs.find((x) => x.kind === "Deployment" && x.metadata.name === n);
    const stable = dep("echo"), canary = dep("echo-canary");
    if (!stable || !canary) { no("echo or echo-canary missing"); continue; }
    if ((canary.spec.replicas ?? 1) !== 0) no(`echo-canary starts with ${canary.spec.replicas} replicas, not 0`);
    const picks = (d, pod) => Object.entries(d.spec.selector.matchLabels).every(([k, v]) => pod.spec.template.metadata.labels[k] === v);
    if (picks(stable, canary) || picks(canary, stable)) no("echo and echo-canary select each other's pods");
    const env = (d) => Object.fromEntries((d.spec.template.spec.containers[0].env || []).map((e) => [e.name, JSON.stringify(e.value ?? e.valueFrom)]));
    const se = env(stable), ce = env(canary);
    for (const k of Object.keys(se))
        if (k !== "VZ_SERVICE_VERSION" && se[k] !== ce[k]) no(`echo-canary's ${k} differs from echo's`);
    if (!ce.VZ_SERVICE_VERSION) no("echo-canary announces no VZ_SERVICE_VERSION");
    if (!bad) console.log(`${o}: echo-canary at 0 replicas beside echo`);
}
process.exit(bad ? 1 : 0);
JS
echo "ok - several brokers: Deployment, rolling update, PDB and headless Service in every overlay"
echo "ok - echo-canary: zero replicas, echo's identity, a version, selectors apart"

echo "PASS: $n overlays valid; daemons ${daemons[*]} in compose and k8s"
