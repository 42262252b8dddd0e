// stripe_webhook - sign and verify Stripe webhook payloads with the official
// `stripe` npm SDK, the reference vz-billing's verification is checked against.
// SPDX-License-Identifier: MPL-2.0
//
// usage: node stripe_webhook.mjs sign <secret[,secret..]> <timestamp> <payload file>
//          prints a Stripe-Signature header: t=<timestamp> and one v1= per
//          secret (generateTestHeaderString per secret, joined as Stripe does
//          while an endpoint secret is being rolled)
//        node stripe_webhook.mjs verify <secret> <header> <payload file> [tolerance]
//          prints "ok <event id>" or "fail <SDK error message>"
//        node stripe_webhook.mjs event <fixtures.json> <resource> <type> <event id> <created>
//                                <patch json> <out file>
//          writes an event built from Stripe's fixture objects: the fixture
//          "event" envelope with id, type, created and data.object = the
//          fixture <resource> deep-merged with patch (objects by key, arrays
//          by index), serialised like Stripe (JSON.stringify, 2 spaces)
import { readFileSync, writeFileSync } from 'node:fs';
import Stripe from 'stripe';

const stripe = new Stripe('sk_test_peer_unused');
const [mode, secretArg, arg, file, tolerance] = process.argv.slice(2);

// patch merged into base: objects by key, arrays by index, the rest replaced.
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

if (mode === 'event') {
  const [fixtures, resource, type, id, created, patch, out] = process.argv.slice(3);
  const { resources } = JSON.parse(readFileSync(fixtures, 'utf8'));
  const event = {
    ...resources.event, id, type, created: Number.parseInt(created, 10), livemode: false,
    data: { object: merge(resources[resource], JSON.parse(patch)) },
  };
  writeFileSync(out, JSON.stringify(event, null, 2));
  process.exit(0);
}
const payload = readFileSync(file, 'utf8');
if (mode === 'sign') {
  const timestamp = Number.parseInt(arg, 10);
  const v1 = secretArg.split(',').map((secret) => {
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
    return header.split(',').filter((item) => item.startsWith('v1='))[0];
  });
  console.log(`t=${timestamp},${v1.join(',')}`);
} else if (mode === 'verify') {
  try {
    const event = stripe.webhooks.constructEvent(payload, arg, secretArg,
      tolerance === undefined ? undefined : Number.parseInt(tolerance, 10));
    console.log(`ok ${event.id}`);
  } catch (err) {
    console.log(`fail ${err.message}`);
  }
} else {
  console.error('usage: stripe_webhook.mjs sign|verify ...');
  process.exit(2);
}
