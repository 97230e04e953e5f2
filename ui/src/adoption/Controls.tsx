// The dashboard's range and interval (with presets) and the entity filter
// the entity counts take.
import { type FormEvent, useEffect, useState } from "react";
import type { Range } from "../pages/Dashboard";
import { daysAgo, type Interval } from "./metrics";

const PRESETS: { label: string; days: number; interval: Interval }[] = [
  { label: "30 days", days: 29, interval: "day" },
  { label: "12 weeks", days: 7 * 11, interval: "week" },
  { label: "12 months", days: 365, interval: "month" },
  { label: "3 years", days: 3 * 365, interval: "month" },
];

export function Controls({
  range,
  filter,
  set,
}: {
  range: Range;
  filter: string;
  set: (changes: Record<string, string | null>) => void;
}) {
  const [text, setText] = useState(filter);
  useEffect(() => setText(filter), [filter]);
  const today = daysAgo(0);
  const preset = PRESETS.find(
    (p) => p.interval === range.interval && range.from === daysAgo(p.days) && range.to === today,
  );
  const apply = (e: FormEvent) => {
    e.preventDefault();
    set({ filter: text.trim() || null });
  };
  return (
    <div className="ad-toolbar" role="group" aria-label="Range and interval">
      <div className="ad-seg" role="group" aria-label="Range presets">
        {PRESETS.map((p) => (
          <button
            key={p.label}
            type="button"
            aria-pressed={preset === p}
            onClick={() => set({ from: daysAgo(p.days), to: null, interval: p.interval })}
          >
            {p.label}
          </button>
        ))}
      </div>
      <span className="ad-field">
        <label htmlFor="ad-from">From</label>
        <input
          id="ad-from"
          type="date"
          value={range.from}
          max={range.to}
          onChange={(e) => e.target.value && set({ from: e.target.value })}
        />
      </span>
      <span className="ad-field">
        <label htmlFor="ad-to">To</label>
        <input
          id="ad-to"
          type="date"
          value={range.to}
          min={range.from}
          onChange={(e) => set({ to: e.target.value && e.target.value !== today ? e.target.value : null })}
        />
      </span>
      <span className="ad-field">
        <label htmlFor="ad-interval">Interval</label>
        <select id="ad-interval" value={range.interval} onChange={(e) => set({ interval: e.target.value })}>
          <option value="day">Day</option>
          <option value="week">Week</option>
          <option value="month">Month</option>
        </select>
      </span>
      <form className="ad-field ad-filter" onSubmit={apply}>
        <label htmlFor="ad-filter">Entity filter</label>
        <input
          id="ad-filter"
          type="text"
          value={text}
          placeholder="e.g. kind=component,spec.lifecycle=production"
          onChange={(e) => setText(e.target.value)}
          aria-describedby="ad-filter-help"
        />
        <button type="submit">Apply</button>
        <span id="ad-filter-help" className="visually-hidden">
          Backstage filter syntax; narrows the entity counts and ownership coverage
        </span>
      </form>
    </div>
  );
}
