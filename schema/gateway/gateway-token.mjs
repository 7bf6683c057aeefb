// The gateway's own access token, to report responses to the hub's audit and to prove its fetches
// from the hub: the client-credentials grant with the gateway's client (named in the hub's
// HUB_FEDERATION_GATEWAY_CLIENTS), renewed a minute before it expires. One request for it at a
// time: the requests arriving together at start-up share it (each grant checks the secret's hash,
// which the hub makes deliberately slow).
export function gatewayTokenSource({ tokenUrl, clientId, clientSecret }) {
  let token = null;
  let renewAt = 0;
  let pending = null;

  async function fetchToken() {
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
  }

  return async function gatewayToken() {
    if (token && Date.now() < renewAt) return token;
    pending ??= fetchToken().finally(() => {
      pending = null;
    });
    return pending;
  };
}
