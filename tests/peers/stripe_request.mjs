// stripe_request - what the official `stripe` npm SDK sends for one operation,
// the reference vz-billing's outbound requests are compared with.
// SPDX-License-Identifier: MPL-2.0
//
// usage: node stripe_request.mjs <operation> <params json> [<id>]
//   runs the operation with the SDK against a local HTTP server of its own
//   (host 127.0.0.1, an ephemeral port, http) and prints one JSON line:
//   {"method", "path", "query", "body", "stripe_version", "idempotency_key",
//    "content_type"} as the server received them. The idempotency key is
//   the one passed ("idem_peer"), so the test sees that it travels.
// operations: customer_create customer_update subscription_create
//   subscription_update subscription_cancel invoice_list
//   checkout_session_create portal_session_create payment_intent_create
import { createServer } from 'node:http';
import Stripe from 'stripe';

const [op, paramsText, id] = process.argv.slice(2);
const params = JSON.parse(paramsText || '{}');
const seen = await new Promise((resolve, reject) => {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Request-Id': 'req_peer' });
      res.end(JSON.stringify({ id: 'obj_peer', object: 'list', data: [], has_more: false }));
      const url = new URL(req.url, 'http://x');
      resolve({
        method: req.method,
        path: url.pathname,
        query: url.search.replace(/^\?/, ''),
        body,
        stripe_version: req.headers['stripe-version'] || '',
        idempotency_key: req.headers['idempotency-key'] || '',
        content_type: req.headers['content-type'] || '',
      });
      server.close();
    });
  });
  server.listen(0, '127.0.0.1', async () => {
    const stripe = new Stripe('sk_test_peer', {
      host: '127.0.0.1', port: server.address().port, protocol: 'http',
      apiVersion: '2024-11-20.acacia', maxNetworkRetries: 0,
    });
    const opts = { idempotencyKey: 'idem_peer' };
    const calls = {
      customer_create: () => stripe.customers.create(params, opts),
      customer_update: () => stripe.customers.update(id, params, opts),
      subscription_create: () => stripe.subscriptions.create(params, opts),
      subscription_update: () => stripe.subscriptions.update(id, params, opts),
      subscription_cancel: () => stripe.subscriptions.cancel(id, params),
      invoice_list: () => stripe.invoices.list(params),
      checkout_session_create: () => stripe.checkout.sessions.create(params, opts),
      portal_session_create: () => stripe.billingPortal.sessions.create(params, opts),
      payment_intent_create: () => stripe.paymentIntents.create(params, opts),
    };
    if (!calls[op]) reject(new Error(`unknown operation ${op}`));
    else calls[op]().catch(reject);
  });
});
console.log(JSON.stringify(seen));
