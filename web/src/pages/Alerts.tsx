import { useEffect, useId, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api } from "../services";
import { keys, useFacilities } from "../lib/queries";
import { useDebounced, useLiveInvalidate, useRoom } from "../lib/hooks";
import { fmtDateTime, fmtPct } from "../lib/format";
import { Empty, ErrorState, Loading } from "../components/states";
import { SeverityBadge, StatusBadge } from "../components/badges";
import { SEVERITIES, STATUSES } from "../api/types";

const RANGES = [
  ["", "any time"],
  ["15m", "last 15 minutes"],
  ["1h", "last hour"],
  ["6h", "last 6 hours"],
  ["24h", "last 24 hours"],
  ["7d", "last 7 days"],
] as const;
const PAGE_SIZE = 25;

export default function Alerts() {
  useRoom("alerts");
  const [sp, setSp] = useSearchParams();
  const severity = sp.get("severity") ?? "";
  const facility = sp.get("facility") ?? "";
  const status = sp.get("status") ?? "";
  const range = sp.get("range") ?? "";
  const q = sp.get("q") ?? "";
  const page = Math.max(1, Number(sp.get("page") ?? "1") || 1);
  const [text, setText] = useState(q);
  const search = useDebounced(text, 300);
  const facilities = useFacilities();
  const ids = { sev: useId(), fac: useId(), st: useId(), rg: useId(), q: useId() };

  const update = (k: string, v: string) => {
    const next = new URLSearchParams(sp);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k !== "page") next.delete("page");
    setSp(next, { replace: true });
  };
  useEffect(() => {
    if (search !== q) update("q", search.trim());
  }, [search]);
  useEffect(() => setText(q), [q]);

  const query = {
    severity: severity || undefined,
    facility: facility || undefined,
    status_filter: status || undefined,
    time_range: range || undefined,
    search: q || undefined,
    page,
    limit: PAGE_SIZE,
  };
  const list = useQuery({
    queryKey: [...keys.alerts, "list", query],
    queryFn: () => api.run(api.client.GET("/api/alerts", { params: { query } })),
    placeholderData: keepPreviousData,
  });
  useLiveInvalidate(["alert_created", "alert_updated"], [[...keys.alerts, "list"]], 3000);
  const filtered = !!(severity || facility || status || range || q);

  return (
    <div className="page page-alerts">
      <h1>Alerts</h1>
      <form className="filters" role="search" aria-label="Filter alerts" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={ids.sev}>Severity</label>
          <select id={ids.sev} name="severity" value={severity} onChange={(e) => update("severity", e.target.value)}>
            <option value="">all</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.fac}>Facility</label>
          <select id={ids.fac} name="facility" value={facility} onChange={(e) => update("facility", e.target.value)}>
            <option value="">all</option>
            {[...new Set([...facilities, ...(facility ? [facility] : [])])].map((f) => (
              <option key={f} value={f}>
                {f}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.st}>Status</label>
          <select id={ids.st} name="status" value={status} onChange={(e) => update("status", e.target.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.rg}>Time range</label>
          <select id={ids.rg} name="range" value={range} onChange={(e) => update("range", e.target.value)}>
            {RANGES.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </div>
        <div className="field field-grow">
          <label htmlFor={ids.q}>Search</label>
          <input
            id={ids.q}
            name="q"
            type="search"
            placeholder="title, description, technique…"
            value={text}
            maxLength={256}
            onChange={(e) => setText(e.target.value)}
          />
        </div>
        <button
          type="button"
          className="btn"
          disabled={!filtered}
          onClick={() => {
            setText("");
            setSp(new URLSearchParams(), { replace: true });
          }}
        >
          Clear filters
        </button>
      </form>

      {list.isPending ? (
        <Loading what="Loading alerts" />
      ) : list.isError && !list.data ? (
        <ErrorState error={list.error} retry={() => void list.refetch()} />
      ) : (
        <>
          {list.isError && <ErrorState error={list.error} retry={() => void list.refetch()} />}
          <p className="muted" role="status" aria-live="polite" data-testid="alert-total">
            {list.data.total} alert{list.data.total === 1 ? "" : "s"}
            {filtered ? " match the filters" : ""}
            {list.isFetching ? " · updating…" : ""}
          </p>
          {list.data.alerts.length === 0 ? (
            <Empty>{filtered ? "No alert matches these filters." : "No alert yet."}</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="alerts-table">
                <caption className="sr-only">Alerts, most recently active first</caption>
                <thead>
                  <tr>
                    <th scope="col">Last seen</th>
                    <th scope="col">Severity</th>
                    <th scope="col">Facility</th>
                    <th scope="col">Title</th>
                    <th scope="col">Technique</th>
                    <th scope="col">Status</th>
                    <th scope="col" className="num">
                      Confidence
                    </th>
                    <th scope="col" className="num">
                      Flows
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.alerts.map((a) => (
                    <tr key={a.id} data-alert-id={a.id} data-severity={a.severity} data-facility={a.facility_id}>
                      <td>
                        <time dateTime={a.last_seen}>{fmtDateTime(a.last_seen)}</time>
                      </td>
                      <td>
                        <SeverityBadge severity={a.severity} />
                      </td>
                      <td>{a.facility_id}</td>
                      <td>
                        <Link to={`/alerts/${a.id}`} state={{ back: `/alerts?${sp.toString()}` }}>
                          {a.title}
                        </Link>
                      </td>
                      <td>
                        <span className="mono">{a.attack_type}</span> {a.attack_name}
                      </td>
                      <td>
                        <StatusBadge status={a.status} />
                      </td>
                      <td className="num">{fmtPct(a.correlation_confidence)}</td>
                      <td className="num">{a.flow_count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <nav className="pager" aria-label="Pages of alerts">
            <button type="button" className="btn" disabled={page <= 1} onClick={() => update("page", String(page - 1))}>
              ← Previous
            </button>
            <span>
              Page {list.data.pages === 0 ? 0 : page} of {list.data.pages}
            </span>
            <button
              type="button"
              className="btn"
              disabled={page >= list.data.pages}
              onClick={() => update("page", String(page + 1))}
            >
              Next →
            </button>
          </nav>
        </>
      )}
    </div>
  );
}
