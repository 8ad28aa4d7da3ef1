// A real OpenID provider for authgate's tests: panva's certified oidc-provider, configured
// from a JSON file and served on loopback.  tests/oidc.py writes the file, starts
// `node provider.js <config.json>`, and drives it over HTTP.
//
// The configuration file (every key but `port`, `issuer` and `secret` may be left out):
//
//   {
//     "port": 41234,                            // listens on 127.0.0.1 only
//     "issuer": "http://127.0.0.1:41234",       // or http://localhost:41234
//     "secret": "...",                          // guards /__test/*, signs the cookies
//     "keys_file": "/tmp/.../keys.json",        // signing keys, kept across restarts
//     "algs": ["RS256", "ES256"],               // a key each; RS256 PS256 ES256 EdDSA
//     "clients": [{...}],                       // oidc-provider client metadata, as is
//     "resources": {"https://api.example.test": {"scope": "read write", "alg": "RS256", "ttl": 300}},
//     "users": {"alice": {"password": "...", "claims": {"realm_access": {"roles": ["admin"]}}}}
//   }
//
// What a test can choose, beyond the configuration:
//
// - Access tokens are JWTs (RFC 9068, typ at+jwt) for the resource named by the token
//   request's `resource` parameter (RFC 8707); the client_credentials grant gets one
//   without a browser.  A token request may carry two test-only headers:
//     X-Test-Claims: {"sub": "svc", "permissions": ["read:x"]}   claims merged into the
//        access token, over the provider's own (so `exp`, `aud`, `sub` too, to mint
//        validly signed bad tokens); a null value removes the claim;
//     X-Test-Alg: ES256   the access token's signing algorithm (else the resource's).
//   A user's access tokens also carry the user's configured claims.
// - The authorization code flow requires PKCE (S256) of every client; RP-initiated logout
//   (end_session_endpoint) shows a form to confirm (POST its xsrf field and logout=yes).
// - Login is a plain HTML form (POST username and password to the form's action) that
//   checks the configured users; consent is then granted without a page, as for a
//   first-party client.  id_tokens carry the user's claims and the request's nonce.
// - POST /__test/rotate (header X-Test-Secret) puts a new key first for each algorithm:
//   new tokens carry its kid, the JWKS serves old and new.  POST /__test/retire drops
//   all but the newest key of each algorithm.  Both answer {"kids": {alg: kid}, "jwks_kids": [...]}.
//
// Rotation builds a new Provider around the new key set and swaps it in: oidc-provider
// reads its keys once, at construction.  Sessions, grants and codes live in its in-memory
// adapter, which all instances in this process share, so a rotation loses none; a restart
// loses them all (the keys file keeps the keys).
//
// Logs one line per request to stderr; exits with 0 on SIGTERM or SIGINT.
//
// package.json pins oidc-provider 8.8.1, the newest release that supports Node.js 20
// (9.x wants 22 and warns of an unsupported runtime on 20); this file runs unchanged on
// 9.13.3.

import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

// How a key for each signing algorithm is made.
const KEY_TYPES = {
  RS256: ['rsa', { modulusLength: 2048 }],
  PS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}],
};

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const algs = config.algs ?? ['RS256', 'ES256'];
const users = config.users ?? {};
const resources = config.resources ?? {};
const keysFile = config.keys_file;

function log(message) {
  process.stderr.write(`[oidc-provider ${new Date().toISOString()}] ${message}\n`);
}

// The provider's own in-memory store (one per process, shared by every Provider built
// here), chosen on purpose: named, it does not warn at each start that state is lost on
// restart, which is what the tests want.
class InMemoryStore extends MemoryAdapter {}

// -- keys ------------------------------------------------------------------------------

function generateKey(alg) {
  if (!(alg in KEY_TYPES)) {
    throw new Error(`no key type for ${alg}: use one of ${Object.keys(KEY_TYPES).join(', ')}`);
  }
  const [type, options] = KEY_TYPES[alg];
  const { privateKey } = generateKeyPairSync(type, options);
  const kid = `${alg}-${randomBytes(6).toString('base64url')}`;
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

function loadKeys() {
  if (keysFile && existsSync(keysFile)) {
    return JSON.parse(readFileSync(keysFile, 'utf8')).keys;
  }
  return algs.map(generateKey);
}

function saveKeys(keys) {
  if (!keysFile) return;
  // write then rename, so a crash never leaves half a key file for the next start
  writeFileSync(`${keysFile}.tmp`, JSON.stringify({ keys }), { mode: 0o600 });
  renameSync(`${keysFile}.tmp`, keysFile);
}

// oidc-provider signs with the first key that fits an algorithm: the newest comes first.
function newestKids(keys) {
  const kids = {};
  for (const key of keys) kids[key.alg] ??= key.kid;
  return kids;
}

// -- the provider ----------------------------------------------------------------------

function testClaims(ctx) {
  const header = ctx.get('x-test-claims');
  if (!header) return {};
  try {
    return JSON.parse(header);
  } catch {
    throw new errors.InvalidRequest('X-Test-Claims is not JSON');
  }
}

function page(title, body) {
  const safeTitle = escapeHtml(title);
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${safeTitle}</title></head>\n<body><h1>${safeTitle}</h1>\n${body}\n</body></html>\n`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Every claim a user has is released under the openid scope, so it reaches the id_token
// and userinfo whatever else the client asks for.
const userClaimNames = [...new Set(Object.values(users).flatMap((u) => Object.keys(u.claims ?? {})))];

function configuration(keys) {
  return {
    adapter: InMemoryStore,
    clients: structuredClone(config.clients ?? []),
    jwks: { keys: structuredClone(keys) },
    cookies: { keys: [config.secret] },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: { openid: ['sub', ...userClaimNames.filter((name) => name !== 'sub')] },
    // the id_token carries the user's claims even when an access token comes with it
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.body = page('Sign out', `${form}\n<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
        },
        postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        // a code exchanged without `resource` still gets the resource the user granted
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator) {
          const resource = resources[indicator];
          if (!resource) {
            throw new errors.InvalidTarget(`unknown resource ${indicator}: configure it under "resources"`);
          }
          const alg = ctx.get('x-test-alg') || resource.alg || 'RS256';
          if (!algs.includes(alg)) {
            throw new errors.InvalidRequest(`no ${alg} signing key: the provider has ${algs.join(', ')}`);
          }
          return {
            scope: resource.scope ?? '',
            accessTokenTTL: resource.ttl ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    async findAccount(ctx, sub) {
      const user = users[sub];
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ ...user.claims, sub }) };
    },
    async extraTokenClaims(ctx, token) {
      const user = token.accountId ? users[token.accountId] : undefined;
      return { ...user?.claims, ...testClaims(ctx) };
    },
    formats: {
      customizers: {
        // the provider writes sub, aud, exp... after extraTokenClaims: the test's win
        jwt(ctx, token, jwt) {
          for (const [name, value] of Object.entries(testClaims(ctx))) {
            if (value === null) delete jwt.payload[name];
            else jwt.payload[name] = value;
          }
        },
      },
    },
    ttl: {
      AccessToken: 300,
      AuthorizationCode: 60,
      ClientCredentials: 300,
      IdToken: 300,
      Interaction: 600,
      Grant: 3600,
      Session: 3600,
      RefreshToken: 3600,
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      const lines = Object.entries(out).map(([k, v]) => `<p>${escapeHtml(k)}: ${escapeHtml(v)}</p>`);
      ctx.body = page('Error', lines.join('\n'));
    },
  };
}

function buildProvider(keys) {
  const provider = new Provider(config.issuer, configuration(keys));
  provider.on('server_error', (ctx, err) => log(`server_error ${ctx.method} ${ctx.path}: ${err.stack}`));
  provider.on('grant.error', (ctx, err) => log(`grant.error: ${err.message} (${err.error_description ?? ''})`));
  return { provider, handle: provider.callback() };
}

let keys = loadKeys();
saveKeys(keys);
let current = buildProvider(keys);

// -- the login form and automatic consent ----------------------------------------------

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function loginPage(uid, clientId, error) {
  const message = error ? `<p class="error">${escapeHtml(error)}</p>\n` : '';
  return page(`Sign in to ${clientId}`, `${message}<form method="post" action="/interaction/${uid}/login">
<label>Username <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
}

function samePassword(given, expected) {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected ?? '');
  return a.length === b.length && timingSafeEqual(a, b);
}

async function interaction(req, res, action) {
  const { provider } = current;
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, grantId, session } = details;

  if (prompt.name === 'login') {
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const username = form.get('username') ?? '';
      const user = Object.hasOwn(users, username) ? users[username] : undefined;
      if (user && samePassword(form.get('password'), user.password)) {
        log(`login ${username}`);
        await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
        return;
      }
      send(res, 200, 'text/html; charset=utf-8', loginPage(uid, params.client_id, 'Invalid username or password.'));
      return;
    }
    send(res, 200, 'text/html; charset=utf-8', loginPage(uid, params.client_id));
    return;
  }

  if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const consent = { grantId: await grant.save() };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
    return;
  }

  send(res, 400, 'text/plain', `unexpected prompt ${prompt.name}`);
}

// -- test controls ---------------------------------------------------------------------

function control(req, res, action) {
  if (req.method !== 'POST' || !samePassword(req.headers['x-test-secret'], config.secret)) {
    send(res, 403, 'text/plain', 'POST with the X-Test-Secret header');
    return;
  }
  if (action === 'rotate') {
    keys = [...algs.map(generateKey), ...keys];
  } else if (action === 'retire') {
    const newest = new Set(Object.values(newestKids(keys)));
    keys = keys.filter((key) => newest.has(key.kid));
  } else {
    send(res, 404, 'text/plain', 'no such control: rotate, retire');
    return;
  }
  saveKeys(keys);
  current = buildProvider(keys);
  const answer = { kids: newestKids(keys), jwks_kids: keys.map((key) => key.kid) };
  log(`${action}: signing with ${JSON.stringify(answer.kids)}`);
  send(res, 200, 'application/json', JSON.stringify(answer));
}

// -- the server ------------------------------------------------------------------------

const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, config.issuer);
  res.on('finish', () => log(`${req.method} ${pathname} ${res.statusCode}`));
  const interactionPath = /^\/interaction\/[^/]+(?:\/(login))?$/.exec(pathname);
  const controlPath = /^\/__test\/([a-z]+)$/.exec(pathname);
  if (interactionPath) {
    interaction(req, res, interactionPath[1]).catch((err) => {
      log(`interaction failed: ${err.stack}`);
      if (!res.headersSent) send(res, 400, 'text/plain', `interaction failed: ${err.message}`);
    });
  } else if (controlPath) {
    control(req, res, controlPath[1]);
  } else {
    current.handle(req, res);
  }
});

function shutdown(signal) {
  log(`${signal}: stopping`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.on('error', (err) => {
  log(`cannot listen on 127.0.0.1:${config.port}: ${err.message}`);
  process.exit(1);
});
server.listen(config.port, '127.0.0.1', () => {
  log(`listening on 127.0.0.1:${config.port} as ${config.issuer}, signing with ${JSON.stringify(newestKids(keys))}`);
});
