// One audit event per client response, from whichever subgraphs served it, before it leaves.
//
// The operation is executed with two aliased fields added where a record can appear
// (`_hubAuditTypename: __typename`, and `_hubAuditId: id` on each record type), so the final
// result says, for every record the caller receives, its type and id; the fields the caller
// receives are read from the result against the caller's own document. The gateway then reports
// them (with the caller's own token, purpose and person, for the hub to verify) to the hub's
// `POST /federation/audit`, and releases the response, without the added fields, only when the
// hub answers that the event is written. Otherwise the caller gets AUDIT_UNAVAILABLE and no data.
// No subgraph is asked to do anything, so none can forget.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import {
  GraphQLError,
  getNamedType,
  getOperationAST,
  isAbstractType,
  isCompositeType,
  isObjectType,
  Kind,
} from 'graphql';

const TYPENAME = '_hubAuditTypename';
const ID = '_hubAuditId';
const ADDED = new Set([TYPENAME, ID]);
// A GraphQLError, not a plain object: the gateway masks anything else as "Unexpected error".
function failed() {
  return {
    errors: [
      new GraphQLError('the audit log could not be written: nothing was served', {
        extensions: { code: 'AUDIT_UNAVAILABLE' },
      }),
    ],
  };
}

// The request id the gateway gives a client request (its requestId plugin sends it to every
// subgraph as X-Request-Id), so the hub's events for its own part share it with the response's.
export const requestIds = new WeakMap();

export function requestIdOf(request) {
  let id = requestIds.get(request);
  if (!id) {
    id = request.headers.get('x-request-id') || randomUUID();
    requestIds.set(request, id);
  }
  return id;
}

// The id of a client request's report, made here (never the client's): sent with the gateway's
// own token to the hub with each fetch (`hubFetchHeaders`) and in the report, so the hub holds
// its fetches' events for the report and writes them in its one append, one event per response.
const reportIds = new WeakMap();

export function reportIdOf(request) {
  let id = reportIds.get(request);
  if (!id) {
    id = randomUUID();
    reportIds.set(request, id);
  }
  return id;
}

// A client request the hub alone serves (`servedByOneGraph`): no report, so its one fetch to
// the hub goes without a report id, and the hub audits that fetch at once, before it answers,
// as a direct read (marked as the gateway's by the gateway's token). What the request fetched
// from each subgraph is counted here (`forward.mjs`), so that if any other subgraph was asked
// after all, nothing the request fetched is released (`audited` below).
const hubAlone = new WeakMap(); // request -> { hub: fetches, others: fetches }

export function fetchedFor(request, subgraphName, hubSubgraph) {
  const counts = hubAlone.get(request);
  if (!counts) return false;
  if (subgraphName === hubSubgraph) counts.hub += 1;
  else counts.others += 1;
  return true;
}

// Only to the hub (it alone reads them): another agency's subgraph never sees the gateway's token.
// `reported`: the response will be reported (else the hub audits the fetch itself, at once).
export async function hubFetchHeaders(request, gatewayToken, { reported = true } = {}) {
  const headers = { 'hub-gateway-authorization': `Bearer ${await gatewayToken()}` };
  if (reported) headers['hub-gateway-report'] = reportIdOf(request);
  return headers;
}

// Whether one graph alone serves every field an operation selects (a query only): each field is
// one that graph resolves on its own (not another's @external, no @requires, not overridden),
// and each type condition one of its types. The planner then asks that graph once, for all of it.
const oneGraphAnswers = new WeakMap(); // document -> Map(operationName -> boolean)

export function servedByOneGraph(schema, document, operationName, graph, { resolvedBy, typeGraphNames }) {
  let byName = oneGraphAnswers.get(document);
  if (!byName) {
    byName = new Map();
    oneGraphAnswers.set(document, byName);
  }
  const key = operationName ?? '';
  let answer = byName.get(key);
  if (answer === undefined) {
    answer = onlyFrom(schema, document, operationName, graph, resolvedBy, typeGraphNames);
    byName.set(key, answer);
  }
  return answer;
}

function onlyFrom(schema, document, operationName, graph, resolvedBy, typeGraphNames) {
  const operation = getOperationAST(document, operationName);
  if (!operation || operation.operation !== 'query') return false;
  const fragments = {};
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  }
  const visiting = new Set();
  const ownType = (name) => typeGraphNames.get(name)?.has(graph) ?? false;
  function check(selectionSet, type) {
    if (!type || !ownType(type.name)) return false;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name.startsWith('__')) continue;
        if (!resolvedBy.get(`${type.name}.${name}`)?.has(graph)) return false;
        if (selection.selectionSet) {
          const definition = type.getFields?.()[name];
          if (!definition || !check(selection.selectionSet, getNamedType(definition.type))) return false;
        }
      } else {
        const fragment =
          selection.kind === Kind.INLINE_FRAGMENT ? selection : fragments[selection.name.value];
        if (!fragment) return false;
        if (selection.kind === Kind.FRAGMENT_SPREAD) {
          if (visiting.has(fragment)) continue;
          visiting.add(fragment);
        }
        const condition = fragment.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
        if (!check(fragment.selectionSet, condition)) return false;
      }
    }
    return true;
  }
  return check(operation.selectionSet, schema.getRootType('query'));
}

function field(name, alias) {
  return {
    kind: Kind.FIELD,
    alias: { kind: Kind.NAME, value: alias },
    name: { kind: Kind.NAME, value: name },
  };
}

function recordTypesIn(schema, type, auditedTypes) {
  const possible = isAbstractType(type) ? schema.getPossibleTypes(type) : [type];
  return possible.filter((t) => auditedTypes.has(t.name) && t.getFields().id);
}

// The augmented document for each document the gateway parsed (its parser caches them by text),
// per schema: made once, so the query planner, which caches plans by document, plans it once too.
const augmentedDocuments = new WeakMap();

function cachedWithRecordIdentity(schema, document, auditedTypes) {
  let bySchema = augmentedDocuments.get(document);
  if (!bySchema) {
    bySchema = new WeakMap();
    augmentedDocuments.set(document, bySchema);
  }
  let augmented = bySchema.get(schema);
  if (!augmented) {
    augmented = withRecordIdentity(schema, document, auditedTypes);
    bySchema.set(schema, augmented);
  }
  return augmented;
}

// The caller's document with the fields that identify each record added (aliased, stripped later).
export function withRecordIdentity(schema, document, auditedTypes) {
  function augment(selectionSet, type) {
    if (!selectionSet || !isCompositeType(type)) return selectionSet;
    const selections = selectionSet.selections.map((selection) => {
      if (selection.kind === Kind.FIELD) {
        if (!selection.selectionSet || selection.name.value.startsWith('__')) return selection;
        const definition = type.getFields?.()[selection.name.value];
        return definition
          ? { ...selection, selectionSet: augment(selection.selectionSet, getNamedType(definition.type)) }
          : selection;
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition
          ? schema.getType(selection.typeCondition.name.value)
          : type;
        return { ...selection, selectionSet: augment(selection.selectionSet, condition) };
      }
      return selection; // a spread: its definition is augmented on its own
    });
    const records = recordTypesIn(schema, type, auditedTypes);
    if (records.length || isAbstractType(type)) selections.push(field('__typename', TYPENAME));
    for (const record of records) {
      selections.push({
        kind: Kind.INLINE_FRAGMENT,
        typeCondition: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: record.name } },
        selectionSet: { kind: Kind.SELECTION_SET, selections: [field('id', ID)] },
      });
    }
    return { ...selectionSet, selections };
  }
  return {
    ...document,
    definitions: document.definitions.map((definition) => {
      if (definition.kind === Kind.OPERATION_DEFINITION) {
        const root = schema.getRootType(definition.operation);
        return { ...definition, selectionSet: augment(definition.selectionSet, root) };
      }
      if (definition.kind === Kind.FRAGMENT_DEFINITION) {
        const condition = schema.getType(definition.typeCondition.name.value);
        return { ...definition, selectionSet: augment(definition.selectionSet, condition) };
      }
      return definition;
    }),
  };
}

function applies(schema, condition, runtime) {
  if (!condition) return true;
  const type = schema.getType(condition.name.value);
  if (!type || !runtime) return false;
  return type === runtime || (isAbstractType(type) && schema.isSubType(type, runtime));
}

// Every record in the result: its type, id, and the fields received, grouped by subgraph.
export function recordsIn(schema, document, operationName, data, { fieldGraphs, auditedTypes }) {
  const fragments = {};
  let operation;
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
    if (d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName)) {
      operation ??= d;
    }
  }
  const found = [];
  function walk(value, selectionSet, type) {
    if (value == null || !selectionSet) return;
    if (Array.isArray(value)) {
      for (const item of value) walk(item, selectionSet, type);
      return;
    }
    if (typeof value !== 'object') return;
    const runtime = value[TYPENAME] ? schema.getType(value[TYPENAME]) : type;
    const received = new Set();
    function visitSelections(set) {
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) {
          const key = selection.alias?.value ?? selection.name.value;
          const name = selection.name.value;
          if (!(key in value) || ADDED.has(key) || name.startsWith('__')) continue;
          received.add(name);
          const definition = runtime?.getFields?.()[name];
          if (definition && selection.selectionSet) {
            walk(value[key], selection.selectionSet, getNamedType(definition.type));
          }
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          if (applies(schema, selection.typeCondition, runtime)) visitSelections(selection.selectionSet);
        } else if (selection.kind === Kind.FRAGMENT_SPREAD) {
          const fragment = fragments[selection.name.value];
          if (fragment && applies(schema, fragment.typeCondition, runtime)) {
            visitSelections(fragment.selectionSet);
          }
        }
      }
    }
    visitSelections(selectionSet);
    if (isObjectType(runtime) && auditedTypes.has(runtime.name) && value[ID] != null) {
      const fields = {};
      for (const name of received) {
        for (const graph of fieldGraphs.get(`${runtime.name}.${name}`) ?? ['gateway']) {
          (fields[graph] ??= []).push(name);
        }
      }
      found.push({ type: runtime.name, id: String(value[ID]), fields });
    }
  }
  if (operation) walk(data, operation.selectionSet, schema.getRootType(operation.operation));
  return found;
}

function stripped(value) {
  if (Array.isArray(value)) return value.map(stripped);
  if (value === null || typeof value !== 'object') return value;
  const copy = {};
  for (const [key, item] of Object.entries(value)) {
    if (!ADDED.has(key)) copy[key] = stripped(item);
  }
  return copy;
}

// The report is posted with node's own HTTP client over kept-alive connections: the global
// fetch (undici) cost the gateway more per report than building the report did.
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const REPORT_TIMEOUT_MS = 10_000;

async function post(url, authorization, payload) {
  const body = JSON.stringify(payload);
  try {
    return await postOnce(url, authorization, body);
  } catch (error) {
    // A kept-alive connection the hub had just closed as idle: the report never arrived there.
    if (error?.reusedSocket && error.code === 'ECONNRESET') return postOnce(url, authorization, body);
    throw error;
  }
}

function postOnce(url, authorization, body) {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const outgoing = client.request(
      target,
      {
        method: 'POST',
        agent: agents[target.protocol],
        timeout: REPORT_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization,
        },
      },
      (incoming) => {
        const chunks = [];
        incoming.on('data', (chunk) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () => {
          let parsed = null;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // not JSON: not a confirmation
          }
          resolve({ status: incoming.statusCode, body: parsed });
        });
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('audit report timed out')));
    outgoing.on('error', (error) => {
      error.reusedSocket = outgoing.reusedSocket;
      reject(error);
    });
    outgoing.end(body);
  });
}

export function useHubAudit({ auditUrl, gatewayToken, supergraph, log, hubSubgraph = 'hub' }) {
  async function report(request, operation, records) {
    const caller = {
      authorization: request.headers.get('authorization'),
      purpose: request.headers.get('hub-purpose'),
      onBehalfOf: request.headers.get('hub-on-behalf-of'),
    };
    const response = await post(auditUrl, `Bearer ${await gatewayToken()}`, {
      caller,
      requestId: requestIdOf(request),
      reportId: reportIdOf(request),
      operationName: operation?.name?.value ?? null,
      operationType: operation?.operation ?? null,
      records,
    });
    return response.status === 200 && response.body?.written === true;
  }

  async function audited(args, result) {
    const request = args.contextValue?.request;
    if (!request) return failed();
    try {
      const records = result.data
        ? recordsIn(args.schema, args.document, args.operationName, result.data, supergraph)
        : [];
      if (await report(request, getOperationAST(args.document, args.operationName), records)) {
        return { ...result, ...(result.data ? { data: stripped(result.data) } : {}) };
      }
      log?.warn?.('hub audit refused the report: response withheld');
    } catch (error) {
      log?.error?.(`hub audit unreachable: response withheld (${error?.name ?? 'error'})`);
    }
    return failed();
  }

  // A response the hub alone served, audited by the hub at its one fetch: released as it is,
  // unless another subgraph was asked after all (then withheld: its part is audited nowhere).
  function servedByTheHub(args, result, counts) {
    if (counts.others === 0) return counts.hub > 0 ? result : null;
    log?.error?.('a response planned for the hub alone fetched from another subgraph: withheld');
    return failed();
  }

  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const request = args.contextValue?.request;
      if (
        request &&
        servedByOneGraph(args.schema, args.document, args.operationName, hubSubgraph, supergraph)
      ) {
        const counts = { hub: 0, others: 0 };
        hubAlone.set(request, counts);
        return {
          async onExecuteDone({ result, setResult }) {
            // No fetch at all (an introspection, `__typename`): reported, as any response is.
            setResult(servedByTheHub(args, result, counts) ?? (await audited(args, result)));
            return undefined;
          },
        };
      }
      setExecuteFn((executionArgs) =>
        executeFn({
          ...executionArgs,
          document: cachedWithRecordIdentity(executionArgs.schema, executionArgs.document, supergraph.auditedTypes),
        }),
      );
      return {
        async onExecuteDone({ result, setResult }) {
          if (result && typeof result[Symbol.asyncIterator] === 'function') {
            return {
              async onNext({ result: event, setResult: setEvent }) {
                setEvent(await audited(args, event));
              },
            };
          }
          setResult(await audited(args, result));
          return undefined;
        },
      };
    },
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      setSubscribeFn((subscribeArgs) =>
        subscribeFn({
          ...subscribeArgs,
          document: cachedWithRecordIdentity(subscribeArgs.schema, subscribeArgs.document, supergraph.auditedTypes),
        }),
      );
      return {
        onSubscribeResult() {
          return {
            async onNext({ result, setResult }) {
              setResult(await audited(args, result));
            },
          };
        },
      };
    },
  };
}
