// A SMART app on the Node API of npm fhirclient, for the standalone-launch
// test: node smartapp.mjs NODE_MODULES. It listens on loopback and prints one
// JSON line {"app": URL}; then it reads one JSON line on stdin,
// {"iss": FHIR base, "clientId": ..., "scope": ...}, and answers {"ready": true}.
//
// GET /launch starts a standalone launch (fhirclient's authorize: the
// endpoints from the server's .well-known/smart-configuration, then a redirect
// to the authorization endpoint, PKCE required). GET /callback is the redirect
// URI: fhirclient's ready() redeems the code with its code_verifier at the
// token endpoint, then the app reads the patient in context, that patient's
// Observations and the signed-in user (fhirUser) from the FHIR server with
// the access token, and
// answers with a JSON report of what it saw. Any failure answers 500 with
// {"error": ...}. The launch state lives in a cookie session, as in an
// Express app with express-session.
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const [modules] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const smart = require(path.join(modules, 'fhirclient'));

let config;
const sessions = new Map();

// session gives req the session its cookie names, or a new one.
function session(req, res) {
  const m = /(?:^|;\s*)sid=([0-9a-f]{32})(?:;|$)/.exec(req.headers.cookie || '');
  let sid = m && sessions.has(m[1]) ? m[1] : null;
  if (!sid) {
    sid = crypto.randomBytes(16).toString('hex');
    sessions.set(sid, {});
    res.setHeader('Set-Cookie', `sid=${sid}; Path=/; HttpOnly`);
  }
  req.session = sessions.get(sid);
}

async function handle(req, res) {
  session(req, res);
  const { pathname } = new URL(req.url, 'http://app');
  if (pathname === '/launch') {
    // Redirects the browser to the authorization endpoint.
    await smart(req, res).authorize({
      iss: config.iss,
      clientId: config.clientId,
      scope: config.scope,
      redirectUri: '/callback',
      pkceMode: 'required',
    });
    return;
  }
  if (pathname === '/callback') {
    const client = await smart(req, res).ready();
    const st = client.state;
    const patient = await client.patient.read();
    const observations = await client.patient.request('Observation');
    // openid fhirUser: the signed-in user's own resource, named in the id_token.
    const user = await client.user.read();
    const report = {
      serverUrl: st.serverUrl,
      authorizeUri: st.authorizeUri,
      tokenUri: st.tokenUri,
      codeChallengeMethods: st.codeChallengeMethods,
      codeChallenge: st.codeChallenge,
      codeVerifier: st.codeVerifier,
      patientId: client.getPatientId(),
      fhirUser: client.getFhirUser(),
      tokenResponse: st.tokenResponse,
      authorization: client.getAuthorizationHeader(),
      patient,
      observations,
      user,
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(report));
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'no such page' }));
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    const status = e.status || (e.response && e.response.status);
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: String(e.message || e), status }));
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ app: `http://127.0.0.1:${server.address().port}` }));
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    config = JSON.parse(line);
    console.log(JSON.stringify({ ready: true }));
  });
  // The test closes stdin to stop the app.
  lines.on('close', () => process.exit(0));
});
