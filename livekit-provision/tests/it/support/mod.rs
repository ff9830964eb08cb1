//! Helpers shared by the integration tests.

pub mod release_server;
