// The adoption metrics (`/api/metrics/{metric}`) as the dashboard asks for
// them, and the shaping of their series into chart series.
import { humanRef, url, useApi } from "../api";
import type { Series } from "../components/Chart";

export interface MetricSeries {
  key: string;
  measure: string;
  values: number[];
}

export interface Mover {
  key: string;
  from: number;
  to: number;
  change: number;
}

export interface MetricView {
  metric: string;
  interval: string;
  by: string;
  buckets: { start: string; end: string }[];
  series: MetricSeries[];
  movers?: { improved: Mover[]; regressed: Mover[] };
}

export type Interval = "day" | "week" | "month";

/** The splits each metric answers (the API's order; the first is its default). */
export const SPLITS: Record<string, string[]> = {
  entities: ["all", "kind", "type", "lifecycle", "tag", "owner", "system", "domain", "namespace"],
  "ownership-coverage": ["all", "kind", "type", "lifecycle", "tag", "owner", "system", "domain", "namespace"],
  "catalog-coverage": ["all", "org", "team"],
  "scorecard-levels": ["all", "owner", "system", "domain"],
  technology: ["language", "topic", "tag", "api-type", "dependency"],
  changes: ["all", "kind", "source", "change"],
};

export const SPLIT_LABEL: Record<string, string> = {
  all: "Nothing (total)",
  kind: "Kind",
  type: "Type",
  lifecycle: "Lifecycle",
  tag: "Tag",
  owner: "Owner",
  system: "System",
  domain: "Domain",
  namespace: "Namespace",
  source: "Source",
  change: "Change type",
  org: "GitHub organisation",
  language: "Language",
  topic: "Topic",
  "api-type": "API type",
  dependency: "Dependency",
};

export type Params = Record<string, string | undefined>;

/** A metric's JSON, and the URL of the same numbers as CSV. */
export function useMetric(metric: string, params: Params | null) {
  const path = `/api/metrics/${metric}`;
  const loaded = useApi<MetricView>(params ? path : null, params ?? {});
  return { ...loaded, csvHref: params ? url(path, { ...params, format: "csv" }) : undefined };
}

/** `2026-11-23T00:00:00Z` -> `2026-11-23`. */
export function bucketLabels(view: MetricView | undefined): string[] {
  return (view?.buckets ?? []).map((b) => b.start.slice(0, 10));
}

export interface Shaped {
  series: Series[];
  /** Keys folded into "Other" (beyond the largest `limit`). */
  folded: number;
  total: number;
}

/**
 * The series of one `measure`, labelled by key (or by `allLabel` for the
 * single `all` series); beyond the `limit` largest keys (by their peak) the
 * rest are summed as "Other" when `fold`, else left out.
 */
export function shape(
  view: MetricView | undefined,
  measure: string | ((m: string) => boolean),
  opts: { limit?: number; fold?: boolean; allLabel?: string; label?: (s: MetricSeries) => string } = {},
): Shaped {
  const match = typeof measure === "string" ? (m: string) => m === measure : measure;
  const picked = (view?.series ?? []).filter((s) => match(s.measure));
  const limit = opts.limit ?? 10;
  const label = (s: MetricSeries) =>
    opts.label ? opts.label(s) : s.key === "all" && opts.allLabel ? opts.allLabel : keyLabel(s.key);
  if (picked.length <= limit) {
    return { series: picked.map((s) => ({ label: label(s), values: s.values })), folded: 0, total: picked.length };
  }
  const peak = (s: MetricSeries) => Math.max(0, ...s.values);
  const ranked = [...picked].sort((a, b) => peak(b) - peak(a) || a.key.localeCompare(b.key));
  const keep = new Set(ranked.slice(0, opts.fold ? limit - 1 : limit));
  const kept = picked.filter((s) => keep.has(s));
  const rest = picked.filter((s) => !keep.has(s));
  const series = kept.map((s) => ({ label: label(s), values: s.values }));
  if (opts.fold) {
    const n = view?.buckets.length ?? 0;
    series.push({
      label: `Other (${rest.length})`,
      values: Array.from({ length: n }, (_, i) => rest.reduce((sum, s) => sum + (s.values[i] ?? 0), 0)),
    });
  }
  return { series, folded: rest.length, total: picked.length };
}

/** Today (UTC) less `days`, as `YYYY-MM-DD`. */
export function daysAgo(days: number): string {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - days);
  return d.toISOString().slice(0, 10);
}

/** A series key as people read it: entity refs without the default namespace. */
export function keyLabel(key: string): string {
  return /^[a-z]+:[^/\s]+\/[^/\s]+$/i.test(key) ? humanRef(key) : key;
}
