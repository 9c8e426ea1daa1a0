// Names for the generated schema types used across the UI.
import type { components } from "./schema";

type S = components["schemas"];

export type AlertRow = S["AlertRow"];
export type AlertPage = S["AlertPage"];
export type AlertStats = S["AlertStats"];
export type AlertResponse = S["AlertResponse"];
export type AlertSourceRow = S["AlertSourceRow"];
export type TopFeature = S["TopFeature"];
export type AuditPage = S["AuditPage"];
export type AuditRow = S["AuditRow"];
export type PredictionRow = S["PredictionRow"];
export type PredictedTechnique = S["PredictedTechnique"];
export type FlRoundRow = S["FlRoundRow"];
export type FlClientRow = S["FlClientRow"];
export type RoundDetail = S["RoundDetail"];
export type PrivacyMetrics = S["PrivacyMetrics"];
export type PrivacyEntry = S["PrivacyEntry"];
export type FlFederationRow = S["FlFederationRow"];
export type FlDpSettings = S["FlDpSettings"];
export type PipelineHistory = S["PipelineHistory"];
export type PipelineSample = S["PipelineSample"];
export type AttackGraph = S["AttackGraph"];
export type GraphNode = S["GraphNode"];
export type GraphEdge = S["GraphEdge"];
export type Matrix = S["Matrix"];
export type TacticSummary = S["TacticSummary"];
export type TechniqueSummary = S["TechniqueSummary"];
export type TechniqueInfo = S["TechniqueInfo"];
export type TokenResponse = S["TokenResponse"];
export type Principal = S["Principal"];

export type Severity = "critical" | "high" | "medium" | "low";
export const SEVERITIES: Severity[] = ["critical", "high", "medium", "low"];
export type AlertStatus = "new" | "acknowledged" | "resolved" | "false-positive";
export const STATUSES: AlertStatus[] = ["new", "acknowledged", "resolved", "false-positive"];
export type Role = "viewer" | "analyst" | "admin";

/** A flow record as `/api/alerts/{id}/flows` returns it (the schema types it as free JSON). */
export interface FlowRecord {
  flow_id: string;
  facility_id: string;
  ts_start: string;
  ts_end: string;
  duration_ms: number;
  src_ip: string;
  src_port: number;
  dst_ip: string;
  dst_port: number;
  transport: string;
  fwd?: { packets: number; bytes: number };
  bwd?: { packets: number; bytes: number };
  ics?: { protocol: string; requests: number; responses: number; function_codes?: { code: number; count: number }[] };
  ground_truth?: { label: string; campaign_id?: string; stage?: number };
}
