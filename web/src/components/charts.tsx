// Chart.js (through react-chartjs-2) with only the parts the UI uses registered, styled
// for a dark room. Every chart is a labelled image for screen readers; the numbers are
// also in the tables next to it.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart as ChartJS,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartData,
  type ChartOptions,
} from "chart.js";
import { Bar, Line } from "react-chartjs-2";
import { fmtTime } from "../lib/format";

ChartJS.register(
  LineController,
  LineElement,
  PointElement,
  BarController,
  BarElement,
  LinearScale,
  CategoryScale,
  Tooltip,
  Legend,
  Filler,
);
ChartJS.defaults.color = "#c9d4df";
ChartJS.defaults.borderColor = "rgba(201, 212, 223, 0.16)";
ChartJS.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
ChartJS.defaults.font.size = 13;
ChartJS.defaults.animation = false;
ChartJS.defaults.maintainAspectRatio = false;

/** Distinct colours that read on a dark background (Okabe–Ito, brightened). */
export const PALETTE = ["#56b4e9", "#e69f00", "#5fd3a5", "#f0e442", "#ff7eb6", "#b59cff", "#ff8a65", "#9ad0ff"];

export function colorFor(i: number): string {
  return PALETTE[i % PALETTE.length] ?? "#56b4e9";
}

export interface Series {
  label: string;
  data: (number | null)[];
  color?: string;
  dashed?: boolean;
  fill?: boolean;
  stepped?: boolean;
}

interface TimeChartProps {
  label: string;
  /** x values: ms since the epoch. */
  t: number[];
  series: Series[];
  yTitle?: string;
  yFormat?: (v: number) => string;
  yMin?: number;
  height?: number;
}

/** A line chart over time (the live rates). */
export function TimeChart({ label, t, series, yTitle, yFormat, yMin = 0, height = 220 }: TimeChartProps) {
  const data: ChartData<"line", (number | null)[], string> = {
    labels: t.map((x) => fmtTime(x)),
    datasets: series.map((s, i) => ({
      label: s.label,
      data: s.data,
      borderColor: s.color ?? colorFor(i),
      backgroundColor: (s.color ?? colorFor(i)) + "33",
      borderWidth: 2,
      // Points only while a line cannot be drawn yet.
      pointRadius: t.length < 3 ? 3 : 0,
      spanGaps: false,
      fill: s.fill ?? false,
      borderDash: s.dashed ? [6, 4] : undefined,
      stepped: s.stepped ?? false,
      tension: 0.2,
    })),
  };
  const options: ChartOptions<"line"> = {
    interaction: { mode: "index", intersect: false },
    plugins: {
      legend: { display: series.length > 1, labels: { boxWidth: 14 } },
      tooltip: {
        callbacks: yFormat
          ? { label: (c) => `${c.dataset.label}: ${c.parsed.y === null ? "—" : yFormat(c.parsed.y)}` }
          : {},
      },
    },
    scales: {
      x: { ticks: { maxTicksLimit: 6, maxRotation: 0 } },
      y: {
        min: yMin,
        title: yTitle ? { display: true, text: yTitle } : undefined,
        ticks: yFormat ? { callback: (v) => yFormat(Number(v)) } : undefined,
      },
    },
  };
  return (
    <div className="chart" style={{ height }}>
      <Line data={data} options={options} role="img" aria-label={label} />
    </div>
  );
}

interface CategoryChartProps {
  label: string;
  labels: string[];
  series: Series[];
  yTitle?: string;
  yFormat?: (v: number) => string;
  yMin?: number;
  yMax?: number;
  kind?: "line" | "bar";
  horizontal?: boolean;
  height?: number;
}

/** A chart over categories (rounds, features, detectors). */
export function CategoryChart({
  label,
  labels,
  series,
  yTitle,
  yFormat,
  yMin,
  yMax,
  kind = "line",
  horizontal = false,
  height = 220,
}: CategoryChartProps) {
  const valueAxis = {
    min: yMin,
    max: yMax,
    title: yTitle ? { display: true, text: yTitle } : undefined,
    ticks: yFormat ? { callback: (v: string | number) => yFormat(Number(v)) } : undefined,
  };
  const tooltip = {
    callbacks: yFormat
      ? {
          label: (c: { dataset: { label?: string }; parsed: { x: number | null; y: number | null } }) => {
            const v = horizontal ? c.parsed.x : c.parsed.y;
            return `${c.dataset.label ?? ""}: ${v === null ? "—" : yFormat(v)}`;
          },
        }
      : {},
  };
  if (kind === "bar") {
    const data: ChartData<"bar", (number | null)[], string> = {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        backgroundColor: s.color ?? colorFor(i),
        borderWidth: 0,
      })),
    };
    const options: ChartOptions<"bar"> = {
      indexAxis: horizontal ? "y" : "x",
      plugins: { legend: { display: series.length > 1 }, tooltip },
      scales: horizontal ? { x: valueAxis, y: { ticks: { autoSkip: false } } } : { y: valueAxis },
    };
    return (
      <div className="chart" style={{ height }}>
        <Bar data={data} options={options} role="img" aria-label={label} />
      </div>
    );
  }
  const data: ChartData<"line", (number | null)[], string> = {
    labels,
    datasets: series.map((s, i) => ({
      label: s.label,
      data: s.data,
      borderColor: s.color ?? colorFor(i),
      backgroundColor: s.color ?? colorFor(i),
      borderWidth: 2,
      pointRadius: 3,
      borderDash: s.dashed ? [6, 4] : undefined,
      stepped: s.stepped ?? false,
      spanGaps: true,
    })),
  };
  const options: ChartOptions<"line"> = {
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { display: series.length > 1, labels: { boxWidth: 14 } }, tooltip },
    scales: { y: valueAxis },
  };
  return (
    <div className="chart" style={{ height }}>
      <Line data={data} options={options} role="img" aria-label={label} />
    </div>
  );
}
