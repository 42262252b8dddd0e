#!/bin/bash
#   http.sh - section 5 of run.sh: the HTTP request path under wrk (sourced by run.sh, not run)
#   SPDX-License-Identifier: MPL-2.0
#
#   Needs BIN, SRC and median from run.sh. One run measures, in order:
#     ceiling    bench_mhd (libmicrohttpd, thread pool of 2, answers 200)
#     baseline   nginx proxy_pass with upstream keepalive in front of bench_mhd
#     vizmesh    the mesh under vz-supervisor (auto ports, limits raised so
#                nothing is 429ed): anonymous echo route; JWT on the existing
#                /v1/auth/profile and on a bench-only echo route requiring jwt;
#                API-key echo route with the gateway's key cache (hit) and on a
#                second gateway whose caches are off (miss, and JWT verified
#                on every request)
#   Every case: one warm-up run (discarded), then HTTP_REPS wrk runs; the
#   median of each column is kept. During each run the peak RSS and the CPU
#   time (utime+stime from /proc/<pid>/stat) of every process are recorded.
#   Knobs: HTTP_REPS (3), WRK_T (2), WRK_C (64), WRK_D (10s), WARM_D (2s),
#   HTTP_CASES (a regex: only the vizmesh cases whose label matches),
#   PROFILE=1 (perf record -g on the gateway during one more JWT run),
#   HTTP_B_ENV="VZ_X=1 VZ_Y=2" (one more gateway, "gatewayb", with these
#   settings: the anonymous, JWT-echo and API-key-hit cases then run on the
#   first gateway (A) and on it (B) in turn, one wrk run each per round,
#   HTTP_REPS rounds: a before/after in the same run; the other mesh
#   cases are then left out).

HTTP_REPS=${HTTP_REPS:-3}
WRK_T=${WRK_T:-2} WRK_C=${WRK_C:-64} WRK_D=${WRK_D:-10s} WARM_D=${WARM_D:-2s}
H=$(mktemp -d "${TMPDIR:-/tmp}/vz-bench-http.XXXXXX")
H_MHD= H_NGX= H_SUP=
http_cleanup() {
    for p in $H_NGX $H_MHD; do kill -TERM "$p" 2>/dev/null; done
    [ -n "$H_SUP" ] && kill -9 "$H_SUP" 2>/dev/null
    rm -rf "$H"
    [ -n "${SUP:-}" ] && kill -9 "$SUP" 2>/dev/null
    [ -n "${T:-}" ] && rm -rf "$T"
}
trap http_cleanup EXIT
hz=$(getconf CLK_TCK)
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
http_die() {
    echo "bench http: $*" >&2
    for f in "$H"/*.log "$H"/state/logs/*.log; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 10 "$f" >&2; }
    done
    exit 1
}
#   A port free now on 127.0.0.1 (the kernel's choice; nginx binds it next).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
#   wait_http URL [HEADER]: poll until URL answers 2xx, at most 20 s.
wait_http() {
    local deadline=$((SECONDS + 20))
    until curl -sf -o /dev/null --max-time 1 ${2:+-H "$2"} "$1"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}
ticks() { # pid -> utime+stime in clock ticks (fields 14, 15; comm may hold spaces)
    sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
machine_ticks() { # -> "busy total" clock ticks of all CPUs since boot
    awk '$1=="cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; } # KiB -> MiB, one decimal
RSS_MAX_KIB="0 -"   # "KiB process (case)": the largest peak RSS of any process in a vizmesh case
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
#   anon_pss_kib PID -> "ANON PSS": anonymous resident memory, and the
#   proportional set size (shared library pages divided among the
#   processes that map them), both KiB.
anon_pss_kib() {
    awk '/^Pss:/ {p = $2} /^Anonymous:/ {a = $2} END {if (p != "") print a + 0, p}' \
        "/proc/$1/smaps_rollup" 2>/dev/null
}
to_ms() { # wrk's "1.23ms" / "850.00us" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}

#   PROCS: "label:pid" of every process whose CPU and RSS the case reports.
PROCS=()
ROWS=()    # "label|rps|p50|p99|errors"
NOTES=()   # "label: cpu ... | rss ..."
run_case() { # LABEL URL [wrk args...]
    [ -n "${SKIP_CASES:-}" ] && return 0    # profiling only
    #   HTTP_CASES=regex: only the cases whose label matches (the two
    #   reference rows always run, so ratios stay within one run).
    if [ -n "${HTTP_CASES:-}" ] && [[ $1 == vizmesh* ]] && ! [[ $1 =~ $HTTP_CASES ]]; then
        return 0
    fi
    local label=$1 url=$2
    shift 2
    wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" "$@" "$url" >/dev/null 2>&1
    local rps=() p50=() p99=() errs=0 cpu_acc="" rss_peak="" r busy_sum=0 listed=0
    declare -A t0 t1 peak peak_anon peak_pss cpu_sum
    for r in $(seq 1 "$HTTP_REPS"); do
        local pr pid lbl
        for pr in "${PROCS[@]}"; do t0[$pr]=$(ticks "${pr#*:}"); done
        local w0 m0
        w0=$(date +%s%N)
        m0=$(machine_ticks)
        wrk -t"$WRK_T" -c"$WRK_C" -d"$WRK_D" --latency "$@" "$url" >"$H/wrk.out" 2>&1 &
        local wrk_pid=$!
        #   Sample RSS while wrk runs; keep the peak per process.
        while kill -0 "$wrk_pid" 2>/dev/null; do
            for pr in "${PROCS[@]}"; do
                local k
                k=$(rss_kib "${pr#*:}")
                [ -n "$k" ] && [ "$k" -gt "${peak[$pr]:-0}" ] && peak[$pr]=$k
                local ap
                ap=$(anon_pss_kib "${pr#*:}")
                if [ -n "$ap" ]; then
                    [ "${ap% *}" -gt "${peak_anon[$pr]:-0}" ] && peak_anon[$pr]=${ap% *}
                    [ "${ap#* }" -gt "${peak_pss[$pr]:-0}" ] && peak_pss[$pr]=${ap#* }
                fi
            done
            sleep 0.5
        done
        wait "$wrk_pid"
        local m1
        m1=$(machine_ticks)
        local ncpu
        ncpu=$(nproc)
        #   Busy share of all CPUs, as % of one core (200 = both of 2 busy).
        busy_sum=$(( busy_sum + (${m1% *} - ${m0% *}) * 100 * ncpu / (${m1#* } - ${m0#* }) ))
        local wall_ticks=$(( ($(date +%s%N) - w0) * hz / 1000000000 ))
        for pr in "${PROCS[@]}"; do
            t1[$pr]=$(ticks "${pr#*:}")
            cpu_sum[$pr]=$(( ${cpu_sum[$pr]:-0} + (${t1[$pr]:-0} - ${t0[$pr]:-0}) * 100 / (wall_ticks ? wall_ticks : 1) ))
        done
        rps+=("$(awk '/^Requests\/sec/ {print int($2)}' "$H/wrk.out")")
        p50+=("$(to_ms "$(awk '$1=="50%" {print $2}' "$H/wrk.out")")")
        p99+=("$(to_ms "$(awk '$1=="99%" {print $2}' "$H/wrk.out")")")
        errs=$((errs + $(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$H/wrk.out")))
    done
    ROWS+=("$label|$(printf '%s\n' "${rps[@]}" | median)|$(printf '%s\n' "${p50[@]}" | median)|$(printf '%s\n' "${p99[@]}" | median)|$errs|${rps[*]}")
    for pr in "${PROCS[@]}"; do
        cpu_acc+=" ${pr%%:*} $(( ${cpu_sum[$pr]} / HTTP_REPS ))%"
        listed=$(( listed + ${cpu_sum[$pr]} / HTTP_REPS ))
        rss_peak+=" ${pr%%:*} $(mib "${peak[$pr]:-0}")M ($(mib "${peak_anon[$pr]:-0}")/$(mib "${peak_pss[$pr]:-0}"))"
        [[ $label == vizmesh* ]] && [ "${peak[$pr]:-0}" -gt "${RSS_MAX_KIB%% *}" ] &&
            RSS_MAX_KIB="${peak[$pr]} ${pr%%:*} in \"$label\""
    done
    cpu_acc+=" wrk+rest $(( busy_sum / HTTP_REPS - listed ))% (machine busy $(( busy_sum / HTTP_REPS ))% of $(( $(nproc) * 100 ))%)"
    NOTES+=("$label: CPU (% of one core):$cpu_acc | peak RSS (anon/PSS) MiB:$rss_peak")
    echo "  done: $label (req/s per run: ${rps[*]})" >&2
}

echo "## 5. HTTP request path (wrk -t$WRK_T -c$WRK_C -d$WRK_D --latency, $WARM_D warm-up, median of $HTTP_REPS)"

#   --- ceiling: libmicrohttpd alone
"$BIN/bench_mhd" 0 2 >"$H/mhd.out" 2>"$H/mhd.log" &
H_MHD=$!
deadline=$((SECONDS + 10))
until grep -q '^port ' "$H/mhd.out"; do
    [ $SECONDS -lt $deadline ] || http_die "bench_mhd did not start"
    sleep 0.05
done
mport=$(awk '/^port / {print $2}' "$H/mhd.out")
wait_http "http://127.0.0.1:$mport/" || http_die "bench_mhd does not answer"
PROCS=("mhd:$H_MHD")
run_case "ceiling: libmicrohttpd alone" "http://127.0.0.1:$mport/"

#   --- baseline: nginx proxy_pass, upstream keepalive, in front of bench_mhd
nport=$(free_port)
mkdir -p "$H/nginx"
cat >"$H/nginx.conf" <<EOF
worker_processes 2;
pid $H/nginx/nginx.pid;
error_log $H/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $H/nginx/body;
    proxy_temp_path $H/nginx/proxy;
    fastcgi_temp_path $H/nginx/fastcgi;
    uwsgi_temp_path $H/nginx/uwsgi;
    scgi_temp_path $H/nginx/scgi;
    upstream mhd {
        server 127.0.0.1:$mport;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://mhd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
nginx -e "$H/nginx.log" -p "$H/nginx" -c "$H/nginx.conf" -g 'daemon off;' &
H_NGX=$!
wait_http "http://127.0.0.1:$nport/" || http_die "nginx does not answer"
PROCS=("mhd:$H_MHD" "nginx-master:$H_NGX")
for p in $(pgrep -P "$H_NGX"); do PROCS+=("nginx-worker:$p"); done
run_case "baseline: nginx proxy_pass -> libmicrohttpd" "http://127.0.0.1:$nport/"
kill -TERM "$H_NGX" "$H_MHD"
wait "$H_NGX" "$H_MHD" 2>/dev/null
H_NGX= H_MHD=

#   --- the mesh: configs copied to H, every port auto, a second gateway with
#   its caches off, bench-only echo routes requiring jwt and api_key, and
#   every rate limit raised to 5×10^7 a window so nothing is 429ed.
for f in "$SRC"/configs/*.cfg; do [ "$(basename "$f")" = mesh.cfg ] || cp "$f" "$H/"; done
cp -r "$SRC/configs/templates" "$H/" || http_die "cannot copy configs/templates"
sed -i -E 's/^( +limit) = [0-9]+/\1 = 50000000/' "$H/ratelimit.cfg"
grep -E '^ +limit = ' "$H/ratelimit.cfg" | grep -v '= 50000000$' >/dev/null && http_die "a rate limit was not raised"
cat >>"$H/routes.cfg" <<'EOF'
    bench_echo_jwt
        methods = "GET POST"
        path = "/v1/bench/echo-jwt"
        service = "echo"
        call = "echo"
        auth = "jwt"
        rate_class = "default"
        retry = "idempotent"
        reply_type = "application/octet-stream"
    bench_echo_key
        methods = "GET POST"
        path = "/v1/bench/echo-key"
        service = "echo"
        call = "echo"
        auth = "api_key"
        rate_class = "default"
        retry = "idempotent"
        reply_type = "application/octet-stream"
EOF
#   The gateway's issuer default is port 8080; with auto ports it must follow
#   ${port.gateway} as auth's does, or every token is refused (iss).
sed -E -e "s|state_dir = \"state\"|state_dir = \"$H/state\"|" \
    -e 's/^( +(redis|broker|gateway|admin_port)) = [0-9]+/\1 = auto/' \
    -e 's/^(    gateway = auto)$/\1\n    gatewaync = auto/' \
    "$SRC/configs/mesh.cfg" |
    awk '{print} /^ +VZ_GATEWAY_PORT = / {
        print "            VZ_GATEWAY_ROUTES = \"${config_dir}/routes.cfg\""
        print "            VZ_GATEWAY_JWT_ISSUER = \"http://127.0.0.1:${port.gateway}\""
    }' >"$H/mesh.cfg"
cat >>"$H/mesh.cfg" <<'EOF'
    gatewaync                      # bench only: token and API-key caches off
        command = "vz-gateway"
        admin_port = auto
        replicas = 1
        depends = "broker echo ratelimit auth"
        env
            VZ_GATEWAY_PORT = "${port.gatewaync}"
            VZ_GATEWAY_ROUTES = "${config_dir}/routes.cfg"
            VZ_GATEWAY_JWT_ISSUER = "http://127.0.0.1:${port.gateway}"
            VZ_GATEWAY_TOKEN_CACHE = "0"
            VZ_GATEWAY_APIKEY_TTL_MS = "0"
            VZ_GATEWAY_APIKEY_NEGATIVE_MS = "0"
EOF
#   Same CURVE identity as the first gateway: the broker's policy knows it
#   (read from the file, not from the supervisor's pipe, which holds gatewaync's).
gw_identity() {
    echo "            VZ_CURVE_CERT = \"$H/state/keys/secret/gateway.key\""
    echo "            VZ_CURVE_SECRET_FD = \"-1\""
}
gw_identity >>"$H/mesh.cfg"
if [ -n "${HTTP_B_ENV:-}" ]; then
    sed -i -E 's/^(    gatewaync = auto)$/\1\n    gatewayb = auto/' "$H/mesh.cfg"
    {
        printf '    gatewayb\n        command = "vz-gateway"\n        admin_port = auto\n'
        printf '        replicas = 1\n        depends = "broker echo ratelimit auth"\n        env\n'
        printf '            VZ_GATEWAY_PORT = "${port.gatewayb}"\n'
        printf '            VZ_GATEWAY_ROUTES = "${config_dir}/routes.cfg"\n'
        printf '            VZ_GATEWAY_JWT_ISSUER = "http://127.0.0.1:${port.gateway}"\n'
        printf '            VZ_GATEWAY_RATELIMIT_FAILURE = "open"\n'
        for kv in $HTTP_B_ENV; do printf '            %s = "%s"\n' "${kv%%=*}" "${kv#*=}"; done
        gw_identity
    } >>"$H/mesh.cfg"
fi
grep -q "= [0-9]\{4\}" "$H/mesh.cfg" && http_die "a fixed port survived in mesh.cfg"
CTL=("$BIN/vzctl" --state "$H/state")
"$BIN/vz-supervisor" --config "$H/mesh.cfg" 2>"$H/sup.log" &
H_SUP=$!
"${CTL[@]}" wait --timeout 30 >/dev/null || http_die "mesh not ready"
gw=$("${CTL[@]}" ports | awk '$1=="gateway" {print $2}')
gwnc=$("${CTL[@]}" ports | awk '$1=="gatewaync" {print $2}')
[ -n "$gw" ] && [ -n "$gwnc" ] || http_die "gateway ports unknown"
G=http://127.0.0.1:$gw
wait_http "$G/v1/echo" || http_die "anonymous echo does not answer"

#   A user, its token, an API key (all through the gateway, as a client would).
email="bench$$@example.com" pass="bench-password-$$-x"
curl -sf -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$pass\"}" "$G/v1/auth/register" ||
    http_die "register failed"
tok=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$pass\"}" "$G/v1/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || http_die "login gave no token"
AUTHZ="Authorization: Bearer $tok"
key=$(curl -sf -H "$AUTHZ" -H 'Content-Type: application/json' -d '{"name":"bench"}' \
    "$G/v1/auth/api-keys" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[ -n "$key" ] || http_die "no API key"
APIKEY="X-API-Key: $key"
for u in "$G/v1/auth/profile" "$G/v1/bench/echo-jwt" "http://127.0.0.1:$gwnc/v1/bench/echo-jwt"; do
    wait_http "$u" "$AUTHZ" || http_die "JWT route $u refused the token"
done
for u in "$G/v1/bench/echo-key" "http://127.0.0.1:$gwnc/v1/bench/echo-key"; do
    wait_http "$u" "$APIKEY" || http_die "API-key route $u refused the key"
done

PROCS=()
while read -r name rep pid; do
    [ "$pid" != "-" ] && PROCS+=("$name$([ "$rep" != 0 ] && echo "$rep"):$pid")
done < <("${CTL[@]}" status | awk 'NR>1 {print $1, $2, $3}')
PROCS+=("supervisor:$H_SUP")

if [ -n "${HTTP_B_ENV:-}" ]; then
    #   A/B: the same cases on both gateways, alternated, one wrk run per case and round.
    GB=http://127.0.0.1:$("${CTL[@]}" ports | awk '$1=="gatewayb" {print $2}')
    wait_http "$GB/v1/bench/echo-jwt" "$AUTHZ" || http_die "gatewayb refused the token"
    reps=$HTTP_REPS HTTP_REPS=1
    for round in $(seq 1 "$reps"); do
        for v in A B; do
            u=$G && [ $v = B ] && u=$GB
            run_case "vizmesh $v$round anonymous: GET /v1/echo" "$u/v1/echo"
            run_case "vizmesh $v$round JWT: echo-jwt (token cache on)" "$u/v1/bench/echo-jwt" -H "$AUTHZ"
            run_case "vizmesh $v$round API key: echo-key, cache hit" "$u/v1/bench/echo-key" -H "$APIKEY"
        done
    done
    HTTP_REPS=$reps
    SKIP_CASES=1
fi
run_case "vizmesh anonymous: GET /v1/echo" "$G/v1/echo"
run_case "vizmesh anonymous, no rate limit: GET /v1/echo/whoami" "$G/v1/echo/whoami"
run_case "vizmesh JWT: GET /v1/auth/profile" "$G/v1/auth/profile" -H "$AUTHZ"
run_case "vizmesh JWT: GET /v1/bench/echo-jwt (token cache on)" "$G/v1/bench/echo-jwt" -H "$AUTHZ"
run_case "vizmesh JWT: echo-jwt, token cache off (verify each)" \
    "http://127.0.0.1:$gwnc/v1/bench/echo-jwt" -H "$AUTHZ"
run_case "vizmesh API key: echo-key, cache hit" "$G/v1/bench/echo-key" -H "$APIKEY"
run_case "vizmesh API key: echo-key, cache miss (TTL 0)" \
    "http://127.0.0.1:$gwnc/v1/bench/echo-key" -H "$APIKEY"

if [ "${PROFILE:-0}" = 1 ]; then
    #   One more JWT run (token cache on) under perf: the gateway alone with
    #   call graphs, and the whole machine split by process.
    P=${PROFILE_DIR:-$BUILD/bench}
    mkdir -p "$P"
    gpid=$("${CTL[@]}" status | awk '$1=="gateway" {print $3}')
    secs=${WRK_D%s}
    perf record -F 1999 -g -o "$H/gw.data" -p "$gpid" -- sleep "$secs" >/dev/null 2>&1 &
    perf_gw=$!
    perf record -F 499 -a -o "$H/all.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_all=$!
    #   Context switches of the daemons on the request's path (divide by wrk's requests).
    stats=()
    for d in gateway broker echo; do
        dpid=$("${CTL[@]}" status | awk -v d="$d" '$1==d {print $3}')
        perf stat -e context-switches -p "$dpid" -o "$P/cs-$d.txt" -- sleep "$secs" >/dev/null 2>&1 &
        stats+=($!)
    done
    wrk -t"$WRK_T" -c"$WRK_C" -d"$WRK_D" -H "$AUTHZ" "$G/v1/bench/echo-jwt" >"$P/wrk.txt" 2>&1
    wait "$perf_gw" "$perf_all" "${stats[@]}"
    #   Threads -> daemon, so the machine's cycles add up per process and thread kind.
    for pr in "${PROCS[@]}"; do
        for t in /proc/"${pr#*:}"/task/*; do echo "${t##*/} ${pr%%:*}"; done
    done >"$H/tids"
    perf report -i "$H/all.data" --sort pid --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
        awk 'NR==FNR {who[$1] = $2; next}
             { split($NF, a, ":"); thr = substr($NF, index($NF, ":") + 1); sub(/\/[0-9]+$/, "", thr)
               d = (a[1] + 0) in who ? who[a[1] + 0] : "other"; sub(/%/, "", $1); s[d " " thr] += $1 }
             END { for (k in s) printf "%6.2f%%  %s\n", s[k], k }' "$H/tids" - |
        sort -rn | head -n 25 >"$P/machine-threads.txt"
    perf report -i "$H/gw.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 15 >"$P/gateway-dso.txt"
    perf report -i "$H/gw.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 60 >"$P/gateway-sym.txt"
    perf report -i "$H/gw.data" --children --sort symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 80 >"$P/gateway-children.txt"
    cp "$H/gw.data" "$P/gateway.perf.data" 2>/dev/null
    #   The gateway's system calls and context switches per request: a 4 s
    #   run under perf trace (which slows the gateway; counts, not speed).
    perf trace -s -p "$gpid" -o "$P/gateway-syscalls.txt" -- sleep 4 >/dev/null 2>&1 &
    perf_tr=$!
    sleep 0.5
    wrk -t"$WRK_T" -c"$WRK_C" -d3s -H "$AUTHZ" "$G/v1/bench/echo-jwt" >"$P/wrk-trace.txt" 2>&1
    wait "$perf_tr"
    echo "perf profile (JWT echo route): $P/{machine-threads,gateway-dso,gateway-sym,gateway-children,gateway-syscalls,cs-*}.txt" >&2
fi
kill -TERM "$H_SUP"
wait "$H_SUP" 2>/dev/null
H_SUP=

#   --- the table: ratios against the nginx row of this run
base=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' '/^baseline/ {print $2}')
echo
echo "| case | req/s | p50 ms | p99 ms | vs nginx | non-2xx + socket errors | req/s of each run |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label rps p50 p99 errs runs <<<"$row"
    printf '| %s | %s | %s | %s | %s× | %s | %s |\n' "$label" "$rps" "$p50" "$p99" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2f", b ? a / b : 0}')" "$errs" "$runs"
done
echo
for n in "${NOTES[@]}"; do echo "- $n"; done
k=${RSS_MAX_KIB%% *}
[ "$k" -gt 0 ] && echo "- largest peak RSS of a mesh process: $(mib "$k") MiB ($(awk -v k="$k" \
    'BEGIN {printf "%.1f", k * 1.024 / 1000}') MB), ${RSS_MAX_KIB#* }"
