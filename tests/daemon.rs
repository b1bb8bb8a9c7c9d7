//! The scheduler, health and metrics, on tokio's paused clock (no wall-clock timing).
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ado_clickup_sync::daemon::{
    backoff_delay, run, CycleOutcome, Health, Metrics, Nudger, RunReport, ScheduleOptions,
};
use chrono::{TimeZone, Utc};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// What a scripted cycle does.
#[derive(Clone, Copy, Debug)]
enum Step {
    Ok(Duration),
    Fail(Duration),
}

#[derive(Default)]
struct Recorder {
    /// (start, end) of each finished cycle.
    spans: Mutex<Vec<(Instant, Instant)>>,
    starts: Mutex<Vec<Instant>>,
    running: AtomicBool,
    overlaps: AtomicUsize,
}

impl Recorder {
    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.starts.lock().unwrap().len()
    }
}

struct Harness {
    rec: Arc<Recorder>,
    nudger: Nudger,
    shutdown: CancellationToken,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    task: JoinHandle<RunReport>,
    t0: Instant,
}

/// Start the scheduler with a cycle that follows `script` (then `default` forever).
fn start(opts: ScheduleOptions, script: Vec<Step>, default: Step) -> Harness {
    let rec = Arc::new(Recorder::default());
    let nudger = Nudger::new();
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::new(Utc::now()));
    let metrics = Arc::new(Metrics::new());
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let t0 = Instant::now();
    let r = rec.clone();
    let task = tokio::spawn(run(
        opts,
        nudger.clone(),
        shutdown.clone(),
        health.clone(),
        metrics.clone(),
        move |_token: CancellationToken| {
            let r = r.clone();
            let step = script.lock().unwrap().pop_front().unwrap_or(default);
            async move {
                let start = Instant::now();
                if r.running.swap(true, Ordering::SeqCst) {
                    r.overlaps.fetch_add(1, Ordering::SeqCst);
                }
                r.starts.lock().unwrap().push(start);
                let (d, ok) = match step {
                    Step::Ok(d) => (d, true),
                    Step::Fail(d) => (d, false),
                };
                sleep(d).await;
                r.running.store(false, Ordering::SeqCst);
                r.spans.lock().unwrap().push((start, Instant::now()));
                if ok {
                    Ok(CycleOutcome {
                        written_ado: 1,
                        written_clickup: 2,
                        pending_intents: Some(0),
                        open_conflicts: Some(3),
                    })
                } else {
                    Err("simulated failure".to_string())
                }
            }
        },
    ));
    Harness {
        rec,
        nudger,
        shutdown,
        health,
        metrics,
        task,
        t0,
    }
}

fn opts(poll_secs: u64) -> ScheduleOptions {
    ScheduleOptions::with_poll_interval(Duration::from_secs(poll_secs))
}

async fn sleep_until_offset(t0: Instant, secs_f: f64) {
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(secs_f)).await;
}

#[tokio::test(start_paused = true)]
async fn first_cycle_runs_at_start_then_on_the_interval() {
    let h = start(opts(10), vec![], Step::Ok(Duration::from_millis(100)));
    sleep_until_offset(h.t0, 35.0).await;
    let starts: Vec<u64> = h
        .rec
        .starts()
        .iter()
        .map(|s| s.duration_since(h.t0).as_secs())
        .collect();
    assert_eq!(starts, vec![0, 10, 20, 30]);
    h.shutdown.cancel();
    let report = h.task.await.unwrap();
    assert_eq!(report.cycles, 4);
    assert!(!report.abandoned_in_flight);
}

#[tokio::test(start_paused = true)]
async fn a_nudge_during_a_cycle_causes_exactly_one_more() {
    let h = start(opts(60), vec![], Step::Ok(Duration::from_secs(5)));
    sleep_until_offset(h.t0, 1.0).await;
    assert_eq!(h.rec.count(), 1);
    h.nudger.nudge();
    sleep_until_offset(h.t0, 50.0).await;
    let starts = h.rec.starts();
    assert_eq!(starts.len(), 2, "one nudge during a cycle → one more cycle");
    // It starts as soon as the first one ends (5 s > the 2 s minimum gap).
    assert_eq!(starts[1].duration_since(h.t0), Duration::from_secs(5));
    assert!(!h.nudger.is_pending());
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn twenty_nudges_in_one_second_cause_at_most_two_cycles() {
    let h = start(opts(60), vec![], Step::Ok(Duration::from_millis(300)));
    sleep_until_offset(h.t0, 10.0).await;
    assert_eq!(h.rec.count(), 1);
    for i in 0..20 {
        h.nudger.nudge();
        sleep_until_offset(h.t0, 10.0 + 0.05 * (i + 1) as f64).await;
    }
    sleep_until_offset(h.t0, 40.0).await;
    let starts = h.rec.starts();
    assert_eq!(h.nudger.sent(), 20);
    let nudged = starts.len() - 1;
    assert!(nudged >= 1, "nudges must wake the scheduler");
    assert!(nudged <= 2, "20 nudges caused {nudged} cycles");
    // Nudged cycles respect the minimum gap.
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_secs(2), "{:?}", w[1] - w[0]);
    }
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn nudges_respect_the_minimum_gap() {
    let h = start(opts(60), vec![], Step::Ok(Duration::from_millis(100)));
    // Right after the first cycle: the nudged one waits for 2 s after the first start.
    sleep_until_offset(h.t0, 0.5).await;
    h.nudger.nudge();
    sleep_until_offset(h.t0, 1.9).await;
    assert_eq!(h.rec.count(), 1);
    sleep_until_offset(h.t0, 2.5).await;
    let starts = h.rec.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1].duration_since(h.t0), Duration::from_secs(2));
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cycle_longer_than_the_interval_is_not_doubled() {
    let h = start(opts(1), vec![], Step::Ok(Duration::from_millis(2500)));
    // Nudges on top of a slow cycle must not start a second one either.
    for i in 0..40 {
        sleep_until_offset(h.t0, 0.5 * i as f64).await;
        h.nudger.nudge();
    }
    sleep_until_offset(h.t0, 30.0).await;
    h.shutdown.cancel();
    h.task.await.unwrap();
    assert_eq!(h.rec.overlaps.load(Ordering::SeqCst), 0);
    let spans = h.rec.spans.lock().unwrap().clone();
    assert!(
        spans.len() >= 5,
        "cycles must keep running: {}",
        spans.len()
    );
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "cycle started before the previous ended");
    }
    // 30 s of 2.5 s cycles: at most 12 even back to back; each separated by ≥ the 2 s gap
    // (nudged) or the 1 s interval means clearly fewer.
    assert!(spans.len() <= 12, "{}", spans.len());
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_capped_and_success_resets() {
    let mut o = opts(1);
    o.backoff_cap = Duration::from_secs(10);
    let mut script = vec![Step::Fail(Duration::ZERO); 7];
    script.push(Step::Ok(Duration::ZERO));
    let h = start(o, script, Step::Ok(Duration::ZERO));
    sleep_until_offset(h.t0, 60.0).await;
    // After the backoff cycles, the health shows the recovery.
    assert_eq!(h.health.consecutive_failures(), 0);
    assert!(h.health.last_success().is_some());
    h.shutdown.cancel();
    h.task.await.unwrap();

    let starts = h.rec.starts();
    assert!(starts.len() >= 10, "{}", starts.len());
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // Gap i follows i+1 consecutive failures: poll × 2^(i+1), capped at 10 s, jittered into
    // its upper half, never under the poll interval.
    let tol = 0.01;
    for (i, gap) in gaps.iter().take(7).enumerate() {
        let full = (2f64.powi(i as i32 + 1)).min(10.0);
        let lo = (full / 2.0).max(1.0);
        assert!(
            *gap >= lo - tol && *gap <= full + tol,
            "gap {i} = {gap}, expected in [{lo}, {full}]; all: {gaps:?}"
        );
    }
    // Capped: the last backoff gaps never exceed the cap.
    assert!(gaps.iter().all(|g| *g <= 10.0 + tol), "{gaps:?}");
    // Growing: the 4th+ gap is at least twice the first possible minimum.
    assert!(gaps[4] >= 5.0 - tol, "{gaps:?}");
    // After the success (the 8th cycle), cycles are back on the 1 s interval.
    for gap in &gaps[7..] {
        assert!((gap - 1.0).abs() <= tol, "after success: {gaps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_are_recorded_in_health_and_metrics() {
    let h = start(
        opts(10),
        vec![Step::Fail(Duration::ZERO), Step::Fail(Duration::ZERO)],
        Step::Ok(Duration::ZERO),
    );
    // Two failures: at 0 and after a backoff of [10, 20] s.
    sleep_until_offset(h.t0, 1.0).await;
    assert_eq!(h.health.consecutive_failures(), 1);
    let report = h
        .health
        .report(Utc::now(), Duration::from_secs(10), Duration::from_secs(30));
    assert_eq!(report.last_error.as_deref(), Some("simulated failure"));
    assert!(report.last_success.is_none());
    let text = h.metrics.render().unwrap();
    assert!(
        text.contains("ado_clickup_sync_cycles_total{outcome=\"error\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ado_clickup_sync_consecutive_failures 1\n"),
        "{text}"
    );
    sleep_until_offset(h.t0, 200.0).await;
    assert_eq!(h.health.consecutive_failures(), 0);
    let text = h.metrics.render().unwrap();
    assert!(
        text.contains("ado_clickup_sync_cycles_total{outcome=\"error\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("ado_clickup_sync_consecutive_failures 0\n"),
        "{text}"
    );
    assert!(
        text.contains("ado_clickup_sync_open_conflicts 3\n"),
        "{text}"
    );
    assert!(
        text.contains("ado_clickup_sync_items_written_total{side=\"clickup\"}"),
        "{text}"
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_the_in_flight_cycle() {
    let nudger = Nudger::new();
    let shutdown = CancellationToken::new();
    let items_done = Arc::new(AtomicUsize::new(0));
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (d, s, f) = (items_done.clone(), saw_cancel.clone(), finished.clone());
    let t0 = Instant::now();
    let task = tokio::spawn(run(
        opts(60),
        nudger,
        shutdown.clone(),
        Arc::new(Health::new(Utc::now())),
        Arc::new(Metrics::new()),
        move |token: CancellationToken| {
            let (d, s, f) = (d.clone(), s.clone(), f.clone());
            async move {
                for _ in 0..100 {
                    if token.is_cancelled() {
                        s.store(true, Ordering::SeqCst);
                        break;
                    }
                    // One item: not interruptible.
                    sleep(Duration::from_millis(100)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                }
                f.store(true, Ordering::SeqCst);
                Ok::<_, String>(CycleOutcome::default())
            }
        },
    ));
    sleep_until_offset(t0, 1.05).await;
    shutdown.cancel();
    let report = task.await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "run returned before the cycle finished"
    );
    assert!(saw_cancel.load(Ordering::SeqCst));
    // It stopped between items: 11 done (the one in flight at 1.05 s completed), not 100.
    assert_eq!(items_done.load(Ordering::SeqCst), 11);
    assert_eq!(
        report,
        RunReport {
            cycles: 1,
            abandoned_in_flight: false
        }
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_a_cycle_that_ignores_it_after_the_grace() {
    let mut o = opts(60);
    o.shutdown_grace = Duration::from_secs(7);
    let h = start(o, vec![], Step::Ok(Duration::from_secs(600)));
    sleep_until_offset(h.t0, 1.0).await;
    let cancelled_at = Instant::now();
    h.shutdown.cancel();
    let report = h.task.await.unwrap();
    assert_eq!(cancelled_at.elapsed(), Duration::from_secs(7));
    assert!(report.abandoned_in_flight);
    assert_eq!(report.cycles, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_idle_returns_without_another_cycle() {
    let h = start(opts(60), vec![], Step::Ok(Duration::from_millis(10)));
    sleep_until_offset(h.t0, 5.0).await;
    h.shutdown.cancel();
    // A nudge after shutdown must not start anything.
    h.nudger.nudge();
    let report = h.task.await.unwrap();
    assert_eq!(report.cycles, 1);
    assert_eq!(h.rec.count(), 1);
}

#[test]
fn backoff_delay_grows_is_capped_and_never_below_the_interval() {
    let poll = Duration::from_secs(30);
    let cap = Duration::from_secs(600);
    // jitter 1.0 = the full exponential value, 0.0 = half of it.
    assert_eq!(backoff_delay(1, poll, cap, 1.0), Duration::from_secs(60));
    assert_eq!(backoff_delay(1, poll, cap, 0.0), Duration::from_secs(30));
    assert_eq!(backoff_delay(3, poll, cap, 1.0), Duration::from_secs(240));
    assert_eq!(backoff_delay(3, poll, cap, 0.0), Duration::from_secs(120));
    assert_eq!(backoff_delay(5, poll, cap, 1.0), cap);
    assert_eq!(backoff_delay(500, poll, cap, 1.0), cap);
    assert_eq!(backoff_delay(500, poll, cap, 0.0), Duration::from_secs(300));
    // Out-of-range jitter is clamped.
    assert_eq!(backoff_delay(500, poll, cap, 7.0), cap);
    // A poll interval above the cap is still respected.
    let slow = Duration::from_secs(900);
    assert_eq!(backoff_delay(1, slow, cap, 1.0), slow);
}

#[test]
fn health_report_rules() {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let poll = Duration::from_secs(30);
    let grace = Duration::from_secs(90);
    let s = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let h = Health::new(t0);

    let r = h.report(s(10), poll, grace);
    assert_eq!(r.status, "starting");
    assert!(r.is_ready());
    let r = h.report(s(91), poll, grace);
    assert_eq!(r.status, "unhealthy");
    assert_eq!(r.reason.as_deref(), Some("no successful cycle since start"));

    h.record_success(
        s(100),
        &CycleOutcome {
            pending_intents: Some(2),
            open_conflicts: Some(1),
            ..Default::default()
        },
    );
    let r = h.report(s(150), poll, grace);
    assert_eq!(r.status, "ok");
    assert_eq!(r.last_success_age_seconds, Some(50));
    assert_eq!(r.last_success.as_deref(), Some("2026-01-01T00:01:40+00:00"));
    assert_eq!((r.pending_intents, r.open_conflicts), (2, 1));
    assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
    // Exactly 3 intervals is still fine; one second more is not.
    assert!(h.report(s(190), poll, grace).is_ready());
    let r = h.report(s(191), poll, grace);
    assert_eq!(r.status, "unhealthy");
    assert!(r.reason.unwrap().contains("91s ago"));

    h.record_failure(s(160), "ADO answered 503".into());
    let r = h.report(s(170), poll, grace);
    assert_eq!(r.consecutive_failures, 1);
    assert_eq!(r.last_error.as_deref(), Some("ADO answered 503"));
    assert!(r.is_ready());

    h.set_store_ok(false);
    let r = h.report(s(170), poll, grace);
    assert_eq!(r.status, "unhealthy");
    assert_eq!(r.reason.as_deref(), Some("the store is unusable"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_cycle_counts_as_a_failure_and_the_schedule_goes_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let health = Arc::new(Health::new(Utc::now()));
    let shutdown = CancellationToken::new();
    let t0 = Instant::now();
    let task = tokio::spawn(run(
        opts(10),
        Nudger::new(),
        shutdown.clone(),
        health.clone(),
        Arc::new(Metrics::new()),
        move |_token: CancellationToken| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("engine bug");
                }
                Ok::<_, String>(CycleOutcome::default())
            }
        },
    ));
    sleep_until_offset(t0, 1.0).await;
    assert_eq!(health.consecutive_failures(), 1);
    let report = health.report(Utc::now(), Duration::from_secs(10), Duration::from_secs(30));
    assert_eq!(
        report.last_error.as_deref(),
        Some("the sync cycle panicked (see the log)")
    );
    // The backoff after one failure is at most 2 intervals.
    sleep_until_offset(t0, 21.0).await;
    assert!(calls.load(Ordering::SeqCst) >= 2);
    assert_eq!(health.consecutive_failures(), 0);
    shutdown.cancel();
    assert!(!task.await.unwrap().abandoned_in_flight);
}

#[tokio::test(start_paused = true)]
async fn start_immediately_false_waits_one_interval_or_a_nudge() {
    let mut o = opts(10);
    o.start_immediately = false;
    let h = start(o.clone(), vec![], Step::Ok(Duration::ZERO));
    sleep_until_offset(h.t0, 9.0).await;
    assert_eq!(h.rec.count(), 0);
    sleep_until_offset(h.t0, 10.5).await;
    assert_eq!(h.rec.count(), 1);
    h.shutdown.cancel();
    h.task.await.unwrap();

    let h = start(o, vec![], Step::Ok(Duration::ZERO));
    sleep_until_offset(h.t0, 3.0).await;
    h.nudger.nudge();
    sleep_until_offset(h.t0, 3.5).await;
    let starts = h.rec.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].duration_since(h.t0), Duration::from_secs(3));
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_cancels_the_shutdown_token() {
    use ado_clickup_sync::daemon::cancel_on_signal;
    let token = CancellationToken::new();
    // The handlers are installed when this returns, so the signal below cannot kill the
    // test process.
    let watcher = cancel_on_signal(token.clone()).unwrap();
    assert!(!token.is_cancelled());
    // SAFETY: sending a signal to our own process; tokio's handler is in place.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(rc, 0);
    tokio::time::timeout(Duration::from_secs(10), token.cancelled())
        .await
        .expect("SIGTERM cancels the token");
    watcher.await.unwrap();
}
