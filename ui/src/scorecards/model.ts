// What the scorecard routes answer (`/api/scorecards...`), and the small
// calculations the scorecard pages make from it.

export interface Check {
  id: string;
  level: string;
  rule: string;
  title?: string;
  weight: number;
}

export interface Scorecard {
  id: string;
  title?: string;
  description?: string;
  appliesTo?: Record<string, string[]>;
  checks: Check[];
  levels?: string[];
  source?: string;
  file?: string;
  updatedAt?: string;
}

export interface Rejected {
  source?: string;
  file?: string;
  errors?: string[];
  [k: string]: unknown;
}

export interface ScorecardList {
  items: Scorecard[];
  rejected?: Rejected[];
}

export interface LevelCount {
  /** `null`: no level reached. */
  level: string | null;
  entities: number;
}

export interface CheckRate {
  id: string;
  passing: number;
  exempt: number;
  passRate: number;
}

export interface GroupRollup {
  group: string;
  entities: number;
  levels: LevelCount[];
  meanScore: number;
  checks?: CheckRate[];
}

export interface RollupView {
  scorecard: string;
  by: string;
  groups: GroupRollup[];
}

export interface TrendView {
  scorecard: string;
  by: string;
  interval: string;
  buckets: { start: string; end: string; groups: GroupRollup[] }[];
}

export interface ResultItem {
  entityRef: string;
  level: string | null;
  score: number;
  failing: string[];
  exempt: string[];
  owners: string[];
}

export interface ResultsPage {
  items: ResultItem[];
  pageInfo: { nextCursor?: string | null };
}

export interface ExemptionRecord {
  exemption: {
    id: string;
    scorecard: string;
    entity: string;
    check: string;
    reason: string;
    author: string;
    expiresAt?: string;
    expires_at?: string;
  };
  grantedAt?: string;
  granted_at?: string;
  revoked?: { at: string; author: string; reason?: string };
}

/** The rollup dimensions, as `by=` names them, with their headings. */
export const DIMENSIONS = [
  { by: "owner", label: "Teams" },
  { by: "system", label: "Systems" },
  { by: "domain", label: "Domains" },
] as const;

export type Dimension = (typeof DIMENSIONS)[number]["by"];

export function isDimension(s: string | null): s is Dimension {
  return DIMENSIONS.some((d) => d.by === s);
}

/** The card's levels, lowest first (from the definition, else its checks). */
export function levelsOf(card: Scorecard): string[] {
  if (card.levels?.length) return card.levels;
  const seen: string[] = [];
  card.checks.forEach((c) => {
    if (!seen.includes(c.level)) seen.push(c.level);
  });
  return seen;
}

/** `null` (no level) as people read it. */
export const NO_LEVEL = "No level";

export function levelLabel(level: string | null): string {
  return level === null ? NO_LEVEL : level.charAt(0).toUpperCase() + level.slice(1);
}

/** Entities at `level` in a group (0 when absent). */
export function countAt(g: GroupRollup, level: string | null): number {
  return g.levels.find((l) => l.level === level)?.entities ?? 0;
}

/** Share of check results that pass or are exempt, over all checks. */
export function overallPassRate(g: GroupRollup): number | undefined {
  if (!g.checks?.length || g.entities === 0) return undefined;
  const ok = g.checks.reduce((n, c) => n + c.passing + c.exempt, 0);
  return ok / (g.entities * g.checks.length);
}

export function percent(v: number | undefined): string {
  return v === undefined ? "—" : `${(v * 100).toFixed(1)}%`;
}

export function score(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** `2026-11-23T00:00:00Z` -> `2026-11-23` (bucket labels). */
export function day(at: string): string {
  return at.slice(0, 10);
}

/** A colour class per level position: none, then rising. */
export function levelClass(card: Scorecard, level: string | null): string {
  if (level === null) return "lvl lvl-none";
  const i = levelsOf(card).indexOf(level);
  return `lvl lvl-${Math.min(Math.max(i, 0), 3)}`;
}
