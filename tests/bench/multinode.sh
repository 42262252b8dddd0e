#!/bin/bash
#   multinode.sh - section 8 of `make bench`: three namespace "nodes", one cut off under load, as a table
#   SPDX-License-Identifier: MPL-2.0
#
#   Runs tests/integration/test_multinode.sh (the same nodes, Redis
#   Cluster, two brokers, load and verdicts as in `make test`) with a longer
#   cut and more load, once per run of MN_RUNS and round: VICTIM:ENDPOINTS
#   pairs, by default node 1 (broker 1, a Redis primary, workers) and node
#   2 (broker 2, a primary, workers) with the brokers listed by address,
#   then node 1 again with the brokers named by one DNS name.
#   Node 3 holds the gateway the load enters by: cutting it cuts the
#   clients off, which no mesh can hide. Folds the "multinode:" lines into
#   one row per run: requests, errors by route/status:code, hangs, undocumented
#   answers, the longest wait, whether Redis failed the cut primary over,
#   cut -> first 2xx, cut -> the first streak of MN_STREAK 2xx in a row,
#   restore -> that streak, restore -> last error, restore -> recovered
#   (every route 2xx after the last error for a second); then the
#   per-second timeline of the first run.
#   Usage: tests/bench/multinode.sh [BUILD_DIR]. Knobs: MN_ROUNDS (1),
#   MN_RUNS ("1:list 2:list 1:dns"), MN_CUT_S (10), MN_PRE (5), MN_POST (3), MN_CONC
#   (8); the rest as test_multinode.sh. Needs root and `ip netns`: prints
#   a skip line without. docs/operations/scaling.md holds a run.
set -u -o pipefail

BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export VZ_BIN_DIR=$BUILD/bin VZ_SOURCE_DIR=$SRC
export MN_CUT_S=${MN_CUT_S:-10} MN_PRE=${MN_PRE:-5} MN_POST=${MN_POST:-3} MN_CONC=${MN_CONC:-8}
export MN_RECOVER_S=${MN_RECOVER_S:-60}
ROUNDS=${MN_ROUNDS:-1} RUNS=${MN_RUNS:-1:list 2:list 1:dns}
OUT=$(mktemp "${TMPDIR:-/tmp}/vz-bench-multinode.XXXXXX")
LINES=$OUT.lines
trap 'rm -f "$OUT" "$LINES"' EXIT

echo "## 8. multi-node simulation (3 network namespaces, 2 brokers, Redis Cluster 3+3;" \
    "a node cut off for $MN_CUT_S s under load, $MN_CONC connections)"
: >"$LINES"
for round in $(seq 1 "$ROUNDS"); do
    for run in $RUNS; do
        v=${run%%:*}
        MN_VICTIM=$v MN_ENDPOINTS=${run#*:} bash "$SRC/tests/integration/test_multinode.sh" >"$OUT" 2>&1
        rc=$?
        if [ $rc = 77 ]; then
            grep '^SKIP' "$OUT"
            exit 0
        fi
        if [ $rc != 0 ]; then
            grep -E '^(ok -|FAIL|multinode)' "$OUT" >&2
            grep -v '^{"ts' "$OUT" | tail -n 30 >&2
            echo "bench multinode: tests/integration/test_multinode.sh failed (run $run)" >&2
            exit 1
        fi
        grep -E '^multinode' "$OUT" | sed "s/^/round=$round run=$round.$run endpoints=${run#*:} /" >>"$LINES"
    done
done
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
const fields = (l) => Object.fromEntries(l.replace(/ multinode(-second)?: /, " ").split(" ").map((w) => w.split(/=(.*)/s)));
console.log("| victim | endpoints | round | cut ms | Redis failover | requests | errors by route/status:code | hangs | undocumented | " +
    "longest wait ms | cut -> first 2xx ms | cut -> streak ms | restore -> streak ms | restore -> last error ms | " +
    "restore -> recovered ms |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const l of lines.filter((x) => / multinode: /.test(x))) {
    const f = fields(l);
    const by = f.by_route === "none" ? "none" : f.by_route.split(",").map((kv) => kv.replace(/=(?=[0-9]+$)/, " ")).join(", ");
    console.log(`| ${f.victim} | ${f.endpoints} | ${f.round} | ${f.cut_ms} | ${f.redis_failover} | ${f.sent} | ${by} | ${f.hangs} | ` +
        `${f.undocumented} | ${f.max_ms} | ${f.first_ok_ms} | ${f.cut_streak_ms} | ${f.restore_streak_ms} | ` +
        `${f.restore_last_err_ms} | ${f.restore_recovered_ms} |`);
}
const seconds = lines.filter((x) => / multinode-second: /.test(x)).map(fields);
console.log("\nTimeline of the first run (requests by the second they started in; t = 0: the second after the cut):\n");
console.log("| t s | sent | errors | longest wait ms |");
console.log("| --- | --- | --- | --- |");
for (const f of seconds.filter((x) => x.run === seconds[0].run))
    console.log(`| ${f.t} | ${f.sent} | ${f.errors} | ${f.max_ms} |`);
console.log(`\n(streak: ${process.env.MN_STREAK || 20} 2xx answers in a row by end time, among requests started after the event)`);
' "$LINES"
