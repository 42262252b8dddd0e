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
import { readFileSync } from 'node:fs';
import Stripe from 'stripe';

const stripe = new Stripe('sk_test_peer_unused');
const [mode, secretArg, arg, file, tolerance] = process.argv.slice(2);
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
