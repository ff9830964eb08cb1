//! Helpers shared by the integration tests.

pub mod provision;
pub mod redis_server;
pub mod release_server;
