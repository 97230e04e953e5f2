// The catalog's HTTP API as the pages use it: typed reads, Backstage's
// error body turned into a message, and a hook that reloads on demand
// (live updates call `reload`).
import { useCallback, useEffect, useRef, useState } from "react";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface EntityMeta {
  name: string;
  namespace?: string;
  title?: string;
  description?: string;
  uid?: string;
  tags?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  links?: { url: string; title?: string; icon?: string; type?: string }[];
}

export interface Relation {
  type: string;
  targetRef: string;
}

export interface Entity {
  apiVersion: string;
  kind: string;
  metadata: EntityMeta;
  spec?: Record<string, Json>;
  relations?: Relation[];
}

export interface QueryPage {
  items: Entity[];
  totalItems?: number;
  pageInfo?: { nextCursor?: string; prevCursor?: string };
}

export interface FacetCount {
  value: string;
  count: number;
}

export interface FacetsResponse {
  facets: Record<string, FacetCount[]>;
}

/** One change of the feed (`/api/history/events`). */
export interface FeedItem {
  eventId: string;
  eventAt: string;
  eventType: string;
  entityRef?: string;
  locationRef?: string;
  source?: string;
  before?: Entity | null;
  after?: Entity | null;
  [k: string]: Json | Entity | undefined;
}

/** A failed request, with the message of Backstage's error body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// ---- the caller's token ---------------------------------------------------
// Where reads need a token (`auth.read: token`), the UI asks for one once
// (a static token or a JWT of the company's SSO) and keeps it for the
// browser tab's session; every request then carries it as a bearer token.

const TOKEN_KEY = "catalog-token";

export function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Fired on `window` when the API answers 401: the shell asks for a token. */
export const AUTH_REQUIRED = "catalog-auth-required";

/** Request headers: JSON, and the token when there is one. */
export function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token();
  return { accept: "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
}

type Params = Record<string, string | number | boolean | undefined | null | (string | number)[]>;

/** `path?params`; repeated keys for arrays, empty values left out. */
export function url(path: string, params: Params = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function failure(res: Response): Promise<ApiError> {
  if (res.status === 401) window.dispatchEvent(new Event(AUTH_REQUIRED));
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body?.error?.message) message = body.error.message;
  } catch {
    // not a JSON error body; the status says enough
  }
  return new ApiError(res.status, message);
}

export async function getJson<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const res = await fetch(url(path, params), { headers: headers(), signal });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
  loading: boolean;
  /** Fetches again, keeping the current data on screen meanwhile. */
  reload: () => void;
}

/**
 * GETs `path` with `params` whenever either changes (or `reload` is
 * called); `path` null fetches nothing. Earlier requests are aborted, so a
 * late answer never replaces a newer one.
 */
export function useApi<T>(path: string | null, params: Params = {}): Loaded<T> {
  const key = path === null ? null : url(path, params);
  const [state, setState] = useState<{ key: string | null; data?: T; error?: Error }>({ key: null });
  const [tick, setTick] = useState(0);
  const [loading, setLoading] = useState(false);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    if (key === null) return;
    const ctl = new AbortController();
    setLoading(true);
    fetch(key, { headers: headers(), signal: ctl.signal })
      .then(async (res) => {
        if (!res.ok) throw await failure(res);
        return (await res.json()) as T;
      })
      .then((data) => setState({ key, data }))
      .catch((error: Error) => {
        if (error.name !== "AbortError") setState((s) => ({ key, data: s.key === key ? s.data : undefined, error }));
      })
      .finally(() => {
        if (!ctl.signal.aborted) setLoading(false);
      });
    return () => ctl.abort();
  }, [key, tick]);
  // Data of an older key stays visible while the new one loads (no flash).
  return { data: state.data, error: state.key === key ? state.error : undefined, loading, reload };
}

/** Calls `fn` at most once per `ms`, the last call winning. */
export function useDebounced<A extends unknown[]>(fn: (...a: A) => void, ms: number): (...a: A) => void {
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(
    (...a: A) => {
      clearTimeout(timer.current);
      timer.current = setTimeout(() => latest.current(...a), ms);
    },
    [ms],
  );
}

// ---- entity references ------------------------------------------------

export interface Ref {
  kind: string;
  namespace: string;
  name: string;
}

/** `kind:namespace/name` (namespace `default` and a default kind when absent). */
export function parseRef(ref: string, defaultKind = "component"): Ref {
  let kind = defaultKind;
  let rest = ref;
  const colon = ref.indexOf(":");
  if (colon > 0) {
    kind = ref.slice(0, colon);
    rest = ref.slice(colon + 1);
  }
  const slash = rest.indexOf("/");
  const namespace = slash >= 0 ? rest.slice(0, slash) : "default";
  const name = slash >= 0 ? rest.slice(slash + 1) : rest;
  return { kind: kind.toLowerCase(), namespace, name };
}

export function refOf(e: Entity): string {
  return `${e.kind.toLowerCase()}:${e.metadata.namespace ?? "default"}/${e.metadata.name}`;
}

/** The ref as people write it: namespace left out when `default`. */
export function humanRef(ref: string): string {
  const r = parseRef(ref);
  return r.namespace === "default" ? `${r.kind}:${r.name}` : `${r.kind}:${r.namespace}/${r.name}`;
}

/** The UI's page of an entity (Backstage's `/catalog/:namespace/:kind/:name`). */
export function entityPath(ref: string): string {
  const r = parseRef(ref);
  return `/catalog/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.name)}`;
}

/** The API path of an entity by name. */
export function byNamePath(r: Ref): string {
  return `/api/catalog/entities/by-name/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `2026-11-26T19:27:23Z` as local, readable time. */
export function when(at: string | undefined | null): string {
  if (!at) return "—";
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? at : d.toLocaleString();
}

/**
 * Downloads `href` as a file through fetch, so the request carries the
 * token (a plain link would not); the name comes from the answer's
 * Content-Disposition, or `fallback`.
 */
export async function download(href: string, fallback: string): Promise<void> {
  const res = await fetch(href, { headers: headers({ accept: "*/*" }) });
  if (!res.ok) throw await failure(res);
  const disposition = res.headers.get("content-disposition") ?? "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallback;
  const blob = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = blob;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(blob), 10_000);
}
