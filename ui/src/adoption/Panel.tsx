// One metric's panel: its heading, what it counts, its split ("by") and
// other controls, then its charts, an empty state that says why, or the
// API's error.
import { type ReactNode, useId } from "react";
import { SPLIT_LABEL } from "./metrics";

export function Panel({
  id,
  title,
  about,
  controls,
  children,
  wide,
}: {
  id: string;
  title: string;
  about: ReactNode;
  controls?: ReactNode;
  children: ReactNode;
  wide?: boolean;
}) {
  return (
    <section className={`ad-panel${wide ? " ad-wide" : ""}`} aria-labelledby={`${id}-h`} data-testid={`panel-${id}`}>
      <div className="ad-panel-head">
        <div>
          <h2 id={`${id}-h`}>{title}</h2>
          <p className="muted ad-about">{about}</p>
        </div>
        {controls && <div className="ad-controls">{controls}</div>}
      </div>
      {children}
    </section>
  );
}

export function SplitSelect({
  splits,
  value,
  onChange,
  label = "Split by",
}: {
  splits: string[];
  value: string;
  onChange: (v: string) => void;
  label?: string;
}) {
  const id = useId();
  return (
    <span className="ad-field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {splits.map((s) => (
          <option key={s} value={s}>
            {SPLIT_LABEL[s] ?? s}
          </option>
        ))}
      </select>
    </span>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <div className="ad-empty" role="note">
      {children}
    </div>
  );
}

export function Folded({ folded, total, what }: { folded: number; total: number; what: string }) {
  if (folded === 0) return null;
  return (
    <p className="muted ad-folded">
      The {total - folded} largest of {total} {what} are drawn; the CSV holds them all.
    </p>
  );
}
