export function SeverityBadge({ severity }: { severity: string }) {
  return (
    <span className={`badge sev sev-${severity}`} data-severity={severity}>
      {severity}
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge status status-${status}`} data-status={status}>
      {status}
    </span>
  );
}

export function Meter({ value, label }: { value: number; label: string }) {
  const v = Math.max(0, Math.min(100, value));
  return (
    <div className="meter" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={v} aria-label={label}>
      <div className="meter-fill" style={{ width: `${v}%` }} />
      <span className="meter-text">{Math.round(v)}%</span>
    </div>
  );
}
