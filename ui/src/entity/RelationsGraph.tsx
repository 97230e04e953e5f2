// The entity's relations: an interactive graph (xyflow, laid out left to
// right by dagre) to a chosen depth, and beside it the same relations as
// a list of links, so the graph is never the only way in.
import { useEffect, useMemo, useState } from "react";
import dagre from "@dagrejs/dagre";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { Link } from "wouter";
import { errorText, humanRef, parseRef, type Entity } from "../api";
import { linkTo } from "./util";
import { explore, normRef, pairLabel, pairOf, typeOrder, type Explored } from "./relations";

const CAP = 150;
const NODE_W = 210;
const NODE_H = 58;

interface NodeData extends Record<string, unknown> {
  ref: string;
  entity: Entity | null;
  root: boolean;
  href: string;
}

function EntityNode({ data }: NodeProps<Node<NodeData>>) {
  const r = parseRef(data.ref);
  const title = data.entity?.metadata.title;
  const type = data.entity?.spec?.type;
  const label = title ?? r.name;
  return (
    <div className={`graph-node${data.root ? " root" : ""}${data.entity ? "" : " missing"}`} data-ref={data.ref}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      {data.root ? (
        <span className="graph-node-link" aria-current="page">
          <span className="graph-node-kind">
            {r.kind}
            {typeof type === "string" ? ` · ${type}` : ""}
            <span className="visually-hidden"> · this entity</span>
          </span>
          <span className="graph-node-name">{label}</span>
        </span>
      ) : (
        <Link href={data.href} className="graph-node-link nodrag nopan" title={humanRef(data.ref)}>
          <span className="graph-node-kind">
            {r.kind}
            {typeof type === "string" ? ` · ${type}` : ""}
            {data.entity ? "" : " · not in catalog"}
          </span>
          <span className="graph-node-name">{label}</span>
        </Link>
      )}
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
}

const nodeTypes = { entity: EntityNode };

/** Whether an edge joins entities at the same distance from the root. */
function across(g: Explored, e: { source: string; target: string }): boolean {
  return (g.depth.get(e.source) ?? 0) === (g.depth.get(e.target) ?? 0);
}

function layout(
  g: Explored,
  rootRef: string,
  asOf: string | null,
  sideways: boolean,
): { nodes: Node<NodeData>[]; edges: Edge[]; height: number } {
  const d = new dagre.graphlib.Graph();
  d.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 110, marginx: 10, marginy: 10 });
  d.setDefaultEdgeLabel(() => ({}));
  for (const ref of g.nodes.keys()) d.setNode(ref, { width: NODE_W, height: NODE_H });
  // Ranks follow the distance from the root (edges between entities at
  // the same distance are drawn but do not push them apart), so the root
  // stays in the middle with what relies on it to its left.
  for (const e of g.edges) if (!across(g, e)) d.setEdge(e.source, e.target);
  dagre.layout(d);
  const nodes: Node<NodeData>[] = [...g.nodes.entries()].map(([ref, entity]) => {
    const p = d.node(ref);
    return {
      id: ref,
      type: "entity",
      position: { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2 },
      data: { ref, entity, root: ref === rootRef, href: linkTo(ref, asOf) },
      width: NODE_W,
      height: NODE_H,
      draggable: false,
      selectable: false,
      focusable: false,
      ariaLabel: humanRef(ref),
    };
  });
  const edges: Edge[] = g.edges.filter((e) => sideways || !across(g, e)).map((e) => ({
    id: e.id,
    source: e.source,
    target: e.target,
    label: e.type,
    type: "default",
    markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16, color: "#57606a" },
    style: { stroke: "#57606a", strokeWidth: 1.4 },
    labelStyle: { fill: "#1b1f24", fontSize: 11 },
    labelBgStyle: { fill: "#ffffff", fillOpacity: 0.92 },
    labelBgPadding: [4, 2] as [number, number],
    labelBgBorderRadius: 3,
    focusable: false,
    selectable: false,
  }));
  return { nodes, edges, height: d.graph().height ?? NODE_H };
}

export interface RelationsProps {
  entityRef: string;
  entity: Entity;
  asOf: string | null;
  /** Changes when the page hears of a change: the graph is read again. */
  version: number;
}

export function Relations({ entityRef, entity, asOf, version }: RelationsProps) {
  const [depth, setDepth] = useState(1);
  const [hidden, setHidden] = useState<string[]>([]);
  const [sideways, setSideways] = useState(false);
  const [graph, setGraph] = useState<Explored | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);

  const relations = entity.relations ?? [];
  const relKey = JSON.stringify(relations);
  // The pairs the filter offers: those of the entity's own relations.
  const pairs = useMemo(() => {
    const s = new Set(relations.map((r) => pairOf(r.type)));
    return [...s].sort((a, b) => typeOrder(a) - typeOrder(b));
  }, [relKey]);

  useEffect(() => {
    const ctl = new AbortController();
    const follow = hidden.length ? new Set(pairs.filter((p) => !hidden.includes(p))) : null;
    setLoading(true);
    setError(null);
    explore(entityRef, entity, depth, follow, CAP, asOf, ctl.signal)
      .then((g) => {
        if (!ctl.signal.aborted) setGraph(g);
      })
      .catch((e: Error) => {
        if (e.name !== "AbortError") setError(errorText(e));
      })
      .finally(() => {
        if (!ctl.signal.aborted) setLoading(false);
      });
    return () => ctl.abort();
    // The entity is read through relKey: a reload with equal relations
    // reads nothing again unless the page says so (version).
  }, [entityRef, relKey, depth, hidden.join(","), asOf, version]);

  const laid = useMemo(() => (graph ? layout(graph, entityRef, asOf, sideways) : null), [graph, entityRef, asOf, sideways]);
  const flowKey = laid ? laid.nodes.map((n) => n.id).join(",") + "|" + laid.edges.length : "";

  // The list: the entity's own relations grouped by type.
  const groups = useMemo(() => {
    const m = new Map<string, string[]>();
    for (const r of relations) {
      const list = m.get(r.type) ?? [];
      list.push(normRef(r.targetRef));
      m.set(r.type, list);
    }
    return [...m.entries()].sort((a, b) => typeOrder(a[0]) - typeOrder(b[0]) || a[0].localeCompare(b[0]));
  }, [relKey]);

  const titleOf = (ref: string) => graph?.nodes.get(ref)?.metadata.title;

  return (
    <section aria-labelledby="relations-h" className="entity-section">
      <h2 id="relations-h">Relations</h2>
      {relations.length === 0 ? (
        <p className="muted">This entity has no relations.</p>
      ) : (
        <>
          <div className="graph-controls row">
            <label>
              Depth{" "}
              <select value={depth} onChange={(e) => setDepth(Number(e.target.value))}>
                <option value={1}>1</option>
                <option value={2}>2</option>
                <option value={3}>3</option>
              </select>
            </label>
            <fieldset className="graph-filter">
              <legend>Relation types</legend>
              {pairs.map((p) => (
                <label key={p}>
                  <input
                    type="checkbox"
                    checked={!hidden.includes(p)}
                    onChange={(e) =>
                      setHidden((h) => (e.target.checked ? h.filter((x) => x !== p) : [...h, p]))
                    }
                  />{" "}
                  {pairLabel(p)}
                </label>
              ))}
            </fieldset>
            <label className="sideways">
              <input type="checkbox" checked={sideways} onChange={(e) => setSideways(e.target.checked)} /> Relations
              among entities at the same distance
            </label>
            <span className="muted" aria-live="polite">
              {loading
                ? "Loading…"
                : laid && graph
                  ? `${graph.nodes.size} entities, ${laid.edges.length} relations shown`
                  : ""}
            </span>
          </div>
          {graph?.capped && (
            <p className="notice" role="status">
              The graph is capped at {CAP} entities: some neighbours are left out. Choose a smaller depth or fewer
              relation types to see all of them.
            </p>
          )}
          {error && <p className="error">Could not read the neighbours: {error}</p>}
          <p className="muted graph-hint">
            Drag to pan; zoom with the buttons or by pinching. Each box is a link to that entity&apos;s page.
          </p>
          <div className="relations-layout">
            <div
              className="graph-box"
              data-testid="relations-graph"
              role="region"
              aria-label="Relations graph"
              style={{ height: laid ? Math.max(240, Math.min(640, laid.height + 90)) : 240 }}
            >
              {laid && (
                <ReactFlow
                  key={flowKey}
                  nodes={laid.nodes}
                  edges={laid.edges}
                  nodeTypes={nodeTypes}
                  fitView
                  fitViewOptions={{ padding: 0.12, maxZoom: 1.1 }}
                  onInit={(flow) => {
                    // A big graph fitted whole is too small to read: show
                    // the root at a readable size instead (pan for more).
                    const root = laid.nodes.find((n) => n.data.root);
                    if (root && flow.getZoom() < 0.55)
                      flow.setCenter(root.position.x + NODE_W / 2, root.position.y + NODE_H / 2, { zoom: 0.75 });
                  }}
                  minZoom={0.15}
                  maxZoom={2}
                  nodesDraggable={false}
                  nodesConnectable={false}
                  nodesFocusable={false}
                  edgesFocusable={false}
                  elementsSelectable={false}
                  zoomOnScroll={false}
                  preventScrolling={false}
                  proOptions={{ hideAttribution: true }}
                >
                  <Background gap={18} color="#d8dee4" />
                  <Controls showInteractive={false} position="bottom-right" />
                </ReactFlow>
              )}
            </div>
            <nav className="relations-list" aria-label="Relations list" data-testid="relations-list">
              {groups.map(([type, refs]) => (
                <div key={type} className="relation-group">
                  <h3 className="relation-type">
                    {type} <span className="muted">({refs.length})</span>
                  </h3>
                  <ul>
                    {refs.map((r) => (
                      <li key={r}>
                        <Link href={linkTo(r, asOf)}>{titleOf(r) ?? humanRef(r)}</Link>
                        {titleOf(r) && <span className="muted mono"> {humanRef(r)}</span>}
                      </li>
                    ))}
                  </ul>
                </div>
              ))}
            </nav>
          </div>
        </>
      )}
    </section>
  );
}
