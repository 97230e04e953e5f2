// Small helpers the entity page's parts share.
import { entityPath } from "../api";

/** The page of `ref`, at the same instant when the page reads the past. */
export function linkTo(ref: string, asOf: string | null): string {
  const p = entityPath(ref);
  return asOf ? `${p}?asOf=${encodeURIComponent(asOf)}` : p;
}

/** A JSON value as short text (lists joined, objects as JSON). */
export function show(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
