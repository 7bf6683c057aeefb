// What the supergraph says about ownership: which subgraph serves each field, and which types
// are records (entities, keyed by id) whose every field a caller receives is audited.
import { readFileSync } from 'node:fs';
import { Kind, parse } from 'graphql';

function argument(directive, name) {
  const found = directive.arguments?.find((a) => a.name.value === name);
  return found?.value?.value;
}

function graphsOf(node, directiveName) {
  return (node.directives ?? [])
    .filter((d) => d.name.value === directiveName)
    .map((d) => ({
      graph: argument(d, 'graph'),
      key: argument(d, 'key'),
      // A graph that only declares the field (another's), needs others' fields to resolve it,
      // or lost it to an @override does not serve it on its own.
      dependent:
        argument(d, 'external') === true ||
        argument(d, 'requires') !== undefined ||
        argument(d, 'usedOverridden') === true,
    }))
    .filter((d) => d.graph);
}

export function readSupergraph(path, { publicTypes }) {
  const document = parse(readFileSync(path, 'utf8'));
  const graphNames = {}; // enum value (HUB) -> the subgraph's name (hub)
  const fieldGraphs = new Map(); // "Child.allocatedSocialWorker" -> ['council']
  // The graphs that resolve each field on their own, and each type's graphs: whether one graph
  // alone can serve a whole operation (`servedByOneGraph` in audit.mjs).
  const resolvedBy = new Map(); // "Child.givenName" -> Set {'hub'}
  const typeGraphNames = new Map(); // "Child" -> Set {'council', 'hub'}
  const auditedTypes = new Set();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.ENUM_TYPE_DEFINITION && definition.name.value === 'join__Graph') {
      for (const value of definition.values ?? []) {
        const graph = value.directives?.find((d) => d.name.value === 'join__graph');
        graphNames[value.name.value] = graph ? argument(graph, 'name') : value.name.value.toLowerCase();
      }
    }
  }
  for (const definition of document.definitions) {
    if (
      definition.kind !== Kind.OBJECT_TYPE_DEFINITION &&
      definition.kind !== Kind.INTERFACE_TYPE_DEFINITION
    ) {
      continue;
    }
    const typeName = definition.name.value;
    const typeGraphs = graphsOf(definition, 'join__type');
    typeGraphNames.set(typeName, new Set(typeGraphs.map((g) => graphNames[g.graph] ?? g.graph)));
    const keyed = typeGraphs.some((g) => g.key) && definition.kind === Kind.OBJECT_TYPE_DEFINITION;
    if (keyed && !publicTypes.includes(typeName)) auditedTypes.add(typeName);
    for (const field of definition.fields ?? []) {
      const own = graphsOf(field, 'join__field');
      const graphs = (own.length ? own : typeGraphs).map((g) => graphNames[g.graph] ?? g.graph);
      fieldGraphs.set(`${typeName}.${field.name.value}`, [...new Set(graphs)]);
      const resolving = own.length ? own.filter((g) => !g.dependent) : typeGraphs;
      resolvedBy.set(
        `${typeName}.${field.name.value}`,
        new Set(resolving.map((g) => graphNames[g.graph] ?? g.graph)),
      );
    }
  }
  return { fieldGraphs, auditedTypes, resolvedBy, typeGraphNames };
}
