// curve_call - an independent CURVE peer (Node zeromq + @msgpack/msgpack)
// SPDX-License-Identifier: MPL-2.0
//
// Sends one vizmesh request to a broker and prints the reply envelope as
// JSON, or exits 3 when nothing arrives before --wait ms. Used by tests to
// show that the C broker speaks real CURVE and that an unknown key gets
// nothing at all. Usage:
//   node curve_call.mjs --endpoint tcp://127.0.0.1:P --server-key FILE|Z85
//        (--cert FILE | --random-key) --service S --method M [--body TEXT] [--wait MS]
import { readFileSync } from "node:fs";
import { Dealer, curveKeyPair } from "zeromq";
import { encode, decode } from "@msgpack/msgpack";

function arg(name, dflt) {
    const i = process.argv.indexOf(`--${name}`);
    if (i < 0) return dflt;
    return process.argv[i + 1];
}

// A ZPL certificate file: curve { public-key = "..."  secret-key = "..." }.
function certKeys(path) {
    const text = readFileSync(path, "utf8");
    const pub = /public-key\s*=\s*"([^"]{40})"/.exec(text);
    const sec = /secret-key\s*=\s*"([^"]{40})"/.exec(text);
    return { publicKey: pub && pub[1], secretKey: sec && sec[1] };
}

function serverKey(text) {
    if (/^[\x21-\x7e]{40}$/.test(text) && !text.includes("/")) return text;
    return certKeys(text).publicKey;
}

const endpoint = arg("endpoint");
const waitMs = Number(arg("wait", "3000"));
let keys;
if (process.argv.includes("--random-key")) {
    keys = curveKeyPair();
} else {
    const cert = arg("cert");
    const pub = certKeys(cert.replace(/\/secret\/([^/]+)\.key$/, "/public/$1.key"));
    const sec = certKeys(cert.replace(/\.key$/, ".key_secret"));
    keys = { publicKey: pub.publicKey, secretKey: sec.secretKey };
}

const sock = new Dealer({
    linger: 0,
    curveServerKey: serverKey(arg("server-key")),
    curvePublicKey: keys.publicKey,
    curveSecretKey: keys.secretKey,
});
sock.connect(endpoint);

const id = `node-${process.pid}-${Date.now()}`;
const envelope = {
    v: 1, k: 1, svc: arg("service"), mth: arg("method"), id,
    dl: Date.now() + waitMs, b: Buffer.from(arg("body", ""), "utf8"),
};
await sock.send(["REQ", Buffer.from(encode(envelope))]);

const timer = setTimeout(() => {
    console.log(JSON.stringify({ result: "no_reply", waited_ms: waitMs }));
    sock.close();
    process.exit(3);
}, waitMs);

for await (const frames of sock) {
    if (frames.length !== 2 || frames[0].toString() !== "REP") continue;
    const env = decode(frames[1]);
    if (env.id !== id) continue;
    clearTimeout(timer);
    const out = { ...env };
    if (out.b) out.b = Buffer.from(out.b).toString("utf8");
    console.log(JSON.stringify({ result: "reply", envelope: out }));
    sock.close();
    process.exit(0);
}
