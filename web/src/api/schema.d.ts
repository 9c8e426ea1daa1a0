// Generated from the FedICS OpenAPI document by `npm run gen:api` (openapi-typescript).
// Do not edit: change the server, run `fedics openapi > web/openapi.json`, then `npm run gen:api`.

export interface paths {
    "/api/alerts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["list_alerts"];
        put?: never;
        post: operations["create_alert"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/alerts/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["get_alert"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/alerts/{id}/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["alert_audit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/alerts/{id}/flows": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["alert_flows"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/alerts/{id}/status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put: operations["set_status"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/alerts/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["alert_stats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["audit_log"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/auth/login": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["login"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/auth/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["me"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/clients": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["list_clients"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/clients/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["get_client"];
        put: operations["update_client"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/privacy-metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["privacy_metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["list_rounds"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["get_round"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds/{id}/complete": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["complete_round"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds/{id}/progress": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put: operations["round_progress"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds/current": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["current_round"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/fl/rounds/trigger": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["trigger_round"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/mitre/graph": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["graph"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/mitre/technique/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["technique"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/mitre/techniques": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["techniques"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/pipeline/counters": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["counters"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/predictions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["list_predictions"];
        put?: never;
        post: operations["create_prediction"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/predictions/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["get_prediction"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/predictions/{id}/validate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["validate_prediction"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/predictions/latest": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["latest_prediction"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["health"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/ws": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["websocket"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Body of `POST /api/alerts` (an alert raised by an external sensor or an analyst). */
        AlertCreate: {
            /** @description Technique name; default: the ATT&CK name of `attack_type`. */
            attack_name?: string | null;
            /** @description ATT&CK for ICS technique id, e.g. `T0855`. */
            attack_type: string;
            /** Format: double */
            correlation_confidence?: number;
            correlation_summary?: string;
            description?: string;
            dst_ip?: string | null;
            facility_id: string;
            /** @description Flows the alert covers. */
            flow_ids?: string[];
            /** @example high */
            severity: string;
            sources?: components["schemas"]["SourceCreate"][];
            src_ip?: string | null;
            /** @description Default: the tactics of `attack_type`. */
            tactic_ids?: string[] | null;
            /**
             * Format: date-time
             * @description When the incident started; default now.
             */
            timestamp?: string | null;
            title: string;
        };
        /** @description An alert with everything attached to it. */
        AlertDetail: components["schemas"]["AlertRow"] & {
            /** @description Ids of the flows the alert covers (sorted). */
            flow_ids: string[];
            /** @description Predictions made for this alert, oldest first. */
            predictions: components["schemas"]["PredictionRow"][];
            /** @description Sources ordered by layer, then model name. */
            sources: components["schemas"]["AlertSourceRow"][];
        };
        /** @description One page of alerts, ordered by `last_seen` descending, then id. */
        AlertPage: {
            alerts: components["schemas"]["AlertRow"][];
            /**
             * Format: int32
             * @description The page size used.
             */
            limit: number;
            /**
             * Format: int32
             * @description The page returned (1-based).
             */
            page: number;
            /**
             * Format: int32
             * @description Number of pages (`ceil(total / limit)`, 0 when nothing matches).
             */
            pages: number;
            /**
             * Format: int64
             * @description Alerts matching the filters, over all pages.
             */
            total: number;
        };
        /**
         * @description An alert with its evidence: detector and classifier sources with their scores, the top
         *     features of the explanations, model versions, flow ids and predictions.
         */
        AlertResponse: components["schemas"]["AlertDetail"] & {
            top_features: components["schemas"]["TopFeature"][];
        };
        /** @description One stored alert (an incident), the seeds' `Alert` plus our columns. */
        AlertRow: {
            attack_name: string;
            /** @description ATT&CK for ICS technique id. */
            attack_type: string;
            /** @description `{"src_ip", "dst_ip", "tactic_ids", "model_versions"}` of the latest update. */
            context_analysis: unknown;
            /**
             * Format: double
             * @description The highest correlation confidence of any update.
             */
            correlation_confidence: number;
            correlation_summary: string;
            description: string;
            dst_ip: string;
            facility_id: string;
            /** Format: date-time */
            first_seen: string;
            /**
             * Format: int64
             * @description Number of distinct flows linked to the alert.
             */
            flow_count: number;
            /** Format: uuid */
            id: string;
            /** Format: date-time */
            last_seen: string;
            model_versions: {
                [key: string]: string;
            };
            /** @description The most severe severity of any update. */
            severity: components["schemas"]["Severity"];
            src_ip: string;
            status: components["schemas"]["AlertStatus"];
            tactic_ids: string[];
            /**
             * Format: date-time
             * @description When the incident started (= `first_seen`), the seeds' `timestamp`.
             */
            timestamp: string;
            title: string;
        };
        /** @description One source of an alert: a detector or the classifier (the seeds' `AlertSource`). */
        AlertSourceRow: {
            /** Format: uuid */
            alert_id: string;
            /**
             * Format: double
             * @description The highest confidence this source reported for the alert.
             */
            confidence: number;
            context_evidence: unknown;
            /**
             * Format: date-time
             * @description Time of the latest evidence.
             */
            detection_time: string;
            /** @description The latest evidence. */
            evidence: string;
            /**
             * Format: uuid
             * @description UUIDv5 of (alert id, model name).
             */
            id: string;
            /** Format: int32 */
            layer: number;
            model_name: string;
            model_version: string;
        };
        /** @description Alert counters for the dashboard. */
        AlertStats: {
            /** Format: int64 */
            critical: number;
            /** Format: int64 */
            false_positives: number;
            /** Format: int64 */
            total: number;
            /**
             * Format: int64
             * @description Status `new` or `acknowledged`.
             */
            unresolved: number;
        };
        /**
         * @description Alert workflow state (the seeds' values).
         * @enum {string}
         */
        AlertStatus: "new" | "acknowledged" | "resolved" | "false-positive";
        AttackGraph: {
            edges: components["schemas"]["GraphEdge"][];
            nodes: components["schemas"]["GraphNode"][];
        };
        /** @description One audited request. */
        AuditEntry: {
            /** @description Who acted: a user name, or a key's name/prefix. */
            actor: string;
            client_ip?: string | null;
            /** @description Free-form details (stored as JSON text). */
            detail: unknown;
            /** @description HTTP method. */
            method: string;
            /** @description Request path. */
            path: string;
            /** @description The actor's role, as text. */
            role: string;
            /**
             * Format: int32
             * @description HTTP status of the response.
             */
            status: number;
            /** @description What was acted on (e.g. an alert id), when there is one. */
            target?: string | null;
            /** Format: date-time */
            timestamp: string;
        };
        /**
         * @description One page of the audit log, newest first, and the number of entries matching the
         *     filters.
         */
        AuditPage: {
            entries: components["schemas"]["AuditRow"][];
            /** Format: int64 */
            total: number;
        };
        /** @description A stored [`AuditEntry`] with its id (ids grow with insertion). */
        AuditRow: components["schemas"]["AuditEntry"] & {
            /** Format: int64 */
            id: number;
        };
        /** @description Body of `PUT /api/fl/clients/{id}` (fields to change). */
        ClientBody: {
            /**
             * Format: double
             * @description 0 to 1.
             */
            accuracy?: number | null;
            /** Format: int32 */
            current_epoch?: number | null;
            /** Format: double */
            loss?: number | null;
            /**
             * Format: int32
             * @description 0 to 100.
             */
            progress?: number | null;
            /** @example active */
            status?: string | null;
            /** Format: int32 */
            total_epochs?: number | null;
        };
        /** @description Body of `POST /api/fl/rounds/{id}/complete` (all optional). */
        CompleteBody: {
            /** Format: double */
            epsilon?: number | null;
            /**
             * Format: double
             * @description 0 to 1.
             */
            model_accuracy?: number | null;
            /**
             * @description `completed` (default) or `failed`.
             * @example completed
             */
            status?: string | null;
        };
        /** @description Body of every non-validation error. */
        ErrorBody: {
            detail: string;
        };
        /** @description Cumulative counts of one facility since the pipeline started. */
        FacilityCounters: {
            /**
             * Format: int64
             * @description Of those, flows with at least one anomalous verdict (counted once per flow).
             */
            anomalies: number;
            /**
             * Format: int64
             * @description Flows the detectors judged.
             */
            flows_in: number;
        };
        /** @description Detections of a technique at one facility. */
        FacilitySeen: {
            /** Format: int64 */
            alerts: number;
            facility_id: string;
            /** Format: date-time */
            last_seen: string;
        };
        /**
         * @description One invalid input: where it is (`["query", "limit"]`, `["body", "sources", 0, "layer"]`)
         *     and what was expected.
         */
        FieldError: {
            /** @description Location: `query`, `path` or `body`, then the field (and index) path. */
            loc: Record<string, never>[];
            /** @description What is wrong and what was expected. */
            msg: string;
            /** @description Error kind, e.g. `value_error`, `missing`, `type_error`. */
            type: string;
        };
        /** @description A client (a site) taking part in a round. */
        FlClientRow: {
            /** Format: double */
            accuracy?: number | null;
            /** Format: int32 */
            current_epoch: number;
            facility_id: string;
            /** @description Caller-chosen unique id (the key of [`Change::FlClient`]). */
            id: string;
            /** Format: date-time */
            last_update: string;
            /** Format: double */
            loss?: number | null;
            name: string;
            /**
             * Format: int32
             * @description Percent, 0..=100.
             */
            progress: number;
            /**
             * Format: int64
             * @description Row id of the round ([`FlRoundRow::id`]); the round must exist.
             */
            round_id: number;
            status: string;
            /** Format: int32 */
            total_epochs: number;
        };
        /** @description Client-level differential privacy of a federation. */
        FlDpSettings: {
            /**
             * Format: double
             * @description L2 clipping bound C of each site's update.
             */
            clip_norm: number;
            /**
             * Format: double
             * @description The δ at which ε is measured.
             */
            delta: number;
            /**
             * Format: double
             * @description The ε the federation may spend in all (rounds past it are refused).
             */
            max_epsilon: number;
            /** @description `central` (the aggregator adds the noise) or `distributed` (each site adds its share). */
            mode: string;
            /**
             * Format: double
             * @description Noise multiplier σ (noise std on the sum of clipped updates: σ·C).
             */
            noise_multiplier: number;
        };
        /**
         * @description How a federation aggregates and protects its updates, as its aggregator was configured
         *     (see [`Store::upsert_fl_federation`]).
         */
        FlFederationRow: {
            dp?: components["schemas"]["FlDpSettings"] | null;
            /**
             * Format: double
             * @description Fraction of the sites selected each round, in (0, 1].
             */
            fraction_fit: number;
            /** @description The federation's id (the `federation_id` of its privacy ledger entries). */
            id: string;
            /**
             * Format: double
             * @description Client learning rate.
             */
            learning_rate: number;
            /**
             * Format: int32
             * @description Local epochs per round.
             */
            local_epochs: number;
            /** Format: date-time */
            started_at: string;
            /**
             * @description Aggregation strategy (`fedavg`, `fedprox`, `fedadam`, `median`, `trimmed-mean`,
             *     `krum`, `multi-krum`).
             */
            strategy: string;
            /**
             * @description The strategy's hyper-parameters by name, e.g. `{"mu": 0.01}` for FedProx, `{"beta":
             *     0.2}` for the trimmed mean (empty for FedAvg and the median).
             */
            strategy_params: {
                [key: string]: number;
            };
            /**
             * Format: int32
             * @description Sites allowed to join.
             */
            total_sites: number;
            /**
             * Format: date-time
             * @description When the aggregator last (re)started with this configuration.
             */
            updated_at: string;
        };
        /** @description A federated-learning round. */
        FlRoundRow: {
            /** Format: int32 */
            clients_active: number;
            /** Format: date-time */
            end_time?: string | null;
            /**
             * Format: double
             * @description Privacy budget spent by the round, when known.
             */
            epsilon?: number | null;
            /**
             * Format: int64
             * @description Row id (the key of [`Change::FlRound`] and of [`FlClientRow::round_id`]).
             */
            id: number;
            /** Format: double */
            model_accuracy?: number | null;
            phase: string;
            /**
             * Format: int32
             * @description Percent, 0..=100.
             */
            progress: number;
            /**
             * Format: int64
             * @description Unique, user-facing round number.
             */
            round_number: number;
            /** Format: date-time */
            start_time: string;
            status: string;
            /** Format: int32 */
            total_clients: number;
        };
        /**
         * @description "After `source`, `target` follows with `probability`" (the newest prediction made for
         *     `source`).
         */
        GraphEdge: {
            /**
             * Format: uuid
             * @description The prediction the edge comes from.
             */
            prediction_id: string;
            /** Format: double */
            probability: number;
            /** Format: int32 */
            rank: number;
            source: string;
            target: string;
            timeframe: string;
        };
        /** @description A technique in the graph: detected, predicted, or both. */
        GraphNode: {
            /**
             * Format: int64
             * @description Alerts of this technique, all facilities.
             */
            alerts: number;
            /** @description Seen in at least one alert. */
            detected: boolean;
            facilities: components["schemas"]["FacilitySeen"][];
            id: string;
            name: string;
            /**
             * Format: double
             * @description Highest probability with which it is predicted next (None: not predicted).
             */
            predicted_probability?: number | null;
            /** @description Tactic ids in matrix order. */
            tactics: string[];
        };
        /** @description Liveness / readiness answer. */
        Health: {
            /** @description Whether the pipeline runs (None: no pipeline in this process). */
            pipeline_running?: boolean | null;
            /** @description `ok`, or what is not ready. */
            status: string;
            /** @description `sqlite` or `postgres`. */
            store: string;
            /** @description Whether the store answered (readiness only). */
            store_reachable?: boolean | null;
            version: string;
        };
        /** @description Body of `POST /api/auth/login`. */
        LoginBody: {
            password: string;
            username: string;
        };
        /** @description The ATT&CK for ICS matrix. */
        Matrix: {
            tactics: components["schemas"]["TacticSummary"][];
            techniques: components["schemas"]["TechniqueSummary"][];
            /** @description ATT&CK version of the loaded bundle (None: the built-in v18.1 table). */
            version?: string | null;
        };
        /**
         * @description Cumulative counters of the pipeline since it started (rates are differences between two
         *     samples divided by the time between them).
         */
        PipelineCounters: {
            /** Format: int64 */
            alerts_critical: number;
            /** Format: int64 */
            alerts_high: number;
            /** Format: int64 */
            alerts_low: number;
            /** Format: int64 */
            alerts_medium: number;
            /**
             * Format: int64
             * @description Anomalous detector verdicts (a flow flagged by two detectors counts twice).
             */
            anomalies: number;
            /**
             * Format: int64
             * @description Flows classified as an ATT&CK technique.
             */
            attacks: number;
            /** @description By facility id (at most the pipeline's cap; the rest in `facilities_overflow`). */
            facilities: {
                [key: string]: components["schemas"]["FacilityCounters"];
            };
            /** @description Flows of facilities beyond the cap, all together. */
            facilities_overflow: components["schemas"]["FacilityCounters"];
            /**
             * Format: int64
             * @description Flows whose verdicts were joined and decided.
             */
            flows_classified: number;
            /**
             * Format: int64
             * @description Flows published into the pipeline.
             */
            flows_in: number;
            /**
             * Format: int64
             * @description Incident updates (alerts raised or extended).
             */
            incidents: number;
            /**
             * Format: int64
             * @description Flows decided without every detector's verdict (join deadline).
             */
            join_deadline_expired: number;
            /**
             * Format: int64
             * @description Records written to the store.
             */
            persisted: number;
            /** Format: int64 */
            predictions: number;
            /**
             * Format: int64
             * @description Malformed records rejected by a stage.
             */
            rejected: number;
            /**
             * Format: int64
             * @description Failed store writes (retried).
             */
            store_errors: number;
        };
        /** @description Answer of `GET /api/pipeline/counters`. */
        PipelineHistory: {
            /**
             * Format: double
             * @description Seconds between samples (the `dashboard_update` interval).
             */
            interval_s: number;
            /**
             * @description Whether every stage runs; `None`: no pipeline in this process (then `samples` is
             *     empty).
             */
            running?: boolean | null;
            /**
             * @description The latest samples, oldest first (the same values the `dashboard_update` messages
             *     carried as `pipeline`); at most [`HISTORY_MAX`].
             */
            samples: components["schemas"]["PipelineSample"][];
        };
        /** @description The counters at one time. */
        PipelineSample: {
            counters: components["schemas"]["PipelineCounters"];
            /** Format: date-time */
            timestamp: string;
        };
        /** @description One predicted next technique of a new prediction. */
        PredictedCreate: {
            /**
             * Format: double
             * @description 0..1.
             */
            probability: number;
            /**
             * Format: int32
             * @description Default: position in the list (1-based).
             */
            rank?: number | null;
            technique_id: string;
            /** @description Default: the ATT&CK name. */
            technique_name?: string | null;
            timeframe?: string;
        };
        /** @description One ranked next technique. */
        PredictedTechnique: {
            /** Format: double */
            probability: number;
            /** Format: int32 */
            rank: number;
            technique_id: string;
            technique_name: string;
            /** @description Expected time until this step, e.g. `"5-15 minutes"`. */
            timeframe: string;
        };
        /** @description Body of `POST /api/predictions`. */
        PredictionCreate: {
            /** Format: uuid */
            alert_id: string;
            current_technique: string;
            current_technique_name?: string | null;
            facility_id: string;
            /** @description Default: `api`. */
            model?: string | null;
            predicted_techniques: components["schemas"]["PredictedCreate"][];
            /** Format: date-time */
            timestamp?: string | null;
        };
        /** @description A stored prediction with its ranked techniques (rank order). */
        PredictionRow: {
            /** Format: uuid */
            alert_id: string;
            current_technique: string;
            current_technique_name: string;
            facility_id: string;
            /**
             * Format: uuid
             * @description The prediction's event id.
             */
            id: string;
            model: string;
            /** Format: int64 */
            observations: number;
            predicted_techniques: components["schemas"]["PredictedTechnique"][];
            /** Format: date-time */
            timestamp: string;
            validated: boolean;
            /** Format: date-time */
            validation_time?: string | null;
        };
        /** @description The caller of a request. */
        Principal: {
            kind: components["schemas"]["PrincipalKind"];
            /** @description User name, or `apikey:<name>`. */
            name: string;
            /** @example analyst */
            role: string;
        };
        /**
         * @description How a caller authenticated.
         * @enum {string}
         */
        PrincipalKind: "user" | "api-key" | "unauthenticated";
        /**
         * @description Differential-privacy accounting of one round of a federation, for one site or for the
         *     federation as a whole.
         */
        PrivacyEntry: {
            /** Format: double */
            clip_norm: number;
            /** Format: double */
            delta: number;
            /** Format: double */
            epsilon: number;
            federation_id: string;
            /** Format: double */
            noise_multiplier: number;
            /** Format: date-time */
            recorded_at: string;
            /** Format: int64 */
            round_number: number;
            /** Format: double */
            sampling_rate: number;
            /**
             * @description `None`: the federation as a whole. `Some("")` is refused (it is how `None` is
             *     stored).
             */
            site_id?: string | null;
        };
        /**
         * @description `GET /api/fl/privacy-metrics`: ε spent according to the accountant's ledger, and how the
         *     federation aggregates and protects its updates.
         */
        PrivacyMetrics: {
            /**
             * @description What combines the sites' updates in that federation: the strategy's name, or with DP
             *     `dp-clipped-mean` (the unweighted mean of clipped updates plus Gaussian noise; the
             *     strategy then only selects the sites).
             */
            aggregation?: string | null;
            /**
             * Format: double
             * @description The configured maximum ε, if any (the server's setting, else the federation's DP
             *     budget).
             */
            budget?: number | null;
            /**
             * Format: double
             * @description δ of that guarantee.
             */
            delta?: number | null;
            /**
             * Format: double
             * @description ε spent so far by the most recent federation (the federation configured last, else
             *     the one of the latest ledger entry), if any.
             */
            epsilon?: number | null;
            federation?: components["schemas"]["FlFederationRow"] | null;
            /** @description Every ledger entry (federation-wide and per site), by federation, round, site. */
            ledger: components["schemas"]["PrivacyEntry"][];
            /**
             * Format: double
             * @description `budget - epsilon` (never below 0), when both are known.
             */
            remaining?: number | null;
            /**
             * Format: int64
             * @description Rounds accounted in that federation.
             */
            rounds: number;
        };
        /** @description Body of `PUT /api/fl/rounds/{id}/progress`. */
        ProgressBody: {
            /** Format: int32 */
            clients_active?: number | null;
            /** Format: double */
            epsilon?: number | null;
            /** @example training */
            phase?: string | null;
            /**
             * Format: int32
             * @description 0 to 100.
             */
            progress: number;
        };
        /** @description A round with its clients. */
        RoundDetail: components["schemas"]["FlRoundRow"] & {
            clients: components["schemas"]["FlClientRow"][];
        };
        /**
         * @description Alert severity, ordered from least to most severe.
         * @enum {string}
         */
        Severity: "low" | "medium" | "high" | "critical";
        /** @description One source of evidence of a new alert. */
        SourceCreate: {
            /**
             * Format: double
             * @description 0..1.
             */
            confidence: number;
            context_evidence?: unknown;
            /** Format: date-time */
            detection_time?: string | null;
            evidence?: string;
            /**
             * Format: int32
             * @description 1 anomaly detection, 2 classification, 3 prediction.
             */
            layer: number;
            model_name: string;
            model_version?: string;
        };
        /** @description Body of `PUT /api/alerts/{id}/status`. */
        StatusUpdate: {
            /**
             * @description `new`, `acknowledged`, `resolved` or `false-positive`.
             * @example acknowledged
             */
            status: string;
        };
        /** @description A tactic (matrix column). */
        TacticSummary: {
            id: string;
            name: string;
            /** Format: int32 */
            order: number;
            shortname: string;
        };
        /**
         * @description A technique with its description, detections and mitigations (from the ATT&CK bundle
         *     when one is loaded; otherwise name and tactics only).
         */
        TechniqueInfo: {
            assets: string[];
            /** @description Whether the full ATT&CK bundle is loaded (descriptions need it). */
            bundle_loaded: boolean;
            description?: string | null;
            /** @description Detection strategies (`{id, name, description, analytics}`). */
            detection: unknown[];
            id: string;
            /** @description Mitigations (`{id, name, description}`). */
            mitigations: unknown[];
            name: string;
            tactics: string[];
            url?: string | null;
        };
        /** @description A technique of the matrix. */
        TechniqueSummary: {
            id: string;
            name: string;
            tactics: string[];
        };
        /** @description A bearer token. */
        TokenResponse: {
            access_token: string;
            /**
             * Format: int64
             * @description Seconds until the token expires.
             */
            expires_in: number;
            /** @example analyst */
            role: string;
            /** @description Always `bearer`. */
            token_type: string;
            username: string;
        };
        /** @description One contributing feature of a detector's explanation. */
        TopFeature: {
            /**
             * Format: double
             * @description Share of the score (0..1).
             */
            contribution?: number | null;
            /** @description Detector that explained its score with this feature. */
            detector: string;
            name: string;
            /** Format: double */
            value?: number | null;
        };
        /** @description Answer of `POST /api/fl/rounds/trigger`. */
        Triggered: {
            /**
             * Format: int64
             * @description Row id of the round that started.
             */
            round_id: number;
        };
        /** @description Body of `POST /api/predictions/{id}/validate` (optional; default validates). */
        ValidateBody: {
            /** @description `true` marks the prediction validated (now); `false` clears the mark. */
            validated?: boolean;
        };
        /** @description Body of a 422. */
        ValidationBody: {
            detail: components["schemas"]["FieldError"][];
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    list_alerts: {
        parameters: {
            query?: {
                /** @description Facility id. */
                facility?: string;
                /** @description Page size, 1 to 1000 (default 50). */
                limit?: number;
                /** @description Page number, from 1. */
                page?: number;
                /** @description Case-insensitive substring of title, description, technique id or name. */
                search?: string;
                /** @description `critical`, `high`, `medium`, `low` (or `all`). */
                severity?: string;
                /** @description `new`, `acknowledged`, `resolved`, `false-positive` (or `all`). */
                status_filter?: string;
                /** @description Alerts active within the last `<n>m`, `<n>h` or `<n>d` (e.g. `1h`, `24h`, `7d`). */
                time_range?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One page of alerts, most recently active first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertPage"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid parameter */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    create_alert: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AlertCreate"];
            };
        };
        responses: {
            /** @description The stored alert */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertResponse"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the analyst role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    get_alert: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The alert with its evidence */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertResponse"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such alert */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    alert_audit: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Who changed the alert, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditPage"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the analyst role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such alert */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    alert_flows: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The flow records the alert covers */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": unknown[];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such alert */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    set_status: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["StatusUpdate"];
            };
        };
        responses: {
            /** @description The alert after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the analyst role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such alert */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid status or id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    alert_stats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alert counters */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertStats"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    audit_log: {
        parameters: {
            query?: {
                /** @description Only requests by this principal. */
                actor?: string;
                /** @description 1 to 1000 (default 100). */
                limit?: number;
                offset?: number;
                /** @description Only requests on this object, e.g. `alert:<id>`. */
                target?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description State-changing requests, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditPage"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid parameter */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    login: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LoginBody"];
            };
        };
        responses: {
            /** @description A bearer token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TokenResponse"];
                };
            };
            /** @description Wrong user name or password */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
            /** @description Too many attempts */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    me: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Who the caller is */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Principal"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_clients: {
        parameters: {
            query?: {
                /** @description The round whose clients to list (default: the latest round). */
                round_id?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Clients of the round */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlClientRow"][];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid parameter */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    get_client: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Client id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The client */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlClientRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such client */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    update_client: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Client id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ClientBody"];
            };
        };
        responses: {
            /** @description The client after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlClientRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such client */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    privacy_metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The privacy ledger, the budget, the strategy and DP settings */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PrivacyMetrics"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_rounds: {
        parameters: {
            query?: {
                /** @description 1 to 1000 (default 50). */
                limit?: number;
                /** @description Rounds to skip. */
                offset?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Rounds, newest first (total in X-Total-Count) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlRoundRow"][];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid parameter */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    get_round: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Round id */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The round and its clients */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RoundDetail"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such round */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    complete_round: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Round id */
                id: number;
            };
            cookie?: never;
        };
        /** @description Optional */
        requestBody?: {
            content: {
                "application/json": components["schemas"]["CompleteBody"] | null;
            };
        };
        responses: {
            /** @description The completed round */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlRoundRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such round */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    round_progress: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Round id */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ProgressBody"];
            };
        };
        responses: {
            /** @description The round after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlRoundRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such round */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    current_round: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The round in progress */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlRoundRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No round in progress */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    trigger_round: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A round was started */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Triggered"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the admin role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description A round cannot start now (e.g. one is running, or the privacy budget is spent) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No federation runs in this process */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    graph: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Detected techniques and predicted next techniques */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AttackGraph"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    technique: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Technique id, e.g. T0855 */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The technique */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TechniqueInfo"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not an ATT&CK for ICS technique */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed technique id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    techniques: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Tactics and techniques of ATT&CK for ICS */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Matrix"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    counters: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The pipeline's counters, latest samples oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PipelineHistory"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_predictions: {
        parameters: {
            query?: {
                /** @description 1 to 1000 (default 50). */
                limit?: number;
                /** @description Predictions to skip (default 0). */
                offset?: number;
                /** @description Only validated (`true`) or not yet validated (`false`) predictions. */
                validated?: boolean;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Predictions, newest first (total in X-Total-Count) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PredictionRow"][];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid parameter */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    create_prediction: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PredictionCreate"];
            };
        };
        responses: {
            /** @description The stored prediction */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PredictionRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the analyst role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Invalid field */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    get_prediction: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Prediction id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The prediction */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PredictionRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such prediction */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    validate_prediction: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Prediction id */
                id: string;
            };
            cookie?: never;
        };
        /** @description Optional; default validates */
        requestBody?: {
            content: {
                "application/json": components["schemas"]["ValidateBody"] | null;
            };
        };
        responses: {
            /** @description The prediction after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PredictionRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Needs the analyst role */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No such prediction */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Malformed id or body */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ValidationBody"];
                };
            };
        };
    };
    latest_prediction: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The newest prediction */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PredictionRow"];
                };
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description No prediction yet */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    health: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is alive */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text exposition */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description No metrics recorder installed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Store reachable and pipeline running */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            /** @description Not ready (which part is in `status`) */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
    websocket: {
        parameters: {
            query?: {
                /** @description Bearer token or API key (browsers cannot set headers on a WebSocket). */
                token?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Switching to the WebSocket protocol (see the module docs for messages) */
            101: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Not authenticated */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
}
