//! Faithful simulators of the Azure DevOps and ClickUp APIs, for tests, the benchmark and
//! `demo`. Ground truth: `../shared/api/` (see each service's FACTS.md).
pub mod ado;
pub mod clickup;
pub mod common;
pub mod testbed;
