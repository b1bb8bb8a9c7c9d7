//! Crash safety: the real binary killed at every failpoint, and with SIGKILL at random moments
//! of an initial sync, then restarted: never a duplicate, nothing lost.
//!
//! Needs the `failpoints` feature (`cargo test --features failpoints`, the README's test
//! command); without it the failpoints are compiled out and these tests only say so.
mod proc_support;

#[cfg(not(feature = "failpoints"))]
#[test]
fn crash_tests_need_the_failpoints_feature() {
    eprintln!("NOTICE: crash tests skipped: build with --features failpoints to run them");
}

#[cfg(feature = "failpoints")]
mod with_failpoints {
    use std::collections::BTreeMap;
    use std::process::{Output, Stdio};
    use std::time::{Duration, Instant};

    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};

    use super::proc_support::{ConfigOpts, Setup, SimProc};

    fn sync_once(sim: &SimProc, setup: &Setup, failpoint: Option<&str>) -> Output {
        let mut c = setup.command(sim, &["sync", "--once"]);
        if let Some(f) = failpoint {
            c.env("FAILPOINTS", f);
        }
        c.stdin(Stdio::null()).output().expect("sync runs")
    }

    /// Titles → how many items carry them, per side.
    async fn census(sim: &SimProc) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let mut a = BTreeMap::new();
        for w in sim.ado_items().await {
            let t = w["fields"]["System.Title"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            *a.entry(t).or_insert(0) += 1;
        }
        let mut c = BTreeMap::new();
        for t in sim.tasks().await {
            let n = t["name"].as_str().unwrap_or_default().to_string();
            *c.entry(n).or_insert(0) += 1;
        }
        (a, c)
    }

    /// Both sides hold exactly `titles`, each once, all linked, nothing pending.
    /// A person renames the ADO item (or ClickUp task) titled `old` to `new`.
    async fn retitle(sim: &SimProc, in_ado: bool, old: &str, new: &str) {
        if in_ado {
            let items = sim.ado_items().await;
            let w = items
                .iter()
                .find(|w| w["fields"]["System.Title"] == json!(old));
            let id = w.and_then(|w| w["id"].as_i64()).unwrap();
            sim.ado_edit(id, json!({"System.Title": new})).await;
        } else {
            let tasks = sim.tasks().await;
            let t = tasks.iter().find(|t| t["name"] == json!(old));
            let id = t.and_then(|t| t["id"].as_str()).unwrap().to_string();
            sim.cu_edit(&id, json!({"name": new})).await;
        }
    }

    async fn assert_one_each(sim: &SimProc, setup: &Setup, titles: &[String], ctx: &str) {
        let (a, c) = census(sim).await;
        for t in titles {
            assert_eq!(
                a.get(t),
                Some(&1),
                "{ctx}: ADO holds {t:?} {:?} times",
                a.get(t)
            );
            assert_eq!(
                c.get(t),
                Some(&1),
                "{ctx}: ClickUp holds {t:?} {:?} times",
                c.get(t)
            );
        }
        assert_eq!(
            a.values().sum::<usize>(),
            titles.len(),
            "{ctx}: extra ADO items {a:?}"
        );
        assert_eq!(
            c.values().sum::<usize>(),
            titles.len(),
            "{ctx}: extra ClickUp tasks {c:?}"
        );
        let db = setup.db();
        assert_eq!(
            db.count_active_links("team").unwrap() as usize,
            titles.len(),
            "{ctx}"
        );
        assert!(db.pending_intents(None).unwrap().is_empty(), "{ctx}");
    }

    async fn seed(sim: &SimProc, ado: &[String], clickup: &[String]) {
        sim.reset().await;
        let items: Vec<Value> = ado
            .iter()
            .map(|t| json!({"type": "User Story", "fields": {"System.Title": t}}))
            .collect();
        sim.post(true, "/__sim/seed", json!({ "work_items": items }))
            .await;
        let tasks: Vec<Value> = clickup
            .iter()
            .map(|t| json!({"list_id": "901100", "name": t}))
            .collect();
        sim.post(false, "/__sim/seed", json!({ "tasks": tasks }))
            .await;
    }

    const FAILPOINTS: [&str; 7] = [
        "engine::before_create",
        "engine::after_intent",
        "engine::after_remote_create",
        "engine::after_link_recorded",
        "engine::after_base_stored",
        "store::record_link::before_commit",
        "store::advance_cursors::mid",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_at_every_failpoint_leaves_exactly_one_counterpart() {
        let sim = SimProc::start(0, 0);
        for fp in FAILPOINTS {
            for from_ado in [true, false] {
                let ctx = format!(
                    "{fp}, creating {}",
                    if from_ado { "from ADO" } else { "from ClickUp" }
                );
                let titles: Vec<String> = (0..3).map(|i| format!("{fp} item {i}")).collect();
                // The mid-advance point sits between the two cursors: both sides need one.
                let other: Vec<String> = if fp == "store::advance_cursors::mid" {
                    vec![format!("{fp} other side")]
                } else {
                    vec![]
                };
                if from_ado {
                    seed(&sim, &titles, &other).await;
                } else {
                    seed(&sim, &other, &titles).await;
                }
                let titles: Vec<String> = titles.into_iter().chain(other).collect();
                let setup = Setup::new(&sim, ConfigOpts::default());
                let out = sync_once(&sim, &setup, Some(&format!("{fp}=return(abort)")));
                assert!(
                    !out.status.success(),
                    "{ctx}: the failpoint did not fire: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
                // Before the restart, someone edits every source item: the creates in flight
                // at the crash must not swallow these edits.
                let mut titles = titles;
                for t in titles.iter_mut().filter(|t| !t.ends_with("other side")) {
                    let new = format!("{t} (edited during the outage)");
                    retitle(&sim, from_ado, t, &new).await;
                    *t = new;
                }
                // Restart and run to quiescence.
                for _ in 0..3 {
                    let out = sync_once(&sim, &setup, None);
                    assert!(
                        out.status.success(),
                        "{ctx}: {}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
                assert_one_each(&sim, &setup, &titles, &ctx).await;
                // Nothing lost afterwards either: an edit to the source still propagates.
                let edited = format!("{fp} edited");
                retitle(&sim, from_ado, &titles[0], &edited).await;
                sync_once(&sim, &setup, None);
                let (a, c) = census(&sim).await;
                assert_eq!(
                    (a.get(&edited), c.get(&edited)),
                    (Some(&1), Some(&1)),
                    "{ctx}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigkill_at_random_moments_of_an_initial_sync_never_duplicates() {
        let runs: usize = std::env::var("CRASH_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(50);
        let seed_value: u64 = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4242);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
        let sim = SimProc::start(0, 0);
        let ado: Vec<String> = (0..100).map(|i| format!("ADO story {i}")).collect();
        let clickup: Vec<String> = (0..100).map(|i| format!("ClickUp task {i}")).collect();

        // How long an uninterrupted initial sync of the 200 items takes: kills land within it.
        seed(&sim, &ado, &clickup).await;
        let setup = Setup::new(
            &sim,
            ConfigOpts {
                max_creates: 1000,
                ..ConfigOpts::default()
            },
        );
        let t0 = Instant::now();
        let out = sync_once(&sim, &setup, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let full = t0.elapsed();
        let all: Vec<String> = ado.iter().chain(&clickup).cloned().collect();
        assert_one_each(&sim, &setup, &all, "uninterrupted").await;

        let mut killed_mid_run = 0;
        for run in 0..runs {
            seed(&sim, &ado, &clickup).await;
            let setup = Setup::new(
                &sim,
                ConfigOpts {
                    max_creates: 1000,
                    ..ConfigOpts::default()
                },
            );
            let mut child = setup
                .command(&sim, &["sync", "--once"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let at = Duration::from_micros(rng.random_range(0..=full.as_micros() as u64 + 20_000));
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                killed_mid_run += 1;
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();

            // Edits on both sides before the restart.
            let mut titles = all.clone();
            let items = sim.ado_items().await;
            let tasks = sim.tasks().await;
            for _ in 0..3 {
                let w = &items[rng.random_range(0..items.len())];
                let old = w["fields"]["System.Title"].as_str().unwrap().to_string();
                if let Some(pos) = titles.iter().position(|t| *t == old) {
                    let new = format!("{old} (edited in ADO, run {run})");
                    sim.ado_edit(w["id"].as_i64().unwrap(), json!({"System.Title": new}))
                        .await;
                    titles[pos] = new;
                }
                let t = &tasks[rng.random_range(0..tasks.len())];
                let old = t["name"].as_str().unwrap().to_string();
                if let Some(pos) = titles.iter().position(|x| *x == old) {
                    let new = format!("{old} (edited in ClickUp, run {run})");
                    sim.cu_edit(t["id"].as_str().unwrap(), json!({"name": new}))
                        .await;
                    titles[pos] = new;
                }
            }
            for _ in 0..3 {
                let out = sync_once(&sim, &setup, None);
                assert!(
                    out.status.success(),
                    "run {run}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            assert_one_each(
                &sim,
                &setup,
                &titles,
                &format!("run {run}, killed at {at:?}"),
            )
            .await;
        }
        eprintln!(
            "{runs} runs, {killed_mid_run} killed while syncing (a full sync takes {full:?})"
        );
        assert!(
            killed_mid_run * 2 >= runs,
            "too few kills landed mid-sync: {killed_mid_run}"
        );
    }
}
