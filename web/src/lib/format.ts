const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const pad = (n: number) => String(n).padStart(2, "0");

/** Local time as YYYY-MM-DD HH:MM:SS (unambiguous in any locale). */
function isoLocal(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtTime(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "—" : timeFmt.format(d);
}

export function fmtDateTime(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "—" : isoLocal(d);
}

/** "5 s ago", "3 min ago", "2 h ago". */
export function fmtAgo(v: string | number | null | undefined, now = Date.now()): string {
  if (v === null || v === undefined) return "—";
  const t = new Date(v).getTime();
  if (Number.isNaN(t)) return "—";
  // Simulated clocks may run ahead of this one: show the time itself then.
  if (t > now + 5000) return fmtTime(t);
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtPct(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return `${(v * 100).toFixed(digits)}%`;
}

export function fmtNum(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return v.toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** An ATT&CK technique id (T0855, T0855.001); alerts of unclassified anomalies carry "unknown". */
export function isTechniqueId(v: string | null | undefined): v is string {
  return !!v && /^T\d{4}(\.\d{3})?$/.test(v);
}
