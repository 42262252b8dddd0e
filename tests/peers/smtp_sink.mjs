// smtp_sink - a real SMTP server (npm smtp-server) that parses what it receives (mailparser)
// SPDX-License-Identifier: MPL-2.0
//
// For the notifier's integration tests: every accepted message is written
// to --out as <n>.eml (the raw bytes) and <n>.json (what mailparser made of
// it: subject, from, to, text, html, and each attachment's name, type,
// content id, size and SHA-256), plus the SMTP envelope and the AUTH user.
// Events of the dialogue (connect, starttls, auth, mail, data) are appended
// to --out/events.log, so a test can see that nothing was sent.
// Readiness: a newline on the descriptor named by VZ_NOTIFY_FD once listening.
// Usage:
//   node smtp_sink.mjs --port P --out DIR [--cert F --key F] [--no-starttls]
//        [--auth USER:PASS] [--reject CODE] [--hold-rcpt MS] [--hold-data MS]
import { appendFileSync, readFileSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { createHash } from "node:crypto";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

function arg(name, dflt) {
    const i = process.argv.indexOf(`--${name}`);
    return i < 0 ? dflt : process.argv[i + 1];
}
const flag = (name) => process.argv.includes(`--${name}`);

const out = arg("out");
const auth = arg("auth");
const reject = Number(arg("reject", "0"));
const holdRcpt = Number(arg("hold-rcpt", "0"));
const holdData = Number(arg("hold-data", "0"));
let count = 0;
const event = (what) => appendFileSync(`${out}/events.log`, `${what}\n`);

const options = {
    secure: false,
    hideSTARTTLS: flag("no-starttls"),
    authOptional: !auth,
    disabledCommands: auth ? [] : ["AUTH"],
    allowInsecureAuth: false,
    logger: false,
    size: 64 * 1024 * 1024,
    onConnect(session, cb) {
        event("connect");
        cb();
    },
    onSecure(socket, session, cb) {
        event("starttls");
        cb();
    },
    onAuth(a, session, cb) {
        const [user, pass] = auth.split(":");
        if (a.username === user && a.password === pass) {
            event(`auth ${a.username}`);
            return cb(null, { user: a.username });
        }
        event("auth-failed");
        return cb(new Error("Invalid username or password"));
    },
    onMailFrom(address, session, cb) {
        event(`mail ${session.secure ? "tls" : "plain"}`);
        if (reject) {
            const err = new Error("Mailbox unavailable (test)");
            err.responseCode = reject;
            return cb(err);
        }
        cb();
    },
    onRcptTo(address, session, cb) {
        event("rcpt");
        setTimeout(cb, holdRcpt);
    },
    onData(stream, session, cb) {
        const chunks = [];
        stream.on("data", (c) => chunks.push(c));
        stream.on("end", async () => {
            const raw = Buffer.concat(chunks);
            const n = ++count;
            writeFileSync(`${out}/${n}.eml`, raw);
            const m = await simpleParser(raw, { keepCidLinks: true });
            const doc = {
                envelope: {
                    from: session.envelope.mailFrom.address,
                    to: session.envelope.rcptTo.map((r) => r.address),
                },
                user: session.user || null,
                secure: session.secure,
                messageId: m.messageId,
                date: m.date ? m.date.toISOString() : null,
                subject: m.subject,
                from: m.from ? m.from.value : [],
                to: m.to ? m.to.value : [],
                text: m.text,
                html: m.html,
                attachments: m.attachments.map((a) => ({
                    filename: a.filename,
                    contentType: a.contentType,
                    contentId: a.contentId || null,
                    related: !!a.related,
                    size: a.size,
                    sha256: createHash("sha256").update(a.content).digest("hex"),
                })),
            };
            writeFileSync(`${out}/${n}.json.tmp`, JSON.stringify(doc, null, 1));
            // Renamed into place: a reader never sees half a file.
            (await import("node:fs")).renameSync(`${out}/${n}.json.tmp`, `${out}/${n}.json`);
            event(`data ${n}`);
            // --hold-data: the message is stored, the 250 comes later.
            setTimeout(cb, holdData);
        });
    },
};
if (arg("cert")) {
    options.key = readFileSync(arg("key"));
    options.cert = readFileSync(arg("cert"));
}
const server = new SMTPServer(options);
server.on("error", (e) => event(`error ${e.code || e.message}`));
server.listen(Number(arg("port")), "127.0.0.1", () => {
    const fd = Number(process.env.VZ_NOTIFY_FD);
    if (fd > 0) {
        writeSync(fd, "\n");
        closeSync(fd);
    }
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
