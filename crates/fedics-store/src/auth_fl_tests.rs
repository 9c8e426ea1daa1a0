//! Tests of users, API keys, the audit log and the federated-learning tables, each body run
//! on both engines: SQLite in a temporary directory, PostgreSQL in a fresh schema of
//! `FEDICS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tempfile::TempDir;
use uuid::Uuid;

use crate::{
    ApiKeyRow, AuditEntry, AuditQuery, AuditRow, Change, ClientStatus, Engine, FlClientRow,
    FlClientUpdate, FlDpSettings, FlFederationRow, FlRoundCompletion, FlRoundUpdate, NewApiKey,
    NewFlRound, NewUser, PrivacyEntry, Role, RoundPhase, RoundStatus, Store, StoreError,
};

// ---------------------------------------------------------------------------------------
// Harness

fn pg_url() -> String {
    std::env::var("FEDICS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh database, removed on drop.
struct TestDb {
    store: Store,
    _dir: Option<TempDir>,
    schema: Option<String>,
}

impl TestDb {
    async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("fedics.db");
                let store = Store::open(path.to_str().expect("utf-8 path"))
                    .await
                    .expect("open sqlite");
                TestDb {
                    store,
                    _dir: Some(dir),
                    schema: None,
                }
            }
            Engine::Postgres => {
                let schema = format!("fedics_t_{}", Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&pg_url()).await.expect("connect");
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut admin)
                    .await
                    .expect("create schema");
                admin.close().await.expect("close");
                let url = format!("{}?options[search_path]={schema}", pg_url());
                let store = Store::open(&url).await.expect("open postgres");
                TestDb {
                    store,
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop runs inside the test's runtime: drop the schema from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&pg_url()).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test schema: {dropped:?}");
        }
    }
}

async fn run<F, Fut>(engine: Engine, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::new(engine).await;
    assert_eq!(db.store.engine(), engine);
    body(db.store.clone()).await;
    db.store.close().await;
}

/// For each named `async fn name(store: Store)`, a module `name` with the tests `sqlite`
/// and `postgres` running it on that engine.
macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::run(crate::Engine::Sqlite, super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::run(crate::Engine::Postgres, super::$name).await;
                }
            }
        )+
    };
}

on_both_engines!(
    users,
    api_keys,
    audit_log,
    fl_rounds,
    fl_round_checks,
    fl_rounds_concurrent,
    fl_clients,
    fl_changes,
    privacy_ledger,
    fl_federations,
);

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// `base() + secs` seconds.
fn t(secs: i64) -> DateTime<Utc> {
    base() + Duration::seconds(secs)
}

fn is_conflict(r: &StoreError) -> bool {
    matches!(r, StoreError::Conflict { .. })
}

/// Every change announced so far.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Change>) -> Vec<Change> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

// ---------------------------------------------------------------------------------------
// Enums (engine independent)

#[test]
fn role_text_order_and_serde() {
    assert!(Role::Viewer < Role::Analyst && Role::Analyst < Role::Admin);
    for r in Role::ALL {
        assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        assert_eq!(
            serde_json::to_value(r).expect("json"),
            json!(r.as_str()),
            "{r:?}"
        );
    }
    assert_eq!(Role::Admin.as_str(), "admin");
    let err = "root".parse::<Role>().expect_err("unknown role");
    let msg = err.to_string();
    assert!(
        msg.contains("\"root\"") && msg.contains("viewer, analyst, admin"),
        "{msg}"
    );
    assert!("Admin".parse::<Role>().is_err(), "case matters");
}

#[test]
fn fl_enum_texts() {
    assert_eq!(RoundStatus::InProgress.as_str(), "in-progress");
    assert_eq!(
        serde_json::to_value(RoundStatus::InProgress).expect("json"),
        json!("in-progress")
    );
    assert_eq!(
        serde_json::from_value::<RoundStatus>(json!("failed")).expect("json"),
        RoundStatus::Failed
    );
    assert_eq!(
        serde_json::to_value(RoundPhase::Aggregating).expect("json"),
        json!("aggregating")
    );
    assert_eq!(
        serde_json::to_value(ClientStatus::Delayed).expect("json"),
        json!("delayed")
    );
    for s in RoundStatus::ALL {
        assert_eq!(s.as_str().parse::<RoundStatus>(), Ok(*s));
    }
    for p in RoundPhase::ALL {
        assert_eq!(p.as_str().parse::<RoundPhase>(), Ok(*p));
    }
    for c in ClientStatus::ALL {
        assert_eq!(c.as_str().parse::<ClientStatus>(), Ok(*c));
    }
    let msg = "done"
        .parse::<RoundPhase>()
        .expect_err("unknown")
        .to_string();
    assert!(
        msg.contains("distributing, training, aggregating, complete"),
        "{msg}"
    );
    let msg = "in_progress"
        .parse::<RoundStatus>()
        .expect_err("unknown")
        .to_string();
    assert!(msg.contains("in-progress, completed, failed"), "{msg}");
}

#[test]
fn audit_row_serialises_flat() {
    let row = AuditRow {
        id: 7,
        entry: entry(0, "alice", Some("x")),
    };
    let v = serde_json::to_value(&row).expect("json");
    assert_eq!(v["id"], json!(7));
    assert_eq!(v["actor"], json!("alice"));
    assert_eq!(v["status"], json!(200));
    let back: AuditRow = serde_json::from_value(v).expect("json");
    assert_eq!(back, row);
    assert_eq!(AuditQuery::default().limit, 100);
    let q: AuditQuery = serde_json::from_value(json!({ "actor": "bob" })).expect("json");
    assert_eq!(
        (q.actor.as_deref(), q.limit, q.offset),
        (Some("bob"), 100, 0)
    );
}

// ---------------------------------------------------------------------------------------
// Users

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.to_string(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        role,
    }
}

async fn users(store: Store) {
    assert_eq!(store.count_users().await.expect("count"), 0);
    assert_eq!(store.get_user("carol").await.expect("get"), None);

    let before = Utc::now() - Duration::seconds(1);
    let carol = store
        .create_user(&new_user("carol", Role::Admin))
        .await
        .expect("create");
    assert_eq!(carol.username, "carol");
    assert_eq!(carol.role, Role::Admin);
    assert!(carol.created_at > before && carol.created_at <= Utc::now());
    assert_eq!(
        store.get_user("carol").await.expect("get"),
        Some(carol.clone())
    );

    let err = store
        .create_user(&new_user("carol", Role::Viewer))
        .await
        .expect_err("duplicate");
    assert!(is_conflict(&err), "{err}");
    assert!(err.to_string().contains("carol"), "{err}");
    assert!(err.is_permanent());

    let alice = store
        .create_user(&new_user("alice", Role::Viewer))
        .await
        .expect("create");
    let bob = store
        .create_user(&new_user("bob", Role::Analyst))
        .await
        .expect("create");
    // Names are exact: another case is another user.
    let upper = store
        .create_user(&new_user("Carol", Role::Viewer))
        .await
        .expect("create");
    assert_ne!(alice.id, bob.id);
    assert_eq!(store.count_users().await.expect("count"), 4);
    let names: Vec<String> = store
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["Carol", "alice", "bob", "carol"]);

    assert!(
        store
            .set_user_password("bob", "$argon2id$new")
            .await
            .expect("set")
    );
    assert_eq!(
        store
            .get_user("bob")
            .await
            .expect("get")
            .expect("bob")
            .password_hash,
        "$argon2id$new"
    );
    assert!(
        !store
            .set_user_password("nobody", "$argon2id$x")
            .await
            .expect("set")
    );

    assert!(store.delete_user(&upper.username).await.expect("delete"));
    assert!(!store.delete_user("Carol").await.expect("delete again"));
    assert_eq!(store.count_users().await.expect("count"), 3);
    assert_eq!(store.get_user("Carol").await.expect("get"), None);
    // The name is free again.
    store
        .create_user(&new_user("Carol", Role::Admin))
        .await
        .expect("recreate");
}

// ---------------------------------------------------------------------------------------
// API keys

fn new_key(prefix: &str, role: Role) -> NewApiKey {
    NewApiKey {
        name: format!("key {prefix}"),
        prefix: prefix.to_string(),
        secret_hash: format!("sha256:{prefix}"),
        role,
        created_by: "carol".to_string(),
    }
}

async fn api_keys(store: Store) {
    assert_eq!(store.api_key_by_prefix("fk_a").await.expect("get"), None);
    assert!(store.list_api_keys().await.expect("list").is_empty());

    let a = store
        .create_api_key(&new_key("fk_a", Role::Analyst))
        .await
        .expect("create");
    assert_eq!(
        (a.revoked_at, a.last_used_at, a.role),
        (None, None, Role::Analyst)
    );
    assert_eq!(a.created_by, "carol");
    assert_eq!(
        store.api_key_by_prefix("fk_a").await.expect("get"),
        Some(a.clone())
    );
    let err = store
        .create_api_key(&new_key("fk_a", Role::Viewer))
        .await
        .expect_err("duplicate prefix");
    assert!(is_conflict(&err), "{err}");

    let b = store
        .create_api_key(&new_key("fk_b", Role::Viewer))
        .await
        .expect("create");
    let c = store
        .create_api_key(&new_key("fk_c", Role::Admin))
        .await
        .expect("create");
    let listed = store.list_api_keys().await.expect("list");
    assert_eq!(listed.len(), 3);
    let keys: Vec<_> = listed.iter().map(|k| (k.created_at, k.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by created_at, then id");

    // Revoke by prefix, then again: the first time stays.
    assert!(store.revoke_api_key("fk_a", t(10)).await.expect("revoke"));
    assert!(!store.revoke_api_key("fk_a", t(20)).await.expect("again"));
    let revoked = store
        .api_key_by_prefix("fk_a")
        .await
        .expect("get")
        .expect("revoked keys are still found");
    assert_eq!(revoked.revoked_at, Some(t(10)));

    // Revoke by id, whatever the uuid's spelling.
    let upper = b.id.to_string().to_uppercase();
    assert!(store.revoke_api_key(&upper, t(11)).await.expect("revoke"));
    assert!(
        !store
            .revoke_api_key(&b.id.to_string(), t(12))
            .await
            .expect("again")
    );
    assert!(
        !store
            .revoke_api_key("fk_none", t(12))
            .await
            .expect("unknown")
    );
    assert!(
        !store
            .revoke_api_key(&Uuid::new_v4().to_string(), t(12))
            .await
            .expect("unknown id")
    );
    let c_now = store.api_key_by_prefix("fk_c").await.expect("get");
    assert_eq!(c_now.and_then(|k| k.revoked_at), None, "others untouched");

    // last_used_at only moves forward; unknown ids are ignored.
    store.touch_api_key(c.id, t(5)).await.expect("touch");
    store.touch_api_key(c.id, t(3)).await.expect("older touch");
    let used = |k: Option<ApiKeyRow>| k.and_then(|k| k.last_used_at);
    assert_eq!(
        used(store.api_key_by_prefix("fk_c").await.expect("get")),
        Some(t(5))
    );
    store.touch_api_key(c.id, t(6)).await.expect("touch");
    assert_eq!(
        used(store.api_key_by_prefix("fk_c").await.expect("get")),
        Some(t(6))
    );
    store
        .touch_api_key(Uuid::new_v4(), t(7))
        .await
        .expect("unknown key");
    let listed = store.list_api_keys().await.expect("list");
    assert_eq!(listed.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Audit log

fn entry(secs: i64, actor: &str, target: Option<&str>) -> AuditEntry {
    AuditEntry {
        timestamp: t(secs),
        actor: actor.to_string(),
        role: "analyst".to_string(),
        method: "PATCH".to_string(),
        path: "/api/alerts/x/status".to_string(),
        target: target.map(str::to_string),
        status: 200,
        detail: json!({ "status": "resolved", "n": secs, "nested": { "ok": true } }),
        client_ip: Some("10.0.0.7".to_string()),
    }
}

async fn audit_log(store: Store) {
    let empty = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!((empty.entries.len(), empty.total), (0, 0));

    let mut ids = Vec::new();
    // Two entries share a timestamp: the later insert (greater id) lists first.
    for (secs, actor, target) in [
        (0, "alice", Some("a1")),
        (10, "bob", Some("a1")),
        (10, "alice", None),
        (20, "alice", Some("a2")),
        (30, "bob", Some("a2")),
    ] {
        ids.push(
            store
                .insert_audit(&entry(secs, actor, target))
                .await
                .expect("insert"),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let all = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(all.total, 5);
    let order: Vec<i64> = all.entries.iter().map(|e| e.id).collect();
    assert_eq!(order, [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(all.entries[4].entry, entry(0, "alice", Some("a1")));
    assert_eq!(all.entries[2].entry.target, None);

    let alice = store
        .list_audit(&AuditQuery {
            actor: Some("alice".into()),
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(alice.total, 3);
    assert!(alice.entries.iter().all(|e| e.entry.actor == "alice"));

    let both = store
        .list_audit(&AuditQuery {
            actor: Some("bob".into()),
            target: Some("a2".into()),
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(both.total, 1);
    assert_eq!(both.entries[0].id, ids[4]);

    let page = store
        .list_audit(&AuditQuery {
            limit: 2,
            offset: 1,
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.total, 5);
    assert_eq!(
        page.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[3], ids[2]]
    );
    let past_end = store
        .list_audit(&AuditQuery {
            limit: 10,
            offset: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!((past_end.entries.len(), past_end.total), (0, 5));
    let none = store
        .list_audit(&AuditQuery {
            actor: Some("mallory' OR '1'='1".into()),
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(none.total, 0);

    // Strictly before: the entries at 10 s stay.
    assert_eq!(store.delete_audit_before(t(10)).await.expect("delete"), 1);
    assert_eq!(store.delete_audit_before(t(10)).await.expect("again"), 0);
    let left = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(left.total, 4);
    assert!(left.entries.iter().all(|e| e.id != ids[0]));
    assert_eq!(store.delete_audit_before(t(100)).await.expect("all"), 4);
}

// ---------------------------------------------------------------------------------------
// FL rounds

fn new_round(number: Option<i64>, secs: i64) -> NewFlRound {
    NewFlRound {
        round_number: number,
        total_clients: 3,
        start_time: t(secs),
    }
}

async fn fl_rounds(store: Store) {
    assert_eq!(store.current_fl_round().await.expect("current"), None);
    assert_eq!(store.latest_fl_round().await.expect("latest"), None);
    assert_eq!(store.get_fl_round(1).await.expect("get"), None);
    assert_eq!(
        store.list_fl_rounds(10, 0).await.expect("list"),
        (vec![], 0)
    );

    let r1 = store
        .create_fl_round(&new_round(None, 0))
        .await
        .expect("create");
    assert_eq!(r1.round_number, 1, "the first round is 1");
    assert_eq!(
        (r1.status, r1.phase, r1.progress),
        (RoundStatus::InProgress, RoundPhase::Distributing, 0)
    );
    assert_eq!((r1.clients_active, r1.total_clients), (0, 3));
    assert_eq!((r1.start_time, r1.end_time), (t(0), None));
    assert_eq!((r1.epsilon, r1.model_accuracy), (None, None));
    let r2 = store
        .create_fl_round(&new_round(None, 60))
        .await
        .expect("create");
    assert_eq!(r2.round_number, 2);
    let r10 = store
        .create_fl_round(&new_round(Some(10), 120))
        .await
        .expect("create");
    let err = store
        .create_fl_round(&new_round(Some(10), 180))
        .await
        .expect_err("duplicate");
    assert!(is_conflict(&err), "{err}");
    let r11 = store
        .create_fl_round(&new_round(None, 240))
        .await
        .expect("create");
    assert_eq!(r11.round_number, 11, "max + 1");

    assert_eq!(
        store.get_fl_round(r2.id).await.expect("get"),
        Some(r2.clone())
    );
    assert_eq!(store.get_fl_round(r11.id + 100).await.expect("get"), None);
    assert_eq!(
        store.latest_fl_round().await.expect("latest"),
        Some(r11.clone())
    );
    assert_eq!(
        store.current_fl_round().await.expect("current"),
        Some(r11.clone())
    );

    let (page, total) = store.list_fl_rounds(2, 0).await.expect("list");
    assert_eq!(total, 4);
    assert_eq!(
        page.iter().map(|r| r.round_number).collect::<Vec<_>>(),
        [11, 10]
    );
    let (page, _) = store.list_fl_rounds(2, 2).await.expect("list");
    assert_eq!(page, [r2.clone(), r1.clone()]);
    let (page, total) = store.list_fl_rounds(5, 10).await.expect("list");
    assert_eq!((page.len(), total), (0, 4));

    // Partial updates leave the other fields.
    let up = store
        .update_fl_round(
            r10.id,
            &FlRoundUpdate {
                progress: Some(40),
                phase: Some(RoundPhase::Training),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect("update")
        .expect("round 10");
    assert_eq!((up.progress, up.phase), (40, RoundPhase::Training));
    assert_eq!((up.clients_active, up.epsilon), (0, None));
    let up = store
        .update_fl_round(
            r10.id,
            &FlRoundUpdate {
                clients_active: Some(2),
                epsilon: Some(0.75),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect("update")
        .expect("round 10");
    assert_eq!((up.progress, up.phase), (40, RoundPhase::Training));
    assert_eq!((up.clients_active, up.epsilon), (2, Some(0.75)));
    assert_eq!(store.get_fl_round(r10.id).await.expect("get"), Some(up));
    assert_eq!(
        store
            .update_fl_round(r11.id + 100, &FlRoundUpdate::default())
            .await
            .expect("update"),
        None
    );

    // Completion: status, phase complete, progress 100; epsilon kept when not given.
    let done = store
        .complete_fl_round(
            r10.id,
            &FlRoundCompletion {
                status: RoundStatus::Completed,
                model_accuracy: Some(0.93),
                epsilon: None,
                end_time: t(500),
            },
        )
        .await
        .expect("complete")
        .expect("round 10");
    assert_eq!(
        (done.status, done.phase, done.progress),
        (RoundStatus::Completed, RoundPhase::Complete, 100)
    );
    assert_eq!(
        (done.model_accuracy, done.epsilon, done.end_time),
        (Some(0.93), Some(0.75), Some(t(500)))
    );
    let failed = store
        .complete_fl_round(
            r11.id,
            &FlRoundCompletion {
                status: RoundStatus::Failed,
                model_accuracy: None,
                epsilon: Some(1.5),
                end_time: t(600),
            },
        )
        .await
        .expect("complete")
        .expect("round 11");
    assert_eq!(
        (failed.status, failed.model_accuracy, failed.epsilon),
        (RoundStatus::Failed, None, Some(1.5))
    );
    assert_eq!(
        store
            .current_fl_round()
            .await
            .expect("current")
            .map(|r| r.round_number),
        Some(2),
        "the newest round still in progress"
    );
    assert_eq!(store.latest_fl_round().await.expect("latest"), Some(failed));
    assert_eq!(
        store
            .complete_fl_round(
                r11.id + 100,
                &FlRoundCompletion {
                    status: RoundStatus::Completed,
                    model_accuracy: None,
                    epsilon: None,
                    end_time: t(700),
                },
            )
            .await
            .expect("complete"),
        None
    );
}

/// Out-of-range and unrepresentable values are errors, and change nothing.
async fn fl_round_checks(store: Store) {
    let r = store
        .create_fl_round(&new_round(None, 0))
        .await
        .expect("create");
    let err = store
        .update_fl_round(
            r.id,
            &FlRoundUpdate {
                progress: Some(101),
                phase: Some(RoundPhase::Training),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect_err("progress 101");
    assert!(matches!(err, StoreError::Sqlx { .. }), "{err}");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(
        store.get_fl_round(r.id).await.expect("get"),
        Some(r.clone())
    );

    let err = store
        .update_fl_round(
            r.id,
            &FlRoundUpdate {
                epsilon: Some(f64::NAN),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect_err("NaN");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");

    let err = store
        .complete_fl_round(
            r.id,
            &FlRoundCompletion {
                status: RoundStatus::InProgress,
                model_accuracy: None,
                epsilon: None,
                end_time: t(1),
            },
        )
        .await
        .expect_err("not an ending");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");
    assert_eq!(store.get_fl_round(r.id).await.expect("get"), Some(r));

    let err = store
        .create_fl_round(&new_round(Some(-1), 0))
        .await
        .map(|r| r.round_number);
    // Round numbers are not range checked; -1 is simply another number.
    assert_eq!(err.expect("create"), -1);
}

/// Rounds created at once without a number get distinct consecutive numbers.
async fn fl_rounds_concurrent(store: Store) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create_fl_round(&new_round(None, i)).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.expect("join").expect("create").round_number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// FL clients

fn client(id: &str, round_id: i64, name: &str) -> FlClientRow {
    FlClientRow {
        id: id.to_string(),
        round_id,
        facility_id: format!("fac-{name}"),
        name: name.to_string(),
        status: ClientStatus::Active,
        progress: 10,
        current_epoch: 1,
        total_epochs: 5,
        loss: Some(0.5),
        accuracy: None,
        last_update: t(1),
    }
}

fn client_update(secs: i64) -> FlClientUpdate {
    FlClientUpdate {
        status: None,
        progress: None,
        current_epoch: None,
        total_epochs: None,
        loss: None,
        accuracy: None,
        last_update: t(secs),
    }
}

async fn fl_clients(store: Store) {
    assert!(store.list_fl_clients(None).await.expect("list").is_empty());
    let r1 = store
        .create_fl_round(&new_round(None, 0))
        .await
        .expect("create");
    let r2 = store
        .create_fl_round(&new_round(None, 60))
        .await
        .expect("create");

    assert_eq!(store.get_fl_client("c1").await.expect("get"), None);
    let c1 = client("c1", r1.id, "plant-b");
    store.upsert_fl_client(&c1).await.expect("insert");
    assert_eq!(
        store.get_fl_client("c1").await.expect("get"),
        Some(c1.clone())
    );
    // An upsert replaces every column.
    let c1 = FlClientRow {
        status: ClientStatus::Delayed,
        progress: 55,
        loss: None,
        accuracy: Some(0.8),
        last_update: t(2),
        ..c1
    };
    store.upsert_fl_client(&c1).await.expect("replace");
    assert_eq!(
        store.get_fl_client("c1").await.expect("get"),
        Some(c1.clone())
    );

    let c2 = client("c2", r1.id, "plant-a");
    let c3 = client("c3", r1.id, "plant-a");
    let c4 = client("c4", r2.id, "plant-z");
    for c in [&c3, &c2, &c4] {
        store.upsert_fl_client(c).await.expect("insert");
    }
    assert_eq!(
        store.fl_round_clients(r1.id).await.expect("clients"),
        [c2.clone(), c3.clone(), c1.clone()],
        "by name, then id"
    );
    assert_eq!(
        store.list_fl_clients(Some(r1.id)).await.expect("list"),
        [c2.clone(), c3.clone(), c1.clone()]
    );
    assert_eq!(
        store.list_fl_clients(None).await.expect("latest round's"),
        [c4]
    );
    assert!(
        store
            .fl_round_clients(r2.id + 100)
            .await
            .expect("clients")
            .is_empty()
    );

    // The round must exist.
    let err = store
        .upsert_fl_client(&client("c9", r2.id + 100, "ghost"))
        .await
        .expect_err("unknown round");
    assert!(matches!(err, StoreError::Sqlx { .. }), "{err}");

    let up = store
        .update_fl_client(
            "c2",
            &FlClientUpdate {
                status: Some(ClientStatus::Offline),
                current_epoch: Some(3),
                accuracy: Some(0.9),
                ..client_update(9)
            },
        )
        .await
        .expect("update")
        .expect("c2");
    assert_eq!(
        up,
        FlClientRow {
            status: ClientStatus::Offline,
            current_epoch: 3,
            accuracy: Some(0.9),
            last_update: t(9),
            ..c2.clone()
        }
    );
    assert_eq!(
        store.get_fl_client("c2").await.expect("get"),
        Some(up.clone())
    );
    assert_eq!(
        store
            .update_fl_client("nobody", &client_update(9))
            .await
            .expect("update"),
        None
    );
    let err = store
        .update_fl_client(
            "c2",
            &FlClientUpdate {
                progress: Some(101),
                ..client_update(10)
            },
        )
        .await
        .expect_err("progress 101");
    assert!(matches!(err, StoreError::Sqlx { .. }), "{err}");
    let err = store
        .upsert_fl_client(&FlClientRow {
            progress: 200,
            ..c2.clone()
        })
        .await
        .expect_err("progress 200");
    assert!(matches!(err, StoreError::Sqlx { .. }), "{err}");
    assert_eq!(store.get_fl_client("c2").await.expect("get"), Some(up));
}

async fn fl_changes(store: Store) {
    let mut rx = store.subscribe_changes();
    let r = store
        .create_fl_round(&new_round(None, 0))
        .await
        .expect("create");
    assert_eq!(drain(&mut rx), [Change::FlRound(r.id)]);

    let _ = store
        .create_fl_round(&new_round(Some(r.round_number), 0))
        .await;
    store
        .update_fl_round(
            r.id,
            &FlRoundUpdate {
                progress: Some(101),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect_err("progress 101");
    store
        .update_fl_round(r.id + 100, &FlRoundUpdate::default())
        .await
        .expect("update");
    assert_eq!(drain(&mut rx), [], "nothing committed, nothing announced");

    store
        .update_fl_round(
            r.id,
            &FlRoundUpdate {
                progress: Some(20),
                ..FlRoundUpdate::default()
            },
        )
        .await
        .expect("update");
    store
        .upsert_fl_client(&client("c1", r.id, "plant"))
        .await
        .expect("upsert");
    store
        .update_fl_client("c1", &client_update(5))
        .await
        .expect("update");
    store
        .update_fl_client("nobody", &client_update(5))
        .await
        .expect("update");
    store
        .complete_fl_round(
            r.id,
            &FlRoundCompletion {
                status: RoundStatus::Completed,
                model_accuracy: Some(0.9),
                epsilon: Some(1.0),
                end_time: t(60),
            },
        )
        .await
        .expect("complete");
    assert_eq!(
        drain(&mut rx),
        [
            Change::FlRound(r.id),
            Change::FlClient("c1".to_string()),
            Change::FlClient("c1".to_string()),
            Change::FlRound(r.id),
        ]
    );

    // Users, keys, audit and ledger writes announce nothing.
    store
        .create_user(&new_user("u", Role::Viewer))
        .await
        .expect("user");
    store
        .insert_audit(&entry(0, "u", None))
        .await
        .expect("audit");
    store
        .record_privacy(&ledger("fed", 1, None, 0.5))
        .await
        .expect("ledger");
    assert_eq!(drain(&mut rx), []);
}

// ---------------------------------------------------------------------------------------
// Privacy ledger

fn ledger(federation: &str, round: i64, site: Option<&str>, epsilon: f64) -> PrivacyEntry {
    PrivacyEntry {
        federation_id: federation.to_string(),
        round_number: round,
        site_id: site.map(str::to_string),
        sampling_rate: 0.01,
        noise_multiplier: 1.1,
        clip_norm: 1.0,
        epsilon,
        delta: 1e-5,
        recorded_at: t(round),
    }
}

async fn privacy_ledger(store: Store) {
    assert!(store.privacy_ledger(None).await.expect("ledger").is_empty());
    let entries = [
        ledger("fed-b", 1, None, 0.4),
        ledger("fed-a", 2, Some("site-2"), 0.3),
        ledger("fed-a", 2, None, 0.6),
        ledger("fed-a", 1, Some("site-1"), 0.1),
        ledger("fed-a", 2, Some("site-1"), 0.2),
    ];
    for e in &entries {
        store.record_privacy(e).await.expect("record");
    }
    // Recording the same key again (even with other values) keeps the first record.
    store.record_privacy(&entries[0]).await.expect("same again");
    store
        .record_privacy(&ledger("fed-a", 2, None, 99.0))
        .await
        .expect("other values");
    store
        .record_privacy(&ledger("fed-a", 2, Some("site-2"), 98.0))
        .await
        .expect("other values");

    let all = store.privacy_ledger(None).await.expect("ledger");
    assert_eq!(
        all,
        [
            entries[3].clone(),
            entries[2].clone(),
            entries[4].clone(),
            entries[1].clone(),
            entries[0].clone(),
        ],
        "by federation, round, site (federation-wide first)"
    );
    let b = store.privacy_ledger(Some("fed-b")).await.expect("ledger");
    assert_eq!(b, [entries[0].clone()]);
    assert_eq!(b[0].site_id, None);
    assert!(
        store
            .privacy_ledger(Some("fed-c"))
            .await
            .expect("ledger")
            .is_empty()
    );

    let err = store
        .record_privacy(&ledger("fed-a", 3, Some(""), 0.1))
        .await
        .expect_err("empty site id");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");
    let err = store
        .record_privacy(&ledger("fed-a", 3, None, f64::INFINITY))
        .await
        .expect_err("infinite epsilon");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");
    assert_eq!(store.privacy_ledger(None).await.expect("ledger").len(), 5);
}

fn federation(id: &str, strategy: &str, at: DateTime<Utc>) -> FlFederationRow {
    FlFederationRow {
        id: id.into(),
        strategy: strategy.into(),
        strategy_params: [("mu".to_string(), 0.01)].into_iter().collect(),
        local_epochs: 2,
        learning_rate: 0.01,
        fraction_fit: 1.0,
        total_sites: 3,
        dp: Some(FlDpSettings {
            noise_multiplier: 1.1,
            clip_norm: 1.0,
            mode: "central".into(),
            max_epsilon: 8.0,
            delta: 1e-5,
        }),
        started_at: at,
        updated_at: at,
    }
}

async fn fl_federations(store: Store) {
    assert_eq!(store.latest_fl_federation().await.expect("latest"), None);
    let a = federation("fed-a", "fedprox", t(0));
    store.upsert_fl_federation(&a).await.expect("a");
    assert_eq!(
        store.get_fl_federation("fed-a").await.expect("get"),
        Some(a.clone())
    );
    let mut b = federation("fed-b", "trimmed-mean", t(10));
    b.strategy_params = [("beta".to_string(), 0.2)].into_iter().collect();
    b.dp = None;
    store.upsert_fl_federation(&b).await.expect("b");
    assert_eq!(
        store.latest_fl_federation().await.expect("latest"),
        Some(b.clone())
    );

    // fed-a restarts with another strategy: new configuration and updated_at, same start.
    let mut a2 = federation("fed-a", "median", t(0));
    a2.strategy_params.clear();
    a2.started_at = t(20);
    a2.updated_at = t(20);
    store.upsert_fl_federation(&a2).await.expect("a again");
    let latest = store
        .latest_fl_federation()
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(latest.id, "fed-a");
    assert_eq!(latest.strategy, "median");
    assert!(latest.strategy_params.is_empty());
    assert_eq!(latest.started_at, t(0), "started_at is kept");
    assert_eq!(latest.updated_at, t(20));
    assert_eq!(latest.dp, a.dp);
    assert_eq!(store.get_fl_federation("fed-c").await.expect("get"), None);

    let mut bad = federation("fed-x", "fedprox", t(30));
    bad.strategy_params.insert("mu".into(), f64::NAN);
    let err = store.upsert_fl_federation(&bad).await.expect_err("NaN");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");
    let mut bad = federation("fed-x", "fedprox", t(30));
    if let Some(dp) = bad.dp.as_mut() {
        dp.mode = "sideways".into();
    }
    assert!(
        store.upsert_fl_federation(&bad).await.is_err(),
        "unknown DP mode"
    );
    let bad = federation(" ", "fedprox", t(30));
    let err = store
        .upsert_fl_federation(&bad)
        .await
        .expect_err("empty id");
    assert!(matches!(err, StoreError::Encode { .. }), "{err}");
    assert_eq!(store.get_fl_federation("fed-x").await.expect("get"), None);
}
