//! Integration tests of the supervision layer against the **stand-ins** for livekit-server and
//! lk-backend (the real livekit-server cannot be fetched on the build machines).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking on setup errors"
)]

mod rooms;
mod server_check;
mod supervise;
mod support;
