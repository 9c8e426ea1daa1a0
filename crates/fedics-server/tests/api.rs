//! The REST API, every test on SQLite and on PostgreSQL (`name::sqlite`, `name::postgres`).

mod common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use common::{Who, alert, base, prediction, uid};
use fedics_core::Severity;
use fedics_store::{
    ClientStatus, FlClientRow, FlDpSettings, FlFederationRow, NewApiKey, NewFlRound, NewUser,
    PrivacyEntry, Role, WriteBatch,
};
use serde_json::{Value, json};

/// (method, path, minimum role, body) of every protected route, with existing ids filled in
/// by [`seed_all`].
fn routes(
    alert_id: &str,
    prediction_id: &str,
    round: i64,
    client: &str,
) -> Vec<(Method, String, Role, Option<Value>)> {
    use Method as M;
    let v = Role::Viewer;
    let an = Role::Analyst;
    let ad = Role::Admin;
    vec![
        (M::GET, "/api/alerts".into(), v, None),
        (M::POST, "/api/alerts".into(), an, Some(new_alert())),
        (M::GET, "/api/alerts/stats".into(), v, None),
        (M::GET, format!("/api/alerts/{alert_id}"), v, None),
        (
            M::PUT,
            format!("/api/alerts/{alert_id}/status"),
            an,
            Some(json!({"status": "acknowledged"})),
        ),
        (M::GET, format!("/api/alerts/{alert_id}/flows"), v, None),
        (M::GET, format!("/api/alerts/{alert_id}/audit"), an, None),
        (M::GET, "/api/fl/rounds/current".into(), v, None),
        (M::GET, "/api/fl/rounds".into(), v, None),
        (M::GET, format!("/api/fl/rounds/{round}"), v, None),
        (M::POST, "/api/fl/rounds/trigger".into(), ad, None),
        (
            M::PUT,
            format!("/api/fl/rounds/{round}/progress"),
            ad,
            Some(json!({"progress": 50})),
        ),
        (
            M::POST,
            format!("/api/fl/rounds/{round}/complete"),
            ad,
            Some(json!({"model_accuracy": 0.9})),
        ),
        (M::GET, "/api/fl/clients".into(), v, None),
        (M::GET, format!("/api/fl/clients/{client}"), v, None),
        (
            M::PUT,
            format!("/api/fl/clients/{client}"),
            ad,
            Some(json!({"progress": 10})),
        ),
        (M::GET, "/api/fl/privacy-metrics".into(), v, None),
        (M::GET, "/api/pipeline/counters".into(), v, None),
        (M::GET, "/api/predictions".into(), v, None),
        (
            M::POST,
            "/api/predictions".into(),
            an,
            Some(new_prediction(alert_id)),
        ),
        (M::GET, "/api/predictions/latest".into(), v, None),
        (M::GET, format!("/api/predictions/{prediction_id}"), v, None),
        (
            M::POST,
            format!("/api/predictions/{prediction_id}/validate"),
            an,
            None,
        ),
        (M::GET, "/api/mitre/graph".into(), v, None),
        (M::GET, "/api/mitre/techniques".into(), v, None),
        (M::GET, "/api/mitre/technique/T0855".into(), v, None),
        (M::GET, "/api/auth/me".into(), v, None),
        (M::GET, "/api/audit".into(), ad, None),
    ]
}

fn new_alert() -> Value {
    json!({
        "facility_id": "plant-a",
        "severity": "high",
        "title": "Unexpected write to PLC",
        "attack_type": "T0855",
        "correlation_confidence": 0.9,
        "sources": [{"layer": 1, "model_name": "sensor-x", "confidence": 0.8,
                     "context_evidence": {"top_features": [{"name": "writes", "value": 12.0, "contribution": 0.9}]}}]
    })
}

fn new_prediction(alert_id: &str) -> Value {
    json!({
        "alert_id": alert_id,
        "facility_id": "plant-a",
        "current_technique": "T0846",
        "predicted_techniques": [{"technique_id": "T0855", "probability": 0.7}]
    })
}

/// Seeds one alert with a prediction, one FL round with a client; returns their ids.
async fn seed_all(h: &common::Harness) -> (String, String, i64, String) {
    let a = alert("incident-1", "plant-a", Severity::High, "T0846", base());
    let p = prediction("p1", &a, base());
    h.store
        .apply(&WriteBatch {
            alerts: vec![a.clone()],
            predictions: vec![p.clone()],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    let round = h
        .store
        .create_fl_round(&NewFlRound {
            round_number: None,
            total_clients: 2,
            start_time: base(),
        })
        .await
        .unwrap();
    let client = FlClientRow {
        id: "client-plant-a-r1".into(),
        round_id: round.id,
        facility_id: "plant-a".into(),
        name: "plant-a".into(),
        status: ClientStatus::Active,
        progress: 0,
        current_epoch: 0,
        total_epochs: 5,
        loss: None,
        accuracy: None,
        last_update: base(),
    };
    h.store.upsert_fl_client(&client).await.unwrap();
    (
        a.alert_id.to_string(),
        p.event_id.to_string(),
        round.id,
        client.id,
    )
}

api_test!(every_route_needs_credentials_and_its_role, |h| {
    let (a, p, r, c) = seed_all(&h).await;
    for (method, path, min, body) in routes(&a, &p, r, &c) {
        let ans = h
            .request(method.clone(), &path, Who::Anonymous, body.clone())
            .await;
        assert_eq!(
            ans.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} anonymous"
        );
        assert!(ans.headers.contains_key("www-authenticate"));
        let bad = h
            .request(
                method.clone(),
                &path,
                Who::Bearer("not.a.token".into()),
                body.clone(),
            )
            .await;
        assert_eq!(
            bad.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} bad token"
        );
        for (who, role) in [(Who::Viewer, Role::Viewer), (Who::Analyst, Role::Analyst)] {
            if role < min {
                let ans = h.request(method.clone(), &path, who, body.clone()).await;
                assert_eq!(
                    ans.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {}",
                    role.as_str()
                );
                assert!(ans.body["detail"].as_str().unwrap().contains(min.as_str()));
            }
        }
    }
});

api_test!(every_route_answers_its_role, |h| {
    let (a, p, r, c) = seed_all(&h).await;
    for (method, path, min, body) in routes(&a, &p, r, &c) {
        let who = match min {
            Role::Viewer => Who::Viewer,
            Role::Analyst => Who::Analyst,
            Role::Admin => Who::Admin,
        };
        let ans = h.request(method.clone(), &path, who, body).await;
        // Triggering a round needs a federation in the process: 503 here, never a fake round.
        let expected_ok = !path.ends_with("/trigger");
        if expected_ok {
            assert!(
                ans.status.is_success(),
                "{method} {path}: {} {}",
                ans.status,
                ans.body
            );
        } else {
            assert_eq!(ans.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
    }
});

api_test!(list_alerts_filters_paginates_and_has_the_seed_shape, |h| {
    let t = base();
    let mut events = Vec::new();
    for i in 0..30 {
        let sev = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ][i % 4];
        let fac = if i % 3 == 0 { "plant-b" } else { "plant-a" };
        let tech = if i % 5 == 0 { "T0855" } else { "T0846" };
        events.push(alert(
            &format!("a{i}"),
            fac,
            sev,
            tech,
            t + Duration::seconds(i as i64),
        ));
    }
    events.push(alert(
        "old",
        "plant-a",
        Severity::Low,
        "T0846",
        t - Duration::days(3),
    ));
    h.seed(events).await;
    let all = h.get("/api/alerts?limit=10", Who::Viewer).await;
    assert_eq!(all.status, StatusCode::OK);
    for k in ["alerts", "total", "page", "pages", "limit"] {
        assert!(all.body.get(k).is_some(), "missing {k}");
    }
    assert_eq!(all.body["total"], 31);
    assert_eq!(all.body["pages"], 4);
    assert_eq!(all.body["alerts"].as_array().unwrap().len(), 10);
    let first = &all.body["alerts"][0];
    assert_eq!(first["id"], uid("a29").to_string());
    let p4 = h.get("/api/alerts?limit=10&page=4", Who::Viewer).await;
    assert_eq!(p4.body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(p4.body["alerts"][0]["id"], uid("old").to_string());

    let crit = h.get("/api/alerts?severity=critical", Who::Viewer).await;
    assert_eq!(crit.body["total"], 7);
    assert!(
        crit.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["severity"] == "critical")
    );
    let fac = h
        .get("/api/alerts?facility=plant-b&severity=all", Who::Viewer)
        .await;
    assert_eq!(fac.body["total"], 10);
    let search = h
        .get("/api/alerts?search=unauthorized%20command", Who::Viewer)
        .await;
    assert_eq!(search.body["total"], 6);
    let recent = h.get("/api/alerts?time_range=24h", Who::Viewer).await;
    assert_eq!(recent.body["total"], 30);
    let none = h
        .get("/api/alerts?status_filter=resolved", Who::Viewer)
        .await;
    assert_eq!(none.body["total"], 0);
    assert_eq!(none.body["pages"], 0);
});

api_test!(list_alerts_refuses_hostile_parameters, |h| {
    h.seed(vec![alert("a", "plant-a", Severity::High, "T0846", base())])
        .await;
    // SQL metacharacters are data, not SQL.
    for s in [
        "'; DROP TABLE alerts; --",
        "%",
        "_",
        "\\",
        "\" OR 1=1 --",
        "a%' OR '1'='1",
    ] {
        let path = format!("/api/alerts?search={}", urlencode(s));
        let ans = h.get(&path, Who::Viewer).await;
        assert_eq!(ans.status, StatusCode::OK, "{s}");
        assert_eq!(ans.body["total"], 0, "{s}");
    }
    assert_eq!(h.store.count_alerts().await.unwrap(), 1);
    let cases = [
        ("/api/alerts?limit=1000000", "limit"),
        ("/api/alerts?limit=0", "limit"),
        ("/api/alerts?limit=ten", "limit"),
        ("/api/alerts?page=-1", "page"),
        ("/api/alerts?page=0", "page"),
        ("/api/alerts?page=99999999999999999999", "page"),
        ("/api/alerts?severity=urgent", "severity"),
        ("/api/alerts?status_filter=closed", "status_filter"),
        ("/api/alerts?time_range=forever", "time_range"),
        ("/api/alerts?search=a%00b", "search"),
    ];
    for (path, field) in cases {
        let ans = h.get(path, Who::Viewer).await;
        assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(
            ans.fields(),
            vec![field.to_string()],
            "{path}: {}",
            ans.body
        );
        assert_eq!(ans.body["detail"][0]["loc"][0], "query");
    }
    let long = "x".repeat(300);
    let ans = h
        .get(&format!("/api/alerts?search={long}"), Who::Viewer)
        .await;
    assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Several bad fields are all named.
    let ans = h
        .get("/api/alerts?limit=0&page=-3&severity=x", Who::Viewer)
        .await;
    assert_eq!(ans.fields(), vec!["severity", "page", "limit"]);
});

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

api_test!(alert_detail_carries_evidence, |h| {
    let a = alert("d", "plant-a", Severity::Critical, "T0846", base());
    h.seed(vec![a.clone()]).await;
    let ans = h
        .get(&format!("/api/alerts/{}", a.alert_id), Who::Viewer)
        .await;
    assert_eq!(ans.status, StatusCode::OK);
    let b = &ans.body;
    assert_eq!(b["attack_type"], "T0846");
    assert_eq!(b["sources"][0]["model_name"], "iforest");
    assert_eq!(b["sources"][0]["confidence"], 0.7);
    assert_eq!(b["top_features"][0]["name"], "packets_per_s");
    assert_eq!(b["top_features"][0]["detector"], "iforest");
    assert_eq!(b["model_versions"]["iforest"], "if-1");
    assert_eq!(b["flow_ids"][0], a.flow_ids[0].to_string());

    let missing = h
        .get(&format!("/api/alerts/{}", uid("nope")), Who::Viewer)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for bad in [
        "not-a-uuid",
        "1",
        "%27%20OR%201%3D1",
        "00000000-0000-0000-0000-00000000000g",
    ] {
        let ans = h.get(&format!("/api/alerts/{bad}"), Who::Viewer).await;
        assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(ans.body["detail"][0]["loc"], json!(["path", "id"]));
    }
    let flows = h
        .get(&format!("/api/alerts/{}/flows", uid("nope")), Who::Viewer)
        .await;
    assert_eq!(flows.status, StatusCode::NOT_FOUND);
    let flows = h.get("/api/alerts/zzz/flows", Who::Viewer).await;
    assert_eq!(flows.status, StatusCode::UNPROCESSABLE_ENTITY);
    let flows = h
        .get(&format!("/api/alerts/{}/flows", a.alert_id), Who::Viewer)
        .await;
    assert_eq!(flows.status, StatusCode::OK);
    assert!(flows.body.is_array());
});

api_test!(stats_count_what_is_stored, |h| {
    let t = base();
    h.seed(vec![
        alert("s1", "plant-a", Severity::Critical, "T0846", t),
        alert("s2", "plant-a", Severity::Critical, "T0846", t),
        alert("s3", "plant-b", Severity::Low, "T0846", t),
    ])
    .await;
    h.store
        .set_alert_status(uid("s3"), fedics_core::AlertStatus::FalsePositive)
        .await
        .unwrap();
    let s = h.get("/api/alerts/stats", Who::Viewer).await;
    assert_eq!(
        s.body,
        json!({"total": 3, "critical": 2, "unresolved": 2, "false_positives": 1})
    );
});

api_test!(alert_status_changes_and_is_audited, |h| {
    let a = alert("st", "plant-a", Severity::High, "T0846", base());
    h.seed(vec![a.clone()]).await;
    let path = format!("/api/alerts/{}/status", a.alert_id);
    let ok = h
        .put(&path, Who::Analyst, json!({"status": "acknowledged"}))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["status"], "acknowledged");
    let bad = h
        .put(&path, Who::Analyst, json!({"status": "closed"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.fields(), vec!["status"]);
    let missing = h.put(&path, Who::Analyst, json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.fields(), vec!["status"]);
    let nf = h
        .put(
            &format!("/api/alerts/{}/status", uid("x")),
            Who::Analyst,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let viewer = h
        .put(&path, Who::Viewer, json!({"status": "resolved"}))
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    // The trail names who did what, including the refused attempt.
    let trail = h
        .get(&format!("/api/alerts/{}/audit", a.alert_id), Who::Analyst)
        .await;
    assert_eq!(trail.status, StatusCode::OK);
    let entries = trail.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{}", trail.body);
    let statuses: Vec<u64> = entries
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![403, 422, 422, 200]);
    assert_eq!(entries[3]["actor"], "test-analyst");
    assert_eq!(entries[3]["method"], "PUT");
    assert_eq!(entries[3]["detail"]["request"]["status"], "acknowledged");
    let nf = h
        .get(&format!("/api/alerts/{}/audit", uid("x")), Who::Analyst)
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h.get("/api/alerts/x/audit", Who::Analyst).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
});

api_test!(create_alert_validates_and_stores, |h| {
    let ok = h.post("/api/alerts", Who::Analyst, new_alert()).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["attack_name"], "Unauthorized Command Message");
    assert_eq!(ok.body["status"], "new");
    assert_eq!(ok.body["top_features"][0]["name"], "writes");
    let id = ok.body["id"].as_str().unwrap().to_string();
    let back = h.get(&format!("/api/alerts/{id}"), Who::Viewer).await;
    assert_eq!(back.status, StatusCode::OK);
    let mut bad_layer = new_alert();
    bad_layer["sources"][0]["layer"] = json!(7);
    let mut bad_conf = new_alert();
    bad_conf["correlation_confidence"] = json!(1.5);
    let mut bad_tech = new_alert();
    bad_tech["attack_type"] = json!("T08'55");
    let mut no_title = new_alert();
    no_title.as_object_mut().unwrap().remove("title");
    let mut wrong_type = new_alert();
    wrong_type["severity"] = json!(3);
    let mut nul = new_alert();
    nul["facility_id"] = json!("plant\u{0}a");
    let mut unknown = new_alert();
    unknown["is_admin"] = json!(true);
    let cases = [
        (bad_layer, "layer"),
        (bad_conf, "correlation_confidence"),
        (bad_tech, "attack_type"),
        (no_title, "title"),
        (wrong_type, "severity"),
        (nul, "facility_id"),
    ];
    for (body, field) in cases {
        let ans = h.post("/api/alerts", Who::Analyst, body).await;
        assert_eq!(
            ans.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            ans.body
        );
        assert_eq!(ans.fields(), vec![field.to_string()], "{}", ans.body);
    }
    let ans = h.post("/api/alerts", Who::Analyst, unknown).await;
    assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ans = h
        .raw(
            Method::POST,
            "/api/alerts",
            Who::Analyst,
            Some(b"{not json".to_vec()),
            "application/json",
        )
        .await;
    assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ans = h
        .raw(
            Method::POST,
            "/api/alerts",
            Who::Analyst,
            Some(new_alert().to_string().into_bytes()),
            "text/plain",
        )
        .await;
    assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.store.count_alerts().await.unwrap(), 1);
});

api_test!(oversize_bodies_are_refused, |h| {
    let mut big = new_alert();
    big["description"] = json!("x".repeat(300 * 1024));
    let ans = h.post("/api/alerts", Who::Analyst, big).await;
    assert_eq!(ans.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.store.count_alerts().await.unwrap(), 0);
});

api_test!(predictions_list_get_latest_validate_create, |h| {
    let a = alert("pa", "plant-a", Severity::High, "T0846", base());
    let p1 = prediction("p1", &a, base());
    let p2 = prediction("p2", &a, base() + Duration::seconds(5));
    h.store
        .apply(&WriteBatch {
            alerts: vec![a.clone()],
            predictions: vec![p1.clone(), p2.clone()],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    let list = h.get("/api/predictions?limit=1", Who::Viewer).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["id"], p2.event_id.to_string());
    assert_eq!(list.headers["x-total-count"], "2");
    assert_eq!(
        list.body[0]["predicted_techniques"][0]["technique_id"],
        "T0855"
    );
    let latest = h.get("/api/predictions/latest", Who::Viewer).await;
    assert_eq!(latest.body["id"], p2.event_id.to_string());
    let one = h
        .get(&format!("/api/predictions/{}", p1.event_id), Who::Viewer)
        .await;
    assert_eq!(one.body["validated"], false);
    let v = h
        .request(
            Method::POST,
            &format!("/api/predictions/{}/validate", p1.event_id),
            Who::Analyst,
            None,
        )
        .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.body["validated"], true);
    let validated = h.get("/api/predictions?validated=true", Who::Viewer).await;
    assert_eq!(validated.body.as_array().unwrap().len(), 1);
    assert_eq!(validated.headers["x-total-count"], "1");
    let undo = h
        .post(
            &format!("/api/predictions/{}/validate", p1.event_id),
            Who::Analyst,
            json!({"validated": false}),
        )
        .await;
    assert_eq!(undo.body["validated"], false);

    for (path, field) in [
        ("/api/predictions?limit=5000", "limit"),
        ("/api/predictions?offset=-1", "offset"),
        ("/api/predictions?validated=maybe", "validated"),
    ] {
        let ans = h.get(path, Who::Viewer).await;
        assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(ans.fields(), vec![field.to_string()]);
    }
    let nf = h
        .get(&format!("/api/predictions/{}", uid("x")), Who::Viewer)
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h.get("/api/predictions/xyz", Who::Viewer).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nf = h
        .request(
            Method::POST,
            &format!("/api/predictions/{}/validate", uid("x")),
            Who::Analyst,
            None,
        )
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h
        .post(
            &format!("/api/predictions/{}/validate", p1.event_id),
            Who::Analyst,
            json!({"validated": "yes"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.fields(), vec!["validated"]);

    let created = h
        .post(
            "/api/predictions",
            Who::Analyst,
            new_prediction(&a.alert_id.to_string()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["predicted_techniques"][0]["rank"], 1);
    assert_eq!(
        created.body["current_technique_name"],
        "Remote System Discovery"
    );
    let mut bad = new_prediction(&a.alert_id.to_string());
    bad["predicted_techniques"][0]["probability"] = json!(2.0);
    let ans = h.post("/api/predictions", Who::Analyst, bad).await;
    assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ans.fields(), vec!["probability"]);
    let mut bad = new_prediction("not-a-uuid");
    bad["facility_id"] = json!("plant-a");
    let ans = h.post("/api/predictions", Who::Analyst, bad).await;
    assert_eq!(ans.fields(), vec!["alert_id"]);
});

api_test!(latest_prediction_is_404_when_there_is_none, |h| {
    let ans = h.get("/api/predictions/latest", Who::Viewer).await;
    assert_eq!(ans.status, StatusCode::NOT_FOUND);
    let ans = h.get("/api/fl/rounds/current", Who::Viewer).await;
    assert_eq!(ans.status, StatusCode::NOT_FOUND);
    let ans = h.get("/api/fl/rounds", Who::Viewer).await;
    assert_eq!(ans.body, json!([]));
    let ans = h.get("/api/fl/privacy-metrics", Who::Viewer).await;
    assert_eq!(ans.body["epsilon"], Value::Null);
    assert_eq!(ans.body["ledger"], json!([]));
    assert_eq!(ans.body["federation"], Value::Null);
    assert_eq!(ans.body["aggregation"], Value::Null);
});

api_test!(pipeline_counters_without_a_pipeline, |h| {
    let ans = h.get("/api/pipeline/counters", Who::Viewer).await;
    assert_eq!(ans.status, StatusCode::OK, "{}", ans.body);
    assert_eq!(ans.body["running"], Value::Null);
    assert_eq!(ans.body["samples"], json!([]));
    assert_eq!(ans.body["interval_s"], 5.0);
    let ans = h.get("/api/pipeline/counters", Who::Anonymous).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
});

api_test!(privacy_metrics_show_the_federation_configuration, |h| {
    let fed =
        |id: &str, strategy: &str, params: &[(&str, f64)], dp: bool, at: i64| FlFederationRow {
            id: id.into(),
            strategy: strategy.into(),
            strategy_params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            local_epochs: 1,
            learning_rate: 0.01,
            fraction_fit: 1.0,
            total_sites: 3,
            dp: dp.then(|| FlDpSettings {
                noise_multiplier: 1.1,
                clip_norm: 1.0,
                mode: "central".into(),
                max_epsilon: 8.0,
                delta: 1e-5,
            }),
            started_at: base() + Duration::seconds(at),
            updated_at: base() + Duration::seconds(at),
        };
    let entry = |federation: &str, round: i64, epsilon: f64| PrivacyEntry {
        federation_id: federation.into(),
        round_number: round,
        site_id: None,
        sampling_rate: 1.0,
        noise_multiplier: 1.1,
        clip_norm: 1.0,
        epsilon,
        delta: 1e-5,
        recorded_at: base(),
    };
    h.store
        .upsert_fl_federation(&fed("fed-dp", "fedprox", &[("mu", 0.01)], true, 0))
        .await
        .unwrap();
    for (round, eps) in [(1, 0.5), (2, 0.9)] {
        h.store
            .record_privacy(&entry("fed-dp", round, eps))
            .await
            .unwrap();
    }
    let pm = h.get("/api/fl/privacy-metrics", Who::Viewer).await;
    assert_eq!(pm.status, StatusCode::OK, "{}", pm.body);
    assert_eq!(pm.body["federation"]["id"], "fed-dp");
    assert_eq!(pm.body["federation"]["strategy"], "fedprox");
    assert_eq!(
        pm.body["federation"]["strategy_params"],
        json!({"mu": 0.01})
    );
    assert_eq!(pm.body["federation"]["dp"]["noise_multiplier"], 1.1);
    assert_eq!(pm.body["federation"]["dp"]["mode"], "central");
    assert_eq!(pm.body["aggregation"], "dp-clipped-mean");
    assert_eq!(pm.body["epsilon"], 0.9);
    assert_eq!(pm.body["rounds"], 2);
    // No budget configured on the server: the federation's own.
    assert_eq!(pm.body["budget"], 8.0);
    assert_eq!(pm.body["remaining"], 8.0 - 0.9);

    // A newer federation without DP: its strategy, and no ε of its own.
    h.store
        .upsert_fl_federation(&fed(
            "fed-plain",
            "trimmed-mean",
            &[("beta", 0.2)],
            false,
            60,
        ))
        .await
        .unwrap();
    let pm = h.get("/api/fl/privacy-metrics", Who::Viewer).await;
    assert_eq!(pm.body["federation"]["id"], "fed-plain");
    assert_eq!(
        pm.body["federation"]["strategy_params"],
        json!({"beta": 0.2})
    );
    assert_eq!(pm.body["federation"]["dp"], Value::Null);
    assert_eq!(pm.body["aggregation"], "trimmed-mean");
    assert_eq!(pm.body["epsilon"], Value::Null);
    assert_eq!(pm.body["rounds"], 0);
    assert_eq!(pm.body["budget"], Value::Null);
    assert_eq!(pm.body["ledger"].as_array().map(Vec::len), Some(2));
});

api_test!(federation_rounds_clients_and_ledger, |h| {
    let (_, _, round, client) = seed_all(&h).await;
    let cur = h.get("/api/fl/rounds/current", Who::Viewer).await;
    assert_eq!(cur.status, StatusCode::OK);
    assert_eq!(cur.body["id"], round);
    assert_eq!(cur.body["status"], "in-progress");
    let r = h.get(&format!("/api/fl/rounds/{round}"), Who::Viewer).await;
    assert_eq!(r.body["clients"][0]["id"], client);
    let list = h.get("/api/fl/rounds?limit=10&offset=0", Who::Viewer).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.headers["x-total-count"], "1");

    let pr = h
        .put(
            &format!("/api/fl/rounds/{round}/progress"),
            Who::Admin,
            json!({"progress": 40, "phase": "training", "clients_active": 2}),
        )
        .await;
    assert_eq!(pr.status, StatusCode::OK, "{}", pr.body);
    assert_eq!(pr.body["progress"], 40);
    assert_eq!(pr.body["phase"], "training");
    for (body, field) in [
        (json!({"progress": 101}), "progress"),
        (json!({"progress": -1}), "progress"),
        (json!({"progress": 5, "phase": "sleeping"}), "phase"),
        (json!({"progress": 5, "epsilon": -2.0}), "epsilon"),
    ] {
        let ans = h
            .put(
                &format!("/api/fl/rounds/{round}/progress"),
                Who::Admin,
                body,
            )
            .await;
        assert_eq!(ans.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ans.fields(), vec![field.to_string()], "{}", ans.body);
    }
    let nf = h
        .put(
            "/api/fl/rounds/999/progress",
            Who::Admin,
            json!({"progress": 1}),
        )
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h
        .put(
            "/api/fl/rounds/x/progress",
            Who::Admin,
            json!({"progress": 1}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["detail"][0]["loc"], json!(["path", "id"]));

    let cl = h
        .put(
            &format!("/api/fl/clients/{client}"),
            Who::Admin,
            json!({"status": "delayed", "current_epoch": 2, "loss": 0.4, "accuracy": 0.8}),
        )
        .await;
    assert_eq!(cl.status, StatusCode::OK, "{}", cl.body);
    assert_eq!(cl.body["status"], "delayed");
    assert_eq!(cl.body["current_epoch"], 2);
    let bad = h
        .put(
            &format!("/api/fl/clients/{client}"),
            Who::Admin,
            json!({"accuracy": 1.5}),
        )
        .await;
    assert_eq!(bad.fields(), vec!["accuracy"]);
    let bad = h
        .put(
            &format!("/api/fl/clients/{client}"),
            Who::Admin,
            json!({"status": "gone"}),
        )
        .await;
    assert_eq!(bad.fields(), vec!["status"]);
    let nf = h
        .put("/api/fl/clients/nobody", Who::Admin, json!({"progress": 1}))
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let nf = h.get("/api/fl/clients/nobody", Who::Viewer).await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h.get("/api/fl/clients/a%00b", Who::Viewer).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let clients = h.get("/api/fl/clients", Who::Viewer).await;
    assert_eq!(clients.body[0]["id"], client);
    let bad = h.get("/api/fl/clients?round_id=abc", Who::Viewer).await;
    assert_eq!(bad.fields(), vec!["round_id"]);
    let bad = h.get("/api/fl/rounds?limit=0", Who::Viewer).await;
    assert_eq!(bad.fields(), vec!["limit"]);
    let nf = h.get("/api/fl/rounds/424242", Who::Viewer).await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h.get("/api/fl/rounds/1.5", Who::Viewer).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    h.store
        .record_privacy(&PrivacyEntry {
            federation_id: "fed-1".into(),
            round_number: 1,
            site_id: None,
            sampling_rate: 1.0,
            noise_multiplier: 1.1,
            clip_norm: 1.0,
            epsilon: 2.5,
            delta: 1e-5,
            recorded_at: base(),
        })
        .await
        .unwrap();
    let pm = h.get("/api/fl/privacy-metrics", Who::Viewer).await;
    assert_eq!(pm.body["epsilon"], 2.5);
    assert_eq!(pm.body["delta"], 1e-5);
    assert_eq!(pm.body["rounds"], 1);
    assert_eq!(pm.body["ledger"][0]["noise_multiplier"], 1.1);

    let done = h
        .post(
            &format!("/api/fl/rounds/{round}/complete"),
            Who::Admin,
            json!({"model_accuracy": 0.93, "epsilon": 2.5}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["phase"], "complete");
    assert_eq!(done.body["progress"], 100);
    let bad = h
        .post(
            &format!("/api/fl/rounds/{round}/complete"),
            Who::Admin,
            json!({"model_accuracy": 7}),
        )
        .await;
    assert_eq!(bad.fields(), vec!["model_accuracy"]);
    let nf = h
        .post("/api/fl/rounds/999/complete", Who::Admin, json!({}))
        .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let none = h.get("/api/fl/rounds/current", Who::Viewer).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let trig = h
        .request(Method::POST, "/api/fl/rounds/trigger", Who::Admin, None)
        .await;
    assert_eq!(trig.status, StatusCode::SERVICE_UNAVAILABLE);
});

api_test!(mitre_graph_techniques_and_details, |h| {
    let a = alert("m1", "plant-a", Severity::High, "T0846", base());
    let b = alert("m2", "plant-b", Severity::High, "T0846", base());
    let p = prediction("mp", &a, base());
    h.store
        .apply(&WriteBatch {
            alerts: vec![a, b],
            predictions: vec![p],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    let g = h.get("/api/mitre/graph", Who::Viewer).await;
    assert_eq!(g.status, StatusCode::OK);
    let nodes = g.body["nodes"].as_array().unwrap();
    let t0846 = nodes.iter().find(|n| n["id"] == "T0846").unwrap();
    assert_eq!(t0846["detected"], true);
    assert_eq!(t0846["alerts"], 2);
    assert_eq!(t0846["facilities"].as_array().unwrap().len(), 2);
    let t0855 = nodes.iter().find(|n| n["id"] == "T0855").unwrap();
    assert_eq!(t0855["detected"], false);
    assert_eq!(t0855["predicted_probability"], 0.6);
    let edges = g.body["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["source"], "T0846");
    assert_eq!(edges[0]["target"], "T0855");
    assert_eq!(edges[0]["probability"], 0.6);

    let m = h.get("/api/mitre/techniques", Who::Viewer).await;
    assert_eq!(m.body["tactics"].as_array().unwrap().len(), 12);
    assert!(m.body["techniques"].as_array().unwrap().len() > 70);
    let t = h.get("/api/mitre/technique/T0855", Who::Viewer).await;
    assert_eq!(t.body["name"], "Unauthorized Command Message");
    assert_eq!(t.body["bundle_loaded"], false);
    let nf = h.get("/api/mitre/technique/T9999", Who::Viewer).await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    let bad = h
        .get("/api/mitre/technique/DROP%20TABLE", Who::Viewer)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["detail"][0]["loc"], json!(["path", "id"]));
});

api_test!(login_tokens_and_api_keys, |h| {
    let hash = fedics_server::auth::hash_password("s3cret-pass").unwrap();
    h.store
        .create_user(&NewUser {
            username: "ann".into(),
            password_hash: hash,
            role: Role::Analyst,
        })
        .await
        .unwrap();
    let ok = h
        .post(
            "/api/auth/login",
            Who::Anonymous,
            json!({"username": "ann", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["token_type"], "bearer");
    assert_eq!(ok.body["role"], "analyst");
    let token = ok.body["access_token"].as_str().unwrap().to_string();
    let me = h.get("/api/auth/me", Who::Bearer(token.clone())).await;
    assert_eq!(me.body["name"], "ann");
    assert_eq!(me.body["role"], "analyst");
    let wrong = h
        .post(
            "/api/auth/login",
            Who::Anonymous,
            json!({"username": "ann", "password": "nope"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = h
        .post(
            "/api/auth/login",
            Who::Anonymous,
            json!({"username": "bob", "password": "nope"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.body, wrong.body,
        "unknown users and wrong passwords look alike"
    );
    let bad = h
        .post(
            "/api/auth/login",
            Who::Anonymous,
            json!({"username": "ann"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.fields(), vec!["password"]);
    // Logins are audited without the password.
    let audit = h.get("/api/audit?limit=10", Who::Admin).await;
    let text = audit.body.to_string();
    assert!(text.contains("/api/auth/login"));
    assert!(!text.contains("s3cret-pass"));
    assert!(text.contains("<redacted>"));

    let (key, prefix, secret_hash) = fedics_server::auth::generate_api_key();
    let row = h
        .store
        .create_api_key(&NewApiKey {
            name: "site-a".into(),
            prefix,
            secret_hash,
            role: Role::Viewer,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    let me = h.get("/api/auth/me", Who::ApiKey(key.clone())).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "apikey:site-a");
    assert_eq!(me.body["kind"], "api-key");
    let as_bearer = h.get("/api/alerts", Who::Bearer(key.clone())).await;
    assert_eq!(as_bearer.status, StatusCode::OK);
    let forbidden = h
        .put(
            &format!("/api/alerts/{}/status", uid("x")),
            Who::ApiKey(key.clone()),
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let mut tampered = key.clone();
    tampered.pop();
    tampered.push(if key.ends_with('0') { '1' } else { '0' });
    let bad = h.get("/api/alerts", Who::ApiKey(tampered)).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let bad = h
        .get("/api/alerts", Who::ApiKey("fedics_deadbeef_nope".into()))
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(
        h.store
            .revoke_api_key(&row.id.to_string(), chrono::Utc::now())
            .await
            .unwrap()
    );
    let revoked = h.get("/api/alerts", Who::ApiKey(key)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.body["detail"], "API key revoked");
});

api_test!(invalid_tokens_are_refused, |h| {
    use base64_url as b64;
    let good = h.token(Role::Admin);
    assert_eq!(
        h.get("/api/alerts", Who::Bearer(good.clone())).await.status,
        StatusCode::OK
    );
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| json!({"sub": "mallory", "role": "admin", "iat": now - 7200, "exp": exp, "iss": "fedics"});
    // Expired (signed with the right key).
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(now - 3600),
        &jsonwebtoken::EncodingKey::from_secret(common::SECRET).unwrap(),
    )
    .unwrap();
    let ans = h.get("/api/alerts", Who::Bearer(expired)).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
    assert_eq!(ans.body["detail"], "token expired");
    // Wrong signature.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(now + 3600),
        &jsonwebtoken::EncodingKey::from_secret(b"not the server's secret, but long enough")
            .unwrap(),
    )
    .unwrap();
    let ans = h.get("/api/alerts", Who::Bearer(forged)).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
    assert_eq!(ans.body["detail"], "token signature does not verify");
    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64::encode(claims(now + 3600).to_string().as_bytes())
    );
    let ans = h.get("/api/alerts", Who::Bearer(none)).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
    // Another HMAC algorithm with the right key.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now + 3600),
        &jsonwebtoken::EncodingKey::from_secret(common::SECRET).unwrap(),
    )
    .unwrap();
    let ans = h.get("/api/alerts", Who::Bearer(hs512)).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
    // A tampered payload (role raised) with the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let raised = format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(claims(now + 3600).to_string().as_bytes()),
        parts[2]
    );
    let ans = h.get("/api/alerts", Who::Bearer(raised)).await;
    assert_eq!(ans.status, StatusCode::UNAUTHORIZED);
    for junk in ["", "a.b", "Basic dXNlcjpwYXNz"] {
        let ans = h.get("/api/alerts", Who::Bearer(junk.into())).await;
        assert_eq!(ans.status, StatusCode::UNAUTHORIZED, "{junk:?}");
    }
});

/// base64url without padding (for hand-made tokens).
mod base64_url {
    pub fn encode(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

api_test!(audit_log_is_admin_only_and_filters, |h| {
    let a = alert("au", "plant-a", Severity::High, "T0846", base());
    h.seed(vec![a.clone()]).await;
    h.put(
        &format!("/api/alerts/{}/status", a.alert_id),
        Who::Analyst,
        json!({"status": "resolved"}),
    )
    .await;
    h.post("/api/alerts", Who::Admin, new_alert()).await;
    // Anonymous refusals change nothing and are not logged (anyone could grow the log).
    let anon = h.post("/api/alerts", Who::Anonymous, new_alert()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let all = h.get("/api/audit", Who::Admin).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["total"], 2);
    assert_eq!(all.body["entries"][0]["method"], "POST");
    let created_target = all.body["entries"][0]["target"].as_str().unwrap();
    assert!(created_target.starts_with("alert:"));
    let by_actor = h.get("/api/audit?actor=test-analyst", Who::Admin).await;
    assert_eq!(by_actor.body["total"], 1);
    let bad = h.get("/api/audit?limit=0", Who::Admin).await;
    assert_eq!(bad.fields(), vec!["limit"]);
    assert_eq!(
        h.get("/api/audit", Who::Analyst).await.status,
        StatusCode::FORBIDDEN
    );
    // Reads are not audited.
    h.get("/api/alerts", Who::Viewer).await;
    assert_eq!(h.get("/api/audit", Who::Admin).await.body["total"], 2);
});

api_test!(health_ready_docs_and_openapi, |h| {
    let health = h.get("/health", Who::Anonymous).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = h.get("/ready", Who::Anonymous).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["store_reachable"], true);
    let doc = h.get("/openapi.json", Who::Anonymous).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let docs = h.get("/docs/", Who::Anonymous).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.body.as_str().unwrap().contains("swagger"));
    // Metrics need a recorder; this harness installs none.
    assert_eq!(
        h.get("/metrics", Who::Anonymous).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.store.close().await;
    let ready = h.get("/ready", Who::Anonymous).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["store_reachable"], false);
});

#[test]
fn openapi_covers_every_route() {
    let doc = fedics_server::openapi_document();
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/api/alerts", &["get", "post"][..]),
        ("/api/alerts/stats", &["get"]),
        ("/api/alerts/{id}", &["get"]),
        ("/api/alerts/{id}/status", &["put"]),
        ("/api/alerts/{id}/flows", &["get"]),
        ("/api/alerts/{id}/audit", &["get"]),
        ("/api/fl/rounds/current", &["get"]),
        ("/api/fl/rounds", &["get"]),
        ("/api/fl/rounds/{id}", &["get"]),
        ("/api/fl/rounds/trigger", &["post"]),
        ("/api/fl/rounds/{id}/progress", &["put"]),
        ("/api/fl/rounds/{id}/complete", &["post"]),
        ("/api/fl/clients", &["get"]),
        ("/api/fl/clients/{id}", &["get", "put"]),
        ("/api/fl/privacy-metrics", &["get"]),
        ("/api/pipeline/counters", &["get"]),
        ("/api/predictions", &["get", "post"]),
        ("/api/predictions/latest", &["get"]),
        ("/api/predictions/{id}", &["get"]),
        ("/api/predictions/{id}/validate", &["post"]),
        ("/api/mitre/graph", &["get"]),
        ("/api/mitre/techniques", &["get"]),
        ("/api/mitre/technique/{id}", &["get"]),
        ("/api/auth/login", &["post"]),
        ("/api/auth/me", &["get"]),
        ("/api/audit", &["get"]),
        ("/health", &["get"]),
        ("/ready", &["get"]),
        ("/metrics", &["get"]),
        ("/ws", &["get"]),
    ];
    for (path, methods) in expected {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the document"));
        for m in methods {
            let op = item.get(*m).unwrap_or_else(|| panic!("{m} {path} missing"));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path}"
            );
        }
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "undocumented or unexpected paths: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_per_caller() {
    let h = common::Harness::with_config(
        fedics_store::Engine::Sqlite,
        fedics_server::ServerConfig {
            rate_limit_per_s: 1,
            rate_limit_burst: 5,
            ..Default::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(h.get("/api/alerts/stats", Who::Viewer).await.status);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let limited = h.get("/api/alerts/stats", Who::Viewer).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    // Another principal has its own budget.
    assert_eq!(
        h.get("/api/alerts/stats", Who::Analyst).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_listed_origins() {
    let h = common::Harness::with_config(
        fedics_store::Engine::Sqlite,
        fedics_server::ServerConfig {
            cors_origins: vec!["http://soc.example".into()],
            rate_limit_per_s: 0,
            ..Default::default()
        },
    )
    .await;
    use tower::ServiceExt;
    let pre = |origin: &str| {
        axum::http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/alerts")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let ok = h
        .app
        .clone()
        .oneshot(pre("http://soc.example"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://soc.example"
    );
    let no = h
        .app
        .clone()
        .oneshot(pre("http://evil.example"))
        .await
        .unwrap();
    assert!(!no.headers().contains_key("access-control-allow-origin"));
}
