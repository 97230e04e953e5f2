// The entity's facts: what it is, who owns it, where it belongs, its
// links and annotations, and the file it comes from with that file's
// processing errors.
import { useEffect, useState } from "react";
import { Link } from "wouter";
import { getJson, humanRef, parseRef, useApi, type Entity } from "../api";
import { fetchByRefs, normRef } from "./relations";
import { linkTo, show } from "./util";

const MANAGED_BY = "backstage.io/managed-by-location";

interface Location {
  id: string;
  type: string;
  target: string;
  entityRef?: string;
}

interface LocationError {
  location?: string;
  kind?: string;
  message: string;
  document?: number;
  line?: number;
  column?: number;
  entity?: string;
}

/** Targets of the relations of `type` whose kind is `kind` (any when null). */
function targets(e: Entity, type: string, kind: string | null): string[] {
  return (e.relations ?? [])
    .filter((r) => r.type === type && (kind === null || parseRef(r.targetRef).kind === kind))
    .map((r) => normRef(r.targetRef));
}

/** Refs from the relations, or else from spec (a shorthand resolved). */
function refsOf(e: Entity, type: string, kind: string | null, specKey: string, defaultKind: string): string[] {
  const fromRelations = targets(e, type, kind);
  if (fromRelations.length) return fromRelations;
  const v = e.spec?.[specKey];
  const list = Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
  return list
    .filter((x): x is string => typeof x === "string")
    .map((x) => {
      const r = parseRef(x, defaultKind);
      return `${r.kind}:${r.namespace}/${r.name}`;
    });
}

function RefLinks({ refs, asOf, testId }: { refs: string[]; asOf: string | null; testId: string }) {
  if (refs.length === 0) return <dd data-testid={testId} className="muted">—</dd>;
  return (
    <dd data-testid={testId}>
      {refs.map((r, i) => (
        <span key={r}>
          {i > 0 && ", "}
          <Link href={linkTo(r, asOf)}>{humanRef(r)}</Link>
        </span>
      ))}
    </dd>
  );
}

function SourceLocation({ entity, entityRef, version }: { entity: Entity; entityRef: string; version: number }) {
  const target = entity.metadata.annotations?.[MANAGED_BY];
  const r = parseRef(entityRef);
  const loc = useApi<Location>(
    `/api/catalog/locations/by-entity/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`,
  );
  const [errors, setErrors] = useState<LocationError[] | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  const id = loc.data?.id;
  useEffect(() => {
    if (!id) return;
    const ctl = new AbortController();
    getJson<{ errors: LocationError[] }>(`/api/catalog/locations/${encodeURIComponent(id)}/errors`, {}, ctl.signal)
      .then((res) => setErrors(res.errors ?? []))
      .catch((e: Error) => {
        if (e.name !== "AbortError") setFailed(e.message);
      });
    return () => ctl.abort();
    // read again on every change the page hears of
  }, [id, version]);

  return (
    <div className="source-location" data-testid="source-location">
      <h3>Source</h3>
      <p className="mono source-target">
        {target ?? (loc.data ? `${loc.data.type}:${loc.data.target}` : <span className="muted">unknown</span>)}
      </p>
      {loc.error && <p className="muted">No location record: {loc.error.message}</p>}
      {failed && <p className="error">Could not read the location's errors: {failed}</p>}
      {errors && errors.length === 0 && (
        <p className="muted" data-testid="location-errors-none">
          <span aria-hidden="true">✓ </span>No processing errors in this location.
        </p>
      )}
      {errors && errors.length > 0 && (
        <div className="error" data-testid="location-errors">
          <p className="error-title">
            <strong>
              {errors.length} processing error{errors.length === 1 ? "" : "s"}
            </strong>{" "}
            in this location
          </p>
          <ul>
            {errors.map((e, i) => (
              <li key={i}>
                {e.kind && <span className="badge fail">{e.kind}</span>} {e.message}
                {(e.line !== undefined || e.entity) && (
                  <span className="error-where">
                    {e.document !== undefined && ` document ${e.document}`}
                    {e.line !== undefined && `, line ${e.line}${e.column !== undefined ? `:${e.column}` : ""}`}
                    {e.entity && ` (${e.entity})`}
                  </span>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

export interface AboutProps {
  entity: Entity;
  entityRef: string;
  asOf: string | null;
  version: number;
}

export function About({ entity, entityRef, asOf, version }: AboutProps) {
  const kind = entity.kind.toLowerCase();
  const m = entity.metadata;
  const owners = refsOf(entity, "ownedBy", null, "owner", "group");
  const systems = kind === "system" ? [] : refsOf(entity, "partOf", "system", "system", "system");
  const ownDomain = kind === "system" ? refsOf(entity, "partOf", "domain", "domain", "domain") : [];
  const parents = kind === "domain" ? targets(entity, "partOf", "domain") : [];

  // A component's domain is its system's.
  const [viaSystem, setViaSystem] = useState<string[]>([]);
  const systemKey = systems.join(",");
  useEffect(() => {
    if (!systemKey) {
      setViaSystem([]);
      return;
    }
    const ctl = new AbortController();
    fetchByRefs(systemKey.split(","), ["kind", "spec.domain", "relations"], asOf, ctl.signal)
      .then((got) => {
        const out = new Set<string>();
        for (const s of got.values()) if (s) refsOf(s, "partOf", "domain", "domain", "domain").forEach((d) => out.add(d));
        setViaSystem([...out]);
      })
      .catch(() => setViaSystem([]));
    return () => ctl.abort();
  }, [systemKey, asOf]);
  const domains = kind === "system" ? ownDomain : viaSystem;

  const annotations = Object.entries(m.annotations ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const labels = Object.entries(m.labels ?? {});
  const spec = entity.spec ?? {};

  return (
    <section aria-labelledby="about-h" className="panel entity-section about">
      <h2 id="about-h">About</h2>
      {m.description ? (
        <p className="description" data-testid="about-description">
          {m.description}
        </p>
      ) : (
        <p className="muted" data-testid="about-description">
          No description.
        </p>
      )}
      <dl className="facts" data-testid="about-facts">
        <dt>Kind</dt>
        <dd data-testid="about-kind">{entity.kind}</dd>
        {spec.type !== undefined && (
          <>
            <dt>Type</dt>
            <dd data-testid="about-type">{show(spec.type)}</dd>
          </>
        )}
        {(owners.length > 0 || (kind !== "group" && kind !== "user")) && (
          <>
            <dt>Owner</dt>
            <RefLinks refs={owners} asOf={asOf} testId="about-owner" />
          </>
        )}
        {kind !== "system" && kind !== "domain" && kind !== "group" && kind !== "user" && (
          <>
            <dt>System</dt>
            <RefLinks refs={systems} asOf={asOf} testId="about-system" />
          </>
        )}
        {kind !== "domain" && kind !== "group" && kind !== "user" && (
          <>
            <dt>Domain</dt>
            <RefLinks refs={domains} asOf={asOf} testId="about-domain" />
          </>
        )}
        {parents.length > 0 && (
          <>
            <dt>Parent domain</dt>
            <RefLinks refs={parents} asOf={asOf} testId="about-parent" />
          </>
        )}
        {spec.lifecycle !== undefined && (
          <>
            <dt>Lifecycle</dt>
            <dd data-testid="about-lifecycle">
              <span className="badge">{show(spec.lifecycle)}</span>
            </dd>
          </>
        )}
        {spec.profile && typeof spec.profile === "object" && !Array.isArray(spec.profile) && (
          <>
            <dt>Profile</dt>
            <dd>
              {show(spec.profile.displayName ?? "")} {spec.profile.email ? `<${show(spec.profile.email)}>` : ""}
            </dd>
          </>
        )}
        <dt>Tags</dt>
        <dd data-testid="about-tags">
          {m.tags?.length ? (
            <ul className="inline-list">
              {m.tags.map((t) => (
                <li key={t}>
                  <span className="badge tag">{t}</span>
                </li>
              ))}
            </ul>
          ) : (
            <span className="muted">—</span>
          )}
        </dd>
        {labels.length > 0 && (
          <>
            <dt>Labels</dt>
            <dd>
              <ul className="inline-list">
                {labels.map(([k, v]) => (
                  <li key={k}>
                    <code>
                      {k}={v}
                    </code>
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
        <dt>Links</dt>
        <dd data-testid="about-links">
          {m.links?.length ? (
            <ul className="plain-list">
              {m.links.map((l) => (
                <li key={l.url}>
                  <a href={l.url} rel="noreferrer noopener" target="_blank">
                    {l.title ?? l.url}
                    <span className="visually-hidden"> (opens in a new tab)</span>
                  </a>
                  {l.title && <span className="muted link-url"> {l.url}</span>}
                </li>
              ))}
            </ul>
          ) : (
            <span className="muted">—</span>
          )}
        </dd>
        <dt>Ref</dt>
        <dd>
          <code>{entityRef}</code>
        </dd>
        {m.uid && (
          <>
            <dt>UID</dt>
            <dd>
              <code>{m.uid}</code>
            </dd>
          </>
        )}
      </dl>
      {annotations.length > 0 && (
        <details className="annotations">
          <summary>Annotations ({annotations.length})</summary>
          <table className="data">
            <caption className="visually-hidden">Annotations</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {annotations.map(([k, v]) => (
                <tr key={k}>
                  <td className="mono">{k}</td>
                  <td className="mono">{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
      <SourceLocation entity={entity} entityRef={entityRef} version={version} />
    </section>
  );
}
