// A real OpenID Provider (npm oidc-provider) for the cmts tests, on loopback:
// node op.mjs NODE_MODULES CONFIG_JSON. It prints one JSON line
// {"issuer": ...} when it listens. On stdin, the line "rotate" makes it sign
// with a new RSA key (the old one stays published, as a provider rotating its
// keys does) and answers {"kid": ...}.
//
// CONFIG_JSON: {"audience": "cmts", "ttl": 300, "clients": [client metadata
// plus cmts_scopes, cmts_roles, cmts_tenant, patient and nbf_offset (seconds added to nbf,
// for not-yet-valid tokens), expired_for (tokens dated back so that they expired
// that many seconds before they were issued) and audience (instead of the
// configured one)]}.
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';

const [modules, configFile] = process.argv.slice(2);
const { default: Provider } = await import(path.join(modules, 'oidc-provider', 'lib', 'index.js'));
const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
const audience = config.audience || 'cmts';

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  jwk.kid = crypto.randomBytes(8).toString('hex');
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return jwk;
}

// The SMART scopes a client may be granted are its cmts_scopes (space-separated;
// a client's `scope` may only name the provider's own OpenID scopes).
const clientMeta = ['cmts_scopes', 'cmts_roles', 'cmts_tenant', 'patient', 'nbf_offset', 'expired_for', 'audience'];

function build(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys },
    cookies: { keys: ['cmts-test-cookie-key'] },
    scopes: ['openid', 'offline_access', 'launch', 'launch/patient', 'fhirUser'],
    // SMART's OpenID Connect profile: the fhirUser scope puts the user's FHIR
    // resource in the id_token. The dev login's user name stands for a Patient id.
    claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub, fhirUser: `Patient/${sub}` }; } };
    },
    extraClientMetadata: { properties: clientMeta },
    pkce: { required: () => true },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A resource indicator must be an absolute URI; the token's `aud` is
        // the configured audience (or the client's own, for wrong-audience tests).
        defaultResource: () => 'urn:cmts:fhir',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, client) => ({
          scope: client.cmts_scopes || '',
          audience: client.audience || audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: config.ttl || 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    async extraTokenClaims(ctx, token) {
      const client = await provider.Client.find(token.clientId);
      const claims = {};
      if (client.cmts_roles) claims.cmts_roles = client.cmts_roles;
      if (client.cmts_tenant) claims.cmts_tenant = client.cmts_tenant;
      if (client.patient) claims.patient = client.patient;
      else if (token.accountId && token.grantId) {
        // launch/patient asked for: the dev login's user name stands for the
        // patient in context.
        const grant = await provider.Grant.find(token.grantId);
        if (grant && String(grant.getOIDCScope() || '').split(' ').includes('launch/patient')) {
          claims.patient = token.accountId;
        }
      }
      return claims;
    },
    formats: {
      customizers: {
        async jwt(ctx, token, jwt) {
          const client = await provider.Client.find(token.clientId);
          if (client?.expired_for) {
            // Signed now, dated as if issued a lifetime plus expired_for ago.
            const back = jwt.payload.exp - jwt.payload.iat + client.expired_for;
            jwt.payload.iat -= back;
            jwt.payload.exp -= back;
          }
          jwt.payload.nbf = jwt.payload.iat + (client?.nbf_offset || 0);
          return jwt;
        },
      },
    },
  });
  // SMART apps read the launch context from the token response too.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.body && ctx.body.access_token) {
      const claims = JSON.parse(Buffer.from(ctx.body.access_token.split('.')[1], 'base64url'));
      if (claims.patient) ctx.body.patient = claims.patient;
    }
  });
  return provider;
}

let keys = [newKey()];
let handler;
const server = http.createServer((req, res) => handler(req, res));
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  handler = build(issuer, keys).callback();
  console.log(JSON.stringify({ issuer, kid: keys[0].kid }));
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'rotate') {
      keys = [newKey(), ...keys];
      handler = build(issuer, keys).callback();
      console.log(JSON.stringify({ kid: keys[0].kid }));
    }
  }).on('close', () => process.exit(0));
});
