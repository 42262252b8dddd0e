#!/bin/bash
#   test_telemetry_web - traces, OTLP, synthetic checks and the status page in the shipped mesh
#   SPDX-License-Identifier: MPL-2.0
#
#   client -> vz-gateway -> vz-broker -> vz-telemetry -> Redis, under vz-supervisor, every
#   trace sampled (VZ_TELEMETRY_SAMPLE_PERMILLE=1000) and snapshots every 200 ms:
#   - a request with a traceparent comes back from GET /v1/telemetry/traces/{id} as a
#     tree: the gateway's span, echo's under it; an unknown trace is 404, no scope 403;
#   - the real @opentelemetry/sdk-trace-node with exporter-trace-otlp-http sends spans
#     to POST /v1/traces; they come back from the traces API joined with the gateway's
#     and echo's spans of the call made inside them; OTLP metrics are accepted;
#   - spans exported to a stand-in OTLP collector (tests/peers/otlp_collector.mjs);
#   - synthetic checks through the gateway: a passing and a failing one, the failure
#     sent to the notifier as a page;
#   - GET /status without a credential in headless Chromium (telemetry_status.mjs): no
#     console error, no failed resource, the values shown equal /status.json; the
#     screenshot goes to <build>/test-output/telemetry_status.png.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" telemetryweb
PEERS=$SRC/tests/peers/node_modules
for m in @opentelemetry/sdk-trace-node @opentelemetry/exporter-trace-otlp-http puppeteer-core; do
    [ -d "$PEERS/$m" ] || fail "$m missing (npm ci in tests/peers)"
done
command -v chromium >/dev/null || fail "chromium missing (apt-get install chromium)"
OUT=$(cd "$BIN/.." && pwd)/test-output
mkdir -p "$OUT" || fail "cannot create $OUT"

mesh_config
export VZ_TELEMETRY_INTERVAL_MS=200 VZ_TELEMETRY_SAMPLE_PERMILLE=1000
#   A stand-in OTLP collector: the sink exports every span batch to it.
node "$SRC/tests/peers/otlp_collector.mjs" "$T/collector.out" "$T/collector.port" &
COLLECTOR=$!
until_ok 10 test -s "$T/collector.port" || fail "the stand-in collector did not start"
export VZ_TELEMETRY_OTLP_ENDPOINT=http://127.0.0.1:$(cat "$T/collector.port")
#   One passing and one failing synthetic check, every second.
sed -i -e 's|^\( *\)VZ_TELEMETRY_SLO = .*|&\n\1VZ_TELEMETRY_SYNTHETIC = "health=GET:/health:200 missing=GET:/v1/no/such/route:200"\n\1VZ_TELEMETRY_SYNTHETIC_MS = "1000"\n\1VZ_TELEMETRY_EVAL_MS = "500"|' "$T/mesh.cfg"
grep -q 'VZ_TELEMETRY_SYNTHETIC_MS' "$T/mesh.cfg" || fail "could not adjust mesh.cfg"
mesh_start
mesh_gateway
until_ok 20 curl -sf --max-time 2 "$GW/.well-known/jwks.json" || fail "no JWKS at the gateway"
admin=$(mesh_admin "$GW" root@example.com "correct horse battery")
A=(-H "Authorization: Bearer $admin")

#   1. A traced request: the tree holds the gateway's span with echo's under it.
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
http POST /v1/echo '{"traced":true}' "${A[@]}" -H "traceparent: 00-$TRACE-00f067aa0ba902b7-01"
expect 200 "traced echo"
tree_ok() {
    http GET "/v1/telemetry/traces/$TRACE" "" "${A[@]}"
    [ "$code" = 200 ] && node -e '
        const t = JSON.parse(process.argv[1]);
        const gw = t.roots.find(r => r.service === "gateway" && r.name === "echo");
        const ok = gw && gw.parent_id === "00f067aa0ba902b7" && gw.code === "200" &&
                   gw.children.some(c => c.service === "echo" && c.name === "echo" && c.code === "ok");
        process.exit(ok ? 0 : 1)' "$body"
}
until_ok 20 tree_ok || fail "trace $TRACE: no gateway -> echo tree: $code $body"
echo "ok - a traced request comes back as a tree: gateway span, echo under it"
http GET /v1/telemetry/traces/0123456789abcdef0123456789abcdef "" "${A[@]}"
expect 404 "unknown trace"
http GET /v1/telemetry/traces/not-hex "" "${A[@]}"
expect 400 "malformed trace id"
http GET "/v1/telemetry/traces/$TRACE"
expect 401 "traces without a credential"
echo "ok - unknown trace 404, malformed 400, no credential 401"
until_ok 20 grep -q "\"traceId\":\"$TRACE\"" "$T/collector.out" ||
    fail "no span of $TRACE exported to the collector: $(head -c 500 "$T/collector.out" 2>/dev/null)"
grep "\"traceId\":\"$TRACE\"" "$T/collector.out" | grep '"stringValue":"echo"' >/dev/null ||
    fail "the exported batch lacks echo's resource"
kill "$COLLECTOR" 2>/dev/null
echo "ok - spans exported as OTLP/HTTP JSON to the configured collector"

#   2. The real OpenTelemetry SDK: spans through OTLP/HTTP, joined with the mesh's.
out=$(cd "$SRC/tests/peers" && node "$SRC/tests/peers/telemetry_otel.mjs" "$GW" "$admin" 2>"$T/otel.err") ||
    fail "the OpenTelemetry client failed: $out $(cat "$T/otel.err")"
otrace=$(json "$out" trace_id)
oparent=$(json "$out" parent)
ochild=$(json "$out" child)
otel_ok() {
    http GET "/v1/telemetry/traces/$otrace" "" "${A[@]}"
    [ "$code" = 200 ] && node -e '
        const [body, parent, child] = process.argv.slice(1);
        const t = JSON.parse(body);
        const root = t.roots.find(r => r.span_id === parent && r.service === "otel-client");
        const c = root && root.children.find(x => x.span_id === child && x.name === "call echo");
        const gw = c && c.children.find(x => x.service === "gateway");
        const echo = gw && gw.children.find(x => x.service === "echo");
        process.exit(t.roots.length === 1 && echo ? 0 : 1)' "$body" "$oparent" "$ochild"
}
until_ok 20 otel_ok || fail "OTel trace $otrace: $code $body"
echo "ok - @opentelemetry/sdk-trace-node spans come back from the traces API with the gateway and echo under them"
metrics='{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"otel-client"}}]},"scopeMetrics":[{"metrics":[{"name":"queue_depth","gauge":{"dataPoints":[{"asDouble":7}]}}]}]}]}'
http POST /v1/metrics "$metrics" "${A[@]}" -H Content-Type:application/json
expect 200 "OTLP metrics"
[ "$(json "$body" partialSuccess)" != "" ] || fail "OTLP metrics reply: $body"
http POST /v1/traces '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}' "${A[@]}" -H Content-Type:application/json
expect 400 "OTLP span with a bad id"
echo "ok - OTLP metrics accepted, a malformed span refused"

#   3. Synthetic checks: health passes, the missing route fails and pages.
synth_ok() {
    http GET /v1/telemetry/synthetic "" "${A[@]}"
    [ "$code" = 200 ] && [ "$(json "$body" checks.health.ok)" = true ] &&
        [ "$(json "$body" checks.missing.ok)" = false ] &&
        [ "$(json "$body" checks.missing.status)" = 404 ]
}
until_ok 20 synth_ok || fail "synthetic checks: $code $body"
until_ok 10 grep -q '"synthetic check failed".*synthetic/missing/page' "$STATE"/logs/telemetry.*.log ||
    fail "the failing check raised no alert"
echo "ok - synthetic checks through the gateway: health passes, a failing one pages (synthetic/missing/page)"

#   4. Anomalies: every series and service has its latest point judged.
http GET /v1/telemetry/anomalies "" "${A[@]}"
expect 200 anomalies
node -e 'const a=JSON.parse(process.argv[1]); const s=a.series.find(x=>x.service==="echo"&&x.name==="echo"&&x.granularity==="hour"); const m=a.series.find(x=>x.service==="echo"&&x.granularity==="minute"); process.exit(s&&s.points>=1&&s.period===24&&s.value>=1&&m&&m.points>=1&&typeof m.anomaly==="boolean"?0:1)' "$body" ||
    fail "anomalies: $body"
echo "ok - anomalies: echo's hourly series and per-minute requests judged"
#   Business events: auth counted the admin's sign-up and logins (usage.events).
events_ok() {
    http GET /v1/telemetry/usage "" "${A[@]}"
    node -e 'const u=JSON.parse(process.argv[1]); process.exit(u.events.signup>=1&&u.events.login>=2&&u.api_calls.echo>=1&&u.route_classes.auth>=1&&u.top_users_7d.length>=1&&u.top_users_7d[0].calls>=10?0:1)' "$body"
}
until_ok 20 events_ok || fail "usage without sign-up/login events or API calls: $body"
echo "ok - usage: sign-ups and logins from auth, API calls by route, route class and user"

#   5. vzctl slo / alerts print the API's tables; vzctl telemetry replay the detector's.
out=$(VZ_TOKEN=$admin "${CTL[@]}" slo) || fail "vzctl slo: $out"
grep -q '^echo-availability  *availability  *99.900%' <<<"$out" || fail "vzctl slo: $out"
grep -q '^deploy freeze: ' <<<"$out" || fail "vzctl slo without the freeze line: $out"
out=$(VZ_TOKEN=$admin "${CTL[@]}" alerts) || fail "vzctl alerts: $out"
grep -q '^ALERT ' <<<"$out" || fail "vzctl alerts: $out"
"${CTL[@]}" slo >/dev/null 2>&1 && fail "vzctl slo without a credential succeeded"
out=$("$BIN/vzctl" telemetry replay "$SRC/tests/data/telemetry_anomaly_0.csv" 2>"$T/replay.err") ||
    fail "vzctl telemetry replay: $(cat "$T/replay.err")"
[ "$(head -n1 <<<"$out")" = "timestamp,value,forecast,lower,upper,score,anomaly" ] ||
    fail "replay header: $(head -n1 <<<"$out")"
[ "$(wc -l <<<"$out")" = 4033 ] || fail "replay printed $(wc -l <<<"$out") lines"
awk -F, 'NR > 1 && (NF != 7 || ($7 != 0 && $7 != 1)) {exit 1}' <<<"$out" || fail "replay rows malformed"
grep -q 'precision' "$T/replay.err" || fail "replay: no precision for a labelled file"
echo "ok - vzctl slo and alerts print the telemetry API; vzctl telemetry replay prints 4032 judged points"

#   6. The status page, public, in headless Chromium.
for i in $(seq 1 10); do http POST /v1/echo "{\"n\":$i}" "${A[@]}"; done
http GET /status.json
expect 200 "status.json without a credential"
status_ready() {
    http GET /status.json
    node -e 'const s=JSON.parse(process.argv[1]); process.exit(s.services.some(x=>x.service==="echo"&&x.rate_per_s>0)&&s.slos.length>0?0:1)' "$body"
}
until_ok 20 status_ready || fail "status.json: $body"
node -e 'const s=JSON.parse(process.argv[1]); const e=s.services.find(x=>x.service==="echo"); process.exit(e.workers>=1&&e.queue>=0&&e.ready?0:1)' "$body" ||
    fail "status.json: echo without the broker view of workers and queue: $body"
grep -qi "token\|secret\|password" <<<"$body" && fail "status.json shows something secret: $body"
http GET /status
expect 200 "status page"
out=$(cd "$SRC/tests/peers" && node "$SRC/tests/peers/telemetry_status.mjs" "$GW" "$OUT/telemetry_status.png" 2>&1) ||
    fail "status page in Chromium: $out"
[ -s "$OUT/telemetry_status.png" ] || fail "no screenshot"
echo "ok - /status in headless Chromium: no console error or failed resource, values equal /status.json ($out); screenshot $OUT/telemetry_status.png"
