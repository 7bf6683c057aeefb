// Per-client rate limit at the front door: a fixed window per client, 429 with Retry-After.
//
// The gateway's built-in `rateLimiting` counts per root field and keys on the raw Authorization
// header (a client's fresh token every ten minutes would reset its count) and sends Retry-After
// in milliseconds; a client's requests are what the hub's agreement with it limits, so this
// counts requests by the token's client and answers before any parsing or subgraph call.
import { clientIdOf } from './clients.mjs';

export function useClientRateLimit({ max, windowSeconds }) {
  const windows = new Map(); // client -> { started, count }
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (!url.pathname.endsWith('/graphql')) return;
      const client =
        clientIdOf(request) ?? request.headers.get('x-forwarded-for') ?? 'anonymous';
      const now = Date.now();
      let window = windows.get(client);
      if (!window || now - window.started >= windowSeconds * 1000) {
        window = { started: now, count: 0 };
        windows.set(client, window);
      }
      window.count += 1;
      if (window.count <= max) return;
      const retryAfter = Math.max(1, Math.ceil((window.started + windowSeconds * 1000 - now) / 1000));
      endResponse(
        new fetchAPI.Response(
          JSON.stringify({
            errors: [
              {
                message: `rate limit of ${max} requests per ${windowSeconds} s exceeded: retry later`,
                extensions: { code: 'RATE_LIMITED' },
              },
            ],
          }),
          {
            status: 429,
            headers: { 'content-type': 'application/json', 'retry-after': String(retryAfter) },
          },
        ),
      );
    },
  };
}
