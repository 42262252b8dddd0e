#!/bin/bash
#   chaos.sh - section 7 of `make bench`: kill -9 of every daemon under load, several rounds, as a table
#   SPDX-License-Identifier: MPL-2.0
#
#   Runs tests/integration/test_chaos.sh (the same mesh, load, kills and
#   verdicts as in `make test`) with a longer load around each kill and
#   CHAOS_ROUNDS rounds over every victim, then folds its "chaos:" lines
#   into one row per victim: requests, answers by status:code over all
#   rounds, hangs, undocumented answers, the longest wait for an answer,
#   and kill -> first 2xx, kill ->
#   every route of the mix 2xx after the last error (recovered), kill ->
#   the new process ready (median and max over the rounds, ms).
#   Usage: tests/bench/chaos.sh [BUILD_DIR]. Knobs: CHAOS_ROUNDS (3),
#   CHAOS_PRE (2 s of load before each kill), CHAOS_POST (2 s after
#   recovery), CHAOS_CONC (8 connections); the rest as test_chaos.sh.
#   The rounds must end within the admin token's 15 minutes (they take
#   about 5 with the defaults). docs/operations/chaos.md holds a run.
set -u -o pipefail

BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export VZ_BIN_DIR=$BUILD/bin VZ_SOURCE_DIR=$SRC
export CHAOS_ROUNDS=${CHAOS_ROUNDS:-3} CHAOS_PRE=${CHAOS_PRE:-2} CHAOS_POST=${CHAOS_POST:-2}
export CHAOS_CONC=${CHAOS_CONC:-8}
OUT=$(mktemp "${TMPDIR:-/tmp}/vz-bench-chaos.XXXXXX")
trap 'rm -f "$OUT"' EXIT

echo "## 7. chaos under load (kill -9 of each daemon, $CHAOS_ROUNDS rounds, $CHAOS_CONC connections," \
    "${CHAOS_PRE} s load before each kill, ${CHAOS_POST} s after recovery)"
if ! bash "$SRC/tests/integration/test_chaos.sh" >"$OUT" 2>&1; then
    grep -E '^(ok -|FAIL|chaos: )' "$OUT" >&2
    grep -v '^{"ts' "$OUT" | tail -n 40 >&2
    echo "bench chaos: tests/integration/test_chaos.sh failed" >&2
    exit 1
fi
grep '^chaos: ' "$OUT" | node -e '
const rows = new Map();
for (const line of require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean)) {
    const f = Object.fromEntries(line.replace(/^chaos: /, "").split(" ").map((w) => w.split(/=(.*)/s)));
    const r = rows.get(f.victim) ||
        {n: 0, sent: 0, hangs: 0, undoc: 0, wait: 0, by: new Map(), first: [], rec: [], ready: []};
    r.n++;
    r.sent += +f.sent;
    r.hangs += +f.hangs;
    r.wait = Math.max(r.wait, +f.max_ms);
    r.undoc += +f.undocumented;
    for (const kv of f.by.split(",")) {
        const [k, v] = kv.split(/=(?=[0-9]+$)/);
        if (!/^2/.test(k))
            r.by.set(k, (r.by.get(k) || 0) + +v);
    }
    r.first.push(+f.first_ok_ms);
    r.rec.push(+f.recovered_ms);
    r.ready.push(+f.ready_ms);
    rows.set(f.victim, r);
}
const mm = (a) => { const s = [...a].sort((x, y) => x - y); return `${s[(s.length - 1) >> 1]} / ${s[s.length - 1]}`; };
console.log("| victim | rounds | requests | errors by status:code (all rounds) | hangs | undocumented | longest wait ms | first 2xx ms | recovered ms | ready ms |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [v, r] of rows) {
    const by = [...r.by].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
    console.log(`| ${v} | ${r.n} | ${r.sent} | ${by} | ${r.hangs} | ${r.undoc} | ${r.wait} | ` +
        `${mm(r.first)} | ${mm(r.rec)} | ${mm(r.ready)} |`);
}
console.log("\n(ms columns: median / max over the rounds; a hang is a request unanswered after " +
    `${process.env.CHAOS_DEADLINE_MS || 10000} ms)`);
'
