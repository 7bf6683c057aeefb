// What every subgraph needs to know who asks and why, set on each fetch to it, retries included.
//
// Hive Gateway's `propagateHeaders` hands headers to the HTTP executor in the request's
// extensions, which the executor removes on the first attempt: a fetch retried after a dropped
// pooled connection then went without the caller's token (the hub answered UNAUTHENTICATED,
// `missing_token`). Here the headers are read from the client's request at every fetch.
import { fetchedFor, hubFetchHeaders } from './audit.mjs';

export function useForwardedHeaders({ names, hubSubgraph = 'hub', gatewayToken }) {
  return {
    async onFetch({ executionRequest, options, setOptions }) {
      const request = executionRequest?.context?.request;
      if (!request) return;
      const headers = { ...(options.headers ?? {}) };
      for (const name of names) {
        const value = request.headers.get(name);
        if (value) headers[name] = value;
      }
      // The hub holds its part's audit for this response's report: one append per response;
      // a response the hub alone serves is not reported, and the hub audits its fetch at once.
      const alone = fetchedFor(request, executionRequest.subgraphName, hubSubgraph);
      if (executionRequest.subgraphName === hubSubgraph) {
        Object.assign(headers, await hubFetchHeaders(request, gatewayToken, { reported: !alone }));
      }
      setOptions({ ...options, headers });
    },
  };
}
