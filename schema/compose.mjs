// Composes schema/supergraph.graphql from the subgraphs' SDL files named in subgraphs.json, with
// The Guild's composition library; Apollo's must compose the same inputs without errors too.
//
//   node compose.mjs           write supergraph.graphql
//   node compose.mjs --check   exit 1 if either library fails or the committed file has drifted
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { composeServices as composeWithGuild } from '@theguild/federation-composition';
import { composeServices as composeWithApollo } from '@apollo/composition';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'supergraph.graphql');
const { subgraphs } = JSON.parse(readFileSync(join(here, 'subgraphs.json'), 'utf8'));
const services = subgraphs.map(({ name, sdl, url }) => ({
  name,
  url,
  typeDefs: parse(readFileSync(join(here, sdl), 'utf8')),
}));

function failed(library, errors) {
  console.error(`compose: ${library} could not compose the supergraph:`);
  for (const error of errors) console.error(`  ${error.message}`);
  process.exit(1);
}

const guild = composeWithGuild(services);
if (guild.errors?.length) failed('@theguild/federation-composition', guild.errors);
const apollo = composeWithApollo(services);
if (apollo.errors?.length) failed('@apollo/composition', apollo.errors);

const supergraph = guild.supergraphSdl.trimEnd() + '\n';
if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(output, 'utf8');
  } catch {
    // missing: reported as drift below
  }
  if (committed !== supergraph) {
    console.error('compose: schema/supergraph.graphql is not what the subgraphs compose to;');
    console.error('run `safeguarding-hub schema compose` and commit it');
    process.exit(1);
  }
  console.log(`compose: supergraph up to date (${subgraphs.length} subgraphs; both libraries agree it composes)`);
} else {
  writeFileSync(output, supergraph);
  console.log(`compose: wrote ${output} from ${subgraphs.map((s) => s.name).join(', ')}`);
}
