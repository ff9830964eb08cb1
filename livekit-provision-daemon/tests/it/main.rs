//! Integration tests of the `livekit-provision-daemon` binary: real processes, a temporary state
//! directory, loopback only. Media tests use the livekit-server STAND-IN (not the real program).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking on setup errors"
)]
#![expect(
    clippy::duplicate_mod,
    reason = "both example hosts (embed.rs, hero_host.rs) are compiled here, each with the store they share (examples/support/hash_map_store.rs)"
)]

mod changes;
mod daemon_loop;
mod discover;
mod embed;
mod front;
mod healing;
mod hero_host;
mod lifecycle;
mod media;
mod one_result;
mod ownership;
mod provisioning;
mod rpc;
mod security;
mod status_shape;
mod support;
mod upgrade;

/// The library's loopback release server, shared with its tests.
#[path = "../../../livekit-provision/tests/it/support/release_server.rs"]
#[allow(dead_code, reason = "this crate's tests use only part of it")]
mod release_server;

/// The library's real redis-server for tests, shared with its tests.
#[path = "../../../livekit-provision/tests/it/support/redis_server.rs"]
#[allow(dead_code, reason = "this crate's tests use only part of it")]
mod redis_server;
