//! The SQLite store: migrations, DATABASE_URL forms, the duplicate guards, atomicity of the
//! link/snapshot/intent transaction, cursors, retries, conflicts, audit, cycles, status, the
//! async facade, and that batch lookups among 100,000 links search an index.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use ado_clickup_sync::core::model::{Due, Field, Item, Side, Status, TagSet};
use ado_clickup_sync::store::*;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn item(title: &str) -> Item {
    Item {
        title: title.to_string(),
        description: "Some **markdown**\n".to_string(),
        status: Status {
            raw: "Active".into(),
            canonical: "in_progress".into(),
        },
        assignees: BTreeSet::from(["ann@example.com".to_string()]),
        tags: TagSet::new(["Backend", "urgent"]),
        priority: Some(2),
        due: Some(Due::Date(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())),
        parent: None,
    }
}

fn new_link(pair: &str, ado_id: i64, clickup_id: &str) -> NewLink {
    NewLink {
        pair: pair.to_string(),
        ado_id,
        clickup_id: clickup_id.to_string(),
        base: item(&format!("item {ado_id}")),
        ado_rev: 3,
        clickup_updated: 1_700_000_000_123,
    }
}

fn mem() -> Db {
    Db::open_in_memory().unwrap()
}

/// The `EXPLAIN QUERY PLAN` lines of `sql`, with every `?N` bound to `arg`.
fn plan(db: &Db, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<String> {
    let mut stmt = db
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    stmt.query_map(args, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

// ---- migrations and opening ---------------------------------------------------------------

#[test]
fn migrations_are_tracked_and_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.db");
    let latest = latest_schema_version().unwrap();
    assert!(latest >= 1);

    let mut first = Db::open(&DbLocation::File(path.clone())).unwrap();
    assert_eq!(first.schema_version().unwrap(), latest);
    let id = first.insert_link("p", 1, "a", t(1000)).unwrap();

    // A second connection on the same file while the first is open, then a third after both
    // are gone: no migration re-runs (it would fail on CREATE TABLE), data intact.
    let second = Db::open(&DbLocation::File(path.clone())).unwrap();
    assert_eq!(second.schema_version().unwrap(), latest);
    assert_eq!(second.link(id).unwrap().unwrap().clickup_id, "a");
    let journal: String = second
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let fk: i64 = second
        .conn()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    drop(first);
    drop(second);
    let third = Db::open(&DbLocation::File(path)).unwrap();
    assert_eq!(third.schema_version().unwrap(), latest);
    assert_eq!(third.count_active_links("p").unwrap(), 1);
}

#[test]
fn a_second_process_waits_for_the_writer_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let loc = DbLocation::File(dir.path().join("sync.db"));
    let mut daemon = Db::open(&loc).unwrap();
    let mut cli = Db::open(&loc).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        daemon
            .atomic(|db| {
                db.insert_link("p", 1, "a", t(0))?;
                locked_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .unwrap();
    });
    locked_rx.recv().unwrap();
    // The write lock is held: this waits (busy timeout) and then succeeds.
    let c = cli.resolve_conflict(1, Resolution::TakeAdo, t(1));
    assert!(matches!(c, Err(StoreError::ConflictNotFound(1))), "{c:?}");
    cli.insert_link("p", 2, "b", t(1)).unwrap();
    writer.join().unwrap();
    assert_eq!(cli.count_active_links("p").unwrap(), 2);
    // Readers never wait for the writer (WAL): status works during a write.
    assert_eq!(cli.status(t(2), 1).unwrap().pairs[0].links_active, 2);
}

#[test]
fn an_empty_file_is_migrated_and_a_foreign_or_newer_db_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();

    // An empty file (e.g. `touch`ed) is a version-0 database: migrated.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let db = Db::open(&DbLocation::File(empty)).unwrap();
    assert_eq!(
        db.schema_version().unwrap(),
        latest_schema_version().unwrap()
    );

    // The earlier prototype's database: tables, no user_version.
    let foreign = dir.path().join("prototype.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE links (id INTEGER PRIMARY KEY, ado TEXT, cu TEXT);")
            .unwrap();
    }
    let err = Db::open(&DbLocation::File(foreign.clone())).unwrap_err();
    match &err {
        StoreError::ForeignDatabase { tables, .. } => assert_eq!(tables, &["links"]),
        other => panic!("expected ForeignDatabase, got {other:?}"),
    }
    assert!(err.to_string().contains("prototype.db"), "{err}");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((v, n), (0, 1));

    // A database written by a newer program.
    let newer = dir.path().join("newer.db");
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.execute_batch("PRAGMA user_version = 999;").unwrap();
    }
    match Db::open(&DbLocation::File(newer.clone())) {
        Err(StoreError::SchemaTooNew { found, .. }) => assert_eq!(found, 999),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let c = rusqlite::Connection::open(&newer).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999);
}

#[test]
fn database_url_forms() {
    let file = |p: &str| DbLocation::File(PathBuf::from(p));
    let cases = [
        ("data/sync.db", file("data/sync.db")),
        ("/var/lib/sync/sync.db", file("/var/lib/sync/sync.db")),
        ("./data/sync.db", file("./data/sync.db")),
        ("sqlite://data/sync.db", file("data/sync.db")),
        ("sqlite://./data/sync.db", file("./data/sync.db")),
        ("sqlite:///abs/path/sync.db", file("/abs/path/sync.db")),
        ("sqlite:///./data/sync.db", file("./data/sync.db")),
        ("sqlite:data/sync.db", file("data/sync.db")),
        ("SQLITE:///abs/x.db", file("/abs/x.db")),
        ("sqlite+aiosqlite:///./data/sync.db", file("./data/sync.db")),
        ("sqlite+aiosqlite:///data/sync.db", file("data/sync.db")),
        ("sqlite+aiosqlite:////abs/sync.db", file("/abs/sync.db")),
        ("sqlite+pysqlite:///./x.db", file("./x.db")),
        ("sqlite:///tmp/with%20space.db", file("/tmp/with space.db")),
        ("  sqlite:///abs/x.db  ", file("/abs/x.db")),
        (":memory:", DbLocation::Memory),
        ("sqlite::memory:", DbLocation::Memory),
        ("sqlite://:memory:", DbLocation::Memory),
        ("C:/db/sync.db", file("C:/db/sync.db")),
    ];
    for (url, want) in cases {
        assert_eq!(DbLocation::parse(url).unwrap(), want, "{url}");
    }
    assert_eq!(
        DbLocation::from_option(None).unwrap(),
        file(DEFAULT_DATABASE_PATH)
    );
    assert_eq!(
        DbLocation::from_option(Some("")).unwrap(),
        file("./data/sync.db")
    );
    assert_eq!(
        DbLocation::from_option(Some("sqlite:///abs/y.db")).unwrap(),
        file("/abs/y.db")
    );

    for bad in [
        "",
        "   ",
        "postgres://user@host/db",
        "mysql://x",
        "sqlite://x.db?mode=rwc",
        "sqlite+aiosqlite://x.db",
        "sqlite://",
    ] {
        let err = DbLocation::parse(bad).unwrap_err();
        assert!(matches!(err, StoreError::BadUrl { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }
    // The message names the URL but no password part is ever needed for SQLite; an invalid
    // scheme is explained.
    let err = DbLocation::parse("postgres://h/db")
        .unwrap_err()
        .to_string();
    assert!(err.contains("only SQLite"), "{err}");
}

#[test]
fn opening_a_url_creates_the_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nested/deeper/sync.db");
    let url = format!("sqlite://{}", target.display());
    let db = Db::open_url(&url).unwrap();
    assert_eq!(db.location(), &DbLocation::File(target.clone()));
    assert!(target.is_file());

    // A folder that cannot be created: a clear error naming it.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Db::open(&DbLocation::File(blocker.join("sub/sync.db"))).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("sub"), "{err}");
}

// ---- links ----------------------------------------------------------------------------------

#[test]
fn a_second_active_link_for_the_same_item_is_refused() {
    let mut db = mem();
    let first = db.insert_link("p", 10, "cu-a", t(1)).unwrap();

    match db.insert_link("p", 10, "cu-b", t(2)) {
        Err(StoreError::DuplicateLink {
            existing,
            existing_clickup_id,
            ..
        }) => {
            assert_eq!(existing, first);
            assert_eq!(existing_clickup_id, "cu-a");
        }
        other => panic!("expected DuplicateLink for the ADO id, got {other:?}"),
    }
    match db.insert_link("p", 11, "cu-a", t(2)) {
        Err(e @ StoreError::DuplicateLink { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("ADO #11") && msg.contains("cu-a"), "{msg}");
        }
        other => panic!("expected DuplicateLink for the ClickUp id, got {other:?}"),
    }
    // The raw constraint holds too, whatever code path writes.
    let raw = db.conn().execute(
        "INSERT INTO links (pair, ado_id, clickup_id, state, created_at, updated_at) \
         VALUES ('p', 10, 'cu-z', 'active', 0, 0)",
        [],
    );
    assert!(raw.is_err());
    assert_eq!(db.count_active_links("p").unwrap(), 1);

    // Other pairs are independent.
    db.insert_link("q", 10, "cu-a", t(3)).unwrap();

    // After unlinking, the item may be linked again; the old link is kept.
    let old = db.unlink(first, "ClickUp task deleted", t(4)).unwrap();
    assert_eq!(old.state, LinkState::Unlinked);
    assert_eq!(old.unlink_reason.as_deref(), Some("ClickUp task deleted"));
    assert_eq!(old.updated_at, t(4));
    let again = db.insert_link("p", 10, "cu-c", t(5)).unwrap();
    assert_ne!(again, first);
    assert_eq!(db.link_by_ado("p", 10).unwrap().unwrap().id, again);
    assert_eq!(db.link_by_clickup("p", "cu-a").unwrap(), None);
    assert_eq!(db.link(first).unwrap().unwrap().state, LinkState::Unlinked);
    assert_eq!(db.links_in_pair("p", None).unwrap().len(), 2);
    assert_eq!(
        db.links_in_pair("p", Some(LinkState::Active))
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        vec![again]
    );
    // Unlinking twice is harmless; unlinking a missing link is an error.
    assert_eq!(
        db.unlink(first, "again", t(6))
            .unwrap()
            .unlink_reason
            .as_deref(),
        Some("ClickUp task deleted")
    );
    assert!(matches!(
        db.unlink(999, "x", t(6)),
        Err(StoreError::LinkNotFound(999))
    ));
}

#[test]
fn batch_lookups_return_only_the_asked_active_links() {
    let mut db = mem();
    let a = db.insert_link("p", 1, "a", t(1)).unwrap();
    let b = db.insert_link("p", 2, "b", t(1)).unwrap();
    let c = db.insert_link("p", 3, "c", t(1)).unwrap();
    db.insert_link("q", 1, "a", t(1)).unwrap();
    db.unlink(c, "gone", t(2)).unwrap();

    let by_ado: Vec<_> = db
        .links_by_ado("p", &[1, 3, 99])
        .unwrap()
        .into_iter()
        .map(|l| (l.id, l.ado_id, l.clickup_id))
        .collect();
    assert_eq!(by_ado, vec![(a, 1, "a".to_string())]);
    let by_cu: Vec<_> = db
        .links_by_clickup("p", &["b".to_string(), "c".to_string(), "zz".to_string()])
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(by_cu, vec![b]);
    let by_id: Vec<_> = db
        .links_by_ids(&[c, a, 12345])
        .unwrap()
        .into_iter()
        .map(|l| (l.id, l.state))
        .collect();
    assert_eq!(
        by_id,
        vec![(a, LinkState::Active), (c, LinkState::Unlinked)]
    );
    assert!(db.links_by_ado("p", &[]).unwrap().is_empty());
    assert_eq!(db.count_active_links("p").unwrap(), 2);
    assert_eq!(db.count_active_links("q").unwrap(), 1);
    assert_eq!(db.count_active_links("none").unwrap(), 0);
}

// ---- the create transaction -----------------------------------------------------------------

#[test]
fn record_link_with_snapshot_links_stores_the_base_and_closes_the_intent() {
    let mut db = mem();
    let planned = json!({"list_id": "L1", "fields": {"name": "item 7"}});
    let intent = db
        .create_intent("p", &ItemRef::Ado(7), &planned, t(100))
        .unwrap();
    let pending = db.pending_intents(None).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].source, ItemRef::Ado(7));
    assert_eq!(pending[0].target_side, Side::ClickUp);
    assert_eq!(pending[0].planned, planned);
    assert_eq!(pending[0].status, IntentStatus::Pending);

    let nl = new_link("p", 7, "cu-7");
    let link = db
        .record_link_with_snapshot(Some(intent), &nl, t(200))
        .unwrap();

    let l = db.link(link).unwrap().unwrap();
    assert_eq!(
        (l.ado_id, l.clickup_id.as_str(), l.state),
        (7, "cu-7", LinkState::Active)
    );
    let snap = db.snapshot(link).unwrap().unwrap();
    assert_eq!(snap.item, nl.base);
    assert_eq!(snap.ado_rev, 3);
    assert_eq!(snap.clickup_date_updated, 1_700_000_000_123);
    assert_eq!(snap.synced_at, t(200));
    let done = db.intent(intent).unwrap().unwrap();
    assert_eq!(done.status, IntentStatus::Done);
    assert_eq!(done.result_id.as_deref(), Some("cu-7"));
    assert_eq!(done.closed_at, Some(t(200)));
    assert!(db.pending_intents(Some("p")).unwrap().is_empty());

    // The same intent cannot close twice.
    match db.record_link_with_snapshot(Some(intent), &new_link("p", 7, "cu-8"), t(300)) {
        Err(StoreError::IntentNotPending { status, .. }) => assert_eq!(status, IntentStatus::Done),
        other => panic!("expected IntentNotPending, got {other:?}"),
    }
    // Without an intent (a link found by its marker during the sweep).
    let other = db
        .record_link_with_snapshot(None, &new_link("p", 8, "cu-8"), t(300))
        .unwrap();
    assert_eq!(db.snapshot(other).unwrap().unwrap().item.title, "item 8");
}

#[test]
fn record_link_with_snapshot_is_atomic() {
    let mut db = mem();
    let intent = db
        .create_intent(
            "p",
            &ItemRef::ClickUp("cu-1".into()),
            &json!({"t": 1}),
            t(1),
        )
        .unwrap();
    // Force the last step (closing the intent) to fail, after the link and snapshot rows were
    // written inside the transaction.
    db.conn()
        .execute_batch(
            "CREATE TEMP TRIGGER fail_close BEFORE UPDATE OF status ON intents \
             BEGIN SELECT RAISE(ABORT, 'forced failure'); END;",
        )
        .unwrap();
    let err = db
        .record_link_with_snapshot(Some(intent), &new_link("p", 1, "cu-1"), t(2))
        .unwrap_err();
    assert!(err.to_string().contains("forced failure"), "{err}");
    assert!(err.to_string().contains("intent"), "{err}");

    let links: i64 = db
        .conn()
        .query_row("SELECT count(*) FROM links", [], |r| r.get(0))
        .unwrap();
    let snaps: i64 = db
        .conn()
        .query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!((links, snaps), (0, 0));
    assert_eq!(
        db.intent(intent).unwrap().unwrap().status,
        IntentStatus::Pending
    );
    assert!(db.conn().is_autocommit(), "no transaction left open");

    // With the fault gone the same call succeeds.
    db.conn().execute_batch("DROP TRIGGER fail_close;").unwrap();
    let link = db
        .record_link_with_snapshot(Some(intent), &new_link("p", 1, "cu-1"), t(3))
        .unwrap();
    assert_eq!(
        db.intent(intent).unwrap().unwrap().result_id.as_deref(),
        Some("1")
    );
    assert!(db.snapshot(link).unwrap().is_some());
}

#[test]
fn a_refused_link_leaves_the_intent_pending() {
    let mut db = mem();
    db.insert_link("p", 1, "cu-1", t(1)).unwrap();
    let intent = db
        .create_intent("p", &ItemRef::ClickUp("cu-2".into()), &json!({}), t(2))
        .unwrap();
    // ADO #1 is already linked: the create's link is refused and nothing else changes.
    let err = db
        .record_link_with_snapshot(Some(intent), &new_link("p", 1, "cu-2"), t(3))
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateLink { .. }), "{err:?}");
    assert_eq!(
        db.intent(intent).unwrap().unwrap().status,
        IntentStatus::Pending
    );
    assert_eq!(db.link_by_clickup("p", "cu-2").unwrap(), None);

    // An intent for another item or pair is refused before anything is written.
    let err = db
        .record_link_with_snapshot(Some(intent), &new_link("p", 5, "cu-9"), t(3))
        .unwrap_err();
    assert!(matches!(err, StoreError::IntentMismatch { .. }), "{err:?}");
    let err = db
        .record_link_with_snapshot(Some(intent), &new_link("other", 5, "cu-2"), t(3))
        .unwrap_err();
    assert!(matches!(err, StoreError::IntentMismatch { .. }), "{err:?}");
    assert_eq!(db.count_active_links("p").unwrap(), 1);
    assert!(matches!(
        db.record_link_with_snapshot(Some(4242), &new_link("p", 5, "cu-5"), t(3)),
        Err(StoreError::IntentNotFound(4242))
    ));
}

#[test]
fn intents_one_pending_per_item_and_closing() {
    let mut db = mem();
    let src = ItemRef::Ado(5);
    let first = db.create_intent("p", &src, &json!({"v": 1}), t(1)).unwrap();
    match db.create_intent("p", &src, &json!({"v": 2}), t(2)) {
        Err(StoreError::IntentAlreadyPending { existing, .. }) => assert_eq!(existing, first),
        other => panic!("expected IntentAlreadyPending, got {other:?}"),
    }
    // Same id on the other side, or in another pair: different items.
    let cu = db
        .create_intent("p", &ItemRef::ClickUp("5".into()), &json!({}), t(3))
        .unwrap();
    db.create_intent("q", &src, &json!({}), t(3)).unwrap();
    assert_eq!(db.pending_intents(Some("p")).unwrap().len(), 2);
    assert_eq!(db.pending_intents(None).unwrap().len(), 3);

    db.mark_intent_abandoned(first, "ADO #5 was deleted", t(4))
        .unwrap();
    let it = db.intent(first).unwrap().unwrap();
    assert_eq!(it.status, IntentStatus::Abandoned);
    assert_eq!(it.note.as_deref(), Some("ADO #5 was deleted"));
    assert!(matches!(
        db.mark_intent_done(first, "x", t(5)),
        Err(StoreError::IntentNotPending { .. })
    ));
    // Once closed, the item may get a new intent.
    let second = db.create_intent("p", &src, &json!({"v": 3}), t(6)).unwrap();
    assert_ne!(second, first);
    db.mark_intent_done(cu, "4711", t(7)).unwrap();
    assert_eq!(
        db.intent(cu).unwrap().unwrap().result_id.as_deref(),
        Some("4711")
    );
    assert!(matches!(
        db.mark_intent_done(999, "x", t(7)),
        Err(StoreError::IntentNotFound(999))
    ));

    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Planned {
        v: i32,
    }
    let back: Planned = db.intent(second).unwrap().unwrap().planned_as().unwrap();
    assert_eq!(back, Planned { v: 3 });
}

// ---- cursors --------------------------------------------------------------------------------

#[test]
fn cursors_only_move_forward_and_advance_together() {
    let mut db = mem();
    assert_eq!(db.cursors("p").unwrap(), Cursors::default());
    let c = db
        .advance_cursors("p", &[(Side::Ado, 1_000), (Side::ClickUp, 2_000)], t(1))
        .unwrap();
    assert_eq!(
        c,
        Cursors {
            ado: Some(1_000),
            clickup: Some(2_000)
        }
    );

    // Backwards is ignored, forwards applies.
    let c = db
        .advance_cursors("p", &[(Side::Ado, 500), (Side::ClickUp, 3_000)], t(2))
        .unwrap();
    assert_eq!(
        c,
        Cursors {
            ado: Some(1_000),
            clickup: Some(3_000)
        }
    );
    assert_eq!(c.get(Side::ClickUp), Some(3_000));
    assert_eq!(db.cursors("other").unwrap(), Cursors::default());

    // A failure on the second cursor rolls back the first: old values stay.
    db.conn()
        .execute_batch(
            "CREATE TEMP TRIGGER fail_cu BEFORE UPDATE ON cursors WHEN NEW.side = 'clickup' \
             BEGIN SELECT RAISE(ABORT, 'crash mid-advance'); END;",
        )
        .unwrap();
    let err = db
        .advance_cursors("p", &[(Side::Ado, 9_000), (Side::ClickUp, 9_000)], t(3))
        .unwrap_err();
    assert!(err.to_string().contains("clickup cursor"), "{err}");
    assert_eq!(
        db.cursors("p").unwrap(),
        Cursors {
            ado: Some(1_000),
            clickup: Some(3_000)
        }
    );
    let all = db.all_cursors().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all["p"].ado, Some(1_000));
}

// ---- retries --------------------------------------------------------------------------------

#[test]
fn retries_back_off_exponentially_and_clear_on_success() {
    let mut db = mem();
    let policy = RetryPolicy {
        base: Duration::from_secs(30),
        max: Duration::from_secs(100),
    };
    let item = ItemRef::ClickUp("cu-1".into());
    let sec = 1_000;
    let r1 = db
        .record_failure("p", &item, "HTTP 500", t(0), &policy)
        .unwrap();
    assert_eq!((r1.attempts, r1.next_attempt_at), (1, t(30 * sec)));
    let r2 = db
        .record_failure("p", &item, "HTTP 502", t(30 * sec), &policy)
        .unwrap();
    assert_eq!((r2.attempts, r2.next_attempt_at), (2, t(90 * sec)));
    let r3 = db
        .record_failure("p", &item, "timeout", t(90 * sec), &policy)
        .unwrap();
    // 120 s capped at 100 s.
    assert_eq!((r3.attempts, r3.next_attempt_at), (3, t(190 * sec)));
    assert_eq!(r3.first_failed_at, t(0));
    assert_eq!(r3.last_failed_at, t(90 * sec));
    assert_eq!(r3.last_error, "timeout");

    let other = ItemRef::Ado(9);
    db.record_failure("p", &other, "HTTP 429", t(100 * sec), &policy)
        .unwrap(); // due at 130 s
    db.record_failure("q", &other, "x", t(0), &policy).unwrap();

    assert!(db.due_retries("p", t(129 * sec)).unwrap().is_empty());
    let due: Vec<_> = db
        .due_retries("p", t(130 * sec))
        .unwrap()
        .into_iter()
        .map(|r| r.item)
        .collect();
    assert_eq!(due, vec![other.clone()]);
    let due: Vec<_> = db
        .due_retries("p", t(500 * sec))
        .unwrap()
        .into_iter()
        .map(|r| r.item)
        .collect();
    assert_eq!(due, vec![other.clone(), item.clone()]);
    assert_eq!(db.retries(None).unwrap().len(), 3);

    assert!(db.clear_retry("p", &item).unwrap());
    assert!(!db.clear_retry("p", &item).unwrap());
    assert_eq!(db.retry("p", &item).unwrap(), None);
    let fresh = db
        .record_failure("p", &item, "again", t(1_000 * sec), &policy)
        .unwrap();
    assert_eq!((fresh.attempts, fresh.first_failed_at), (1, t(1_000 * sec)));

    // Long error texts are cut, at a character boundary.
    let long = "é".repeat(5_000);
    let r = db
        .record_failure("p", &other, &long, t(0), &policy)
        .unwrap();
    assert!(r.last_error.len() <= 4_000 && r.last_error.chars().all(|c| c == 'é'));
}

// ---- conflicts ------------------------------------------------------------------------------

#[test]
fn conflicts_upsert_resolve_and_apply() {
    let mut db = mem();
    let link = db.insert_link("p", 1, "a", t(0)).unwrap();
    let other = db.insert_link("p", 2, "b", t(0)).unwrap();
    let v1 = ConflictValues {
        base: json!("Old"),
        ado: json!("ADO title"),
        clickup: json!("ClickUp title"),
    };
    let id = db.upsert_conflict(link, Field::Title, &v1, t(10)).unwrap();
    let v2 = ConflictValues {
        clickup: json!("ClickUp title, edited again"),
        ..v1.clone()
    };
    // Re-detected: same row, new values, first detection time kept.
    assert_eq!(
        db.upsert_conflict(link, Field::Title, &v2, t(20)).unwrap(),
        id
    );
    let c = db.conflict(id).unwrap().unwrap();
    assert_eq!(c.values, v2);
    assert_eq!((c.detected_at, c.updated_at), (t(10), t(20)));
    assert_eq!(
        (c.pair.as_str(), c.ado_id, c.clickup_id.as_str()),
        ("p", 1, "a")
    );
    assert_eq!(c.field, Field::Title);

    let due = db.upsert_conflict(link, Field::Due, &v1, t(30)).unwrap();
    assert_ne!(due, id);
    db.upsert_conflict(other, Field::Tags, &v1, t(40)).unwrap();
    assert_eq!(db.open_conflicts(None).unwrap().len(), 3);
    assert_eq!(db.open_conflicts(Some("nope")).unwrap().len(), 0);
    let for_link: Vec<_> = db
        .open_conflicts_for_links(&[link])
        .unwrap()
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(for_link, vec![Field::Title, Field::Due]);

    let resolved = db
        .resolve_conflict(id, Resolution::take(Side::ClickUp), t(50))
        .unwrap();
    assert_eq!(resolved.resolution, Some(Resolution::TakeClickUp));
    assert_eq!(
        (resolved.resolved_at, resolved.applied_at),
        (Some(t(50)), None)
    );
    match db.resolve_conflict(id, Resolution::TakeAdo, t(51)) {
        Err(StoreError::ConflictAlreadyResolved { resolution, .. }) => {
            assert_eq!(resolution, Resolution::TakeClickUp)
        }
        other => panic!("expected ConflictAlreadyResolved, got {other:?}"),
    }
    assert!(matches!(
        db.resolve_conflict(999, Resolution::TakeAdo, t(51)),
        Err(StoreError::ConflictNotFound(999))
    ));
    let todo: Vec<_> = db
        .unapplied_resolutions()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(todo, vec![id]);
    assert!(matches!(
        db.mark_conflict_applied(due, t(52)),
        Err(StoreError::ConflictStillOpen(_))
    ));
    db.mark_conflict_applied(id, t(60)).unwrap();
    db.mark_conflict_applied(id, t(70)).unwrap();
    assert_eq!(db.conflict(id).unwrap().unwrap().applied_at, Some(t(60)));
    assert!(db.unapplied_resolutions().unwrap().is_empty());

    // Resolved: a new detection on the same field opens a new conflict.
    let again = db.upsert_conflict(link, Field::Title, &v1, t(80)).unwrap();
    assert_ne!(again, id);
    // Converged needs no write: applied at once.
    let conv = db
        .resolve_conflict(again, Resolution::Converged, t(90))
        .unwrap();
    assert_eq!(conv.applied_at, Some(t(90)));

    // Unlinking closes the link's open conflicts.
    db.unlink(link, "ADO item deleted", t(100)).unwrap();
    let d = db.conflict(due).unwrap().unwrap();
    assert_eq!(d.resolution, Some(Resolution::Unlinked));
    assert_eq!(db.open_conflicts(None).unwrap().len(), 1);

    assert!(matches!(
        db.upsert_conflict(12345, Field::Title, &v1, t(0)),
        Err(StoreError::LinkNotFound(12345))
    ));
}

// ---- audit and cycles -------------------------------------------------------------------------

#[test]
fn audit_appends_and_lists_newest_first() {
    let mut db = mem();
    let link = db.insert_link("p", 1, "a", t(0)).unwrap();
    let cycle = db
        .start_cycle(CycleKind::Incremental, Some("p"), t(0))
        .unwrap();
    let entry = |n: i64, action: AuditAction, outcome: AuditOutcome| AuditEntry {
        at: t(n),
        cycle_id: Some(cycle),
        pair: Some("p".into()),
        link_id: Some(link),
        side: Some(Side::ClickUp),
        item_id: Some("a".into()),
        action,
        fields: vec![Field::Title, Field::Status],
        before: Some(json!({"title": format!("t{n}")})),
        after: Some(json!({"title": format!("t{}", n + 1)})),
        outcome,
        detail: None,
    };
    let e1 = entry(1, AuditAction::Update, AuditOutcome::Ok);
    let e2 = entry(2, AuditAction::Update, AuditOutcome::Failed);
    let e3 = AuditEntry {
        link_id: None,
        before: None,
        after: None,
        fields: vec![],
        detail: Some("HTTP 500".into()),
        ..entry(3, AuditAction::Create, AuditOutcome::Failed)
    };
    let ids: Vec<_> = [&e1, &e2, &e3]
        .into_iter()
        .map(|e| db.append_audit(e).unwrap())
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);

    let recent = db.recent_audit(2).unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!((recent[0].id, &recent[0].entry), (ids[2], &e3));
    assert_eq!((recent[1].id, &recent[1].entry), (ids[1], &e2));
    let for_link: Vec<_> = db
        .audit_for_link(link, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.entry)
        .collect();
    assert_eq!(for_link, vec![e2, e1]);
    assert_eq!(db.prune_audit(t(3)).unwrap(), 2);
    assert_eq!(db.recent_audit(10).unwrap().len(), 1);
}

#[test]
fn cycles_record_counts_and_the_last_success() {
    let mut db = mem();
    assert_eq!(db.last_successful_cycle(None).unwrap(), None);
    let c1 = db.start_cycle(CycleKind::Sweep, None, t(0)).unwrap();
    let counts = CycleCounts {
        reads: 10,
        writes: 4,
        conflicts: 1,
        errors: 0,
        api_requests: 17,
    };
    db.finish_cycle(c1, &counts, None, t(5)).unwrap();
    let c2 = db
        .start_cycle(CycleKind::Incremental, Some("p"), t(10))
        .unwrap();
    db.finish_cycle(
        c2,
        &CycleCounts {
            errors: 1,
            ..Default::default()
        },
        Some("ADO unreachable"),
        t(12),
    )
    .unwrap();
    let c3 = db.start_cycle(CycleKind::Incremental, None, t(20)).unwrap(); // interrupted

    let last = db.last_cycles(10).unwrap();
    assert_eq!(
        last.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c3, c2, c1]
    );
    assert_eq!(last[2].counts, counts);
    assert_eq!(last[2].ended_at, Some(t(5)));
    assert!(last[2].succeeded() && !last[1].succeeded() && !last[0].succeeded());
    assert_eq!(last[1].error.as_deref(), Some("ADO unreachable"));
    assert_eq!(last[1].pair.as_deref(), Some("p"));
    assert_eq!(db.last_cycles(1).unwrap()[0].id, c3);
    assert_eq!(db.last_successful_cycle(None).unwrap().unwrap().id, c1);
    assert_eq!(
        db.last_successful_cycle(Some(CycleKind::Sweep))
            .unwrap()
            .unwrap()
            .id,
        c1
    );
    assert_eq!(
        db.last_successful_cycle(Some(CycleKind::Incremental))
            .unwrap(),
        None
    );

    // The next cycle of the same pair closes the one a dead process left open.
    let c4 = db.start_cycle(CycleKind::Incremental, None, t(40)).unwrap();
    let c3 = db.cycle(c3).unwrap().unwrap();
    assert_eq!(c3.ended_at, Some(t(40)));
    assert!(
        c3.error.as_deref().unwrap().starts_with("interrupted"),
        "{c3:?}"
    );
    assert_eq!(db.cycle(c4).unwrap().unwrap().ended_at, None);
    assert_eq!(db.cycle(c2).unwrap().unwrap().ended_at, Some(t(12)));

    assert!(matches!(
        db.finish_cycle(c1, &counts, None, t(30)),
        Err(StoreError::CycleAlreadyFinished(id)) if id == c1
    ));
    assert!(matches!(
        db.finish_cycle(999, &counts, None, t(30)),
        Err(StoreError::CycleNotFound(999))
    ));
}

// ---- status and persistence -------------------------------------------------------------------

fn populate(db: &mut Db) -> (i64, i64) {
    let l1 = db
        .record_link_with_snapshot(None, &new_link("alpha", 1, "a1"), t(1))
        .unwrap();
    let l2 = db
        .record_link_with_snapshot(None, &new_link("alpha", 2, "a2"), t(1))
        .unwrap();
    db.record_link_with_snapshot(None, &new_link("beta", 1, "b1"), t(1))
        .unwrap();
    db.unlink(l2, "moved out of scope", t(2)).unwrap();
    db.create_intent("alpha", &ItemRef::Ado(3), &json!({}), t(3))
        .unwrap();
    let policy = RetryPolicy::default();
    db.record_failure("alpha", &ItemRef::Ado(4), "500", t(0), &policy)
        .unwrap(); // due at 30 s
    db.record_failure(
        "beta",
        &ItemRef::ClickUp("b9".into()),
        "500",
        t(60_000),
        &policy,
    )
    .unwrap(); // due at 90 s
    let conflict = db
        .upsert_conflict(
            l1,
            Field::Status,
            &ConflictValues {
                base: json!("a"),
                ado: json!("b"),
                clickup: json!("c"),
            },
            t(4),
        )
        .unwrap();
    db.advance_cursors("alpha", &[(Side::Ado, 111), (Side::ClickUp, 222)], t(5))
        .unwrap();
    let c = db.start_cycle(CycleKind::Incremental, None, t(6)).unwrap();
    db.finish_cycle(
        c,
        &CycleCounts {
            reads: 3,
            ..Default::default()
        },
        None,
        t(7),
    )
    .unwrap();
    (l1, conflict)
}

fn check_status(db: &mut Db) {
    let s = db.status(t(45_000), 5).unwrap();
    assert_eq!(s.schema_version, latest_schema_version().unwrap());
    let names: Vec<_> = s.pairs.iter().map(|p| p.pair.as_str()).collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    let alpha = &s.pairs[0];
    assert_eq!(
        (
            alpha.links_active,
            alpha.links_unlinked,
            alpha.pending_intents
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (alpha.retries, alpha.due_retries, alpha.open_conflicts),
        (1, 1, 1)
    );
    assert_eq!(
        alpha.cursors,
        Cursors {
            ado: Some(111),
            clickup: Some(222)
        }
    );
    let beta = &s.pairs[1];
    assert_eq!(
        (beta.links_active, beta.retries, beta.due_retries),
        (1, 1, 0)
    );
    assert_eq!(beta.cursors, Cursors::default());
    assert_eq!(s.last_cycles.len(), 1);
    assert_eq!(s.last_successful.as_ref().unwrap().counts.reads, 3);
    assert_eq!(s.unapplied_resolutions, 0);
    // The summary serializes for `status --json`.
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["pairs"][0]["links_active"], 1);
}

#[test]
fn status_summarizes_every_pair() {
    let mut db = mem();
    populate(&mut db);
    check_status(&mut db);
}

#[test]
fn a_file_database_survives_reopen_with_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let loc = DbLocation::File(dir.path().join("data/sync.db"));
    let (l1, conflict) = {
        let mut db = Db::open(&loc).unwrap();
        populate(&mut db)
    };
    let mut db = Db::open(&loc).unwrap();
    check_status(&mut db);
    let snap = db.snapshot(l1).unwrap().unwrap();
    assert_eq!(snap.item, item("item 1"));
    assert_eq!(
        db.conflict(conflict).unwrap().unwrap().values.clickup,
        json!("c")
    );
    assert_eq!(db.pending_intents(None).unwrap()[0].source, ItemRef::Ado(3));
}

// ---- failpoints (feature `failpoints`) --------------------------------------------------------

// Failpoints are process-global: each test aims its failpoint at its own pair with
// `return(PAIR)`, so tests running in parallel on other pairs are not affected.
#[cfg(feature = "failpoints")]
#[test]
fn failpoint_before_commit_rolls_back_the_link_and_keeps_the_intent() {
    let pair = "fp-record";
    let mut db = mem();
    let intent = db
        .create_intent(pair, &ItemRef::Ado(1), &json!({}), t(0))
        .unwrap();
    fail::cfg(
        "store::record_link::before_commit",
        &format!("return({pair})"),
    )
    .unwrap();
    let res = db.record_link_with_snapshot(Some(intent), &new_link(pair, 1, "cu-1"), t(1));
    fail::remove("store::record_link::before_commit");
    assert!(matches!(res, Err(StoreError::Injected(_))), "{res:?}");
    assert_eq!(db.link_by_ado(pair, 1).unwrap(), None);
    assert_eq!(
        db.intent(intent).unwrap().unwrap().status,
        IntentStatus::Pending
    );
    db.record_link_with_snapshot(Some(intent), &new_link(pair, 1, "cu-1"), t(2))
        .unwrap();
}

#[cfg(feature = "failpoints")]
#[test]
fn failpoint_mid_cursor_advance_leaves_the_old_cursors() {
    let pair = "fp-cursor";
    let mut db = mem();
    db.advance_cursors(pair, &[(Side::Ado, 10), (Side::ClickUp, 20)], t(0))
        .unwrap();
    fail::cfg("store::advance_cursors::mid", &format!("return({pair})")).unwrap();
    let res = db.advance_cursors(pair, &[(Side::Ado, 30), (Side::ClickUp, 40)], t(1));
    fail::remove("store::advance_cursors::mid");
    assert!(matches!(res, Err(StoreError::Injected(_))), "{res:?}");
    assert_eq!(
        db.cursors(pair).unwrap(),
        Cursors {
            ado: Some(10),
            clickup: Some(20)
        }
    );
}

// ---- the async facade -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_store_serializes_calls_and_survives_a_panicking_closure() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("s.db").display());
    let store = Store::open_url(&url).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..50i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.call(move |db| db.insert_link("p", i, &format!("cu{i}"), t(i)))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        store.call(|db| db.count_active_links("p")).await.unwrap(),
        50
    );

    // A panic inside a transaction: rolled back, resumed in the caller, store still usable.
    let s = store.clone();
    let panicked = tokio::spawn(async move {
        s.call::<(), _>(|db| {
            db.atomic(|db| {
                db.insert_link("p", 1000, "cu1000", t(0))?;
                panic!("bug in a closure");
            })
        })
        .await
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    let after = store
        .call(|db| Ok((db.link_by_ado("p", 1000)?, db.conn().is_autocommit())))
        .await
        .unwrap();
    assert_eq!(after, (None, true));

    // Errors come back typed.
    let err = store
        .call(|db| db.insert_link("p", 1, "other", t(0)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateLink { .. }));

    // Nested atomic: the inner failure rolls back only the inner part.
    let ids = store
        .call(|db| {
            db.atomic(|db| {
                db.insert_link("n", 1, "x1", t(0))?;
                let inner = db.atomic(|db| {
                    db.insert_link("n", 2, "x2", t(0))?;
                    db.insert_link("n", 1, "dup", t(0))
                });
                assert!(inner.is_err());
                Ok(db.links_in_pair("n", None)?.len())
            })
        })
        .await
        .unwrap();
    assert_eq!(ids, 1);

    let blocking = store.clone();
    let n = tokio::task::spawn_blocking(move || {
        blocking.call_blocking(|db| db.count_active_links("n"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, 1);
}

// ---- scale: batch lookups search an index ------------------------------------------------------

#[test]
fn batch_lookups_among_100k_links_use_indexes() {
    let mut db = mem();
    db.conn()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
             INSERT INTO links (pair, ado_id, clickup_id, state, created_at, updated_at)
             SELECT CASE WHEN i % 10 = 0 THEN 'other' ELSE 'main' END, i, 'cu' || i,
                    'active', 0, 0 FROM n;",
        )
        .unwrap();
    let base = serde_json::to_string(&item("base")).unwrap();
    db.conn()
        .execute(
            "INSERT INTO snapshots (link_id, item_json, ado_rev, clickup_date_updated, synced_at)
             SELECT id, ?1, 1, 0, 0 FROM links",
            [base],
        )
        .unwrap();
    // Some rows in the other cycle tables, so the plans are not about empty tables.
    let values = ConflictValues {
        base: json!(1),
        ado: json!(2),
        clickup: json!(3),
    };
    for i in 1..=200 {
        db.upsert_conflict(i * 50, Field::Title, &values, t(0))
            .unwrap();
        db.record_failure("main", &ItemRef::Ado(i), "x", t(0), &RetryPolicy::default())
            .unwrap();
        db.create_intent("main", &ItemRef::Ado(200_000 + i), &json!({}), t(0))
            .unwrap();
    }

    let ado_ids: Vec<i64> = (1..=1000).map(|i| i * 97).collect();
    let cu_ids: Vec<String> = ado_ids.iter().map(|i| format!("cu{i}")).collect();
    let link_ids: Vec<i64> = (1..=1000).map(|i| i * 89).collect();
    let ado_json = serde_json::to_string(&ado_ids).unwrap();
    let cu_json = serde_json::to_string(&cu_ids).unwrap();
    let link_json = serde_json::to_string(&link_ids).unwrap();
    let main: &dyn rusqlite::ToSql = &"main";
    let now: &dyn rusqlite::ToSql = &1_000_000i64;
    let none: &dyn rusqlite::ToSql = &Option::<String>::None;

    // (query, its arguments, a line the plan must contain)
    let checks: [(&str, Vec<&dyn rusqlite::ToSql>, &str); 8] = [
        (
            queries::LINKS_BY_ADO,
            vec![main, &ado_json],
            "SEARCH links USING INDEX links_active_ado (pair=? AND ado_id=?)",
        ),
        (
            queries::LINKS_BY_CLICKUP,
            vec![main, &cu_json],
            "SEARCH links USING INDEX links_active_clickup (pair=? AND clickup_id=?)",
        ),
        (
            queries::LINKS_BY_IDS,
            vec![&link_json],
            "SEARCH links USING INTEGER PRIMARY KEY (rowid=?)",
        ),
        (
            queries::SNAPSHOTS,
            vec![&link_json],
            "SEARCH snapshots USING INTEGER PRIMARY KEY (rowid=?)",
        ),
        (
            queries::OPEN_CONFLICTS_FOR_LINKS,
            vec![&link_json],
            "SEARCH c USING INDEX conflicts_",
        ),
        (
            queries::DUE_RETRIES,
            vec![main, now],
            "SEARCH retries USING INDEX retries_due (pair=? AND next_attempt_at<?)",
        ),
        (
            queries::COUNT_ACTIVE_LINKS,
            vec![main],
            "SEARCH links USING COVERING INDEX links_active_ado (pair=?)",
        ),
        // Scans only the partial index of pending intents, never the whole table.
        (
            queries::PENDING_INTENTS,
            vec![none],
            "SCAN intents USING INDEX intents_pending",
        ),
    ];
    for (sql, args, want) in &checks {
        let p = plan(&db, sql, args);
        let text = p.join("\n");
        assert!(
            p.iter().any(|l| l.starts_with(want)),
            "expected {want:?} in the plan of\n{sql}\n{text}"
        );
        for table in ["links", "snapshots", "conflicts", "retries", "c ", "l "] {
            assert!(
                !p.iter()
                    .any(|l| l.starts_with(&format!("SCAN {table}")) && !l.contains("USING INDEX")),
                "full scan of {table} in the plan of\n{sql}\n{text}"
            );
        }
        assert!(
            !p.iter().any(|l| l == "SCAN intents"),
            "full scan of intents in\n{sql}\n{text}"
        );
    }

    // The lookups return exactly the asked links of the pair.
    let found = db.links_by_ado("main", &ado_ids).unwrap();
    let expected: Vec<i64> = ado_ids.iter().copied().filter(|i| i % 10 != 0).collect();
    assert_eq!(found.iter().map(|l| l.ado_id).collect::<Vec<_>>(), expected);
    assert!(found
        .iter()
        .all(|l| l.clickup_id == format!("cu{}", l.ado_id)));
    assert_eq!(
        db.links_by_clickup("main", &cu_ids).unwrap().len(),
        expected.len()
    );
    assert_eq!(db.links_by_ids(&link_ids).unwrap().len(), 1000);
    let found_ids: Vec<i64> = found.iter().map(|l| l.id).collect();
    assert_eq!(db.snapshots(&found_ids).unwrap().len(), found_ids.len());
    assert_eq!(
        db.open_conflicts_for_links(&[50, 100, 51]).unwrap().len(),
        2
    );
    assert_eq!(db.count_active_links("main").unwrap(), 90_000);
    assert_eq!(db.due_retries("main", t(1_000_000)).unwrap().len(), 200);
    assert_eq!(db.pending_intents(Some("main")).unwrap().len(), 200);
}
