// An API entity's definition, readable: for OpenAPI (and Swagger 2) its
// info, servers and operations; for AsyncAPI its info, servers and
// channels; for anything else (GraphQL, gRPC...) the text itself. The raw
// text is always offered.
import { useMemo } from "react";
import { parse } from "yaml";
import type { Entity } from "../api";

type Obj = Record<string, unknown>;

const METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];

function obj(v: unknown): Obj | undefined {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}

interface Info {
  title?: string;
  version?: string;
  description?: string;
  servers: string[];
}

interface Operation {
  method: string;
  path: string;
  summary?: string;
  id?: string;
}

interface Channel {
  name: string;
  actions: string[];
  summary?: string;
  message?: string;
}

function infoOf(doc: Obj): Info {
  const info = obj(doc.info) ?? {};
  const servers: string[] = [];
  const s = doc.servers;
  if (Array.isArray(s)) s.forEach((x) => str(obj(x)?.url) && servers.push(str(obj(x)?.url)!));
  else if (obj(s)) {
    // AsyncAPI: servers by name
    for (const [name, v] of Object.entries(obj(s)!)) {
      const o = obj(v);
      const u = str(o?.url) ?? str(o?.host);
      servers.push(u ? `${name}: ${str(o?.protocol) ? `${str(o?.protocol)}://` : ""}${u}` : name);
    }
  }
  if (str(doc.host)) {
    const schemes = Array.isArray(doc.schemes) ? (doc.schemes as unknown[]).map(str).filter(Boolean) : ["https"];
    servers.push(`${schemes[0]}://${str(doc.host)}${str(doc.basePath) ?? ""}`);
  }
  return { title: str(info.title), version: str(info.version), description: str(info.description), servers };
}

function operationsOf(doc: Obj): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(obj(doc.paths) ?? {})) {
    const o = obj(item);
    if (!o) continue;
    for (const m of METHODS) {
      const op = obj(o[m]);
      if (op) out.push({ method: m.toUpperCase(), path, summary: str(op.summary) ?? str(op.description), id: str(op.operationId) });
    }
  }
  return out;
}

function channelsOf(doc: Obj): Channel[] {
  const out = new Map<string, Channel>();
  for (const [name, item] of Object.entries(obj(doc.channels) ?? {})) {
    const o = obj(item) ?? {};
    const ch: Channel = { name: str(o.address) ?? name, actions: [], summary: str(o.summary) ?? str(o.description) };
    for (const a of ["publish", "subscribe"]) {
      const op = obj(o[a]);
      if (!op) continue;
      ch.actions.push(a);
      ch.summary ??= str(op.summary) ?? str(op.description);
      const msg = obj(op.message);
      ch.message ??= str(msg?.name) ?? str(msg?.title) ?? str(msg?.$ref)?.split("/").pop();
    }
    out.set(name, ch);
  }
  // AsyncAPI 3: operations name their channel by $ref.
  for (const [id, item] of Object.entries(obj(doc.operations) ?? {})) {
    const op = obj(item) ?? {};
    const ref = str(obj(op.channel)?.$ref)?.split("/").pop();
    const ch = (ref && out.get(ref)) || undefined;
    const action = str(op.action) ?? "operation";
    if (ch) {
      ch.actions.push(action);
      ch.summary ??= str(op.summary);
    } else out.set(id, { name: ref ?? id, actions: [action], summary: str(op.summary) });
  }
  return [...out.values()];
}

interface Parsed {
  doc?: Obj;
  error?: string;
}

function parseDefinition(text: string): Parsed {
  try {
    const doc = obj(parse(text));
    return doc ? { doc } : { error: "The definition is not a document (an object)." };
  } catch (e) {
    return { error: e instanceof Error ? e.message.split("\n")[0] : String(e) };
  }
}

function InfoFacts({ info, type }: { info: Info; type: string }) {
  return (
    <dl className="facts api-info" data-testid="api-info">
      <dt>Format</dt>
      <dd>{type}</dd>
      {info.title && (
        <>
          <dt>Title</dt>
          <dd data-testid="api-title">{info.title}</dd>
        </>
      )}
      {info.version && (
        <>
          <dt>Version</dt>
          <dd data-testid="api-version">{info.version}</dd>
        </>
      )}
      {info.servers.length > 0 && (
        <>
          <dt>Servers</dt>
          <dd>
            <ul className="plain-list">
              {info.servers.map((s) => (
                <li key={s} className="mono">
                  {s}
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
      {info.description && (
        <>
          <dt>Description</dt>
          <dd>{info.description}</dd>
        </>
      )}
    </dl>
  );
}

export function ApiDefinition({ entity }: { entity: Entity }) {
  const type = typeof entity.spec?.type === "string" ? entity.spec.type : "unknown";
  const raw = entity.spec?.definition;
  const text = typeof raw === "string" ? raw : raw === undefined || raw === null ? "" : JSON.stringify(raw, null, 2);
  const structured = /^(openapi|swagger|asyncapi)$/i.test(type);
  const parsed = useMemo(() => (structured && text ? parseDefinition(text) : {}), [structured, text]);
  const doc = parsed.doc;
  const isAsync = type.toLowerCase() === "asyncapi" || (doc && "asyncapi" in doc);
  const ops = doc && !isAsync ? operationsOf(doc) : [];
  const channels = doc && isAsync ? channelsOf(doc) : [];

  return (
    <section aria-labelledby="api-h" className="entity-section">
      <h2 id="api-h">API definition</h2>
      {!text && <p className="muted">This API has no definition.</p>}
      {text && doc && (
        <div className="api-definition">
          <InfoFacts info={infoOf(doc)} type={type} />
          {!isAsync && (
            <div className="table-scroll api-table" tabIndex={0} role="region" aria-label="Operations">
              <table className="data" data-testid="api-operations">
                <caption className="visually-hidden">Operations</caption>
                <thead>
                  <tr>
                    <th scope="col">Method</th>
                    <th scope="col">Path</th>
                    <th scope="col">Summary</th>
                  </tr>
                </thead>
                <tbody>
                  {ops.length === 0 && (
                    <tr>
                      <td colSpan={3} className="muted">
                        No operations in the definition.
                      </td>
                    </tr>
                  )}
                  {ops.map((o) => (
                    <tr key={`${o.method} ${o.path}`}>
                      <td>
                        <span className={`method method-${o.method.toLowerCase()}`}>{o.method}</span>
                      </td>
                      <td className="mono" data-testid="api-path">
                        {o.path}
                      </td>
                      <td>
                        {o.summary ?? <span className="muted">—</span>}
                        {o.id && <span className="muted mono"> {o.id}</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {isAsync && (
            <div className="table-scroll api-table" tabIndex={0} role="region" aria-label="Channels">
              <table className="data" data-testid="api-channels">
                <caption className="visually-hidden">Channels</caption>
                <thead>
                  <tr>
                    <th scope="col">Channel</th>
                    <th scope="col">Operations</th>
                    <th scope="col">Message</th>
                    <th scope="col">Summary</th>
                  </tr>
                </thead>
                <tbody>
                  {channels.length === 0 && (
                    <tr>
                      <td colSpan={4} className="muted">
                        No channels in the definition.
                      </td>
                    </tr>
                  )}
                  {channels.map((c) => (
                    <tr key={c.name}>
                      <td className="mono" data-testid="api-channel">
                        {c.name}
                      </td>
                      <td>{c.actions.join(", ") || "—"}</td>
                      <td>{c.message ?? <span className="muted">—</span>}</td>
                      <td>{c.summary ?? <span className="muted">—</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
      {text && structured && parsed.error && (
        <p className="notice">The {type} definition could not be read ({parsed.error}); here is its text.</p>
      )}
      {text && (!structured || !doc) && (
        <pre className="definition" tabIndex={0} data-testid="api-raw" role="region" aria-label={`${type} definition`}>
          {text}
        </pre>
      )}
      {text && structured && doc && (
        <details className="raw-definition">
          <summary>Raw definition ({type})</summary>
          <pre className="definition" tabIndex={0} data-testid="api-raw" role="region" aria-label={`${type} definition`}>
            {text}
          </pre>
        </details>
      )}
    </section>
  );
}
