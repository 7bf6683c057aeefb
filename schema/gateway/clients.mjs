// Which client a request comes from, for keying limits and choosing its trusted documents.
//
// Read from the bearer token's `client_id` claim without verifying it: the JWT plugin verifies
// every token against the hub's JWKS before anything executes, so a forged claim buys nothing
// but a refusal. Verification stays in one place (the JWT plugin), this only routes.
export function clientIdOf(request) {
  const authorization = request.headers.get('authorization') ?? '';
  const [scheme, token] = authorization.split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) return null;
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    return typeof payload.client_id === 'string' ? payload.client_id : null;
  } catch {
    return null;
  }
}
