// auth_jose - verify tokens issued by vz-auth with the npm `jose` library, an
// independent implementation, against the JWKS the service serves.
// SPDX-License-Identifier: MPL-2.0
//
// usage: node auth_jose.mjs <jwks.json> <issuer> <audience> <token>...
// prints one line per token: "ok <sub> <kid> <alg>" or "fail <jose error code>".
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';

const [jwksPath, issuer, audience, ...tokens] = process.argv.slice(2);
const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksPath, 'utf8')));
for (const token of tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer, audience, algorithms: ['ES256'],
    });
    console.log(`ok ${payload.sub} ${protectedHeader.kid} ${protectedHeader.alg}`);
  } catch (err) {
    console.log(`fail ${err.code || err.name}`);
  }
}
