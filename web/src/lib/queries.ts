// Query functions shared by several pages (one cache key each).
import { useQuery } from "@tanstack/react-query";
import { api } from "../services";
import { SEVERITIES, type AlertStatus, type Severity } from "../api/types";

export const keys = {
  alerts: ["alerts"] as const,
  openBySeverity: ["alerts", "open-by-severity"] as const,
  stats: ["alerts", "stats"] as const,
  matrix: ["mitre", "techniques"] as const,
  graph: ["mitre", "graph"] as const,
  rounds: ["fl", "rounds"] as const,
  clients: ["fl", "clients"] as const,
  privacy: ["fl", "privacy"] as const,
  predictions: ["predictions"] as const,
  pipeline: ["pipeline", "counters"] as const,
};

/** Number of alerts matching one severity and status (one `limit=1` page). */
async function count(severity: Severity, status: AlertStatus): Promise<number> {
  const page = await api.run(
    api.client.GET("/api/alerts", { params: { query: { severity, status_filter: status, limit: 1 } } }),
  );
  return page.total;
}

/** Open (new or acknowledged) alerts per severity. */
export function useOpenBySeverity() {
  return useQuery({
    queryKey: keys.openBySeverity,
    queryFn: async () => {
      const pairs = await Promise.all(
        SEVERITIES.map(async (s) => {
          const [n, a] = await Promise.all([count(s, "new"), count(s, "acknowledged")]);
          return [s, n + a] as const;
        }),
      );
      return Object.fromEntries(pairs) as Record<Severity, number>;
    },
    refetchInterval: 30_000,
  });
}

/** The ATT&CK matrix (static for a running server). */
export function useMatrix() {
  return useQuery({
    queryKey: keys.matrix,
    queryFn: () => api.run(api.client.GET("/api/mitre/techniques")),
    staleTime: Infinity,
    gcTime: Infinity,
  });
}

/** Tactic id → name, from the matrix. */
export function useTacticNames(): Map<string, string> {
  const m = useMatrix();
  const map = new Map<string, string>();
  for (const t of m.data?.tactics ?? []) map.set(t.id, t.name);
  return map;
}

export function useGraph() {
  return useQuery({
    queryKey: keys.graph,
    queryFn: () => api.run(api.client.GET("/api/mitre/graph")),
    refetchInterval: 60_000,
  });
}

/** Facilities that have alerts (from the graph's per-facility detections). */
export function useFacilities(): string[] {
  const g = useGraph();
  const set = new Set<string>();
  for (const n of g.data?.nodes ?? []) for (const f of n.facilities) set.add(f.facility_id);
  return [...set].sort();
}

export function useRounds(limit = 50) {
  return useQuery({
    queryKey: [...keys.rounds, limit],
    queryFn: () => api.run(api.client.GET("/api/fl/rounds", { params: { query: { limit } } })),
    refetchInterval: 30_000,
  });
}

export function usePrivacy() {
  return useQuery({
    queryKey: keys.privacy,
    queryFn: () => api.run(api.client.GET("/api/fl/privacy-metrics")),
    refetchInterval: 30_000,
  });
}

export function useClients() {
  return useQuery({
    queryKey: keys.clients,
    queryFn: () => api.run(api.client.GET("/api/fl/clients")),
    refetchInterval: 30_000,
  });
}
