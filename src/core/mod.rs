//! The sync core: pure decisions, no I/O, no clock (callers pass `now`), no wire DTOs.
pub mod convert;
pub mod model;
