//! A running engine against both simulators, for the engine tests.
#![allow(dead_code)]
use std::sync::Arc;

use ado_clickup_sync::ado::AdoClient;
use ado_clickup_sync::clickup::ClickUpClient;
use ado_clickup_sync::config::PairConfig;
use ado_clickup_sync::core::mapping::MappingConfig;
use ado_clickup_sync::engine::{CycleReport, CycleRequest, Engine, EngineOptions, Observer};
use ado_clickup_sync::remote::ApiStats;
use ado_clickup_sync::sim::clickup::{SimTaskEdit, SimTaskInput};
use ado_clickup_sync::sim::testbed::{Testbed, TestbedOptions};
use ado_clickup_sync::store::{Db, Store};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

pub struct Harness {
    pub bed: Testbed,
    pub engine: Engine,
    pub store: Store,
    pub stats: Arc<ApiStats>,
    pub dir: tempfile::TempDir,
}

pub fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// ClickUp member ids of the simulated people, by email.
pub fn member(bed: &Testbed, email: &str) -> i64 {
    bed.clickup
        .options()
        .members
        .iter()
        .find(|m| m.email == email)
        .map(|m| m.id)
        .expect("a simulated member")
}

#[derive(Default)]
pub struct Setup {
    pub bed: TestbedOptions,
    pub mapping: MappingConfig,
    pub engine: EngineOptions,
    pub observer: Option<Arc<dyn Observer>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Harness {
        let bed = Testbed::start(setup.bed).await.expect("simulators start");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_url(dir.path().join("sync.db").to_str().unwrap())
            .await
            .expect("store opens");
        let pair = bed.pair("team", setup.mapping);
        let (engine, stats) = Self::engine_for(&bed, store.clone(), vec![pair], setup.engine);
        let engine = match setup.observer {
            Some(o) => engine.with_observer(o),
            None => engine,
        };
        Harness {
            bed,
            engine,
            store,
            stats,
            dir,
        }
    }

    pub fn engine_for(
        bed: &Testbed,
        store: Store,
        pairs: Vec<PairConfig>,
        opts: EngineOptions,
    ) -> (Engine, Arc<ApiStats>) {
        let stats = ApiStats::new();
        let ado = Arc::new(AdoClient::new(bed.ado_config(), stats.clone()).unwrap());
        let cu = Arc::new(ClickUpClient::new(bed.clickup_config(), stats.clone()).unwrap());
        (
            Engine::new(pairs, ado, cu, stats.clone(), store, opts),
            stats,
        )
    }

    pub async fn run(&self, req: CycleRequest) -> CycleReport {
        let r = self
            .engine
            .cycle(&req, &CancellationToken::new())
            .await
            .expect("cycle runs");
        for p in &r.pairs {
            assert!(p.error.is_none(), "pair {} failed: {:?}", p.pair, p.error);
        }
        r
    }

    pub async fn cycle(&self) -> CycleReport {
        self.run(CycleRequest::incremental()).await
    }

    pub async fn sweep(&self) -> CycleReport {
        self.run(CycleRequest::sweep()).await
    }

    /// Runs cycles until one writes nothing (at most `max`); returns how many ran.
    pub async fn converge(&self, max: usize) -> usize {
        for i in 1..=max {
            let r = self.cycle().await;
            let t = r.tally();
            if t.written_ado() + t.written_clickup() + t.linked + t.unlinked == 0 && t.failed == 0 {
                return i;
            }
        }
        panic!("no convergence after {max} cycles");
    }

    pub fn db(&self) -> Db {
        Db::open_url(self.dir.path().join("sync.db").to_str().unwrap()).unwrap()
    }

    /// Writes (anything but GET) the simulators received since their logs were cleared.
    pub fn writes(&self) -> usize {
        self.bed.writes()
    }

    pub fn clear_logs(&self) {
        self.bed.ado.log().clear();
        self.bed.clickup.log().clear();
    }

    pub fn ado_create(&self, title: &str, extra: Value) -> i64 {
        let mut f = fields(extra);
        f.insert("System.Title".into(), json!(title));
        self.bed.ado.ui_create("User Story", f).expect("ADO create")
    }

    pub fn ado_edit(&self, id: i64, f: Value) {
        self.bed.ado.ui_edit(id, fields(f)).expect("ADO edit")
    }

    pub fn cu_create(&self, input: SimTaskInput) -> String {
        self.bed
            .clickup
            .ui_create(&self.bed.list_id(), input)
            .expect("ClickUp create")
    }

    pub fn cu_edit(&self, id: &str, edit: SimTaskEdit) {
        self.bed.clickup.ui_edit(id, edit).expect("ClickUp edit")
    }

    /// The ClickUp task linked to ADO item `ado`.
    pub fn counterpart_of_ado(&self, ado: i64) -> String {
        self.db()
            .link_by_ado("team", ado)
            .unwrap()
            .unwrap_or_else(|| panic!("ADO #{ado} is not linked"))
            .clickup_id
    }

    pub fn counterpart_of_clickup(&self, id: &str) -> i64 {
        self.db()
            .link_by_clickup("team", id)
            .unwrap()
            .unwrap_or_else(|| panic!("ClickUp task {id} is not linked"))
            .ado_id
    }
}
