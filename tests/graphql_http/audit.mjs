// Runs graphql-http's server audits (GraphQL over HTTP spec conformance) against a running hub.
//
//   HUB_AUDIT_TOKEN=<access token> node audit.mjs http://127.0.0.1:8000/graphql
//
// The URL comes from argv[2], else HUB_AUDIT_URL. The hub refuses anonymous requests, so every
// request the audits make goes through a fetch that adds the bearer token and the acting-for and
// purpose headers a council client would send (HUB_AUDIT_ON_BEHALF_OF, HUB_AUDIT_PURPOSE override
// the defaults).
//
// Output: one JSON object per audit on stdout, {id, name, status, reason}, with status `ok`,
// `notice` (MAY failed), `warn` (SHOULD failed) or `error` (MUST failed); failures also carry the
// HTTP status, content type and the start of the body, so a failure can be diagnosed from the
// log alone. Exit status is 0 whatever the audits say: tests/test_graphql_over_http.py judges.
// Exit status 2 means the audit itself could not run (bad arguments).

import { serverAudits } from 'graphql-http';

const url = process.argv[2] || process.env.HUB_AUDIT_URL;
const token = process.env.HUB_AUDIT_TOKEN;
if (!url || !token) {
  process.stderr.write('usage: HUB_AUDIT_TOKEN=<token> node audit.mjs <graphql url>\n');
  process.exit(2);
}

const hubHeaders = {
  authorization: `Bearer ${token}`,
  'hub-on-behalf-of': process.env.HUB_AUDIT_ON_BEHALF_OF || 'sw-0001',
  'hub-purpose': process.env.HUB_AUDIT_PURPOSE || 'section_47_enquiry',
};

// The audits call fetchFn(url) or fetchFn(url, init) with plain-object headers. Only the hub's
// own headers are added: anything else (notably a missing content-type, which one audit relies
// on) is left exactly as the audit built it.
async function hubFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(hubHeaders)) {
    headers.set(name, value);
  }
  return fetch(input, { ...init, headers });
}

async function describeResponse(response) {
  if (!response) return {};
  const details = {
    httpStatus: response.status,
    contentType: response.headers.get('content-type'),
  };
  try {
    // Assertions that read the body hand back a clone, so this is usually still readable.
    details.body = (await response.clone().text()).slice(0, 500);
  } catch {
    details.body = null;
  }
  return details;
}

// One at a time rather than auditServer's Promise.all: fifty-odd simultaneous requests would
// test the rate limiter rather than the protocol, and a sequential log reads in audit order.
for (const { id, name, fn } of serverAudits({ url, fetchFn: hubFetch })) {
  let line;
  try {
    const result = await fn();
    line = { id: result.id, name: result.name, status: result.status };
    if (result.status !== 'ok') {
      line.reason = result.reason;
      Object.assign(line, await describeResponse(result.response));
    }
  } catch (error) {
    // graphql-http throws (rather than returning a result) only on fatal problems, such as the
    // connection being refused; a fatal problem is reported as a failure at the audit's level.
    const status = name.startsWith('MUST') ? 'error' : name.startsWith('SHOULD') ? 'warn' : 'notice';
    const cause = error?.cause ? ` (${error.cause})` : '';
    line = { id, name, status, reason: `audit could not run: ${error}${cause}` };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
