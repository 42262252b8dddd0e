// otlp_collector - a stand-in OTLP/HTTP collector for the tests: POST /v1/traces bodies to a file
// SPDX-License-Identifier: MPL-2.0
//
// Usage: node otlp_collector.mjs OUT_FILE PORT_FILE
// Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE once bound),
// appends each JSON body POSTed to /v1/traces as one line of OUT_FILE and
// answers {"partialSuccess":{}}; anything else is 404. Exits by itself after
// 120 s, so a failed test leaves nothing running.
import http from "node:http";
import fs from "node:fs";

const [out, portFile] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    try {
      JSON.parse(body);
    } catch {
      res.writeHead(400).end();
      return;
    }
    fs.appendFileSync(out, body.replace(/\n/g, " ") + "\n");
    res.writeHead(200, { "Content-Type": "application/json" }).end('{"partialSuccess":{}}');
  });
});
server.listen(0, "127.0.0.1", () => fs.writeFileSync(portFile, String(server.address().port)));
setTimeout(() => process.exit(0), 120000).unref();
setTimeout(() => {}, 120000);
