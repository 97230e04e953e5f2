// Charts through Chart.js, each with its numbers as a table beside it: the
// table is what screen readers read (the canvas is an image with a label)
// and what the tests compare with the API.
import { useEffect, useRef } from "react";
import { download, token } from "../api";
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart as ChartJs,
  DoughnutController,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

ChartJs.register(
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  DoughnutController,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

/** Colours that stay apart for the colour-blind (Okabe–Ito), then greys. */
export const PALETTE = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#CC79A7",
  "#56B4E9",
  "#D55E00",
  "#F0E442",
  "#000000",
  "#999999",
  "#666666",
];

export interface Series {
  label: string;
  values: number[];
}

export interface ChartProps {
  /** Heading of the figure and the canvas's accessible name. */
  title: string;
  kind: "line" | "bar" | "stacked-bar" | "doughnut";
  /** One label per value (bucket starts, levels, checks...). */
  labels: string[];
  series: Series[];
  /** Values are shares (0..1): shown as percentages. */
  percent?: boolean;
  /** A CSV download of the same numbers. */
  csvHref?: string;
  height?: number;
  /** `data-testid` of the figure. */
  testId?: string;
}

function format(v: number, percent?: boolean): string {
  if (percent) return `${(v * 100).toFixed(1)}%`;
  return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/\.?0+$/, "");
}

export function Chart({ title, kind, labels, series, percent, csvHref, height = 260, testId }: ChartProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<ChartJs | null>(null);

  useEffect(() => {
    if (!canvas.current) return;
    const doughnut = kind === "doughnut";
    const stacked = kind === "stacked-bar";
    const data = {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.values,
        backgroundColor: doughnut ? labels.map((_, j) => PALETTE[j % PALETTE.length]) : PALETTE[i % PALETTE.length],
        borderColor: doughnut ? "#fff" : PALETTE[i % PALETTE.length],
        pointRadius: labels.length > 60 ? 0 : 2,
        tension: 0.2,
      })),
    };
    const ticks = percent ? { callback: (v: number | string) => `${Math.round(Number(v) * 100)}%` } : undefined;
    const options = {
      animation: false as const,
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: series.length > 1 || doughnut, position: "bottom" as const },
        tooltip: {
          callbacks: {
            label: (ctx: { dataset: { label?: string }; parsed: number | { y: number } }) => {
              const v = typeof ctx.parsed === "number" ? ctx.parsed : ctx.parsed.y;
              return `${ctx.dataset.label ?? ""}: ${format(v, percent)}`;
            },
          },
        },
      },
      scales: doughnut
        ? {}
        : {
            x: { stacked, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
            y: { stacked, beginAtZero: true, ticks, max: percent ? 1 : undefined },
          },
    };
    const type = doughnut ? "doughnut" : kind === "line" ? "line" : "bar";
    if (chart.current) chart.current.destroy();
    // Chart.js's option types are stricter than this one component needs.
    chart.current = new ChartJs(canvas.current, { type, data, options } as never);
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [kind, labels, series, percent]);

  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>
        <span className="chart-title">{title}</span>
        {csvHref && (
          <a
            className="csv"
            href={csvHref}
            download
            onClick={(e) => {
              // With a token, the file is fetched with it (a link cannot carry it).
              if (!token()) return;
              e.preventDefault();
              download(csvHref, `${title}.csv`).catch(() => undefined);
            }}
          >
            CSV
            <span className="visually-hidden"> of {title}</span>
          </a>
        )}
      </figcaption>
      <div style={{ height }} className="chart-canvas">
        <canvas ref={canvas} role="img" aria-label={title} />
      </div>
      <details className="chart-data">
        <summary>Numbers</summary>
        <div className="table-scroll">
          <table className="data" data-chart-table>
            <thead>
              <tr>
                <th scope="col">{kind === "doughnut" ? "" : "Bucket"}</th>
                {series.map((s) => (
                  <th scope="col" key={s.label}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {labels.map((l, i) => (
                <tr key={`${l}-${i}`}>
                  <th scope="row">{l}</th>
                  {series.map((s) => (
                    <td key={s.label} data-value={s.values[i]}>
                      {format(s.values[i] ?? 0, percent)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
