import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import { api } from "../services";
import { keys, useGraph, useMatrix } from "../lib/queries";
import { useLiveInvalidate, useRoom } from "../lib/hooks";
import { fmtDateTime, fmtPct, isTechniqueId } from "../lib/format";
import { Empty, ErrorState, Loading, Panel, QueryView } from "../components/states";
import type { AttackGraph as Graph, GraphNode, Matrix } from "../api/types";

export default function AttackGraph() {
  useRoom("attack-graph");
  useLiveInvalidate(["attack_detected", "prediction_created", "prediction_updated"], [keys.graph], 5000);
  const [sp, setSp] = useSearchParams();
  const selected = sp.get("technique");
  const facility = sp.get("facility") ?? "";
  const matrix = useMatrix();
  const graph = useGraph();
  const select = (id: string | null) => {
    const next = new URLSearchParams(sp);
    if (id) next.set("technique", id);
    else next.delete("technique");
    setSp(next, { replace: true });
  };
  const facilities = useMemo(() => {
    const s = new Set<string>();
    for (const n of graph.data?.nodes ?? []) for (const f of n.facilities) s.add(f.facility_id);
    return [...s].sort();
  }, [graph.data]);

  return (
    <div className="page page-graph">
      <h1>Attack graph</h1>
      <div className="graph-layout">
        <div className="graph-main">
          <Panel
            title="ATT&CK for ICS matrix"
            id="matrix"
            actions={
              <label className="inline-field">
                Facility{" "}
                <select
                  value={facility}
                  onChange={(e) => {
                    const next = new URLSearchParams(sp);
                    if (e.target.value) next.set("facility", e.target.value);
                    else next.delete("facility");
                    setSp(next, { replace: true });
                  }}
                >
                  <option value="">all facilities</option>
                  {facilities.map((f) => (
                    <option key={f} value={f}>
                      {f}
                    </option>
                  ))}
                </select>
              </label>
            }
          >
            {matrix.isPending || graph.isPending ? (
              <Loading what="Loading the matrix" />
            ) : matrix.isError ? (
              <ErrorState error={matrix.error} retry={() => void matrix.refetch()} />
            ) : graph.isError && !graph.data ? (
              <ErrorState error={graph.error} retry={() => void graph.refetch()} />
            ) : (
              <MatrixView matrix={matrix.data} graph={graph.data} facility={facility} selected={selected} onSelect={select} />
            )}
          </Panel>
          <Panel title="Detected techniques and predicted next techniques" id="graph">
            <QueryView
              q={graph}
              what="Loading the graph"
              empty="Nothing detected yet: the graph fills as attacks are detected and next steps predicted."
              isEmpty={(g) => g.nodes.length === 0}
            >
              {(g) => <GraphView graph={g} selected={selected} onSelect={select} />}
            </QueryView>
          </Panel>
        </div>
        <aside className="graph-side" aria-label="Technique details">
          {selected ? (
            <TechniquePanel id={selected} node={graph.data?.nodes.find((n) => n.id === selected)} onClose={() => select(null)} />
          ) : (
            <Panel title="Technique" id="technique">
              <p className="muted">Choose a technique in the matrix or the graph to see its details.</p>
            </Panel>
          )}
        </aside>
      </div>
    </div>
  );
}

function shade(alerts: number, max: number): number {
  if (alerts <= 0 || max <= 0) return 0;
  // Log scale: one alert is visible, the busiest technique is the darkest.
  return 0.25 + 0.75 * (Math.log1p(alerts) / Math.log1p(max));
}

function MatrixView({
  matrix,
  graph,
  facility,
  selected,
  onSelect,
}: {
  matrix: Matrix;
  graph: Graph;
  facility: string;
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const alertsOf = (n: GraphNode | undefined) =>
    !n ? 0 : facility ? (n.facilities.find((f) => f.facility_id === facility)?.alerts ?? 0) : n.alerts;
  const max = Math.max(0, ...graph.nodes.map((n) => alertsOf(n)));
  const tactics = [...matrix.tactics].sort((a, b) => a.order - b.order);
  const detectedCount = graph.nodes.filter((n) => alertsOf(n) > 0).length;
  return (
    <>
      <p className="muted small">
        {detectedCount} technique{detectedCount === 1 ? "" : "s"} detected{facility ? ` at ${facility}` : ""}; darker
        cells had more alerts, outlined cells are predicted next.
        {matrix.version ? ` ATT&CK ${matrix.version}.` : " Built-in ATT&CK for ICS table."}
      </p>
      <div className="matrix-wrap">
        <div className="matrix" data-testid="matrix">
          {tactics.map((t) => {
            const techs = matrix.techniques.filter((x) => x.tactics.includes(t.id) || x.tactics.includes(t.shortname));
            return (
              <div className="matrix-col" role="group" aria-labelledby={`tactic-${t.id}`} key={t.id}>
                <div className="matrix-tactic" id={`tactic-${t.id}`} title={t.id}>
                  {t.name}
                  <span className="muted small"> ({techs.length})</span>
                </div>
                {techs.map((x) => {
                  const n = byId.get(x.id);
                  const count = alertsOf(n);
                  const s = shade(count, max);
                  const predicted = n?.predicted_probability != null;
                  return (
                    <button
                      type="button"
                      key={x.id}
                      className={`matrix-cell${count > 0 ? " detected" : ""}${predicted ? " predicted" : ""}${selected === x.id ? " selected" : ""}`}
                      style={count > 0 ? { backgroundColor: `rgba(255, 77, 79, ${s.toFixed(2)})` } : undefined}
                      aria-pressed={selected === x.id}
                      aria-label={`${x.id} ${x.name}: ${count} alert${count === 1 ? "" : "s"}${predicted ? `, predicted next with ${fmtPct(n?.predicted_probability)}` : ""}`}
                      data-technique={x.id}
                      data-alerts={count}
                      onClick={() => onSelect(x.id)}
                    >
                      <span className="mono">{x.id}</span> {x.name}
                      {count > 0 && <span className="cell-count">{count}</span>}
                    </button>
                  );
                })}
              </div>
            );
          })}
        </div>
      </div>
    </>
  );
}

const GRAPH_STYLE = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      color: "#e6edf3",
      "font-size": 12,
      "text-valign": "center",
      "text-halign": "right",
      "text-margin-x": 8,
      "text-wrap": "wrap",
      "text-max-width": "170px",
      "background-color": "#2b3644",
      "border-width": 2,
      "border-color": "#8aa0b4",
      width: "data(size)",
      height: "data(size)",
    },
  },
  { selector: "node.detected", style: { "background-color": "#ff4d4f", "border-color": "#ffb3b3" } },
  {
    selector: "node.predicted",
    style: { "border-color": "#f5c518", "border-style": "dashed", "border-width": 3 },
  },
  { selector: "node.selected", style: { "border-color": "#ffffff", "border-width": 5, "border-style": "solid" } },
  {
    selector: "edge",
    style: {
      width: "data(width)",
      "line-color": "#f5c518",
      "target-arrow-color": "#f5c518",
      "target-arrow-shape": "triangle",
      "curve-style": "bezier",
      label: "data(label)",
      color: "#f5e9a8",
      "font-size": 11,
      "text-background-color": "#0b0f14",
      "text-background-opacity": 0.85,
      "text-background-padding": "2px",
      opacity: 0.9,
    },
  },
];

function elementsOf(g: Graph): ElementDefinition[] {
  const inEdges = new Set<string>();
  for (const e of g.edges) {
    inEdges.add(e.source);
    inEdges.add(e.target);
  }
  const nodes = g.nodes.filter((n) => n.detected || inEdges.has(n.id));
  const ids = new Set(nodes.map((n) => n.id));
  const maxAlerts = Math.max(1, ...nodes.map((n) => n.alerts));
  return [
    ...nodes.map((n) => ({
      group: "nodes" as const,
      data: {
        id: n.id,
        label: `${n.id}\n${n.name}`,
        size: 26 + 30 * (n.alerts / maxAlerts),
      },
      classes: [n.detected ? "detected" : "", n.predicted_probability != null ? "predicted" : ""].join(" ").trim(),
    })),
    ...g.edges
      .filter((e) => ids.has(e.source) && ids.has(e.target) && e.source !== e.target)
      .map((e) => ({
        group: "edges" as const,
        data: {
          id: `${e.source}->${e.target}`,
          source: e.source,
          target: e.target,
          label: fmtPct(e.probability),
          width: 1 + 5 * e.probability,
        },
      })),
  ];
}

function GraphView({ graph, selected, onSelect }: { graph: Graph; selected: string | null; onSelect: (id: string) => void }) {
  const box = useRef<HTMLDivElement | null>(null);
  const cy = useRef<Core | null>(null);
  const onSelectRef = useRef(onSelect);
  onSelectRef.current = onSelect;
  const [rendered, setRendered] = useState<string[]>([]);
  const elements = useMemo(() => elementsOf(graph), [graph]);
  const shape = elements.map((e) => e.data.id).join("|");

  useEffect(() => {
    if (!box.current) return;
    const c = cytoscape({
      container: box.current,
      style: GRAPH_STYLE as unknown as cytoscape.StylesheetJson,
      minZoom: 0.2,
      maxZoom: 3,
      wheelSensitivity: 0.3,
    });
    c.on("tap", "node", (ev) => onSelectRef.current(ev.target.id()));
    cy.current = c;
    return () => {
      c.destroy();
      cy.current = null;
    };
  }, []);

  useEffect(() => {
    const c = cy.current;
    if (!c) return;
    c.batch(() => {
      c.elements().remove();
      c.add(elements);
    });
    const detected = c.nodes(".detected");
    c.layout({
      name: "breadthfirst",
      directed: true,
      roots: detected.filter((n) => n.indegree(false) === 0).length ? detected.filter((n) => n.indegree(false) === 0) : undefined,
      spacingFactor: 1.3,
      padding: 20,
      animate: false,
    } as cytoscape.LayoutOptions).run();
    c.fit(undefined, 20);
    setRendered(c.nodes().map((n) => n.id()));
    // Re-layout only when the set of nodes and edges changes, not on every refetch.
  }, [shape]);

  useEffect(() => {
    const c = cy.current;
    if (!c) return;
    c.nodes().removeClass("selected");
    if (selected) c.getElementById(selected).addClass("selected");
  }, [selected, shape]);

  const edges = graph.edges.slice().sort((a, b) => b.probability - a.probability);
  return (
    <>
      <div
        ref={box}
        className="cy"
        role="img"
        aria-label={`Graph of ${rendered.length} techniques: detected techniques and the techniques predicted to follow them`}
        data-testid="attack-graph"
        data-rendered-nodes={rendered.length}
        data-node-ids={rendered.join(" ")}
      />
      <p className="muted small">
        Red: detected (size by alerts). Dashed yellow outline: predicted next. Arrows: predicted next step with its
        probability. Scroll to zoom, drag to pan.
      </p>
      <details className="graph-table">
        <summary>Predicted transitions as a table ({edges.length})</summary>
        {edges.length === 0 ? (
          <Empty>No prediction yet.</Empty>
        ) : (
          <table className="table table-compact">
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col" className="num">
                  Probability
                </th>
                <th scope="col">Timeframe</th>
              </tr>
            </thead>
            <tbody>
              {edges.map((e) => (
                <tr key={`${e.source}-${e.target}-${e.rank}`}>
                  <td>
                    <button type="button" className="linkish mono" onClick={() => onSelect(e.source)}>
                      {e.source}
                    </button>
                  </td>
                  <td>
                    <button type="button" className="linkish mono" onClick={() => onSelect(e.target)}>
                      {e.target}
                    </button>
                  </td>
                  <td className="num">{fmtPct(e.probability)}</td>
                  <td>{e.timeframe || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </details>
    </>
  );
}

interface Named {
  id?: string;
  name?: string;
  description?: string;
}

function TechniquePanel({ id, node, onClose }: { id: string; node: GraphNode | undefined; onClose: () => void }) {
  const matrix = useMatrix();
  const tacticName = new Map((matrix.data?.tactics ?? []).map((t) => [t.id, t.name]));
  const valid = isTechniqueId(id);
  const q = useQuery({
    queryKey: ["mitre", "technique", id],
    queryFn: () => api.run(api.client.GET("/api/mitre/technique/{id}", { params: { path: { id } } })),
    staleTime: Infinity,
    enabled: valid,
  });
  const ref = useRef<HTMLHeadingElement | null>(null);
  useEffect(() => ref.current?.focus(), [id]);
  return (
    <section className="panel technique-panel" aria-labelledby="tech-title" data-testid="technique-panel">
      <header className="panel-head">
        <h2 id="tech-title" tabIndex={-1} ref={ref}>
          <span className="mono">{id}</span> {q.data?.name ?? node?.name ?? ""}
        </h2>
        <button type="button" className="btn btn-small" onClick={onClose} aria-label="Close the technique details">
          Close
        </button>
      </header>
      <div className="panel-body">
        {!valid ? (
          <>
            <p className="muted">
              Not an ATT&CK technique: anomalies the classifier could not attribute to a technique are grouped here.
            </p>
            {node && node.facilities.length > 0 && <Detections id={id} node={node} />}
          </>
        ) : q.isPending ? (
          <Loading />
        ) : q.isError ? (
          <ErrorState error={q.error} retry={() => void q.refetch()} />
        ) : (
          <>
            <h3>Tactics</h3>
            <p>{q.data.tactics.map((t) => tacticName.get(t) ?? t).join(", ") || "—"}</p>
            <h3>Description</h3>
            {q.data.description ? (
              <p className="description">{q.data.description}</p>
            ) : (
              <p className="muted">
                {q.data.bundle_loaded
                  ? "No description in the ATT&CK bundle."
                  : "Descriptions, detections and mitigations come from MITRE's ATT&CK for ICS bundle: place ics-attack.json.gz in the data directory (or pass --attack-bundle) to show them."}
              </p>
            )}
            {q.data.url && (
              <p className="small muted">
                Reference: <span className="mono">{q.data.url}</span>
              </p>
            )}
            <h3>Detections here</h3>
            {!node || node.facilities.length === 0 ? (
              <p className="muted">Not detected{node?.predicted_probability != null ? `; predicted next with ${fmtPct(node.predicted_probability)}` : ""}.</p>
            ) : (
              <Detections id={id} node={node} />
            )}
            {q.data.assets.length > 0 && (
              <>
                <h3>Targeted assets</h3>
                <p>{q.data.assets.join(", ")}</p>
              </>
            )}
            <h3>Detection (ATT&CK)</h3>
            <NamedList items={q.data.detection as Named[]} empty="None listed." />
            <h3>Mitigations</h3>
            <NamedList items={q.data.mitigations as Named[]} empty="None listed." />
          </>
        )}
      </div>
    </section>
  );
}

function Detections({ id, node }: { id: string; node: GraphNode }) {
  return (
    <>
      <table className="table table-compact">
        <thead>
          <tr>
            <th scope="col">Facility</th>
            <th scope="col" className="num">
              Alerts
            </th>
            <th scope="col">Last seen</th>
          </tr>
        </thead>
        <tbody>
          {node.facilities.map((f) => (
            <tr key={f.facility_id}>
              <td>{f.facility_id}</td>
              <td className="num">{f.alerts}</td>
              <td>{fmtDateTime(f.last_seen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <Link to={`/alerts?q=${encodeURIComponent(id)}`}>Show the alerts of {id}</Link>
      </p>
    </>
  );
}

function NamedList({ items, empty }: { items: Named[]; empty: string }) {
  if (!items.length) return <p className="muted">{empty}</p>;
  return (
    <ul className="named-list">
      {items.map((m, i) => (
        <li key={m.id ?? i}>
          <strong>
            {m.id && <span className="mono">{m.id}</span>} {m.name}
          </strong>
          {m.description && <p className="small">{m.description}</p>}
        </li>
      ))}
    </ul>
  );
}
