// The audit plugin's decisions that no real plan reaches: run with `node --test` (from pytest,
// tests/test_gateway_plugin.py, so CI runs them).
//
// Hive's planner never asks another subgraph for a query that `servedByOneGraph` gave to the hub
// alone, so the safety net that withholds such a response cannot be reached through the gateway;
// here the plugin's hooks are driven directly, with the real supergraph and a real HTTP server
// standing in for the hub's report endpoint.
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildSchema, parse } from 'graphql';
import { fetchedFor, servedByOneGraph, useHubAudit } from './audit.mjs';
import { readSupergraph } from './supergraph-map.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const supergraphPath = join(here, '..', 'supergraph.graphql');
const supergraph = readSupergraph(supergraphPath, { publicTypes: ['Organisation'] });
// The supergraph's own types (join directives and all): what the plugin reads types and fields of.
const schema = buildSchema(readFileSync(supergraphPath, 'utf8'), { assumeValidSDL: true });

const HUB_ONLY = parse(
  'query Page { incidents(first: 2) { edges { node { id children { child { id givenName } } } } } }',
);
const CROSS = parse(
  'query Both { incidents(first: 2) { edges { node { id children { child { allocatedSocialWorker } } } } } }',
);

describe('servedByOneGraph', () => {
  test('a query of the hub fields alone is the hub alone', () => {
    assert.equal(servedByOneGraph(schema, HUB_ONLY, 'Page', 'hub', supergraph), true);
  });
  test('a field another subgraph resolves takes the query off the hub alone', () => {
    assert.equal(servedByOneGraph(schema, CROSS, 'Both', 'hub', supergraph), false);
  });
  test('the same field through a fragment is found too', () => {
    const spread = parse(
      'query F { incidents { edges { node { children { child { ...C } } } } } }' +
        ' fragment C on Child { allocatedSocialWorker }',
    );
    assert.equal(servedByOneGraph(schema, spread, 'F', 'hub', supergraph), false);
  });
  test('a mutation is never the hub alone (it is reported)', () => {
    const mutation = parse('mutation M { acknowledge(recordType: "incident", id: "x") { __typename } }');
    assert.equal(servedByOneGraph(schema, mutation, 'M', 'hub', supergraph), false);
  });
});

describe('a response planned for the hub alone', () => {
  let server;
  let reports;
  let auditUrl;
  before(async () => {
    reports = [];
    server = http.createServer((request, response) => {
      const chunks = [];
      request.on('data', (chunk) => chunks.push(chunk));
      request.on('end', () => {
        reports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ written: true }));
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    auditUrl = `http://127.0.0.1:${server.address().port}/federation/audit`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  // The plugin's onExecute and onExecuteDone for one request, with the fetches it made.
  async function served(fetches) {
    const plugin = useHubAudit({ auditUrl, gatewayToken: async () => 'gateway-token', supergraph });
    const request = new Request('http://gateway.test/graphql', {
      headers: { authorization: 'Bearer caller' },
    });
    const args = { schema, document: HUB_ONLY, operationName: 'Page', contextValue: { request } };
    const hooks = plugin.onExecute({
      args,
      executeFn: () => assert.fail('not replaced'),
      setExecuteFn: () => assert.fail('the hub alone runs the plan unchanged'),
    });
    for (const graph of fetches) assert.equal(fetchedFor(request, graph, 'hub'), true);
    const result = { data: { incidents: { edges: [] } } };
    let released;
    await hooks.onExecuteDone({
      result,
      setResult: (value) => {
        released = value;
      },
    });
    return { result, released };
  }

  test('fetched from the hub only: released as the hub served it, with no report', async () => {
    const before = reports.length;
    const { result, released } = await served(['hub']);
    assert.equal(released, result);
    assert.equal(reports.length, before);
  });

  test('fetched from another subgraph after all: withheld, AUDIT_UNAVAILABLE and no data', async () => {
    const before = reports.length;
    const { released } = await served(['hub', 'council']);
    assert.equal(released.data, undefined);
    assert.equal(released.errors.length, 1);
    assert.equal(released.errors[0].extensions.code, 'AUDIT_UNAVAILABLE');
    assert.equal(reports.length, before, 'nothing is reported for a response that is withheld');
  });

  test('no fetch at all: reported like any response before it is released', async () => {
    const before = reports.length;
    const { result, released } = await served([]);
    assert.deepEqual(released, result);
    assert.equal(reports.length, before + 1);
    assert.equal(reports.at(-1).operationName, 'Page');
    assert.equal(reports.at(-1).caller.authorization, 'Bearer caller');
  });

  test('a request the plugin did not plan for the hub alone is not counted', () => {
    const request = new Request('http://gateway.test/graphql');
    assert.equal(fetchedFor(request, 'council', 'hub'), false);
  });
});
