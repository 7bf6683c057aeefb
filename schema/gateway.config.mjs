// Hive Gateway's configuration: the hub and agencies' subgraphs behind one front door.
//
// Run from schema/ (`npx hive-gateway supergraph supergraph.graphql`); everything that differs
// between a laptop and production comes from the environment:
//
//   HUB_URL                      the hub (its JWKS, token endpoint and audit endpoint)
//   SUBGRAPH_<NAME>_URL          where each subgraph listens (else the URL it was composed with)
//   GATEWAY_CLIENT_ID/SECRET     the gateway's own OAuth client, for the audit reports
//   GATEWAY_MODE                 `production`: no GraphiQL, no introspection, trusted documents only
//   GATEWAY_RATE_LIMIT           requests per client per GATEWAY_RATE_WINDOW_SECONDS (120 / 60)
//   GATEWAY_TRUSTED_DOCUMENTS    a directory of <client_id>.json (default: trusted-documents/)
//   GATEWAY_HOST, GATEWAY_PORT   where it listens (127.0.0.1:4000)
import { createPublicKey } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createRemoteJwksSigningKeyProvider,
  defineConfig,
  extractFromHeader,
} from '@graphql-hive/gateway';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { requestIdOf, useHubAudit } from './gateway/audit.mjs';
import { useForwardedHeaders } from './gateway/forward.mjs';
import { gatewayTokenSource } from './gateway/gateway-token.mjs';
import { useClientRateLimit } from './gateway/rate-limit.mjs';
import { readSupergraph } from './gateway/supergraph-map.mjs';
import { loadTrustedDocuments, trustedDocumentsConfig } from './gateway/trusted-documents.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// The hub's signing keys as key objects, made once per key: handed a PEM text, the verifier
// parsed it into a key again for every request (a tenth of the gateway's time per request).
function asKeyObjects(provider) {
  const keys = new Map();
  return async (kid) => {
    const pem = await provider(kid);
    if (typeof pem !== 'string') return pem;
    if (!keys.has(pem)) {
      if (keys.size >= 16) keys.clear(); // rotated keys: a handful at most
      keys.set(pem, createPublicKey(pem));
    }
    return keys.get(pem);
  };
}
const env = process.env;
const hub = env.HUB_URL ?? 'http://127.0.0.1:8000';
const production = env.GATEWAY_MODE === 'production';
// No looser than the hub's own limits (HUB_MAX_QUERY_DEPTH 10, 15 aliases, 2,000 tokens).
const LIMITS = { depth: 10, aliases: 15, tokens: 2000 };
// Reference data every role may read (organisations) is not a record: the hub does not audit it.
const PUBLIC_TYPES = ['Organisation'];
// What a subgraph needs to know who asks and why, and to join the request's trace and audit.
const FORWARDED = ['authorization', 'hub-purpose', 'hub-on-behalf-of', 'traceparent', 'tracestate'];

const supergraph = readSupergraph(join(here, 'supergraph.graphql'), { publicTypes: PUBLIC_TYPES });
// The gateway's own token: with its audit reports, and with its fetches from the hub.
const gatewayToken = gatewayTokenSource({
  tokenUrl: `${hub}/oauth/token`,
  clientId: env.GATEWAY_CLIENT_ID ?? '',
  clientSecret: env.GATEWAY_CLIENT_SECRET ?? '',
});
const subgraphUrl = (name) => env[`SUBGRAPH_${name.toUpperCase()}_URL`];

function transportEntries() {
  const entries = {
    // Identical requests in flight are not merged: each client request is its own request to
    // every subgraph, audited as its own (merging made 10,150 responses 1,016 events).
    '*.http': { options: { deduplicateInflightRequests: false } },
  };
  for (const name of ['hub', 'council']) {
    if (subgraphUrl(name)) entries[name] = { location: subgraphUrl(name) };
  }
  // The hub's subscriptions go over graphql-transport-ws (the hub refuses them over HTTP), with
  // the caller's credentials in connectionParams, as a browser would send them.
  entries.hub = {
    ...entries.hub,
    options: {
      deduplicateInflightRequests: false,
      subscriptions: {
        kind: 'ws',
        location: '/graphql',
        options: {
          connectionParams: {
            authorization: '{context.headers.authorization}',
            'Hub-Purpose': '{context.headers.hub-purpose}',
            'Hub-On-Behalf-Of': '{context.headers.hub-on-behalf-of}',
          },
        },
      },
    },
  };
  return entries;
}

export const gatewayConfig = defineConfig({
  supergraph: join(here, 'supergraph.graphql'),
  host: env.GATEWAY_HOST ?? '127.0.0.1',
  port: Number(env.GATEWAY_PORT ?? 4000),
  transportEntries: transportEntries(),
  inboundInflightRequestDeduplication: false,
  // The gateway's request id (the client's X-Request-Id, else a new one) goes to every subgraph
  // and with the response's audit report: the hub's events for its part share it.
  requestId: { generateRequestId: ({ request }) => requestIdOf(request) },
  // Every operation needs a hub token the gateway verified itself (signature by the hub's JWKS,
  // issuer, audience, expiry): `@authenticated` types are never reached without one.
  jwt: {
    signingKeyProviders: [
      asKeyObjects(createRemoteJwksSigningKeyProvider({ jwksUri: `${hub}/.well-known/jwks.json` })),
    ],
    tokenLookupLocations: [extractFromHeader({ name: 'authorization', prefix: 'Bearer' })],
    tokenVerification: {
      issuer: env.HUB_ISSUER ?? hub,
      audience: env.HUB_AUDIENCE ?? 'safeguarding-hub',
      algorithms: ['RS256'],
    },
    reject: { missingToken: true, invalidToken: true },
    // Subgraphs verify the forwarded token themselves; the gateway's reading of it is not sent.
    forward: { payload: false, token: false },
  },
  // A pooled connection the subgraph closed as idle ("socket hang up") is retried once: a
  // request that never arrived. One that arrived and is retried is audited twice by the hub,
  // never less than once.
  // Only a request that got no answer: a subgraph's own 5xx (the hub's AUDIT_UNAVAILABLE, with
  // Retry-After) goes back to the client, who may retry it, rather than being sent again here.
  upstreamRetry: {
    maxRetries: 1,
    retryDelay: 50,
    shouldRetry: ({ response, executionResult }) =>
      !response && typeof executionResult?.[Symbol.asyncIterator] !== 'function',
  },
  maxDepth: LIMITS.depth,
  maxTokens: LIMITS.tokens,
  blockFieldSuggestions: true,
  graphiql: !production,
  landingPage: !production,
  ...(production ? { disableIntrospection: {} } : {}),
  persistedDocuments: trustedDocumentsConfig({
    byClient: loadTrustedDocuments(env.GATEWAY_TRUSTED_DOCUMENTS ?? join(here, 'trusted-documents')),
    production,
  }),
  plugins: (context) => [
    // To every subgraph, on every fetch (retries too): the caller's token and context.
    useForwardedHeaders({ names: FORWARDED, gatewayToken }),
    useClientRateLimit({
      max: Number(env.GATEWAY_RATE_LIMIT ?? 120),
      windowSeconds: Number(env.GATEWAY_RATE_WINDOW_SECONDS ?? 60),
    }),
    maxAliasesPlugin({ n: LIMITS.aliases }),
    useHubAudit({
      auditUrl: `${hub}/federation/audit`,
      gatewayToken,
      supergraph,
      log: context.log,
    }),
  ],
});
