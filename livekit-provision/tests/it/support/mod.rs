//! Helpers shared by the integration tests.

pub mod provision;
pub mod release_server;
