//  chaos_load.mjs - steady HTTP load with a deadline per request, and its verdict (test_chaos.sh, tests/bench/chaos.sh)
//  SPDX-License-Identifier: MPL-2.0
//
//  node chaos_load.mjs run BASE MIX_JSON LOG [CONCURRENCY] [DEADLINE_MS] [MAX_S]
//      CONCURRENCY (4) keep-alive connections each send the MIX's requests
//      (a JSON array of {route, method, path, headers?, body?}) round-robin
//      to BASE until SIGTERM or MAX_S (120) seconds, then wait for what is in
//      flight and exit 0. One line per request is appended to LOG:
//          start_ms <TAB> end_ms <TAB> route <TAB> outcome <TAB> code
//      outcome: the HTTP status, or hang (no whole answer within
//      DEADLINE_MS (10000); the request is abandoned), conn_refused,
//      conn_reset, conn_error. code: the error body's error.code, "-" for
//      a 2xx, "?" for an error answer without the documented body.
//      After a connection error a connection waits 20 ms before the next
//      request, as a client would. LOG.inflight holds the start of the
//      oldest request in flight (9e15 when none), rewritten every 20 ms.
//  node chaos_load.mjs report LOG KILL_MS SRC_DIR [ALLOW_CONN] [MAX_WAIT_MS READY_MS]
//      The verdict on LOG for a kill at KILL_MS (epoch ms): one line
//          sent=N ok=N errors=N hangs=N undocumented=N max_ms=N late_ms=N
//          first_ok_ms=N last_err_ms=N recovered_ms=N by=<outcome:code=count,...>
//      and exit 1 when a request hung, an answer is neither a 2xx nor a
//      documented error, a connection error happened (unless ALLOW_CONN=1:
//      the victim is the gateway), a request was still waiting MAX_WAIT_MS
//      (default: no bound) after the victim's new process was ready at
//      READY_MS (epoch ms) — held by the dead process, it should have
//      ended when that died — or not every route succeeded after the last
//      error. The documented errors are read from their homes:
//      the "## Errors" table of docs/services/gateway.md (status -> code)
//      and, for its "any other remote code" row, the error codes table of
//      docs/protocol.md. max_ms: the longest wait for an answer (or the
//      deadline of a hang); late_ms: the longest of it after READY_MS;
//      first_ok_ms: kill to the end of the first 2xx of
//      a request started after it; last_err_ms: kill to the end of the last
//      non-2xx (0 if none); recovered_ms: kill to the moment every route of
//      the mix has answered 2xx to a request started after the last error.
import fs from "node:fs";
import http from "node:http";

const [mode, ...args] = process.argv.slice(2);

function run(base, mixFile, logFile, concurrency = 4, deadlineMs = 10000, maxS = 120) {
    const mix = JSON.parse(fs.readFileSync(mixFile, "utf8"));
    const url = new URL(base);
    const agent = new http.Agent({keepAlive: true, maxSockets: concurrency});
    const log = fs.openSync(logFile, "a");
    let stopping = false, next = 0, inflight = 0;
    //  LOG.inflight: a waiting test knows when every request sent before
    //  a moment has been answered.
    const starts = new Set();
    let oldest = -1;
    setInterval(() => {
        let o = 9e15;
        for (const r of starts)
            o = Math.min(o, r.start);
        if (o !== oldest) {
            fs.writeFileSync(`${logFile}.tmp`, `${o}\n`);
            fs.renameSync(`${logFile}.tmp`, `${logFile}.inflight`);
            oldest = o;
        }
    }, 20).unref();
    const stop = () => { stopping = true; };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    setTimeout(stop, maxS * 1000).unref();

    //  One request; resolves with the delay before the next on this connection.
    const one = (r) => new Promise((resolve) => {
        const start = Date.now();
        let done = false;
        const token = {start};
        starts.add(token);
        const finish = (outcome, code, pause = 0) => {
            if (done)
                return;
            done = true;
            starts.delete(token);
            clearTimeout(timer);
            fs.writeSync(log, `${start}\t${Date.now()}\t${r.route}\t${outcome}\t${code}\n`);
            resolve(pause);
        };
        const req = http.request({
            host: url.hostname, port: url.port, path: r.path, method: r.method,
            headers: r.headers || {}, agent,
        }, (res) => {
            const chunks = [];
            let size = 0;
            res.on("data", (c) => { if (size < 4096) { chunks.push(c); size += c.length; } });
            res.on("end", () => {
                if (res.statusCode >= 200 && res.statusCode < 300)
                    return finish(res.statusCode, "-");
                let code = "?";
                try {
                    const e = JSON.parse(Buffer.concat(chunks).toString()).error;
                    if (e && typeof e.code === "string" && typeof e.message === "string")
                        code = e.code;
                } catch { /* not JSON: "?" */ }
                finish(res.statusCode, code);
            });
            res.on("error", () => finish("conn_reset", "-", 20));
        });
        const timer = setTimeout(() => { finish("hang", "-"); req.destroy(); }, deadlineMs);
        req.on("error", (err) => {
            const kind = err.code === "ECONNREFUSED" ? "conn_refused"
                : err.code === "ECONNRESET" || /hang up/.test(err.message) ? "conn_reset"
                : "conn_error";
            finish(kind, err.code || "-", 20);
        });
        req.end(r.body || undefined);
    });

    const worker = async () => {
        while (!stopping) {
            const r = mix[next++ % mix.length];
            inflight++;
            const pause = await one(r);
            inflight--;
            if (pause)
                await new Promise((ok) => setTimeout(ok, pause));
        }
    };
    Promise.all(Array.from({length: concurrency}, worker)).then(() => {
        fs.closeSync(log);
        agent.destroy();
        process.exit(inflight === 0 ? 0 : 1);
    });
}

//  status -> Set of codes documented for it; "*" in the set: any protocol code.
function documented(src) {
    const table = (file, heading) => {
        const text = fs.readFileSync(`${src}/${file}`, "utf8");
        const at = text.indexOf(heading);
        if (at < 0)
            throw new Error(`${file}: no "${heading}"`);
        const rows = [];
        for (const line of text.slice(at).split("\n").slice(1)) {
            if (rows.length && !line.startsWith("|"))
                break;
            if (line.startsWith("|") && !/^\|\s*-/.test(line))
                rows.push(line.split("|").slice(1, -1).map((c) => c.trim()));
        }
        return rows.slice(1); // without the header row
    };
    const ticks = (s) => [...s.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]);
    const protocol = table("docs/protocol.md", "### Error codes").flatMap((r) => ticks(r[0]));
    const docs = new Map();
    const add = (status, code) => {
        if (!docs.has(status))
            docs.set(status, new Set());
        docs.get(status).add(code);
    };
    for (const [cause, status, code] of table("docs/services/gateway.md", "## Errors")) {
        const statuses = [...status.matchAll(/\b([1-5][0-9][0-9])\b/g)].map((m) => Number(m[1]));
        let codes = ticks(code);
        if (/^same/.test(code))
            codes = ticks(cause);
        else if (/^the code/.test(code))
            codes = [...ticks(cause), ...protocol, ...codes];
        if (statuses.length > 1 && statuses.length === codes.length)
            statuses.forEach((s, i) => add(s, codes[i])); // "404, 409, 422 | same": pairwise
        else
            for (const s of statuses)
                codes.forEach((c) => add(s, c));
    }
    if (!docs.size || !protocol.length)
        throw new Error("no documented error codes found");
    return docs;
}

function report(logFile, killMs, src, allowConn, maxWaitMs, readyMs) {
    const docs = documented(src);
    const lines = fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean)
        .map((l) => l.split("\t")).map(([s, e, route, outcome, code]) =>
            ({start: Number(s), end: Number(e), route, outcome, code}));
    const ok = (x) => /^2[0-9][0-9]$/.test(x.outcome);
    const by = new Map();
    let hangs = 0, undocumented = 0, conn = 0, errors = 0, lastErr = 0, maxMs = 0, lateMs = 0;
    for (const x of lines) {
        maxMs = Math.max(maxMs, x.end - x.start);
        lateMs = Math.max(lateMs, x.end - Math.max(x.start, readyMs || x.start));
        const key = ok(x) ? x.outcome : `${x.outcome}:${x.code}`;
        by.set(key, (by.get(key) || 0) + 1);
        if (ok(x))
            continue;
        errors++;
        lastErr = Math.max(lastErr, x.end - killMs);
        if (x.outcome === "hang")
            hangs++;
        else if (x.outcome.startsWith("conn_"))
            conn++;
        else if (!docs.get(Number(x.outcome))?.has(x.code))
            undocumented++;
    }
    const first = lines.filter((x) => ok(x) && x.start >= killMs).sort((a, b) => a.end - b.end)[0];
    const firstOk = first ? first.end - killMs : -1;
    //  Recovered: every route answered 2xx to a request started after the
    //  last error ended (and after the kill); the latest of those answers.
    const since = killMs + Math.max(lastErr, 0);
    let recovered = 0;
    for (const route of new Set(lines.map((x) => x.route))) {
        const r = lines.filter((x) => x.route === route && ok(x) && x.start >= since)
            .sort((a, b) => a.end - b.end)[0];
        recovered = r && recovered >= 0 ? Math.max(recovered, r.end - killMs) : -1;
    }
    const byText = [...by].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}=${n}`).join(",");
    console.log(`sent=${lines.length} ok=${lines.length - errors} errors=${errors} hangs=${hangs} ` +
        `undocumented=${undocumented} max_ms=${maxMs} late_ms=${lateMs} first_ok_ms=${firstOk} last_err_ms=${Math.max(lastErr, 0)} ` +
        `recovered_ms=${recovered} by=${byText}`);
    const bad = [];
    if (hangs)
        bad.push(`${hangs} request(s) hung past the deadline`);
    if (undocumented)
        bad.push(`${undocumented} answer(s) neither 2xx nor a documented error`);
    if (maxWaitMs && lateMs >= maxWaitMs && !hangs)
        bad.push(`a request still waited ${lateMs} ms after the new process was ready (bound ${maxWaitMs} ms)`);
    if (conn && !allowConn)
        bad.push(`${conn} connection error(s) while the gateway was up`);
    if (!first)
        bad.push("no success after the kill");
    else if (recovered < 0)
        bad.push("a route had no success after the last error");
    if (bad.length) {
        console.error(bad.join("; "));
        process.exit(1);
    }
}

if (mode === "run")
    run(args[0], args[1], args[2], Number(args[3] || 4), Number(args[4] || 10000), Number(args[5] || 120));
else if (mode === "report")
    report(args[0], Number(args[1]), args[2], args[3] === "1", Number(args[4] || 0), Number(args[5] || 0));
else {
    console.error("usage: chaos_load.mjs run BASE MIX LOG [CONC] [DEADLINE_MS] [MAX_S] | " +
        "report LOG KILL_MS SRC [ALLOW_CONN] [MAX_WAIT_MS READY_MS]");
    process.exit(2);
}
