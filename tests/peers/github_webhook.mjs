// github_webhook - GitHub's own webhook payloads (@octokit/webhooks-examples), signed by
// @octokit/webhooks-methods, the reference vz-github's verification is checked against.
// SPDX-License-Identifier: MPL-2.0
//
// usage: node github_webhook.mjs example <event> <index> <patch json> <out file> <secret>
//          writes example number <index> of <event> from @octokit/webhooks-examples
//          (api.github.com), deep-merged with patch (objects by key, arrays by
//          index, the rest replaced), serialised with JSON.stringify, and prints
//          its X-Hub-Signature-256 made by webhooks-methods sign(secret, payload)
//        node github_webhook.mjs sign <secret> <file>
//          prints the X-Hub-Signature-256 of the file's bytes
//        node github_webhook.mjs verify <secret> <file> <signature>
//          prints "ok" or "fail" (webhooks-methods verify)
//        node github_webhook.mjs reserialise <in file> <out file>
//          writes the same JSON value re-serialised (2-space indentation), the
//          way a proxy that parses and re-encodes a body would
//        node github_webhook.mjs count <event>
//          prints how many examples the package has for <event>
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sign, verify } from '@octokit/webhooks-methods';

const require = createRequire(import.meta.url);
const examples = require('@octokit/webhooks-examples/api.github.com/index.json');
const [mode, ...args] = process.argv.slice(2);

function merge(base, patch) {
  if (Array.isArray(base) && Array.isArray(patch)) {
    return patch.map((v, i) => (i < base.length ? merge(base[i], v) : v));
  }
  if (base && patch && typeof base === 'object' && typeof patch === 'object'
      && !Array.isArray(base) && !Array.isArray(patch)) {
    const out = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? merge(base[k], v) : v;
    return out;
  }
  return patch;
}

function list(event) {
  const entry = examples.find((e) => e.name === event);
  if (!entry) throw new Error(`no examples for ${event}`);
  return entry.examples;
}

if (mode === 'example') {
  const [event, index, patch, out, secret] = args;
  const payload = JSON.stringify(merge(list(event)[Number(index)], JSON.parse(patch)));
  writeFileSync(out, payload);
  console.log(await sign(secret, payload));
} else if (mode === 'sign') {
  const [secret, file] = args;
  console.log(await sign(secret, readFileSync(file, 'utf8')));
} else if (mode === 'verify') {
  const [secret, file, signature] = args;
  console.log((await verify(secret, readFileSync(file, 'utf8'), signature)) ? 'ok' : 'fail');
} else if (mode === 'reserialise') {
  const [input, out] = args;
  writeFileSync(out, JSON.stringify(JSON.parse(readFileSync(input, 'utf8')), null, 2));
  console.log('ok');
} else if (mode === 'count') {
  console.log(list(args[0]).length);
} else {
  console.error('usage: github_webhook.mjs example|sign|verify|count ...');
  process.exit(2);
}
