#!/bin/bash
#   test_telemetry_http - the telemetry routes through the gateway in the shipped mesh:
#   client -> vz-gateway -> vz-broker -> vz-telemetry -> Redis, under vz-supervisor
#   SPDX-License-Identifier: MPL-2.0
#
#   Without a credential 401; a user without the scope 403; an admin gets
#   the golden signals, in which the gateway's own traffic to echo shows up
#   (every worker daemon reports through vz_daemon_serve's hook), the SLOs
#   of configs/slo.cfg, the alerts, usage and top errors.
set -u -o pipefail

source "$(dirname "$0")/mesh.sh" telemetryhttp
[ -x "$BIN/vz-telemetry" ] || fail "$BIN/vz-telemetry missing"
command -v node >/dev/null || fail "node missing"

mesh_config
#   Snapshots every 200 ms instead of 10 s.
sed -i -e 's|^\( *\)VZ_TELEMETRY_SLO = .*|&\n\1VZ_TELEMETRY_INTERVAL_MS = "200"|' "$T/mesh.cfg"
sed -i -e 's|^\( *\)command = "vz-echo"|&\n\1env\n\1    VZ_TELEMETRY_INTERVAL_MS = "200"|' "$T/mesh.cfg"
[ "$(grep -c 'VZ_TELEMETRY_INTERVAL_MS' "$T/mesh.cfg")" = 2 ] ||
    fail "could not adjust mesh.cfg"
#   Every daemon (the gateway too, through the supervisor's environment).
export VZ_TELEMETRY_INTERVAL_MS=200
mesh_start
GW=http://127.0.0.1:$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')

#   req METHOD PATH TOKEN [JSON BODY] -> $code, $body (TOKEN "" = no credential)
req() {
    local args=(-s -X "$1" -w '\n%{http_code}' --max-time 10)
    [ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
    [ -n "${4:-}" ] && args+=(-H Content-Type:application/json --data-binary "$4")
    local out
    out=$(curl "${args[@]}" "$GW$2")
    code=${out##*$'\n'}
    body=${out%$'\n'*}
}
#   want CODE WHAT: the last answer had status CODE.
want() { [ "$code" = "$1" ] || fail "$2: expected $1, got $code: $body"; }
#   field JSON PATH: one value of a document, by dotted path.
field() { node -e 'const v=process.argv[2].split(".").reduce((a,k)=>a==null?a:a[k],JSON.parse(process.argv[1])); console.log(v==null?"":v)' "$1" "$2"; }

until_ok 20 curl -sf --max-time 2 "$GW/.well-known/jwks.json" || fail "no JWKS at the gateway"
token() { # email -> $access
    local cred="{\"email\":\"$1\",\"password\":\"correct horse battery\"}"
    req POST /v1/auth/register "" "$cred"
    want 201 "register $1"
    req POST /v1/auth/login "" "$cred"
    want 200 "login $1"
    access=$(field "$body" access_token)
}
admin=$(mesh_admin "$GW" root@example.com "correct horse battery")
token ada@example.com
user=$access

req GET /v1/telemetry/signals ""
want 401 "signals without a credential"
req GET /v1/telemetry/signals "$user"
want 403 "signals without admin or telemetry:read"
echo "ok - 401 without a credential, 403 without the scope"

#   Traffic to echo through the gateway; the sink sees echo's method "echo".
for i in $(seq 1 25); do
    req POST /v1/echo "$admin" "{\"n\":$i}"
    want 200 "echo $i"
done
echo_count() {
    req GET /v1/telemetry/signals/echo "$admin"
    [ "$code" = 200 ] || return 1
    local n
    n=$(node -e 'const o=JSON.parse(process.argv[1]); const s=(o.services[0]||{series:[]}).series.find(x=>x.name==="echo"); console.log(s?s.count:0)' "$body")
    [ "$n" -ge 25 ]
}
until_ok 20 echo_count || fail "echo's 25 calls never reached the sink: $body"
[ "$(field "$body" services.0.service)" = echo ] || fail "signals/echo: $body"
p99=$(node -e 'const o=JSON.parse(process.argv[1]); console.log(o.services[0].series.find(x=>x.name==="echo").latency_ms.p99)' "$body")
node -e 'process.exit(Number(process.argv[1]) > 0 ? 0 : 1)' "$p99" || fail "echo p99 not positive: $body"
echo "ok - the gateway's echo calls counted at the sink (p99 ${p99} ms)"

req GET /v1/telemetry/slo "$admin"
want 200 slo
[ "$(field "$body" deploy_freeze)" = false ] || fail "freeze in a healthy mesh: $body"
node -e 'const o=JSON.parse(process.argv[1]); const s=o.slos.find(x=>x.name==="echo-availability"); process.exit(s && s.requests>=25 && s.bad===0 && Math.abs(s.budget_minutes-43.2)<1e-9 ? 0 : 1)' "$body" ||
    fail "echo-availability: $body"
for path in alerts usage errors/top; do
    req GET "/v1/telemetry/$path" "$admin"
    want 200 "$path"
done
echo "ok - slo (43.2 budget minutes, no freeze), alerts, usage, errors/top answer an admin"

#   Under load through the gateway: the sink's count of the gateway's route "echo"
#   equals the access log's lines for it less what the gateway reported lost, and its
#   p50/p95/p99 agree with the exact quantiles of the access log's durations (rank
#   ceil(q n)) within the documented relative error, 0.99 %, plus 1 us (the log
#   rounds to the microsecond, the reporter truncates).
seq 1 400 | xargs -P 8 -I{} curl -s -o /dev/null --max-time 10 -X POST \
    -H "Authorization: Bearer $admin" -H Content-Type:application/json --data-binary '{"n":{}}' "$GW/v1/echo"
agree() {
    req GET /v1/telemetry/signals/gateway "$admin"
    [ "$code" = 200 ] || return 1
    cat "$STATE"/logs/gateway.*.log >"$T/access.log"
    node -e '
        const fs = require("fs");
        const sig = JSON.parse(process.argv[1]);
        const svc = sig.services[0], s = svc && svc.series.find(x => x.name === "echo");
        let d = fs.readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean)
            .map(l => { try { return JSON.parse(l); } catch { return {}; } })
            .filter(o => o.msg === "access" && o.route === "echo");
        d = d.map(o => Number(o.duration_ms)).sort((a, b) => a - b);
        if (!s || d.length < 425 || s.count !== d.length - svc.totals.lost) process.exit(1);
        //  Errors are HTTP 4xx and 5xx, not 1xx..3xx: the ratio follows the codes.
        const errs = Object.entries(s.codes).filter(([k]) => Number(k) >= 400).reduce((a, [, n]) => a + n, 0);
        if (Math.abs(s.error_ratio - errs / s.count) > 1e-9) { console.error("error_ratio", s.error_ratio, "codes", s.codes); process.exit(3); }
        const bad = [0.5, 0.95, 0.99].filter(q => {
            const exact = d[Math.max(1, Math.ceil(q * d.length)) - 1];
            const got = s.latency_ms["p" + Math.round(q * 100)];
            return Math.abs(got - exact) > 0.0099 * exact + 0.0011;
        });
        if (bad.length) { console.error("quantiles off:", bad, s.latency_ms, d.length); process.exit(2); }
        console.log(`${d.length} requests (error ratio ${s.error_ratio.toFixed(3)}), lost ${svc.totals.lost}, p50 ${s.latency_ms.p50} p95 ${s.latency_ms.p95} p99 ${s.latency_ms.p99} ms`);
    ' "$body" "$T/access.log" >"$T/agree.out" 2>&1
}
until_ok 20 agree || fail "the sink and the access log disagree: $(cat "$T/agree.out") $body"
echo "ok - gateway route echo under load: sink count = access log less lost, p50/p95/p99 within 0.99 % of the log's ($(cat "$T/agree.out"))"

#   The EXIT trap stops the mesh and fails the test on an unclean stop.
