//! Both simulators started together with the same people on both sides, and the client and
//! pair configuration that points the real engine at them: what the tests, `demo` and
//! `bench` run against.
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::ado::AdoConfig;
use crate::clickup::ClickUpConfig;
use crate::config::{AdoScope, ClickUpScope, PairConfig};
use crate::core::mapping::MappingConfig;
use crate::remote::HttpPolicy;
use crate::sim::ado::{self as adosim, AdoSim, AdoSimOptions, SimUser};
use crate::sim::clickup::{
    self as cusim, ClickUpSim, ClickUpSimOptions, RateLimit, ADO_LINK_FIELD_ID,
};
use crate::sim::common::LoggedRequest;

/// The people of the simulated team (same emails in both services).
pub const PEOPLE: [(&str, &str); 4] = [
    ("Sync Bot", "sync-bot@example.com"),
    ("Alice Adams", "alice@example.com"),
    ("Bob Brown", "bob@example.com"),
    ("Carol Chen", "carol@example.com"),
];

#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// Whether the engine uses ClickUp's "ADO Link" custom field as the back-link marker.
    pub link_field: bool,
    /// The ClickUp simulator's limit; `None` = practically unlimited.
    pub clickup_rate_limit: Option<RateLimit>,
    /// `$top` of the client's WIQL queries (small values exercise paging).
    pub wiql_page_size: u32,
    /// Client-side ClickUp limit (requests per minute); `None` = effectively unlimited.
    pub clickup_requests_per_minute: Option<u32>,
    pub ado_port: u16,
    pub clickup_port: u16,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        TestbedOptions {
            link_field: true,
            clickup_rate_limit: None,
            wiql_page_size: 19_999,
            clickup_requests_per_minute: None,
            ado_port: 0,
            clickup_port: 0,
        }
    }
}

/// The ADO simulator's options with the team's people.
pub fn ado_options(port: u16) -> AdoSimOptions {
    AdoSimOptions {
        port,
        users: PEOPLE.iter().map(|(n, e)| SimUser::new(n, e)).collect(),
        ..AdoSimOptions::default()
    }
}

/// The ClickUp simulator's options with the team's people.
pub fn clickup_options(port: u16, rate_limit: RateLimit) -> ClickUpSimOptions {
    let mut o = ClickUpSimOptions {
        port,
        rate_limit,
        ..ClickUpSimOptions::default()
    };
    for (m, (name, email)) in o.members.iter_mut().zip(PEOPLE) {
        m.username = name.to_string();
        m.email = email.to_string();
    }
    o
}

/// Two running simulators.
pub struct Testbed {
    pub ado: Arc<AdoSim>,
    pub clickup: Arc<ClickUpSim>,
    pub opts: TestbedOptions,
}

/// Quick retries: the simulators answer in microseconds.
pub fn fast_policy() -> HttpPolicy {
    HttpPolicy {
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        max_retries: 4,
        requests_per_minute: None,
        max_rate_limit_wait: Duration::from_secs(2),
        ..HttpPolicy::default()
    }
}

impl Testbed {
    /// Write requests (not reads) both simulators have answered since their logs were cleared.
    pub fn writes(&self) -> usize {
        let count = |log: Vec<LoggedRequest>| log.iter().filter(|e| e.is_write()).count();
        count(self.ado.log().entries()) + count(self.clickup.log().entries())
    }

    pub async fn start(opts: TestbedOptions) -> Result<Testbed, String> {
        let ado = adosim::start(ado_options(opts.ado_port))
            .await
            .map_err(|e| e.to_string())?;
        // The real limit (100 per minute) only where a caller asks for it: most runs measure
        // or test something else.
        let limit = opts.clickup_rate_limit.unwrap_or(RateLimit {
            limit: 1_000_000,
            window: Duration::from_secs(60),
        });
        let clickup = cusim::start(clickup_options(opts.clickup_port, limit))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Testbed {
            ado: Arc::new(ado),
            clickup: Arc::new(clickup),
            opts,
        })
    }

    /// The ADO client configuration for the simulator.
    pub fn ado_config(&self) -> AdoConfig {
        let o = self.ado.options();
        let mut c = AdoConfig::new(&o.org, &o.project, SecretString::from(o.pat.clone()));
        c.base_url = self.ado.base_url();
        c.policy = fast_policy();
        c.wiql_page_size = self.opts.wiql_page_size;
        c
    }

    /// The ClickUp client configuration for the simulator.
    pub fn clickup_config(&self) -> ClickUpConfig {
        let o = self.clickup.options();
        let mut c = ClickUpConfig::new(&o.team_id, SecretString::from(o.token.clone()));
        c.base_url = self.clickup.base_url();
        c.policy = HttpPolicy {
            requests_per_minute: Some(self.opts.clickup_requests_per_minute.unwrap_or(1_000_000)),
            ..fast_policy()
        };
        if self.opts.link_field {
            c.backlink_field_id = Some(ADO_LINK_FIELD_ID.to_string());
        }
        c
    }

    /// The simulated List's id.
    pub fn list_id(&self) -> String {
        self.clickup
            .options()
            .lists
            .first()
            .map(|l| l.id.clone())
            .unwrap_or_default()
    }

    /// A pair syncing every User Story of the project with the simulated List.
    pub fn pair(&self, name: &str, mapping: MappingConfig) -> PairConfig {
        PairConfig {
            name: name.to_string(),
            ado: AdoScope {
                wiql: None,
                area_path: None,
                work_item_types: vec!["User Story".into()],
                default_type: "User Story".into(),
            },
            clickup: ClickUpScope {
                list_ids: vec![self.list_id()],
                create_in: None,
            },
            mapping,
        }
    }
}
