#!/bin/bash
#   test_compose.sh - docker compose for real: build, up, requests, scale, crash/restart, down
#   SPDX-License-Identifier: MPL-2.0
#
#   Builds the images from compose/Dockerfile, brings compose/docker-compose.yml
#   up under a project name of its own with the gateway on a free 127.0.0.1
#   port, and checks: every container healthy; requests through the gateway
#   (the Postman collection with newman when docs/postman-collection.json
#   exists, else curl checks); --scale echo=3 with every replica serving; a
#   SIGKILLed container brought back by the restart policy; --scale broker=2
#   with every echo worker registered at both brokers, the gateway using
#   both, and requests still served after one broker is stopped; down -v
#   leaving no container, network or volume. No Docker engine = FAIL with
#   the reason.
#
#   The build context and the build are images.sh's (the k8s overlay test
#   builds the same way). The engine (left running) keeps the base image
#   and the build cache between runs on purpose.
set -u
SRC=${VZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$SRC/tests/compose/engine.sh"
source "$SRC/tests/compose/images.sh"
T=$(mktemp -d /var/tmp/vz-compose.XXXXXX)
PROJECT=vzt$$
# A tag per run: parallel runs (other build dirs) must not swap images under
# each other. Layers stay in the engine's cache; the tags go at cleanup.
export VZ_IMAGE_TAG=$PROJECT
C=()
STEP_T0=$SECONDS

say() { printf '[%4ds] %s\n' $((SECONDS - STEP_T0)) "$*"; }

cleanup() {
    if [ ${#C[@]} -gt 0 ]; then
        timeout 120 "${C[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1
    fi
    "$DOCKER" rmi "vizmesh:$PROJECT" "vizmesh-redis:$PROJECT" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ ${#C[@]} -gt 0 ]; then
        timeout 20 "${C[@]}" ps >&2 2>/dev/null
        timeout 20 "${C[@]}" logs --no-color --tail 20 >&2 2>/dev/null
    fi
    exit 1
}

#   until_ok TIMEOUT_S CMD...: retry CMD every 0.5 s until it succeeds or time runs out.
until_ok() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.5
    done
}

#   A free loopback port for the gateway (the compose file defaults to 8080).
free_port() {
    local p
    for _ in $(seq 50); do
        #   Below the kernel's ephemeral range (32768+), where the other
        #   tests' "auto" ports come from, so parallel tests cannot take it.
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep . >/dev/null || { echo $p; return 0; }
    done
    return 1
}

#   all_healthy: every running container of the project reports healthy.
all_healthy() {
    local ids id st n=0
    ids=$("${C[@]}" ps -q) || return 1
    for id in $ids; do
        st=$("$DOCKER" inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
        case "$st" in
            "running healthy") n=$((n + 1)) ;;
            "exited none") ;; # the one-shot keys job
            *) return 1 ;;
        esac
    done
    [ $n -ge 4 ]
}

#   served ID: echo requests this container's worker answered (its own /metrics).
served() {
    "$DOCKER" exec "$1" curl -fsS http://127.0.0.1:9100/metrics |
        awk '/^vz_worker_requests_total\{.*method="echo".*outcome="ok"/ {print $2}'
}

# --------------------------------------------------------------------- engine
why=$(engine_ready 2>&1) || fail "no Docker engine: $why"
[ -n "$why" ] && echo "$why"
say "engine ready ($("$DOCKER" version -f '{{.Server.Version}}'))"

# ------------------------------------------------------------ build context
CTX=$T/ctx
why=$(images_context "$SRC" "$CTX" 2>&1) || fail "$why"
PORT=$(free_port) || fail "no free port"
export VZ_GATEWAY_HOST_PORT=$PORT
C=("$COMPOSE" -p "$PROJECT" -f "$CTX/compose/docker-compose.yml")
"${C[@]}" config -q || fail "compose file does not validate"

# -------------------------------------------------------------------- build
t0=$SECONDS
images_build "$CTX" "$PROJECT" "$T/build.log" || fail "build"
say "images built in $((SECONDS - t0)) s: $("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ":$PROJECT" | tr '\n' ' ')"

# ----------------------------------------------------------------------- up
t0=$SECONDS
#   The port was free when chosen; if something took it meanwhile, choose again.
for attempt in 1 2 3; do
    timeout 180 "${C[@]}" up -d >"$T/up.log" 2>&1 && break
    grep -q "address already in use" "$T/up.log" && [ $attempt -lt 3 ] || { cat "$T/up.log"; fail "up"; }
    PORT=$(free_port) || fail "no free port"
    export VZ_GATEWAY_HOST_PORT=$PORT
    say "gateway host port taken; retrying on $PORT"
done
until_ok 90 all_healthy || fail "containers not healthy within 90 s"
say "mesh up and healthy in $((SECONDS - t0)) s, gateway on 127.0.0.1:$PORT"
GW=http://127.0.0.1:$PORT

# ----------------------------------------------------------------- requests
body=$(curl -fsS --max-time 5 -d 'hello compose' "$GW/v1/echo") || fail "POST /v1/echo"
[ "$body" = "hello compose" ] || fail "echo answered '$body'"
# The detailed /health is on the gateway's admin port (the public one
# answers only the verdict); it is 503 "degraded" while a routed service
# (auth, ...) has no daemon yet; what compose runs must be up.
gw_health() { "$DOCKER" exec "$("${C[@]}" ps -q gateway)" curl -sS --max-time 2 http://127.0.0.1:9100/health; }
echo_up() { gw_health | grep '"echo":{"status":"up"' >/dev/null; }
until_ok 10 echo_up || fail "echo not up in the gateway's /health: $(gw_health)"
health=$(gw_health)
for part in '"broker":{"status":"up"}' '"redis":{"status":"up"}' '"echo":{"status":"up"'; do
    [[ "$health" == *"$part"* ]] || fail "/health lacks $part: $health"
done
who=$(curl -fsS --max-time 5 "$GW/v1/echo/whoami") || fail "GET /v1/echo/whoami"
[[ "$who" == *'"caller":"gateway"'* ]] || fail "whoami: $who"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$GW/no/such/route")
[ "$code" = 404 ] || fail "unknown route gave $code"
# Only the gateway is published, and only on loopback.
"$DOCKER" port "$("${C[@]}" ps -q gateway)" | grep -v '127.0.0.1' >/dev/null && fail "gateway published beyond loopback"
[ -z "$("$DOCKER" port "$("${C[@]}" ps -q broker)")" ] || fail "broker has a published port"
COLLECTION=$SRC/docs/postman-collection.json
NEWMAN=$SRC/tests/peers/node_modules/.bin/newman
if [ -f "$COLLECTION" ]; then
    [ -x "$NEWMAN" ] || fail "newman missing: run make test-deps (npm ci in tests/peers)"
    timeout 120 "$NEWMAN" run "$COLLECTION" --env-var "baseUrl=$GW" \
        --timeout-request 15000 --reporters cli --disable-unicode >"$T/newman.log" 2>&1 ||
        { tail -n 60 "$T/newman.log"; fail "newman run of docs/postman-collection.json"; }
    say "newman: $(grep -E 'assertions' "$T/newman.log" | tr -s ' |' ' ')"
else
    say "docs/postman-collection.json absent: curl checks only (echo, whoami, health, 404)"
fi

# -------------------------------------------------------------------- scale
t0=$SECONDS
timeout 120 "${C[@]}" up -d --no-recreate --scale echo=3 >"$T/scale.log" 2>&1 ||
    { cat "$T/scale.log"; fail "scale echo=3"; }
three_echos() { gw_health | grep '"echo":{"status":"up","workers":3' >/dev/null; }
until_ok 60 three_echos || fail "broker does not see 3 echo workers: $(gw_health)"
mapfile -t echos < <("${C[@]}" ps -q echo)
[ ${#echos[@]} -eq 3 ] || fail "expected 3 echo containers, got ${#echos[@]}"
declare -A before
for id in "${echos[@]}"; do before[$id]=$(served "$id"); done
for i in $(seq 60); do
    curl -fsS --max-time 5 -d "r$i" "$GW/v1/echo" >/dev/null || fail "request $i after scale-up"
done
spread=""
for id in "${echos[@]}"; do
    n=$(($(served "$id") - ${before[$id]:-0}))
    spread="$spread $n"
    [ "$n" -gt 0 ] || fail "replica ${id:0:12} served none of 60 requests (spread:$spread)"
done
#   The gateway reached them directly (docs/protocol.md, "Direct calls"):
#   each worker bound its own endpoint on its container's address.
direct=0
for id in "${echos[@]}"; do
    n=$("$DOCKER" exec "$id" curl -fsS http://127.0.0.1:9100/metrics |
        awk '$1 == "vz_worker_direct_requests_total{outcome=\"admitted\"}" {printf "%d", $2}')
    direct=$((direct + ${n:-0}))
done
[ "$direct" -gt 0 ] || fail "no echo request came on a worker's direct endpoint"
say "scaled to 3 echo replicas in $((SECONDS - t0)) s; 60 requests spread:$spread ($direct direct so far)"

# ---------------------------------------------------------- crash + restart
victim=${echos[0]}
pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$victim")
restarts=$("$DOCKER" inspect -f '{{.RestartCount}}' "$victim")
t0=$SECONDS
kill -9 "$pid" || fail "kill -9 of the echo container's process $pid"
back() {
    [ "$("$DOCKER" inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.Health.Status}}' "$victim")" = \
      "$((restarts + 1)) running healthy" ]
}
until_ok 60 back || fail "killed container not back: $("$DOCKER" inspect -f '{{.RestartCount}} {{.State.Status}}' "$victim")"
until_ok 30 three_echos || fail "restarted worker not registered"
for i in $(seq 20); do
    curl -fsS --max-time 5 -d "k$i" "$GW/v1/echo" >/dev/null || fail "request $i after the restart"
done
say "SIGKILLed echo ${victim:0:12}: restarted by policy and healthy in $((SECONDS - t0)) s"

# -------------------------------------------------------------- two brokers
# Every daemon reaches the brokers by the service name "broker", which
# Docker's DNS answers with one address per container; the daemons expand
# it and re-resolve it (every 5 s), so a second broker is found with
# no restart: every echo worker registers at both, the gateway sends to
# both, and with one stopped the other serves.
t0=$SECONDS
timeout 120 "${C[@]}" up -d --no-recreate --scale echo=3 --scale broker=2 >"$T/brokers.log" 2>&1 ||
    { cat "$T/brokers.log"; fail "up --scale broker=2"; }
mapfile -t brokers < <("${C[@]}" ps -q broker)
[ ${#brokers[@]} -eq 2 ] || fail "expected 2 broker containers, got ${#brokers[@]}"
#   broker_metric ID SERIES: one series of this broker's own /metrics, as it prints it (0 when absent).
broker_metric() {
    "$DOCKER" exec "$1" curl -fsS --max-time 2 http://127.0.0.1:9100/metrics |
        awk -v k="$2" '$1 == k {v = $2} END {printf "%d\n", v}'
}
WORKERS='vz_broker_workers{service="echo"}'
REPLIED='vz_broker_requests_total{service="echo",outcome="replied"}'
both_have_echos() {
    local id
    for id in "${brokers[@]}"; do [ "$(broker_metric "$id" "$WORKERS")" = 3 ] || return 1; done
}
until_ok 60 both_have_echos ||
    fail "not every echo worker registered at both brokers: $(for id in "${brokers[@]}"; do
        printf '%s:%s ' "${id:0:12}" "$(broker_metric "$id" "$WORKERS")"; done)"
say "second broker up; 3 echo workers registered at each of 2 brokers in $((SECONDS - t0)) s"
#   echo_code TAG: the status of one echo request through the gateway (000:
#   no answer). By now this client has spent the anonymous rate limit (100
#   a minute), so 429 is the limiter's answer, neither success nor failure.
#   POST /v1/echo/slow (0 ms) is not idempotent, so it always goes through a
#   broker (idempotent calls go to the workers directly).
echo_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -d 0 "$GW/v1/echo/slow"; }
#   The gateway finds the second broker on its own re-resolve: requests until both have served some.
declare -A replied0
for id in "${brokers[@]}"; do replied0[$id]=$(broker_metric "$id" "$REPLIED"); done
both_served() {
    local id i code
    for i in $(seq 10); do
        code=$(echo_code "b$i")
        case $code in 200) ;; 429) sleep 0.5 ;; *) return 1 ;; esac
    done
    for id in "${brokers[@]}"; do
        [ "$(broker_metric "$id" "$REPLIED")" -gt "${replied0[$id]}" ] || return 1
    done
}
until_ok 40 both_served ||
    fail "the gateway does not use both brokers (echo replies per broker, before/now: $(for id in "${brokers[@]}"; do
        printf '%s/%s ' "${replied0[$id]}" "$(broker_metric "$id" "$REPLIED")"; done))"
spread=""
for id in "${brokers[@]}"; do spread="$spread $(($(broker_metric "$id" "$REPLIED") - ${replied0[$id]}))"; done
say "the gateway sends to both brokers (echo requests served per broker:$spread)"
# One broker stopped while requests run (SIGTERM: it drains, then exits):
# the gateway and the workers move to the other; after at most a few
# failures (the requests it held), 20 in a row succeed.
t0=$SECONDS
"$DOCKER" stop -t 10 "${brokers[0]}" >"$T/stop.log" 2>&1 &
stopper=$!
#   The 20 count from the moment it has exited; 429s are waited out.
failed=0 codes="" limited=0 streak=0 stopped=""
while :; do
    if [ -z "$stopped" ] && ! kill -0 $stopper 2>/dev/null; then stopped=$((SECONDS - t0)) streak=0; fi
    [ -n "$stopped" ] && [ $streak -ge 20 ] && break
    [ $((SECONDS - t0)) -lt 90 ] ||
        fail "no 20 echo requests in a row 90 s after a broker was stopped ($failed failed:$codes; $limited rate-limited)"
    code=$(echo_code "s$streak")
    case $code in
        200) streak=$((streak + 1)) ;;
        429) limited=$((limited + 1)) && sleep 0.5 ;;
        *) failed=$((failed + 1)) codes="$codes $code" streak=0 && sleep 0.2 ;;
    esac
done
wait $stopper || fail "docker stop of broker ${brokers[0]:0:12}: $(cat "$T/stop.log")"
[ "$("$DOCKER" inspect -f '{{.State.Status}}' "${brokers[0]}")" = exited ] || fail "broker ${brokers[0]:0:12} did not stop"
[ "$(broker_metric "${brokers[1]}" "$WORKERS")" = 3 ] ||
    fail "the remaining broker lost echo workers: $(broker_metric "${brokers[1]}" "$WORKERS")"
say "broker ${brokers[0]:0:12} stopped (exited after ${stopped} s): 20 requests in a row through the other $((SECONDS - t0)) s after the stop; $failed failed meanwhile${codes:+ (status$codes)}, $limited rate-limited"

# --------------------------------------------------------------------- down
t0=$SECONDS
timeout 120 "${C[@]}" down -v --remove-orphans -t 10 >"$T/down.log" 2>&1 || { cat "$T/down.log"; fail "down"; }
C=()
label="label=com.docker.compose.project=$PROJECT"
left="$("$DOCKER" ps -aq --filter "$label")$("$DOCKER" network ls -q --filter "$label")$("$DOCKER" volume ls -q --filter "$label")"
[ -z "$left" ] || fail "left behind after down -v: $left"
say "down -v in $((SECONDS - t0)) s: no container, network or volume left"
echo "PASS compose (total $((SECONDS - STEP_T0)) s)"
