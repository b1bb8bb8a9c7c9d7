//! The benchmark harness at `--quick` sizes, through the library: every figure runs, so the
//! harness cannot rot, and the request counts (deterministic, unlike times) are exact. No
//! timing is asserted here.
mod engine_support;

use std::collections::BTreeMap;
use std::time::Duration;

use ado_clickup_sync::bench::{self, change_floor, Sizes};
use ado_clickup_sync::core::model::Side;
use ado_clickup_sync::engine::EngineOptions;
use engine_support::{Harness, Setup};
use serde_json::json;

fn kinds(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn the_floor_follows_the_apis_limits() {
    // 1,000 + 1,000 edits: 10 pages of 100 tasks, 10 batch reads of 200 items, one WIQL.
    assert_eq!(
        change_floor(1_000, 200, 1_000),
        kinds(&[
            ("WIQL", 1),
            ("ClickUp page", 10),
            ("ADO batch read", 10),
            ("ClickUp GET task", 1_000),
            ("ADO write (PATCH/POST)", 1_000),
            ("ClickUp write (PUT)", 1_000),
            ("ClickUp tag", 200),
        ])
    );
    // Nothing changed: still one WIQL and one page (how a change would be found).
    assert_eq!(change_floor(0, 0, 0).values().sum::<u64>(), 2);
    assert_eq!(change_floor(20_000, 0, 101)["WIQL"], 2);
    assert_eq!(change_floor(20_000, 0, 101)["ClickUp page"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_bench_runs_every_figure_with_exact_request_counts() {
    let sizes = Sizes::quick();
    let report = bench::run(&sizes, &|m| eprintln!("[bench] {m}"))
        .await
        .expect("the quick bench runs");

    // Every figure produced rows, and the outputs render.
    for fig in 1..=7u8 {
        assert!(
            report.rows.iter().any(|r| r.figure == fig),
            "figure {fig} has no row:\n{}",
            report.markdown()
        );
    }
    let md = report.markdown();
    assert!(
        md.contains("| Fig. | Metric | Median | Min | Max |"),
        "{md}"
    );
    let dir = std::env::temp_dir().join(format!(
        "ado-clickup-sync-bench-test-{}",
        std::process::id()
    ));
    let (md_path, json_path) = report.write(&dir).expect("the report is written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert!(json["rows"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(std::fs::read_to_string(&md_path)
        .unwrap()
        .contains("Figure 2"));
    let _ = std::fs::remove_dir_all(&dir);

    // Figure 1: an idle cycle is 1 WIQL + 1 ClickUp page per pair, at every link count.
    assert_eq!(
        report.idle.iter().map(|r| r.links).collect::<Vec<_>>(),
        sizes.idle_links
    );
    for r in &report.idle {
        assert_eq!(r.runs.len(), sizes.idle_cycles);
        for run in &r.runs {
            assert_eq!(
                (run.requests, run.wiql, run.pages),
                (2, 1, 1),
                "{} links: {:?}",
                r.links,
                run.endpoints
            );
        }
    }
    let fig1 = report
        .rows
        .iter()
        .filter(|r| r.figure == 1 && r.met.is_some());
    assert!(fig1.clone().all(|r| r.met == Some(true)));

    // Figure 2: 5 ADO edits (1 adds a tag) and 5 ClickUp edits, one cycle, counted by kind:
    // the 5 counterpart tasks are read, then read again just before each write, and once
    // more after the tag call; one page holds the 5 edited tasks and the sentinel.
    let c = report.changes.as_ref().expect("figure 2 ran");
    assert_eq!((c.ado_edits, c.tag_edits, c.clickup_edits), (5, 1, 5));
    assert_eq!(c.floor, change_floor(5, 1, 5));
    let expected = kinds(&[
        ("WIQL", 1),
        ("ADO batch read", 1),
        ("ClickUp page", 1),
        ("ClickUp GET task", 11),
        ("ADO write (PATCH/POST)", 5),
        ("ClickUp write (PUT)", 5),
        ("ClickUp tag", 1),
    ]);
    assert_eq!(c.runs.len(), sizes.change_runs);
    for run in &c.runs {
        assert_eq!(run.by_kind, expected);
        assert_eq!(run.total, 25);
        assert_eq!((run.updated_ado, run.updated_clickup), (5, 5));
    }
    assert_eq!(c.floor.values().sum::<u64>(), 19);

    // The other figures measured what they say (counts only).
    assert_eq!(report.initial.len(), 2 * sizes.initial_runs);
    assert!(report
        .initial
        .iter()
        .all(|r| r.items == sizes.initial_items));
    assert_eq!(report.rate.len(), sizes.rl_runs);
    assert!(report
        .rate
        .iter()
        .all(|r| r.creates == sizes.rl_creates && r.accepted > 0));
    assert_eq!(report.latency.len(), 2 * sizes.latency_runs);
    assert!(report
        .latency
        .iter()
        .all(|r| r.samples.len() == sizes.latency_edits));
    assert_eq!(report.cost_changes.len(), sizes.cost_runs);
    assert!(!report.convert.is_empty());
}

/// Found by the bench (figure 1, "right after an initial sync"): the ClickUp cursor is the
/// newest `date_updated` seen and every poll re-reads `(cursor - overlap, now]`, so after a
/// burst of more than 100 task updates within the overlap (an initial sync, a bulk edit, our
/// own bulk writes) every idle poll reads the whole burst again, page after page, until some
/// later edit moves the cursor: the window never ages out. With the default 5 min overlap a
/// 10,000-task initial sync costs 100 pages per idle cycle.
#[tokio::test]
async fn idle_cycles_return_to_two_requests_after_a_burst_of_creates() {
    let h = Harness::with(Setup {
        engine: EngineOptions {
            overlap: Duration::from_secs(1),
            max_creates: 1_000,
            ..EngineOptions::default()
        },
        ..Setup::default()
    })
    .await;
    for i in 0..150 {
        h.ado_create(&format!("Story {i}"), json!({}));
    }
    h.converge(5).await;
    // Well past the overlap (and past the simulators' change stamps, which a burst runs a
    // little ahead of their clocks): nothing has changed since.
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.cycle().await;
    for _ in 0..3 {
        let before = h.stats.snapshot();
        let r = h.cycle().await;
        let pages: u64 = h
            .stats
            .snapshot()
            .iter()
            .filter(|(k, _)| k.side == Side::ClickUp && k.endpoint == "team.tasks")
            .map(|(k, n)| {
                n - before
                    .iter()
                    .find(|(b, _)| b == k)
                    .map(|(_, m)| *m)
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(
            (r.api_requests, pages),
            (2, 1),
            "an idle cycle 4 s after the last change re-reads the burst"
        );
    }
}
