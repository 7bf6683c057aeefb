// The gateway's own access token, to report responses to the hub's audit: the client-credentials
// grant with the gateway's client (named in the hub's HUB_FEDERATION_GATEWAY_CLIENTS), renewed a
// minute before it expires.
export function gatewayTokenSource({ tokenUrl, clientId, clientSecret }) {
  let token = null;
  let renewAt = 0;
  return async function gatewayToken() {
    if (token && Date.now() < renewAt) return token;
    const response = await fetch(tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    if (!response.ok) throw new Error(`gateway token refused: HTTP ${response.status}`);
    const body = await response.json();
    token = body.access_token;
    renewAt = Date.now() + Math.max(0, (body.expires_in - 60) * 1000);
    return token;
  };
}
