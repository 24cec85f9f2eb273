// Test authorization server: node's oidc-provider (a real OAuth 2.0 / OpenID provider) configured for
// the SMART App Launch: authorization code with PKCE S256 (required for the public client), the
// `launch` and `aud` parameters, and the launch context (`patient`, `appContext`) in the token response.
//
// The FHIR test server (sekmet) validates HS256 access tokens signed with its own secret, audience =
// its base URL, and enforces SMART scopes; it has no setting for an external issuer. So access tokens
// are issued as JWTs (resource indicators, accessTokenFormat "jwt") signed HS256 with a key the test
// shares with sekmet: the FHIR server checks every token's signature, audience, expiry and scopes.
//
// Settings come from the environment (all required): PORT, FHIR_BASE, HMAC_SECRET, CLIENT_ID,
// REDIRECT_URI, LAUNCHES (JSON: launch id -> {patient, appContext?}), STANDALONE_PATIENT.
// The interaction (login, patient choice, consent) is played by the test: it signs in "dr-test",
// takes the patient from the EHR launch (or STANDALONE_PATIENT) and grants what was asked.
import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`missing ${name}`); process.exit(2); }
  return v;
};
const PORT = Number(env('PORT'));
const ISSUER = `http://127.0.0.1:${PORT}`;
const FHIR_BASE = env('FHIR_BASE');
const SECRET = Buffer.from(env('HMAC_SECRET'), 'utf8');
const LAUNCHES = JSON.parse(env('LAUNCHES'));
const STANDALONE_PATIENT = env('STANDALONE_PATIENT');
const RESOURCE_SCOPES = 'launch launch/patient patient/*.rs patient/*.read';

const contextByGrant = new Map(); // grant id -> {patient, appContext}

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: env('CLIENT_ID'),
    token_endpoint_auth_method: 'none',
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  extraParams: ['launch', 'aud'],
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => FHIR_BASE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== FHIR_BASE) throw new Provider.errors.InvalidTarget();
        return { scope: RESOURCE_SCOPES, audience: FHIR_BASE, accessTokenFormat: 'jwt', accessTokenTTL: 600,
          jwt: { sign: { alg: 'HS256', key: SECRET } } };
      },
    },
  },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, Interaction: 600, Session: 600 },
  cookies: { keys: ['test-cookie-key-not-a-secret'] },
});
provider.proxy = false;

// The launch context goes into the token response (SMART App Launch 2.x §token response).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.access_token) {
    const grant = ctx.oidc.entities.Grant;
    const context = grant && contextByGrant.get(grant.jti);
    if (context) {
      ctx.body.patient = context.patient;
      if (context.appContext) ctx.body.appContext = context.appContext;
      ctx.body.need_patient_banner = true;
    }
  }
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: 'dr-test' } }, { mergeWithLastSubmission: false });
    return;
  }
  const launch = params.launch ? LAUNCHES[params.launch] : null;
  if (params.launch && !launch) {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'unknown launch' });
    return;
  }
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
  const requested = String(params.scope || '').split(' ').filter(Boolean);
  grant.addResourceScope(FHIR_BASE, requested.join(' '));
  if (requested.includes('openid')) grant.addOIDCScope('openid');
  const grantId = await grant.save();
  contextByGrant.set(grantId, launch || { patient: STANDALONE_PATIENT });
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => { res.statusCode = 500; res.end(String(err)); });
    return;
  }
  callback(req, res);
}).listen(PORT, '127.0.0.1', () => console.log(`authorization server ready on ${ISSUER}`));
