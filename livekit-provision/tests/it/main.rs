//! Integration tests of the `livekit-provision` library, one module per area.

// Helpers outside `#[test]` functions fail a test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod doors;
mod ensure;
mod fetch;
mod fetch_http;
mod fleet;
mod hold;
mod never_rotate;
mod production;
mod publish;
mod reconcile;
mod redis_ha;
mod render;
mod rotate;
mod store;
mod support;
mod tls;
mod turn;
