// github_api - a local server speaking GitHub's REST wire format, validating every request
// against that operation's schema in @octokit/openapi (GitHub's own OpenAPI description).
// SPDX-License-Identifier: MPL-2.0
//
// For vz-github's App client tests. Each request is matched to its operation
// (method + path template of api.github.com.deref.json) and checked:
//   - the operation exists; path and query parameters are declared and valid
//     against their schemas (ajv, integers coerced), required ones present;
//   - the JSON body is valid against the operation's requestBody schema (a
//     required body must be there, with Content-Type application/json);
//   - headers GitHub requires: Accept application/vnd.github+json,
//     X-GitHub-Api-Version 2022-11-28, a User-Agent, Authorization Bearer;
//   - /app/* calls carry an App JWT: RS256, verified with jose against the
//     App's public key, iss the App id, iat in the past, exp - iat <= 660 s;
//     other calls carry an installation token this server issued.
// Every request is appended to --log as one JSON line {method, path, query,
// auth, valid, errors, status}. Scripted answers (the scenario):
//   - access tokens: 201 {token: a long random string, expires_at: +1 h};
//     the FIRST token issued is refused once with 401 (an expired token);
//   - /installation/repositories: three pages of one repository each (Link);
//   - /repos/octo-org/repo-a/issues: first a 403 secondary limit with
//     retry-after: 1, then the spec's own example issues;
//   - /repos/octo-org/repo-b/milestones: first a 403 with
//     x-ratelimit-remaining 0 and x-ratelimit-reset 2 s ahead, then the example;
//   - /app/hook/deliveries: one failed (500) and one good delivery, with an
//     ETag; If-None-Match with it gets 304;
//   - POST /app/hook/deliveries/{id}/attempts: 202.
// Readiness: a newline on the descriptor VZ_NOTIFY_FD once listening.
// Usage:
//   node github_api.mjs --port P --log FILE --app-id ID --public-key PEM
//   node github_api.mjs check <method> <path?query> <body json | ""> [auth header]
//        prints "valid" or "invalid: <errors>" (the validator alone, no server)
import { appendFileSync, closeSync, readFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import Ajv from 'ajv';
import { importSPKI, jwtVerify, decodeJwt } from 'jose';

const require = createRequire(import.meta.url);
const spec = require('@octokit/openapi/generated/api.github.com.deref.json');
const ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: true, validateFormats: false });

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
}

// The operation for method + path: {op, params} or null.
const templates = Object.keys(spec.paths).map((t) => ({
  t,
  names: [...t.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
  re: new RegExp('^' + t.replace(/\./g, '\\.').replace(/\{[^}]+\}/g, '([^/]+)') + '$'),
}));
function find(method, path) {
  let best = null;
  for (const { t, names, re } of templates) {
    const m = re.exec(path);
    const op = m && spec.paths[t][method.toLowerCase()];
    // The most literal template wins (/repos/{o}/{r}/issues over /{x}/...).
    if (op && (!best || names.length < best.names.length)) {
      const params = {};
      names.forEach((n, i) => { params[n] = m[i + 1]; });
      best = { t, names, op, params };
    }
  }
  return best;
}

// OpenAPI 3.0 "nullable" beside a type is ajv's; without a type it means
// "or null": written as JSON Schema so that ajv accepts it.
function jsonSchema(node) {
  if (Array.isArray(node)) return node.map(jsonSchema);
  if (!node || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === 'example' || k === 'examples' ? v : jsonSchema(v);
  if (out.nullable && !out.type) {
    delete out.nullable;
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

const validators = new Map();
function check(schema, value, where, errors) {
  if (!schema) return;
  // Wrapped so that coerceTypes can replace a query string by its integer.
  const key = JSON.stringify(schema);
  if (!validators.has(key)) {
    validators.set(key, ajv.compile({ type: 'object', properties: { value: jsonSchema(schema) } }));
  }
  const v = validators.get(key);
  if (!v({ value })) errors.push(`${where}: ${ajv.errorsText(v.errors)}`);
}

// Validate one request; returns the list of errors (empty: valid).
export function validate(method, url, headers, body) {
  const errors = [];
  const u = new URL(url, 'http://x');
  const found = find(method, u.pathname);
  if (!found) return [`no operation ${method} ${u.pathname}`];
  const { op, params } = found;
  const declared = op.parameters || [];
  for (const p of declared) {
    if (p.in === 'path') check(p.schema, decodeURIComponent(params[p.name] ?? ''), `path ${p.name}`, errors);
    if (p.in === 'query') {
      const v = u.searchParams.get(p.name);
      if (v === null && p.required) errors.push(`query ${p.name} is required`);
      if (v !== null) check(p.schema, v, `query ${p.name}`, errors);
    }
  }
  for (const name of u.searchParams.keys()) {
    if (!declared.some((p) => p.in === 'query' && p.name === name)) errors.push(`query ${name} is not a parameter`);
  }
  const h = (n) => headers[n.toLowerCase()];
  if (h('accept') !== 'application/vnd.github+json') errors.push('Accept must be application/vnd.github+json');
  if (h('x-github-api-version') !== '2022-11-28') errors.push('X-GitHub-Api-Version must be 2022-11-28');
  if (!h('user-agent')) errors.push('User-Agent is required');
  if (!/^Bearer \S+$/.test(h('authorization') || '')) errors.push('Authorization: Bearer is required');
  const rb = op.requestBody;
  if (body && body.length) {
    const ct = (h('content-type') || '').split(';')[0].trim();
    const schema = rb?.content?.['application/json']?.schema;
    if (!rb) errors.push('the operation takes no body');
    else if (ct !== 'application/json') errors.push('Content-Type must be application/json');
    else {
      let parsed;
      try {
        parsed = JSON.parse(body);
      } catch (e) {
        errors.push('body is not JSON');
      }
      if (parsed !== undefined) check(schema, parsed, 'body', errors);
    }
  } else if (rb?.required) errors.push('a body is required');
  return errors;
}

// The spec's example of an operation's answer (its first one), or fallback.
function example(method, path, status, fallback) {
  const found = find(method, path);
  const c = found?.op?.responses?.[status]?.content?.['application/json'];
  const ex = c?.examples && Object.values(c.examples)[0];
  return ex?.value ?? fallback;
}

if (process.argv[2] === 'check') {
  const [, , , method, url, body, auth] = process.argv;
  const headers = {
    accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28',
    'user-agent': 'check', authorization: auth || 'Bearer x', 'content-type': 'application/json',
  };
  const errors = validate(method, url, headers, body || '');
  console.log(errors.length ? `invalid: ${errors.join('; ')}` : 'valid');
  process.exit(0);
}

const log = arg('log');
const appId = arg('app-id');
const publicKey = await importSPKI(readFileSync(arg('public-key'), 'utf8'), 'RS256');
const tokens = new Map(); // token -> {first, refused}
let issued = 0;
const seen = new Map(); // scripted first answers already given
let etag = '"deliveries-v1"';

async function authOf(path, headers, errors) {
  const bearer = (headers.authorization || '').replace(/^Bearer /, '');
  if (path.startsWith('/app/') || path === '/app') {
    try {
      const { payload, protectedHeader } = await jwtVerify(bearer, publicKey, { issuer: appId, algorithms: ['RS256'] });
      const now = Math.floor(Date.now() / 1000);
      if (protectedHeader.alg !== 'RS256') errors.push('JWT alg must be RS256');
      if (!(payload.iat <= now)) errors.push('JWT iat must be in the past');
      if (!(payload.exp - payload.iat <= 660)) errors.push('JWT lifetime over 10 minutes');
      return 'jwt';
    } catch (e) {
      let claims = {};
      try { claims = decodeJwt(bearer); } catch (_) { /* not a JWT */ }
      errors.push(`App JWT refused: ${e.code || e.message} ${JSON.stringify(claims)}`);
      return 'bad-jwt';
    }
  }
  if (!tokens.has(bearer)) {
    errors.push('unknown installation token');
    return 'bad-token';
  }
  return 'token';
}

function send(res, status, body, extra = {}) {
  const h = {
    'content-type': 'application/json; charset=utf-8',
    'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '4999',
    'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
    'x-github-api-version-selected': '2022-11-28', ...extra,
  };
  res.writeHead(status, h);
  res.end(body === null ? '' : JSON.stringify(body));
}

function once(key) {
  if (seen.has(key)) return false;
  seen.set(key, true);
  return true;
}

async function handle(req, res, body) {
  const u = new URL(req.url, `http://${req.headers.host}`);
  const path = u.pathname;
  const errors = validate(req.method, req.url, req.headers, body);
  const auth = await authOf(path, req.headers, errors);
  const entry = { t: Date.now(), method: req.method, path, query: u.search, auth, valid: errors.length === 0, errors };
  let status = 200;
  const base = `http://${req.headers.host}`;
  const reply = (st, b, extra) => { status = st; send(res, st, b, extra); };
  const bearer = (req.headers.authorization || '').replace(/^Bearer /, '');
  const now = Math.floor(Date.now() / 1000);
  if (errors.length) reply(422, { message: 'Validation Failed', errors });
  else if (req.method === 'POST' && /^\/app\/installations\/\d+\/access_tokens$/.test(path)) {
    const token = `ghs_${randomBytes(48).toString('base64url')}.${randomBytes(40).toString('hex')}`;
    tokens.set(token, { first: issued === 0, refused: false });
    issued++;
    reply(201, { ...example('POST', path, '201', {}), token,
      expires_at: new Date((now + 3600) * 1000).toISOString().replace(/\.\d+Z$/, 'Z') });
  } else if (auth === 'token' && tokens.get(bearer).first && !tokens.get(bearer).refused) {
    tokens.get(bearer).refused = true;
    reply(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
  } else if (path === '/installation/repositories') {
    const page = Number(u.searchParams.get('page') || '1');
    const names = ['repo-a', 'repo-b', 'repo-c'];
    const repo = { ...example('GET', path, '200', { repositories: [{}] }).repositories[0] };
    repo.name = names[page - 1];
    repo.full_name = `octo-org/${names[page - 1]}`;
    const links = [];
    if (page < 3) links.push(`<${base}/installation/repositories?per_page=1&page=${page + 1}>; rel="next"`);
    links.push(`<${base}/installation/repositories?per_page=1&page=3>; rel="last"`);
    reply(200, { total_count: 3, repositories: [repo] }, { link: links.join(', ') });
  } else if (path === '/repos/octo-org/repo-a/issues' && once('secondary')) {
    reply(403, { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
      { 'retry-after': '1' });
  } else if (path === '/repos/octo-org/repo-b/milestones' && once('primary')) {
    reply(403, { message: 'API rate limit exceeded for installation.' },
      { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now + 2) });
  } else if (/^\/repos\/octo-org\/repo-[abc]\/issues$/.test(path)) {
    const issues = example('GET', path, '200', []).map((i) => ({ ...i, updated_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }));
    reply(200, issues);
  } else if (/^\/repos\/octo-org\/repo-[abc]\/milestones$/.test(path)) {
    reply(200, example('GET', path, '200', []));
  } else if (path === '/app/hook/deliveries') {
    if (req.headers['if-none-match'] === etag) reply(304, null, { etag });
    else {
      const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      reply(200, [
        { id: 12345678, guid: 'failed-guid-0001', delivered_at: at, redelivery: false, duration: 0.2,
          status: 'Internal Server Error', status_code: 500, event: 'issues', action: 'opened',
          installation_id: 957387, repository_id: 1 },
        { id: 12345677, guid: 'good-guid-0002', delivered_at: at, redelivery: false, duration: 0.1,
          status: 'OK', status_code: 200, event: 'push', action: null,
          installation_id: 957387, repository_id: 1 },
      ], { etag });
    }
  } else if (/^\/app\/hook\/deliveries\/\d+\/attempts$/.test(path)) {
    reply(202, {});
  } else reply(404, { message: 'Not Found' });
  entry.status = status;
  appendFileSync(log, JSON.stringify(entry) + '\n');
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => {
      appendFileSync(log, JSON.stringify({ method: req.method, path: req.url, valid: false, errors: [String(e)] }) + '\n');
      send(res, 500, { message: String(e) });
    });
  });
});
server.listen(Number(arg('port')), '127.0.0.1', () => {
  const fd = Number(process.env.VZ_NOTIFY_FD);
  if (fd > 0) {
    writeSync(fd, '\n');
    closeSync(fd);
  }
});
