// Trusted documents: a registered machine client sends only the operations it registered.
//
// `<dir>/<client_id>.json` maps each document's id (`sha256:<hex>` of its text) to its text. A
// client with a file may send `{"documentId": ...}` of one of its own documents and nothing else;
// a client without one may send any document in development, none in production.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientIdOf } from './clients.mjs';

export function documentId(text) {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

export function loadTrustedDocuments(dir) {
  const byClient = new Map();
  if (!dir || !existsSync(dir)) return byClient;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const documents = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    for (const [id, text] of Object.entries(documents)) {
      if (documentId(text) !== id) throw new Error(`${file}: ${id} is not the hash of its document`);
    }
    byClient.set(file.slice(0, -'.json'.length), documents);
  }
  return byClient;
}

export function trustedDocumentsConfig({ byClient, production }) {
  return {
    // `documentId` (the GraphQL over HTTP convention) or Apollo's persistedQuery extension.
    extractPersistedOperationId(params) {
      if (typeof params.documentId === 'string') return params.documentId;
      const hash = params.extensions?.persistedQuery?.sha256Hash;
      return typeof hash === 'string' ? hash : null;
    },
    getPersistedOperation(key, request) {
      const documents = byClient.get(clientIdOf(request));
      const wanted = key.startsWith('sha256:') ? key : `sha256:${key}`;
      return documents?.[wanted] ?? null;
    },
    customErrors: {
      persistedQueryOnly: {
        message: 'this client may send only the operations it registered (trusted documents)',
        extensions: { code: 'TRUSTED_DOCUMENTS_ONLY' },
      },
      notFound: {
        message: 'no document this client registered has that id',
        extensions: { code: 'TRUSTED_DOCUMENT_NOT_FOUND' },
      },
    },
    allowArbitraryDocuments: (request) => !production && !byClient.has(clientIdOf(request)),
  };
}
