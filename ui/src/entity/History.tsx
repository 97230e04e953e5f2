// The entity's history as a timeline, newest first: each change with its
// time, what it was, what caused it, and what it changed in the body (a
// line diff of the YAML of the body before and after).
import { Fragment, useMemo, useState } from "react";
import { diffLines } from "diff";
import { stringify } from "yaml";
import { when, type Entity } from "../api";
import { show } from "./util";

export interface HistoryChange {
  at: string;
  change: "created" | "updated" | "deleted" | string;
  entity?: Entity | null;
  event_id?: string;
  location?: string;
  by?: string;
  [k: string]: unknown;
}

export interface HistoryResponse {
  entityRef: string;
  changes: HistoryChange[];
}

/** Fields of a change that are not its cause. */
const NOT_CAUSE = new Set(["at", "change", "entity", "event_id"]);

const CAUSE_LABEL: Record<string, string> = {
  location: "Location",
  by: "By",
  source: "Source",
  actor: "Actor",
};

interface Line {
  mark: "+" | "-" | " ";
  text: string;
}

type Piece = { gap: number } | Line;

const CONTEXT = 2;

/** Changes shown before "show older". */
const PAGE = 20;

function yamlOf(e: Entity | null | undefined): string {
  return e ? stringify(e, { lineWidth: 0 }) : "";
}

/** The changed lines of `a` → `b` with a little context around them. */
export function lineDiff(a: string, b: string): Piece[] {
  const lines: Line[] = [];
  for (const part of diffLines(a, b)) {
    const mark = part.added ? "+" : part.removed ? "-" : " ";
    const text = part.value.endsWith("\n") ? part.value.slice(0, -1) : part.value;
    for (const l of text.split("\n")) lines.push({ mark, text: l });
  }
  const keep = lines.map(() => false);
  lines.forEach((l, i) => {
    if (l.mark === " ") return;
    for (let j = Math.max(0, i - CONTEXT); j <= Math.min(lines.length - 1, i + CONTEXT); j++) keep[j] = true;
  });
  const out: Piece[] = [];
  let gap = 0;
  lines.forEach((l, i) => {
    if (keep[i]) {
      if (gap) out.push({ gap });
      gap = 0;
      out.push(l);
    } else gap++;
  });
  if (gap && out.length) out.push({ gap });
  return out;
}

function Diff({ pieces }: { pieces: Piece[] }) {
  if (!pieces.some((p) => "mark" in p && p.mark !== " "))
    return <p className="muted diff-none">The body did not change (its relations or state may have).</p>;
  const added = pieces.filter((p) => "mark" in p && p.mark === "+").length;
  const removed = pieces.filter((p) => "mark" in p && p.mark === "-").length;
  return (
    <figure className="diff">
      <figcaption className="visually-hidden">
        Changes to the body: {added} lines added, {removed} lines removed
      </figcaption>
      <pre tabIndex={0} role="region" aria-label={`Diff: ${added} added, ${removed} removed`} data-testid="history-diff">
        {pieces.map((p, i) =>
          "gap" in p ? (
            <span key={i} className="diff-gap">
              {`⋯ ${p.gap} unchanged line${p.gap === 1 ? "" : "s"}\n`}
            </span>
          ) : p.mark === "+" ? (
            <ins key={i} className="diff-line diff-add">
              {`+ ${p.text}\n`}
            </ins>
          ) : p.mark === "-" ? (
            <del key={i} className="diff-line diff-del">
              {`- ${p.text}\n`}
            </del>
          ) : (
            <span key={i} className="diff-line diff-ctx">
              {`  ${p.text}\n`}
            </span>
          ),
        )}
      </pre>
    </figure>
  );
}

function Cause({ c }: { c: HistoryChange }) {
  const fields = Object.entries(c).filter(([k, v]) => !NOT_CAUSE.has(k) && v !== null && v !== undefined && v !== "");
  if (fields.length === 0) return null;
  return (
    <dl className="facts cause">
      {fields.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{CAUSE_LABEL[k] ?? k}</dt>
          <dd className={k === "location" ? "mono" : undefined}>{show(v)}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

export function History({ data, asOf }: { data: HistoryResponse; asOf: string | null }) {
  const entries = useMemo(() => {
    const sorted = [...data.changes].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const cut = asOf ? Date.parse(asOf) : NaN;
    const withDiffs = sorted.map((c, i) => {
      const prev = i > 0 ? sorted[i - 1].entity : null;
      const pieces = c.change === "created" && !prev ? null : lineDiff(yamlOf(prev), yamlOf(c.entity));
      return { c, pieces, future: !Number.isNaN(cut) && Date.parse(c.at) > cut };
    });
    return withDiffs.filter((x) => !x.future).reverse();
  }, [data, asOf]);

  const [all, setAll] = useState(false);
  if (entries.length === 0) return <p className="muted">No changes recorded {asOf ? "up to that instant" : ""}.</p>;
  const shown = all ? entries : entries.slice(0, PAGE);

  return (
    <>
      <ol className="timeline" data-testid="history">
        {shown.map(({ c, pieces }, i) => (
          <li key={c.event_id ?? `${c.at}-${i}`} className={`change change-${c.change}`} data-change={c.change}>
            <div className="change-head">
              <span className={`badge change-kind ${c.change === "deleted" ? "bad" : c.change === "created" ? "good" : ""}`}>
                {c.change}
              </span>{" "}
              <time dateTime={c.at}>{when(c.at)}</time>
              {i === 0 && !asOf && <span className="muted"> · latest</span>}
            </div>
            <Cause c={c} />
            {pieces && <Diff pieces={pieces} />}
            {c.change === "created" && c.entity && !pieces && (
              <details className="created-body">
                <summary>Body as created</summary>
                <pre tabIndex={0} role="region" aria-label="Body as created">
                  {yamlOf(c.entity)}
                </pre>
              </details>
            )}
          </li>
        ))}
      </ol>
      {shown.length < entries.length && (
        <button type="button" className="more" onClick={() => setAll(true)}>
          Show {entries.length - shown.length} older change{entries.length - shown.length === 1 ? "" : "s"}
        </button>
      )}
    </>
  );
}
