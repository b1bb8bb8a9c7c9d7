//! ado-clickup-sync: a polling reconciliation daemon that keeps Azure DevOps work items and
//! ClickUp tasks in two-way sync. See ARCHITECTURE.md for the code map and where each
//! invariant is kept.
pub mod ado;
pub mod bench;
pub mod clickup;
pub mod config;
pub mod core;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod http;
pub mod remote;
pub mod service;
pub mod sim;
pub mod store;
