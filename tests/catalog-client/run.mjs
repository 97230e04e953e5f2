// Drives the catalog server through Backstage's own client library
// (@backstage/catalog-client, pinned in package.json) and checks that every
// public CatalogClient method works against /api/catalog.
//
// Usage:
//   CATALOG_TEST_BASE_URL=http://127.0.0.1:7007 \
//   CATALOG_TEST_TOKEN=<bearer token with every scope> \
//   CATALOG_TEST_FILE_ROOT=/abs/dir/allowed/for/file/locations \
//   node tests/catalog-client/run.mjs
//
// Prints one line per check (`ok - name` / `not ok - name: reason`), plus
// `#`-prefixed info lines, and exits 0 only if every check passed.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CATALOG_FILTER_EXISTS, CatalogClient } from '@backstage/catalog-client';

const REQUEST_TIMEOUT_MS = 15_000;
const POLL_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 250;
const WATCHDOG_MS = 170_000;
const PAGE = 50;

// ---------------------------------------------------------------------------
// Environment

const BASE_URL = (process.env.CATALOG_TEST_BASE_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.CATALOG_TEST_TOKEN ?? '';
const FILE_ROOT = process.env.CATALOG_TEST_FILE_ROOT ?? '';

{
  const problems = [];
  if (!BASE_URL) problems.push('CATALOG_TEST_BASE_URL is not set');
  if (!TOKEN) problems.push('CATALOG_TEST_TOKEN is not set');
  if (!FILE_ROOT) problems.push('CATALOG_TEST_FILE_ROOT is not set');
  else if (!path.isAbsolute(FILE_ROOT)) problems.push('CATALOG_TEST_FILE_ROOT must be an absolute path');
  if (problems.length) {
    console.log(`not ok - environment: ${problems.join('; ')}`);
    process.exit(1);
  }
}

const CATALOG_URL = `${BASE_URL}/api/catalog`;

// ---------------------------------------------------------------------------
// Client setup: global fetch (Node >= 20) with a per-request timeout, and a
// record of the last request so failures can say what was sent.

let lastRequest = '';

const fetchApi = {
  fetch: async (input, init = {}) => {
    const url = String(input);
    const shown = url.startsWith(CATALOG_URL) ? url.slice(CATALOG_URL.length) || '/' : url;
    lastRequest = `${init.method ?? 'GET'} ${shown}${init.headers?.Authorization ? '' : ' (no token)'}`;
    try {
      const res = await fetch(input, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      lastRequest += ` -> ${res.status}`;
      return res;
    } catch (err) {
      lastRequest += ` -> ${err?.name ?? 'error'}`;
      throw err;
    }
  },
};

const discoveryApi = {
  async getBaseUrl(pluginId) {
    assert.equal(pluginId, 'catalog');
    return CATALOG_URL;
  },
};

const client = new CatalogClient({ discoveryApi, fetchApi });
const auth = { token: TOKEN };

// ---------------------------------------------------------------------------
// Check runner

let passed = 0;
let failed = 0;

function oneLine(text, max = 700) {
  const s = String(text).replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

function statusOf(err) {
  return err?.response?.status ?? err?.statusCode;
}

function describeError(err) {
  if (err && typeof err === 'object' && statusOf(err) !== undefined && 'body' in err) {
    const cause = err.cause ? `${err.cause.name}: ${err.cause.message}` : '';
    return `${err.name} HTTP ${statusOf(err)} ${err.statusText ?? ''} ${cause} body=${JSON.stringify(err.body)}`;
  }
  if (err?.name === 'AssertionError') {
    return `assertion failed: ${err.message}`;
  }
  return `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}${err?.cause ? ` (cause: ${err.cause.message ?? err.cause})` : ''}`;
}

function info(msg) {
  console.log(`#   ${oneLine(msg, 1000)}`);
}

async function check(name, fn) {
  lastRequest = '';
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
    return true;
  } catch (err) {
    failed += 1;
    const req = lastRequest ? ` [last request: ${lastRequest}]` : '';
    console.log(`not ok - ${name}: ${oneLine(describeError(err))}${req}`);
    return false;
  }
}

function need(value, what) {
  if (value === undefined || value === null) {
    throw new Error(`prerequisite missing: ${what}`);
  }
  return value;
}

// ---------------------------------------------------------------------------
// Helpers

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function refOf(entity) {
  return `${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`.toLowerCase();
}

function sortedUnique(values) {
  return [...new Set(values)].sort();
}

function assertNoDuplicates(refs, label) {
  const dups = refs.filter((r, i) => refs.indexOf(r) !== i);
  assert.deepEqual(dups, [], `${label}: duplicate items across pages`);
}

const comparators = [
  (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  (a, b) => {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  },
  (a, b) => a.localeCompare(b),
];

function isSorted(values, direction) {
  return comparators.some(cmp =>
    values.every((v, i) => i === 0 || (direction === 'asc' ? cmp(values[i - 1], v) <= 0 : cmp(values[i - 1], v) >= 0)),
  );
}

function assertLocationShape(loc, label) {
  assert.ok(loc && typeof loc === 'object', `${label}: not an object: ${JSON.stringify(loc)}`);
  assert.equal(typeof loc.id, 'string', `${label}: id is not a string: ${JSON.stringify(loc)}`);
  assert.ok(loc.id.length > 0, `${label}: empty id`);
  assert.equal(typeof loc.type, 'string', `${label}: type is not a string: ${JSON.stringify(loc)}`);
  assert.equal(typeof loc.target, 'string', `${label}: target is not a string: ${JSON.stringify(loc)}`);
}

function assertPage(page, label, { expectTotal = true } = {}) {
  assert.ok(page && typeof page === 'object', `${label}: response is not an object`);
  assert.ok(Array.isArray(page.items), `${label}: items is not an array`);
  assert.ok(page.pageInfo && typeof page.pageInfo === 'object', `${label}: pageInfo missing (the client requires it)`);
  if (expectTotal) {
    assert.equal(typeof page.totalItems, 'number', `${label}: totalItems is not a number (${page.totalItems})`);
  }
}

/** Runs queryEntities and follows nextCursor to the end. */
async function queryAll(request, label) {
  const first = await client.queryEntities(request, auth);
  assertPage(first, `${label} page 1`);
  const pages = [first];
  const items = [...first.items];
  const seen = new Set();
  let cursor = first.pageInfo.nextCursor;
  while (cursor) {
    assert.ok(!seen.has(cursor), `${label}: cursor repeated`);
    seen.add(cursor);
    assert.ok(pages.length < 500, `${label}: more than 500 pages`);
    const next = { cursor };
    if (request.limit !== undefined) next.limit = request.limit;
    if (request.fields?.length) next.fields = request.fields;
    const page = await client.queryEntities(next, auth);
    assertPage(page, `${label} page ${pages.length + 1}`, { expectTotal: false });
    pages.push(page);
    items.push(...page.items);
    cursor = page.pageInfo.nextCursor;
  }
  if (request.limit !== undefined) {
    for (const [i, p] of pages.entries()) {
      assert.ok(p.items.length <= request.limit, `${label}: page ${i + 1} has ${p.items.length} > limit ${request.limit} items`);
    }
  }
  const refs = items.map(refOf);
  assertNoDuplicates(refs, label);
  assert.equal(first.totalItems, items.length, `${label}: totalItems ${first.totalItems} != items collected over ${pages.length} page(s) ${items.length}`);
  return { items, refs: sortedUnique(refs), totalItems: first.totalItems, pages };
}

/** Refs matching a (legacy) filter, through GET /entities/by-query with paging. */
async function refsByFilter(filter, label) {
  return (await queryAll({ filter, limit: PAGE }, label)).refs;
}

/** Refs matching a predicate, through POST /entities/by-query with paging. */
async function refsByPredicate(query, label) {
  return (await queryAll({ query, limit: PAGE }, label)).refs;
}

function minus(a, b) {
  const bs = new Set(b);
  return a.filter(x => !bs.has(x));
}

function normalizeFacet(list, label) {
  assert.ok(Array.isArray(list), `${label}: facet is not an array: ${JSON.stringify(list)}`);
  const out = {};
  for (const entry of list) {
    assert.equal(typeof entry.value, 'string', `${label}: facet value is not a string: ${JSON.stringify(entry)}`);
    assert.equal(typeof entry.count, 'number', `${label}: facet count is not a number: ${JSON.stringify(entry)}`);
    const key = entry.value.toLowerCase();
    out[key] = (out[key] ?? 0) + entry.count;
  }
  return out;
}

async function poll(fn, what, timeoutMs = POLL_TIMEOUT_MS) {
  const started = Date.now();
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return { value, ms: Date.now() - started };
    } catch (err) {
      lastError = err;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `; last error: ${describeError(lastError)}` : ''}`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

async function expectRejection(promise, statuses, label) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    const status = statusOf(err);
    assert.ok(
      statuses.includes(status),
      `${label}: expected HTTP ${statuses.join(' or ')}, got ${status ?? 'no status'}: ${describeError(err)}`,
    );
    return err;
  }
  assert.fail(`${label}: expected rejection with HTTP ${statuses.join(' or ')}, but it resolved: ${oneLine(JSON.stringify(result), 300)}`);
}

function componentYaml(name, description) {
  return [
    'apiVersion: backstage.io/v1alpha1',
    'kind: Component',
    'metadata:',
    `  name: ${name}`,
    `  description: ${description}`,
    'spec:',
    '  type: service',
    '  lifecycle: production',
    '  owner: client-harness',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// State shared between checks

const runId = randomBytes(4).toString('hex');
const dir = path.join(FILE_ROOT, `client-${runId}`);
const main = {
  name: `client-${runId}`,
  target: path.join(dir, 'catalog-info.yaml'),
};
main.ref = `component:default/${main.name}`;
const dry = {
  name: `client-${runId}-dry`,
  target: path.join(dir, 'dry-run', 'catalog-info.yaml'),
};
dry.ref = `component:default/${dry.name}`;
const updA = { name: `client-${runId}-upd-a`, target: path.join(dir, 'update-a', 'catalog-info.yaml') };
const updB = { name: `client-${runId}-upd-b`, target: path.join(dir, 'update-b', 'catalog-info.yaml') };
const unauth = { name: `client-${runId}-unauth`, target: path.join(dir, 'unauthorized', 'catalog-info.yaml') };
const missingRef = `component:default/client-${runId}-does-not-exist`;
const missingLocationId = randomUUID();

const s = {
  components: undefined, // all Component entities (full)
  all: undefined, // every entity (full)
  c0: undefined,
  c1: undefined,
  other: undefined, // an entity that is not a Component, if any
  locations: undefined,
  filesWritten: false,
  location: undefined, // registered main location
  entity: undefined, // created entity
  createdLocationIds: [],
};

const watchdog = setTimeout(() => {
  console.log(`not ok - harness watchdog: still running after ${WATCHDOG_MS} ms`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

console.log(`# catalog-client harness: base ${CATALOG_URL}, run id ${runId}`);

// ---------------------------------------------------------------------------
// 1. Reads

await check('getEntities: filter kind=Component', async () => {
  const res = await client.getEntities({ filter: { kind: 'Component' } }, auth);
  assert.ok(Array.isArray(res.items), 'items is not an array');
  assert.ok(res.items.length > 0, 'no Component entities in the catalog');
  for (const e of res.items) {
    assert.equal(e.kind.toLowerCase(), 'component', `unexpected kind ${e.kind} for ${refOf(e)}`);
    assert.equal(typeof e.metadata?.uid, 'string', `${refOf(e)} has no metadata.uid`);
  }
  s.components = res.items;
  s.c0 = res.items[0];
  s.c1 = res.items[1];
  info(`${res.items.length} components; using ${refOf(s.c0)}${s.c1 ? ` and ${refOf(s.c1)}` : ''}`);
});

await check('getEntities: no filter returns the whole catalog', async () => {
  const comps = need(s.components, 'component list');
  const res = await client.getEntities(undefined, auth);
  assert.ok(Array.isArray(res.items), 'items is not an array');
  const refs = res.items.map(refOf);
  assertNoDuplicates(refs, 'getEntities()');
  for (const c of comps) assert.ok(refs.includes(refOf(c)), `${refOf(c)} missing from unfiltered list`);
  s.all = res.items;
  s.other = res.items.find(e => e.kind.toLowerCase() !== 'component');
  const kinds = sortedUnique(res.items.map(e => e.kind));
  info(`${res.items.length} entities, kinds: ${kinds.join(', ')}`);
});

await check('getEntities: fields projection', async () => {
  const comps = need(s.components, 'component list');
  const res = await client.getEntities(
    { filter: { kind: 'Component' }, fields: ['kind', 'metadata.name', 'metadata.namespace'] },
    auth,
  );
  assert.equal(res.items.length, comps.length, 'projected list has a different length');
  for (const e of res.items) {
    assert.deepEqual(Object.keys(e).filter(k => !['kind', 'metadata'].includes(k)), [], `extra top-level keys: ${JSON.stringify(e)}`);
    assert.equal(typeof e.kind, 'string', `kind missing: ${JSON.stringify(e)}`);
    assert.equal(typeof e.metadata?.name, 'string', `metadata.name missing: ${JSON.stringify(e)}`);
    assert.deepEqual(
      Object.keys(e.metadata).filter(k => !['name', 'namespace'].includes(k)),
      [],
      `extra metadata keys: ${JSON.stringify(e)}`,
    );
  }
});

await check('getEntities: order asc/desc by metadata.name', async () => {
  const comps = need(s.components, 'component list');
  const asc = await client.getEntities({ filter: { kind: 'Component' }, order: { field: 'metadata.name', order: 'asc' } }, auth);
  const desc = await client.getEntities({ filter: { kind: 'Component' }, order: [{ field: 'metadata.name', order: 'desc' }] }, auth);
  const ascNames = asc.items.map(e => e.metadata.name);
  const descNames = desc.items.map(e => e.metadata.name);
  assert.equal(ascNames.length, comps.length, 'asc list length');
  assert.equal(descNames.length, comps.length, 'desc list length');
  assert.ok(isSorted(ascNames, 'asc'), `not ascending: ${ascNames.join(',')}`);
  assert.ok(isSorted(descNames, 'desc'), `not descending: ${descNames.join(',')}`);
  assert.deepEqual(sortedUnique(asc.items.map(refOf)), sortedUnique(desc.items.map(refOf)), 'asc/desc sets differ');
  s.ascNames = ascNames;
});

await check('getEntities: limit + offset', async () => {
  const ascNames = need(s.ascNames, 'ordered component names');
  const res = await client.getEntities(
    { filter: { kind: 'Component' }, order: { field: 'metadata.name', order: 'asc' }, limit: 1, offset: 1 },
    auth,
  );
  assert.deepEqual(res.items.map(e => e.metadata.name), ascNames.slice(1, 2));
});

await check('getEntitiesByRefs: same order, missing -> undefined, fields', async () => {
  const c0 = need(s.c0, 'a component');
  const refs = [refOf(c0), missingRef, ...(s.c1 ? [refOf(s.c1)] : [])];
  const res = await client.getEntitiesByRefs({ entityRefs: refs, fields: ['kind', 'metadata.name', 'metadata.namespace'] }, auth);
  assert.equal(res.items.length, refs.length, 'items length differs from entityRefs length');
  assert.equal(refOf(res.items[0]), refOf(c0));
  assert.equal(res.items[1], undefined, 'missing ref did not map to undefined/null');
  if (s.c1) assert.equal(refOf(res.items[2]), refOf(s.c1));
  assert.equal(res.items[0].spec, undefined, 'fields projection not applied (spec present)');
});

await check('getEntitiesByRefs: filter', async () => {
  const c0 = need(s.c0, 'a component');
  const refs = [refOf(c0), ...(s.other ? [refOf(s.other)] : [])];
  const kept = await client.getEntitiesByRefs({ entityRefs: refs, filter: { kind: 'Component' } }, auth);
  assert.equal(kept.items.length, refs.length);
  assert.equal(refOf(kept.items[0]), refOf(c0));
  if (s.other) assert.equal(kept.items[1], undefined, `${refOf(s.other)} should be filtered out`);
  const none = await client.getEntitiesByRefs({ entityRefs: [refOf(c0)], filter: { kind: 'NoSuchKind' } }, auth);
  assert.deepEqual(none.items, [undefined]);
});

await check('getEntitiesByRefs: query predicate', async () => {
  const c0 = need(s.c0, 'a component');
  const refs = [refOf(c0), missingRef, ...(s.other ? [refOf(s.other)] : [])];
  const res = await client.getEntitiesByRefs(
    { entityRefs: refs, query: { $all: [{ kind: 'Component' }, { 'metadata.name': { $in: [c0.metadata.name] } }] } },
    auth,
  );
  assert.equal(res.items.length, refs.length);
  assert.equal(refOf(res.items[0]), refOf(c0));
  assert.equal(res.items[1], undefined);
  if (s.other) assert.equal(res.items[2], undefined, `${refOf(s.other)} should be filtered out`);
});

await check('queryEntities: filter + limit, follow nextCursor, totalItems', async () => {
  const comps = need(s.components, 'component list');
  const res = await queryAll({ filter: { kind: 'Component' }, limit: 2 }, 'queryEntities');
  assert.equal(res.totalItems, comps.length, 'totalItems differs from getEntities count');
  assert.deepEqual(res.refs, sortedUnique(comps.map(refOf)), 'paged set differs from getEntities set');
  assert.ok(res.pages.length >= Math.ceil(comps.length / 2), `only ${res.pages.length} pages for ${comps.length} items with limit 2`);
  if (res.pages.length > 1) {
    info(`${res.pages.length} pages; page 2 prevCursor ${res.pages[1].pageInfo.prevCursor ? 'present' : 'absent'}`);
  }
});

await check('queryEntities: orderFields desc across pages, fields', async () => {
  const comps = need(s.components, 'component list');
  const res = await queryAll(
    {
      filter: { kind: 'Component' },
      orderFields: { field: 'metadata.name', order: 'desc' },
      fields: ['kind', 'metadata.name', 'metadata.namespace'],
      limit: 2,
    },
    'queryEntities ordered',
  );
  const names = res.items.map(e => e.metadata.name);
  assert.equal(names.length, comps.length);
  assert.ok(isSorted(names, 'desc'), `not descending across pages: ${names.join(',')}`);
  for (const e of res.items) assert.equal(e.spec, undefined, 'fields projection not applied (spec present)');
});

await check('queryEntities: fullTextFilter', async () => {
  const c0 = need(s.c0, 'a component');
  const term = c0.metadata.name;
  const res = await queryAll(
    { filter: { kind: 'Component' }, fullTextFilter: { term, fields: ['metadata.name'] }, limit: PAGE },
    'fullTextFilter',
  );
  assert.ok(res.refs.includes(refOf(c0)), `${refOf(c0)} not found by its own name`);
  for (const e of res.items) {
    assert.ok(e.metadata.name.toLowerCase().includes(term.toLowerCase()), `${refOf(e)} does not contain "${term}"`);
  }
});

// Predicate queries (POST /entities/by-query), compared with the legacy filter.
await check('queryEntitiesByPredicate: $in vs filter with repeated key', async () => {
  const c0 = need(s.c0, 'a component');
  const names = [c0.metadata.name, ...(s.c1 ? [s.c1.metadata.name] : [])];
  const viaPredicate = await refsByPredicate({ $all: [{ kind: 'Component' }, { 'metadata.name': { $in: names } }] }, '$in');
  const viaFilter = await refsByFilter({ kind: 'Component', 'metadata.name': names }, 'filter');
  assert.deepEqual(viaPredicate, viaFilter);
  assert.ok(viaPredicate.includes(refOf(c0)));
  if (s.c1) assert.ok(viaPredicate.includes(refOf(s.c1)));
});

await check('queryEntitiesByPredicate: $any vs filter sets', async () => {
  const otherKind = s.other?.kind ?? 'Group';
  const viaPredicate = await refsByPredicate({ $any: [{ kind: 'Component' }, { kind: otherKind }] }, '$any');
  const viaFilter = await refsByFilter([{ kind: 'Component' }, { kind: otherKind }], 'filter');
  assert.deepEqual(viaPredicate, viaFilter);
  info(`$any Component|${otherKind}: ${viaPredicate.length} entities`);
});

await check('queryEntitiesByPredicate: $exists true/false', async () => {
  const all = await refsByFilter({ kind: 'Component' }, 'filter');
  const withOwner = await refsByPredicate({ $all: [{ kind: 'Component' }, { 'spec.owner': { $exists: true } }] }, '$exists');
  assert.deepEqual(withOwner, await refsByFilter({ kind: 'Component', 'spec.owner': CATALOG_FILTER_EXISTS }, 'filter exists'));
  const withDesc = await refsByFilter({ kind: 'Component', 'metadata.description': CATALOG_FILTER_EXISTS }, 'filter exists');
  const withoutDesc = await refsByPredicate(
    { $all: [{ kind: 'Component' }, { 'metadata.description': { $exists: false } }] },
    '$exists false',
  );
  assert.deepEqual(withoutDesc, minus(all, withDesc));
});

await check('queryEntitiesByPredicate: $not', async () => {
  const all = await refsByFilter({ kind: 'Component' }, 'filter');
  const services = await refsByFilter({ kind: 'Component', 'spec.type': 'service' }, 'filter');
  const notServices = await refsByPredicate({ $all: [{ kind: 'Component' }, { $not: { 'spec.type': 'service' } }] }, '$not');
  assert.deepEqual(notServices, minus(all, services));
  info(`${services.length} service components, ${notServices.length} others`);
});

await check('queryEntitiesByPredicate: $hasPrefix', async () => {
  const comps = need(s.components, 'component list');
  const c0 = need(s.c0, 'a component');
  const prefix = c0.metadata.name.slice(0, 3);
  const got = await refsByPredicate({ $all: [{ kind: 'Component' }, { 'metadata.name': { $hasPrefix: prefix } }] }, '$hasPrefix');
  const exact = comps.filter(e => e.metadata.name.startsWith(prefix)).map(refOf);
  const loose = comps.filter(e => e.metadata.name.toLowerCase().startsWith(prefix.toLowerCase())).map(refOf);
  for (const r of exact) assert.ok(got.includes(r), `${r} (prefix "${prefix}") missing`);
  for (const r of got) assert.ok(loose.includes(r), `${r} does not start with "${prefix}"`);
});

const combinedPredicate = () => {
  const c0 = need(s.c0, 'a component');
  return {
    $all: [
      { $any: [{ kind: 'Component' }, { kind: s.other?.kind ?? 'Group' }] },
      { $not: { 'metadata.name': `client-${runId}-nope` } },
      { 'metadata.name': { $exists: true } },
      {
        $any: [
          { 'metadata.name': { $in: [c0.metadata.name] } },
          { 'metadata.name': { $hasPrefix: c0.metadata.name.slice(0, 1) } },
          { kind: 'Component' },
        ],
      },
    ],
  };
};

await check('queryEntitiesByPredicate: combined $all/$any/$not/$exists/$in/$hasPrefix, paged', async () => {
  const comps = need(s.components, 'component list');
  const got = await queryAll({ query: combinedPredicate(), limit: 2 }, 'combined');
  // Every component matches; entities of the other kind match if their name shares c0's first letter.
  const first = s.c0.metadata.name.slice(0, 1).toLowerCase();
  const otherKind = (s.other?.kind ?? 'Group').toLowerCase();
  const expectedMin = comps.map(refOf);
  const expectedMax = sortedUnique([
    ...expectedMin,
    ...(s.all ?? []).filter(e => e.kind.toLowerCase() === otherKind && e.metadata.name.toLowerCase().startsWith(first)).map(refOf),
  ]);
  for (const r of expectedMin) assert.ok(got.refs.includes(r), `${r} missing`);
  for (const r of got.refs) assert.ok(expectedMax.includes(r), `${r} unexpected`);
  info(`${got.totalItems} matches over ${got.pages.length} pages`);
});

await check('queryEntitiesByPredicate: direct method call', async () => {
  assert.equal(typeof client.queryEntitiesByPredicate, 'function', 'method missing in this client version');
  const comps = need(s.components, 'component list');
  const res = await client.queryEntitiesByPredicate({ query: { kind: 'Component' }, limit: 1 }, auth);
  assertPage(res, 'queryEntitiesByPredicate');
  assert.equal(res.totalItems, comps.length);
  assert.ok(res.items.length <= 1);
  if (comps.length > 1) assert.ok(res.pageInfo.nextCursor, 'nextCursor missing although more items exist');
});

await check('getEntityAncestors', async () => {
  const c0 = need(s.c0, 'a component');
  const res = await client.getEntityAncestors({ entityRef: refOf(c0) }, auth);
  assert.equal(res.rootEntityRef.toLowerCase(), refOf(c0));
  assert.ok(Array.isArray(res.items), 'items is not an array');
  for (const item of res.items) {
    assert.ok(item.entity?.metadata, `item without entity: ${JSON.stringify(item)}`);
    assert.ok(Array.isArray(item.parentEntityRefs), `item without parentEntityRefs: ${JSON.stringify(item)}`);
  }
  assert.ok(res.items.some(i => refOf(i.entity) === refOf(c0)), 'root entity not among items');
  info(`ancestry of ${refOf(c0)}: ${res.items.map(i => `${refOf(i.entity)} <- [${i.parentEntityRefs.join(',')}]`).join('; ')}`);
});

await check('getEntityByRef: existing (string and compound ref)', async () => {
  const c0 = need(s.c0, 'a component');
  const byString = await client.getEntityByRef(refOf(c0), auth);
  assert.ok(byString, 'undefined for an existing entity');
  assert.equal(refOf(byString), refOf(c0));
  assert.equal(byString.metadata.uid, c0.metadata.uid);
  const byCompound = await client.getEntityByRef(
    { kind: c0.kind, namespace: c0.metadata.namespace ?? 'default', name: c0.metadata.name },
    auth,
  );
  assert.equal(byCompound?.metadata?.uid, c0.metadata.uid);
});

await check('getEntityByRef: missing -> undefined', async () => {
  assert.equal(await client.getEntityByRef(missingRef, auth), undefined);
});

await check('getEntityByName (deprecated): existing and missing', async () => {
  const c0 = need(s.c0, 'a component');
  // kind is sent as written (e.g. "Component"): the path lookup must be case-insensitive.
  const found = await client.getEntityByName({ kind: c0.kind, namespace: c0.metadata.namespace, name: c0.metadata.name }, auth);
  assert.equal(found?.metadata?.uid, c0.metadata.uid);
  assert.equal(await client.getEntityByName({ kind: 'Component', name: `client-${runId}-does-not-exist` }, auth), undefined);
});

await check('getEntityFacets: kind and spec.type for Components', async () => {
  const comps = need(s.components, 'component list');
  const res = await client.getEntityFacets({ facets: ['kind', 'spec.type'], filter: { kind: 'Component' } }, auth);
  assert.ok(res?.facets, `no facets in response: ${JSON.stringify(res)}`);
  assert.deepEqual(normalizeFacet(res.facets.kind, 'kind'), { component: comps.length });
  const expected = {};
  for (const e of comps) {
    if (typeof e.spec?.type === 'string') {
      const k = e.spec.type.toLowerCase();
      expected[k] = (expected[k] ?? 0) + 1;
    }
  }
  assert.deepEqual(normalizeFacet(res.facets['spec.type'], 'spec.type'), expected);
  s.facets = res;
});

await check('getEntityFacets: predicate query (POST /entity-facets) equals filter', async () => {
  const byFilter = need(s.facets, 'facets by filter');
  const res = await client.getEntityFacets({ facets: ['kind', 'spec.type'], query: { kind: 'Component' } }, auth);
  assert.deepEqual(normalizeFacet(res.facets.kind, 'kind'), normalizeFacet(byFilter.facets.kind, 'kind'));
  assert.deepEqual(normalizeFacet(res.facets['spec.type'], 'spec.type'), normalizeFacet(byFilter.facets['spec.type'], 'spec.type'));
});

await check('getEntityFacetsByPredicate: direct method call', async () => {
  assert.equal(typeof client.getEntityFacetsByPredicate, 'function', 'method missing in this client version');
  const comps = need(s.components, 'component list');
  const res = await client.getEntityFacetsByPredicate(
    { facets: ['kind'], query: { $any: [{ kind: 'Component' }, { kind: 'NoSuchKind' }] } },
    auth,
  );
  assert.deepEqual(normalizeFacet(res.facets.kind, 'kind'), { component: comps.length });
});

await check('streamEntities: filter, count equals queryEntities totalItems', async () => {
  const total = (await client.queryEntities({ filter: { kind: 'Component' }, limit: 1 }, auth)).totalItems;
  let count = 0;
  let pages = 0;
  const refs = [];
  for await (const page of client.streamEntities({ filter: { kind: 'Component' }, pageSize: 2 }, auth)) {
    pages += 1;
    assert.ok(page.length <= 2, `page of ${page.length} > pageSize 2`);
    count += page.length;
    refs.push(...page.map(refOf));
    assert.ok(pages < 1000, 'too many pages');
  }
  assertNoDuplicates(refs, 'streamEntities');
  assert.equal(count, total);
  info(`${count} entities in ${pages} pages`);
});

await check('streamEntities: predicate, count equals queryEntities totalItems', async () => {
  const query = combinedPredicate();
  const total = (await client.queryEntities({ query, limit: 1 }, auth)).totalItems;
  let count = 0;
  for await (const page of client.streamEntities({ query, pageSize: 3 }, auth)) count += page.length;
  assert.equal(count, total);
});

await check('getLocations', async () => {
  const res = await client.getLocations({}, auth);
  assert.ok(Array.isArray(res.items), 'items is not an array');
  for (const loc of res.items) assertLocationShape(loc, 'location');
  s.locations = res.items;
  info(`${res.items.length} locations${res.items[0] ? `, first ${JSON.stringify(res.items[0])}` : ''}`);
});

await check('getLocationById: existing and missing', async () => {
  const locations = need(s.locations, 'location list');
  if (locations[0]) {
    const byId = await client.getLocationById(locations[0].id, auth);
    assertLocationShape(byId, 'location');
    assert.deepEqual(
      { id: byId.id, type: byId.type, target: byId.target },
      { id: locations[0].id, type: locations[0].type, target: locations[0].target },
    );
  } else {
    info('no locations yet; re-checked after addLocation');
  }
  assert.equal(await client.getLocationById(missingLocationId, auth), undefined);
});

await check('getLocationByRef: existing and missing', async () => {
  const locations = need(s.locations, 'location list');
  if (locations[0]) {
    const found = await client.getLocationByRef(`${locations[0].type}:${locations[0].target}`, auth);
    assert.equal(found?.id, locations[0].id);
  }
  assert.equal(await client.getLocationByRef(`file:${path.join(dir, 'nope.yaml')}`, auth), undefined);
});

await check('getLocationByEntity: discovered component', async () => {
  const c0 = need(s.c0, 'a component');
  const loc = await client.getLocationByEntity(refOf(c0), auth);
  if (loc !== undefined) assertLocationShape(loc, 'location');
  info(`getLocationByEntity(${refOf(c0)}) -> ${JSON.stringify(loc)}`);
  assert.equal(await client.getLocationByEntity(missingRef, auth), undefined);
});

await check('queryLocations: limit, follow cursor, totalItems', async () => {
  const locations = need(s.locations, 'location list');
  const first = await client.queryLocations({ limit: 1 }, auth);
  assertPage(first, 'queryLocations');
  assert.ok(first.items.length <= 1);
  const ids = first.items.map(l => l.id);
  let cursor = first.pageInfo.nextCursor;
  let pages = 1;
  while (cursor) {
    assert.ok(pages < 1000, 'too many pages');
    const page = await client.queryLocations({ cursor }, auth);
    assertPage(page, `queryLocations page ${pages + 1}`, { expectTotal: false });
    page.items.forEach(l => assertLocationShape(l, 'location'));
    ids.push(...page.items.map(l => l.id));
    cursor = page.pageInfo.nextCursor;
    pages += 1;
  }
  assertNoDuplicates(ids, 'queryLocations');
  assert.equal(first.totalItems, locations.length, 'totalItems differs from getLocations count');
  assert.deepEqual(sortedUnique(ids), sortedUnique(locations.map(l => l.id)));
});

await check('streamLocations: count equals totalItems', async () => {
  const total = (await client.queryLocations({ limit: 1 }, auth)).totalItems;
  let count = 0;
  for await (const page of client.streamLocations({}, auth)) {
    page.forEach(l => assertLocationShape(l, 'location'));
    count += page.length;
  }
  assert.equal(count, total);
});

// ---------------------------------------------------------------------------
// 2. Writes (with the token)

await check('write descriptor files under CATALOG_TEST_FILE_ROOT', async () => {
  for (const d of [main, dry, updA, updB, unauth]) {
    await mkdir(path.dirname(d.target), { recursive: true });
    await writeFile(d.target, componentYaml(d.name, `Written by the catalog-client harness (run ${runId})`));
  }
  s.filesWritten = true;
  info(`main descriptor ${main.target}`);
});

await check('addLocation: register file location', async () => {
  need(s.filesWritten || undefined, 'descriptor files');
  const res = await client.addLocation({ type: 'file', target: main.target }, auth);
  assertLocationShape(res.location, 'location');
  s.createdLocationIds.push(res.location.id);
  assert.equal(res.location.type, 'file');
  assert.equal(res.location.target, main.target);
  s.location = res.location;
  info(`location ${JSON.stringify(res.location)}; exists=${res.exists}; entities=${Array.isArray(res.entities) ? res.entities.length : JSON.stringify(res.entities)}`);
});

await check('addLocation: dryRun returns entities and registers nothing', async () => {
  need(s.filesWritten || undefined, 'descriptor files');
  const res = await client.addLocation({ type: 'file', target: dry.target, dryRun: true }, auth);
  assert.ok(res.location, 'no location in dry-run response');
  assert.ok(Array.isArray(res.entities), `entities is not an array: ${JSON.stringify(res.entities)}`);
  info(`dry-run location ${JSON.stringify(res.location)}; exists=${res.exists}; entities: ${res.entities.map(refOf).join(', ')}`);
  assert.ok(res.entities.some(e => refOf(e) === dry.ref), `${dry.ref} not among dry-run entities`);
  const locations = await client.getLocations({}, auth);
  assert.ok(!locations.items.some(l => l.target === dry.target), 'dry-run location was registered');
  if (res.location.id && !locations.items.some(l => l.id === res.location.id)) {
    assert.equal(await client.getLocationById(res.location.id, auth), undefined);
  }
});

await check('addLocation: same location again -> 409 ConflictError', async () => {
  need(s.location, 'registered location');
  const err = await expectRejection(client.addLocation({ type: 'file', target: main.target }, auth), [409], 'duplicate addLocation');
  assert.equal(err.cause?.name, 'ConflictError', `error name is ${err.cause?.name}, body=${JSON.stringify(err.body)}`);
});

await check('addLocation: onConflict=refresh on existing location -> 201', async () => {
  const loc = need(s.location, 'registered location');
  const res = await client.addLocation({ type: 'file', target: main.target, onConflict: 'refresh' }, auth);
  assertLocationShape(res.location, 'location');
  assert.equal(res.location.id, loc.id, 'a different location was returned');
  info(`exists=${res.exists}`);
});

await check('registered location visible: getLocations/getLocationById/getLocationByRef/queryLocations', async () => {
  const loc = need(s.location, 'registered location');
  const all = await client.getLocations({}, auth);
  assert.ok(all.items.some(l => l.id === loc.id), 'not in getLocations');
  const byId = await client.getLocationById(loc.id, auth);
  assert.equal(byId?.id, loc.id);
  assert.equal(byId.type, 'file');
  assert.equal(byId.target, main.target);
  info(`getLocationById -> ${JSON.stringify(byId)}`);
  const byRef = await client.getLocationByRef(`file:${main.target}`, auth);
  assert.equal(byRef?.id, loc.id);
  const queried = await client.queryLocations({ limit: 10, query: { type: 'file', target: { $hasPrefix: dir } } }, auth);
  assertPage(queried, 'queryLocations');
  assert.deepEqual(queried.items.map(l => l.id), [loc.id], `unexpected queryLocations result ${JSON.stringify(queried.items)}`);
  assert.equal(queried.totalItems, 1);
});

await check('created entity appears (poll getEntityByRef)', async () => {
  need(s.location, 'registered location');
  const { value, ms } = await poll(() => client.getEntityByRef(main.ref, auth), main.ref);
  s.entity = value;
  info(`appeared after ${ms} ms, uid ${value.metadata.uid}`);
});

await check('created entity content and list visibility', async () => {
  const e = need(s.entity, 'created entity');
  assert.equal(e.kind, 'Component');
  assert.equal(e.metadata.name, main.name);
  assert.equal(typeof e.metadata.uid, 'string');
  assert.equal(e.spec?.type, 'service');
  assert.equal(e.spec?.lifecycle, 'production');
  assert.equal(e.spec?.owner, 'client-harness');
  info(`annotations ${JSON.stringify(e.metadata.annotations ?? {})}`);
  const listed = await client.getEntities({ filter: { kind: 'Component', 'metadata.name': main.name } }, auth);
  assert.deepEqual(listed.items.map(refOf), [main.ref]);
  const byRefs = await client.getEntitiesByRefs({ entityRefs: [main.ref] }, auth);
  assert.equal(byRefs.items[0]?.metadata?.uid, e.metadata.uid);
});

await check('getLocationByEntity: created entity', async () => {
  need(s.entity, 'created entity');
  const loc = await client.getLocationByEntity(main.ref, auth);
  info(`getLocationByEntity -> ${JSON.stringify(loc)} (${loc?.id === s.location?.id ? 'the registered location' : 'not the registered location id'})`);
  assert.ok(loc, 'undefined');
  assertLocationShape(loc, 'location');
  assert.equal(loc.type, 'file');
  assert.equal(loc.target, main.target);
});

await check('getEntityAncestors: created entity', async () => {
  need(s.entity, 'created entity');
  const res = await client.getEntityAncestors({ entityRef: main.ref }, auth);
  assert.equal(res.rootEntityRef.toLowerCase(), main.ref);
  assert.ok(res.items.some(i => refOf(i.entity) === main.ref), 'root entity not among items');
  info(`ancestry: ${res.items.map(i => `${refOf(i.entity)} <- [${i.parentEntityRefs.join(',')}]`).join('; ')}`);
});

await check('dry-run entity was never registered', async () => {
  need(s.entity, 'created entity (the catalog has processed since the dry run)');
  assert.equal(await client.getEntityByRef(dry.ref, auth), undefined);
  assert.equal(await client.getLocationByRef(`file:${dry.target}`, auth), undefined);
});

await check('refreshEntity', async () => {
  need(s.entity, 'created entity');
  await client.refreshEntity(main.ref, auth);
});

await check('validateEntity: valid entity -> {valid:true}', async () => {
  const entity = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: `client-${runId}-valid` },
    spec: { type: 'service', lifecycle: 'production', owner: 'client-harness' },
  };
  const res = await client.validateEntity(entity, `file:${main.target}`, auth);
  assert.deepEqual(res, { valid: true });
});

await check('validateEntity: invalid entity -> {valid:false, errors}', async () => {
  const entity = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'not a valid name' },
    spec: { type: 'service', lifecycle: 'production', owner: 'client-harness' },
  };
  const res = await client.validateEntity(entity, `file:${main.target}`, auth);
  assert.equal(res.valid, false);
  assert.ok(Array.isArray(res.errors) && res.errors.length > 0, `errors: ${JSON.stringify(res.errors)}`);
  assert.equal(typeof res.errors[0].message, 'string', `error without message: ${JSON.stringify(res.errors[0])}`);
  info(`first error: ${res.errors[0].name}: ${res.errors[0].message}`);
});

await check('analyzeLocation: url location (result or clear error)', async () => {
  assert.equal(typeof client.analyzeLocation, 'function');
  const request = { location: { type: 'url', target: 'https://github.com/acme/x/blob/main/catalog-info.yaml' } };
  try {
    const res = await client.analyzeLocation(request, auth);
    assert.ok(Array.isArray(res.existingEntityFiles), `existingEntityFiles: ${JSON.stringify(res)}`);
    assert.ok(Array.isArray(res.generateEntities), `generateEntities: ${JSON.stringify(res)}`);
    info(`outcome: result ${oneLine(JSON.stringify(res), 400)}`);
  } catch (err) {
    const status = statusOf(err);
    const structured = Boolean(err?.body?.error && err?.body?.response && !String(err.cause?.message ?? '').startsWith('Request failed with status'));
    assert.ok(status !== undefined, `not an HTTP error: ${describeError(err)}`);
    assert.ok(structured, `unclear error (no Backstage error body): ${describeError(err)}`);
    assert.ok(![404, 405].includes(status) || err.cause?.name === 'NotFoundError', `route missing? ${describeError(err)}`);
    info(`outcome: clear error HTTP ${status} ${err.cause.name}: ${err.cause.message}`);
  }
});

await check('updateLocation: change target of a location', async () => {
  need(s.filesWritten || undefined, 'descriptor files');
  const added = await client.addLocation({ type: 'file', target: updA.target }, auth);
  s.createdLocationIds.push(added.location.id);
  try {
    const updated = await client.updateLocation(added.location.id, { type: 'file', target: updB.target }, auth);
    assertLocationShape(updated, 'updated location');
    // A location's id is derived from its target here, so it changes with
    // the target (Backstage keeps the row's id).
    s.createdLocationIds.push(updated.id);
    assert.equal(updated.type, 'file');
    assert.equal(updated.target, updB.target);
    const byId = await client.getLocationById(updated.id, auth);
    assert.equal(byId?.target, updB.target);
    assert.equal(await client.getLocationById(added.location.id, auth), undefined, 'old id still answers');
    assert.equal(await client.getLocationByRef(`file:${updA.target}`, auth), undefined, 'old target still registered');
  } finally {
    for (const id of s.createdLocationIds.splice(-2)) {
      if (await client.getLocationById(id, auth)) await client.removeLocationById(id, auth);
    }
  }
});

// ---------------------------------------------------------------------------
// 3. Without a token

const anonymous = new CatalogClient({ discoveryApi, fetchApi });

await check('no token: addLocation rejects with 401/403', async () => {
  need(s.filesWritten || undefined, 'descriptor files');
  await expectRejection(anonymous.addLocation({ type: 'file', target: unauth.target }), [401, 403], 'anonymous addLocation');
  assert.equal(await client.getLocationByRef(`file:${unauth.target}`, auth), undefined, 'location was registered anyway');
});

await check('no token: removeLocationById rejects with 401/403', async () => {
  const loc = need(s.location, 'registered location');
  await expectRejection(anonymous.removeLocationById(loc.id), [401, 403], 'anonymous removeLocationById');
  assert.equal((await client.getLocationById(loc.id, auth))?.id, loc.id, 'location was removed anyway');
});

await check('no token: removeEntityByUid rejects with 401/403', async () => {
  const e = need(s.entity, 'created entity');
  await expectRejection(anonymous.removeEntityByUid(e.metadata.uid), [401, 403], 'anonymous removeEntityByUid');
  assert.ok(await client.getEntityByRef(main.ref, auth), 'entity was removed anyway');
});

await check('no token: reads work', async () => {
  const comps = await anonymous.getEntities({ filter: { kind: 'Component' } });
  assert.ok(comps.items.length > 0);
  const q = await anonymous.queryEntities({ filter: { kind: 'Component' }, limit: 1 });
  assert.equal(q.totalItems, comps.items.length);
  const one = await anonymous.getEntityByRef(refOf(comps.items[0]));
  assert.equal(one?.metadata?.uid, comps.items[0].metadata.uid);
  const byRefs = await anonymous.getEntitiesByRefs({ entityRefs: [refOf(comps.items[0])] });
  assert.equal(byRefs.items[0]?.metadata?.uid, comps.items[0].metadata.uid);
  const facets = await anonymous.getEntityFacets({ facets: ['kind'] });
  assert.ok(facets?.facets?.kind, 'no kind facet');
  const locations = await anonymous.getLocations();
  assert.ok(Array.isArray(locations.items));
});

// ---------------------------------------------------------------------------
// Deletions (with the token)

await check('removeEntityByUid', async () => {
  const e = need(s.entity, 'created entity');
  await client.removeEntityByUid(e.metadata.uid, auth);
  await sleep(2000);
  const after = await client.getEntityByRef(main.ref, auth);
  info(
    after
      ? `entity came back after 2 s (uid ${after.metadata.uid}${after.metadata.uid === e.metadata.uid ? ', same' : ', new'})`
      : 'entity stayed away for 2 s',
  );
});

await check('removeLocationById', async () => {
  const loc = need(s.location, 'registered location');
  await client.removeLocationById(loc.id, auth);
  s.locationRemoved = true;
});

await check('entity disappears after removeLocationById (poll getEntityByRef)', async () => {
  need(s.locationRemoved, 'removed location');
  const { ms } = await poll(async () => (await client.getEntityByRef(main.ref, auth)) === undefined, `${main.ref} to disappear`);
  info(`gone after ${ms} ms`);
});

await check('removed location is gone: getLocationById -> undefined', async () => {
  need(s.locationRemoved, 'removed location');
  assert.equal(await client.getLocationById(s.location.id, auth), undefined);
  assert.equal(await client.getLocationByRef(`file:${main.target}`, auth), undefined);
  const all = await client.getLocations({}, auth);
  assert.ok(!all.items.some(l => l.id === s.location.id), 'still listed by getLocations');
});

// ---------------------------------------------------------------------------
// Cleanup (best effort, not a check) and summary

for (const id of s.createdLocationIds) {
  try {
    if (await client.getLocationById(id, auth)) await client.removeLocationById(id, auth);
  } catch {
    // ignore
  }
}
try {
  await rm(dir, { recursive: true, force: true });
} catch {
  // ignore
}

console.log(`# ${passed + failed} checks: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
