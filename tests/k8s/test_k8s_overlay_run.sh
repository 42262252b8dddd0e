#!/bin/bash
#   test_k8s_overlay_run.sh - every overlay, rendered, runs under docker and passes the Postman collection
#   SPDX-License-Identifier: MPL-2.0
#
#   A cluster without a cluster: for each of k8s/overlays/*, the objects
#   k8s_tool.mjs renders run as containers on one docker network with exactly
#   their images, commands, environment, ConfigMaps and Secrets
#   (k8s_docker.mjs translates them; Service names resolve as in-cluster DNS
#   names), then newman sends docs/postman-collection.json through the
#   gateway Service and every assertion must pass; every broker replica (a
#   container each, all answering to the headless Service's name) has every
#   echo worker registered. A mismatch between
#   manifests (an issuer here, a Secret key there) fails here, not in a
#   cluster.
#
#   The out-of-band Secrets are made as docs/operations/kubernetes.md tells
#   an operator: its "# 2." step runs with a stand-in kubectl that stores
#   what it is given (for dev with the namespace the page names), plus the
#   optional vizmesh-billing-stripe of docs/services/billing.md, so signed
#   Stripe webhooks run. The images: the one build of compose/Dockerfile
#   (tests/compose/images.sh, cached in the engine after test_compose), tagged
#   under every name an overlay renders; an image name the build does not
#   make fails. An Ingress (prod) is not run: its backend must be a Service
#   port, and requests go to that Service as the ingress controller would,
#   without TLS and host routing.
#
#   Self-check: the dev overlay once more, auth's issuer changed in the
#   rendered objects; it must start and the collection must then fail.
#   VZ_K8S_RUN_OVERLAYS="dev" limits the overlays; VZ_K8S_RUN_SELFCHECK=0 skips
#   the self-check. The translation needs no docker and always runs; the
#   rest is skipped (exit 77) only when no Docker engine can run.
set -u -o pipefail
source "$(dirname "$0")/common.sh"
source "$SRC/tests/compose/engine.sh"
source "$SRC/tests/compose/images.sh"
node_deps
BIN=${VZ_BIN_DIR:?VZ_BIN_DIR not set}
RUNNER=$SRC/tests/k8s/k8s_docker.mjs
NEWMAN=$SRC/tests/peers/node_modules/.bin/newman
DOC=$SRC/docs/operations/kubernetes.md
TAG=vzk8s$$
RUN=""
TAGGED=()
declare -A WHSEC
STEP_T0=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - STEP_T0)) "$*"; }

#   teardown: the running overlay's containers, then the image names tagged
#   for it (a name that held another image before gets it back).
teardown() {
    [ -n "$RUN" ] && node "$RUNNER" down "$RUN"
    RUN=""
    local t
    for t in "${TAGGED[@]}"; do
        if [ -n "${t#*=}" ]; then "$DOCKER" tag "${t#*=}" "${t%%=*}" >/dev/null 2>&1
        else "$DOCKER" rmi "${t%%=*}" >/dev/null 2>&1; fi
    done
    TAGGED=()
}
cleanup() {
    teardown
    "$DOCKER" rmi "vizmesh:$TAG" "vizmesh-redis:$TAG" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
[ -x "$NEWMAN" ] || fail "newman missing: run make test-deps (npm ci in tests/peers)"

#   tag_rendered FILE: every image FILE's containers name, tagged from the
#   build by its last path component (registry.example.com/vizmesh/vizmesh:0.1.0
#   <- vizmesh:$TAG).
tag_rendered() {
    local img repo built old
    for img in $(node "$RUNNER" images "$1"); do
        repo=${img%@*}
        [[ "${repo##*/}" == *:* ]] && repo=${repo%:*}
        built=${repo##*/}:$TAG
        "$DOCKER" image inspect "$built" >/dev/null 2>&1 ||
            fail "the overlay runs image $img, which compose/Dockerfile does not build (only vizmesh, vizmesh-redis)"
        old=$("$DOCKER" image inspect -f '{{.Id}}' "$img" 2>/dev/null)
        TAGGED+=("$img=$old")
        "$DOCKER" tag "$built" "$img" || fail "docker tag $built $img"
    done
}

#   doc_secrets OVERLAY STORE K8S: step "# 2." of the Deploy block of
#   kubernetes.md, run as written in a directory with build/bin and k8s/ (K8S),
#   kubectl being the stand-in; NS as the page gives it for OVERLAY.
doc_secrets() {
    local o=$1 store=$2 k8s=$3 dir=$T/operator ns
    rm -rf "$dir" && mkdir -p "$dir/build" "$dir/fakebin" "$store" || fail "mkdir"
    ln -s "$BIN" "$dir/build/bin" && ln -s "$k8s" "$dir/k8s" || fail "ln"
    printf '#!/bin/sh\nexec node %q kubectl "$@"\n' "$RUNNER" >"$dir/fakebin/kubectl" && chmod +x "$dir/fakebin/kubectl"
    awk '/^## Deploy/{d=1} d&&/^```sh/{b=1; next} b&&/^```/{exit} b' "$DOC" |
        awk '/^# 2\./{on=1} /^# 3\./{on=0} on' >"$dir/step2.sh"
    grep -q 'kubectl' "$dir/step2.sh" || fail "no step \"# 2.\" with kubectl commands in the Deploy block of $DOC"
    #   The block deploys one overlay; the page names the NS of each other one.
    if ! grep -q "k8s/overlays/$o/" "$dir/step2.sh"; then
        ns=$(grep -o "\`k8s/overlays/$o\` and \`NS=[a-z0-9-]*\`" "$DOC" | sed 's/.*NS=//; s/`//')
        [ -n "$ns" ] || fail "$DOC does not say which NS the $o overlay uses (\`k8s/overlays/$o\` and \`NS=...\`)"
        sed -i -e "s|^NS=.*|NS=$ns|" -e "s|k8s/overlays/[a-z0-9-]*/|k8s/overlays/$o/|g" "$dir/step2.sh"
    fi
    (cd "$dir" && PATH=$dir/fakebin:$PATH VZ_FAKE_KUBE_STORE=$store bash -e -o pipefail step2.sh) \
        >"$dir/step2.log" 2>&1 || { cat "$dir/step2.sh" "$dir/step2.log"; fail "step 2 of $DOC for overlay $o"; }
    ns=$(grep -m1 '^NS=' "$dir/step2.sh" | cut -d= -f2)
    # docs/services/billing.md: the optional Stripe Secret, so the signed webhooks run.
    WHSEC[$o]=whsec_k8s_$RANDOM$RANDOM
    (PATH=$dir/fakebin:$PATH VZ_FAKE_KUBE_STORE=$store kubectl -n "$ns" create secret generic \
        vizmesh-billing-stripe --from-literal=webhook_secrets=${WHSEC[$o]} >/dev/null) || fail "billing Secret"
}

#   run_overlay NAME RENDERED STORE [newman flags...]: start, newman; 0 when
#   every assertion passes. A failed start fails the test at once.
run_overlay() {
    local o=$1 rendered=$2 store=$3 up url boot id
    shift 3
    t0=$SECONDS
    tag_rendered "$rendered"
    RUN=$TAG$o
    up=$(node "$RUNNER" up "$rendered" "$store" "$T/work-$RUN" "$RUN" gateway:http) ||
        fail "overlay $o did not come up under docker"
    url=$(sed 's/.*"url":"\([^"]*\)".*/\1/' <<<"$up")
    say "overlay $o: $(grep -o '"containers":[0-9]*' <<<"$up" | cut -d: -f2) containers ready in $((SECONDS - t0)) s, gateway at $url; $up"
    curl -sf --max-time 2 -o /dev/null "$url/v1/echo" -d ping || fail "gateway of $o does not answer at $url"
    #   Bearer requests need auth's JWKS at the gateway, maybe still on its first fetch.
    curl -sf --max-time 2 --retry 20 --retry-delay 1 --retry-all-errors -o /dev/null "$url/.well-known/jwks.json" ||
        fail "no JWKS at the gateway of $o"
    boot=""
    for id in $("$DOCKER" ps -q --filter "label=vz.k8s-docker.run=$RUN" --filter label=app.kubernetes.io/name=auth); do
        boot=$boot$("$DOCKER" logs "$id" 2>&1 | grep -o '"bootstrap":"vzb_[^"]*"' | cut -d'"' -f4)
    done
    [ -n "$boot" ] || fail "no admin bootstrap token in the logs of $o's auth pods"
    timeout 300 "$NEWMAN" run "$SRC/docs/postman-collection.json" --env-var "baseUrl=$url" \
        --env-var exhaustRateLimit=true --env-var "adminEmail=admin-k8s-$o@example.com" \
        --env-var "bootstrapToken=$boot" --env-var "webhookSecret=${WHSEC[$o]}" \
        --reporters cli,json --reporter-json-export "$T/newman-$o.json" --disable-unicode \
        --timeout-request 15000 "$@" >"$T/newman-$o.log" 2>&1
}

#   brokers_registered OVERLAY: every broker pod of the running overlay has
#   every echo pod registered (vz_broker_workers{service="echo"} of its own
#   /metrics): the workers found each broker behind the one Service name.
#   Waits up to 60 s (the daemons re-resolve the name every 5 s).
brokers_registered() {
    local o=$1 ids ips echos ip n v got short deadline=$((SECONDS + 60))
    ids=$("$DOCKER" ps -q --filter "label=vz.k8s-docker.run=$RUN" --filter label=app.kubernetes.io/name=broker)
    echos=$("$DOCKER" ps -q --filter "label=vz.k8s-docker.run=$RUN" --filter label=app.kubernetes.io/name=echo | wc -l)
    n=$(wc -w <<<"$ids")
    [ "$n" -ge 2 ] || fail "overlay $o runs $n broker container(s), not 2 or more"
    ips=$(for id in $ids; do "$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id"; done)
    while :; do
        got="" short=0
        for ip in $ips; do
            v=$(curl -fsS --max-time 2 "http://$ip:9100/metrics" 2>/dev/null |
                awk '$1 == "vz_broker_workers{service=\"echo\"}" {v = $2} END {printf "%d", v}')
            got="$got $v"
            [ "$v" = "$echos" ] || short=1
        done
        [ $short = 0 ] && break
        [ $SECONDS -lt $deadline ] ||
            fail "overlay $o: echo workers per broker:$got, want $echos at each of the $n brokers"
        sleep 1
    done
    say "overlay $o: $n brokers behind Service broker, each with the $echos echo workers"
}

#   render K8S_TREE OVERLAY OUT
render() { node "$TOOL" build "$1/overlays/$2" >"$3" || fail "render of overlay $2"; }

# ------------------------------------------------- translation (no docker)
# Every overlay with the Secrets the docs make translates to docker runs: a
# Secret, key, ConfigMap or port a pod needs and nobody makes fails here,
# engine or not.
overlays=${VZ_K8S_RUN_OVERLAYS:-$(cd "$K8S/overlays" && ls)}
for o in $overlays; do
    render "$K8S" "$o" "$T/$o.yaml"
    doc_secrets "$o" "$T/store-$o" "$K8S"
    node "$RUNNER" plan "$T/$o.yaml" "$T/store-$o" "$T/plan-$o" plan >"$T/plan-$o.txt" ||
        fail "overlay $o cannot run as rendered, with the Secrets $DOC makes"
    say "overlay $o: $(grep -c '^docker run ' "$T/plan-$o.txt") containers, translated from the rendered objects"
    #   Several brokers, each a container answering to the Service name broker.
    brokers=$(grep '^docker run ' "$T/plan-$o.txt" | grep -- '--label app.kubernetes.io/name=broker ')
    nb=$(grep -c . <<<"$brokers")
    [ "$nb" -ge 2 ] || fail "overlay $o runs $nb broker container(s), not 2 or more"
    [ "$(grep -c -- '--network-alias broker ' <<<"$brokers")" = "$nb" ] ||
        fail "overlay $o: not every broker container answers to the Service name broker"
done

if ! why=$(engine_ready 2>&1); then
    # Skipped only without an engine; a running one that cannot make the base image fails.
    "$DOCKER" info >/dev/null 2>&1 && fail "the Docker engine runs, but: $why"
    echo "SKIP: no Docker engine can run here: $why"
    exit 77
fi
[ -n "$why" ] && echo "$why"
#   One run at a time on this engine: the rendered image names (vizmesh:dev ...) are global.
exec 9>/var/tmp/vz-k8s-overlay-run.lock
flock -w 1200 9 || fail "another test_k8s_overlay_run held the engine for 20 minutes"

# -------------------------------------------------------------------- images
t0=$SECONDS
why=$(images_context "$SRC" "$T/ctx" 2>&1) || fail "$why"
images_build "$T/ctx" "$TAG" "$T/build.log" || fail "image build"
rm -rf "$T/ctx"
say "images vizmesh:$TAG and vizmesh-redis:$TAG built in $((SECONDS - t0)) s"

n=0
for o in $overlays; do
    run_overlay "$o" "$T/$o.yaml" "$T/store-$o" ||
        { tail -n 80 "$T/newman-$o.log"; fail "the Postman collection fails on overlay $o"; }
    # Every request ran (none skipped for want of an admin or a secret) and no assertion failed.
    node -e '
        const r = require(process.argv[1]).run, c = require(process.argv[2]);
        let n = 0; (function w(i) { for (const x of i) x.item ? w(x.item) : n++; })(c.item);
        const sent = new Set(r.executions.filter((e) => e.response).map((e) => e.item.name)).size;
        if (sent < n || r.stats.assertions.failed) throw new Error(`${sent} of ${n} requests sent, ${r.stats.assertions.failed} assertions failed`);
        console.log(`${sent} requests, ${r.stats.assertions.total} assertions passed`);
    ' "$T/newman-$o.json" "$SRC/docs/postman-collection.json" >"$T/check.log" 2>&1 ||
        { cat "$T/check.log"; fail "overlay $o: not every request of the collection ran"; }
    say "overlay $o: newman $(cat "$T/check.log")"
    brokers_registered "$o"
    teardown
    n=$((n + 1))
done
[ $n -ge 1 ] || fail "no overlay in $K8S/overlays"

# ------------------------------------------------------------- self-check
# The dev overlay with auth issuing for another issuer than the gateway
# checks: every container starts, and the collection must fail on it.
if [ "${VZ_K8S_RUN_SELFCHECK:-1}" = 1 ]; then
    o=$(head -n1 <<<"$overlays")
    render "$K8S" "$o" "$T/broken.yaml"
    node "$RUNNER" setenv "$T/broken.yaml" Deployment/auth VZ_AUTH_ISSUER https://elsewhere.example.com ||
        fail "self-check: could not change auth's issuer"
    doc_secrets "$o" "$T/store-broken" "$K8S"
    WHSEC[broken]=${WHSEC[$o]}
    if run_overlay broken "$T/broken.yaml" "$T/store-broken" --bail; then
        fail "self-check: the collection passed with auth issuing for another issuer (this test cannot fail)"
    fi
    first=$(node -e 'const f = require(process.argv[1]).run.failures[0];
        console.log(`"${f.source.name}": ${f.error.message}`)' "$T/newman-broken.json") ||
        fail "self-check: newman failed without a failed assertion: $(tail -n 20 "$T/newman-broken.log")"
    say "self-check: with auth issuing for another issuer the collection fails at $first"
    teardown
fi
echo "PASS: overlays $(echo $overlays) run under docker from their rendered objects and pass the Postman collection (total $((SECONDS - STEP_T0)) s)"
