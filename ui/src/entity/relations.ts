// Relations as a graph: every relation comes in a pair (A ownedBy B, B
// ownerOf A), so the graph draws one edge per pair, in the direction
// "relies on / belongs to" (the owner, the system, a dependency, a consumed
// API sit to the right of what relies on them). Neighbours are fetched
// breadth-first through `by-refs`, a few fields each, up to a cap.
import { postJson, type Entity } from "../api";

/** Relation type → [canonical type of its pair, reversed?]. */
const PAIRS: Record<string, [string, boolean]> = {
  ownedBy: ["ownedBy", false],
  ownerOf: ["ownedBy", true],
  partOf: ["partOf", false],
  hasPart: ["partOf", true],
  dependsOn: ["dependsOn", false],
  dependencyOf: ["dependsOn", true],
  consumesApi: ["consumesApi", false],
  apiConsumedBy: ["consumesApi", true],
  apiProvidedBy: ["apiProvidedBy", false],
  providesApi: ["apiProvidedBy", true],
  childOf: ["childOf", false],
  parentOf: ["childOf", true],
  memberOf: ["memberOf", false],
  hasMember: ["memberOf", true],
};

/** How a pair is named in the filter: both of its types. */
export const PAIR_LABEL: Record<string, string> = {
  ownedBy: "ownedBy / ownerOf",
  partOf: "partOf / hasPart",
  dependsOn: "dependsOn / dependencyOf",
  consumesApi: "consumesApi / apiConsumedBy",
  apiProvidedBy: "providesApi / apiProvidedBy",
  childOf: "childOf / parentOf",
  memberOf: "memberOf / hasMember",
};

/** The pair a relation type belongs to (an unknown type is its own pair). */
export function pairOf(type: string): string {
  return PAIRS[type]?.[0] ?? type;
}

export function pairLabel(pair: string): string {
  return PAIR_LABEL[pair] ?? pair;
}

/** Order of relation types in the list: the pairs above first. */
export function typeOrder(type: string): number {
  const i = Object.keys(PAIRS).indexOf(type);
  return i < 0 ? 1000 : i;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  /** The relation type read along the edge (source → target). */
  type: string;
}

export interface Explored {
  /** Every ref in the graph; null when the catalog has no such entity. */
  nodes: Map<string, Entity | null>;
  /** Distance from the root, per ref. */
  depth: Map<string, number>;
  edges: GraphEdge[];
  /** Some neighbours were left out to keep the graph under the cap. */
  capped: boolean;
}

export const GRAPH_FIELDS = ["kind", "metadata.name", "metadata.namespace", "metadata.title", "spec.type", "relations"];

const CHUNK = 100;

/** Entities by ref, in chunks; a missing one is null. */
export async function fetchByRefs(
  refs: string[],
  fields: string[],
  asOf: string | null,
  signal?: AbortSignal,
): Promise<Map<string, Entity | null>> {
  const out = new Map<string, Entity | null>();
  const path = asOf ? `/api/catalog/entities/by-refs?asOf=${encodeURIComponent(asOf)}` : "/api/catalog/entities/by-refs";
  for (let i = 0; i < refs.length; i += CHUNK) {
    const part = refs.slice(i, i + CHUNK);
    const res = await postJson<{ items: (Entity | null)[] }>(path, { entityRefs: part, fields }, signal);
    part.forEach((r, j) => out.set(r, res.items[j] ?? null));
  }
  return out;
}

/** Lower-cased kind and namespace, as the API writes refs. */
export function normRef(ref: string): string {
  const colon = ref.indexOf(":");
  const slash = ref.indexOf("/");
  if (colon < 0 || slash < 0) return ref;
  return ref.slice(0, slash).toLowerCase() + ref.slice(slash);
}

/**
 * The graph around `root` to `maxDepth` hops, following only relations
 * whose pair is in `pairs` (all when null), at most `cap` nodes.
 */
export async function explore(
  rootRef: string,
  root: Entity,
  maxDepth: number,
  pairs: Set<string> | null,
  cap: number,
  asOf: string | null,
  signal?: AbortSignal,
): Promise<Explored> {
  const follows = (type: string) => pairs === null || pairs.has(pairOf(type));
  const nodes = new Map<string, Entity | null>([[rootRef, root]]);
  const depth = new Map<string, number>([[rootRef, 0]]);
  let frontier = [rootRef];
  let capped = false;
  for (let d = 1; d <= maxDepth && frontier.length > 0; d++) {
    const next: string[] = [];
    for (const ref of frontier) {
      for (const rel of nodes.get(ref)?.relations ?? []) {
        const t = normRef(rel.targetRef);
        if (!follows(rel.type) || nodes.has(t) || next.includes(t)) continue;
        if (nodes.size + next.length >= cap) {
          capped = true;
          continue;
        }
        next.push(t);
      }
    }
    if (next.length === 0) break;
    const got = await fetchByRefs(next, GRAPH_FIELDS, asOf, signal);
    for (const r of next) {
      nodes.set(r, got.get(r) ?? null);
      depth.set(r, d);
    }
    frontier = next;
  }
  // Edges between nodes of the graph, one per pair of relations.
  const edges = new Map<string, GraphEdge>();
  for (const [ref, e] of nodes) {
    for (const rel of e?.relations ?? []) {
      const t = normRef(rel.targetRef);
      if (!follows(rel.type) || !nodes.has(t) || t === ref) continue;
      const [canon, reversed] = PAIRS[rel.type] ?? [rel.type, false];
      const source = reversed ? t : ref;
      const target = reversed ? ref : t;
      const id = `${source}|${canon}|${target}`;
      if (!edges.has(id)) edges.set(id, { id, source, target, type: canon });
    }
  }
  return { nodes, depth, edges: [...edges.values()], capped };
}
