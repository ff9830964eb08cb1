//! Integration tests of the `livekit-provision-daemon` binary: real processes, a temporary state
//! directory, loopback only. Media tests use the livekit-server STAND-IN (not the real program).

mod lifecycle;
mod media;
mod provisioning;
mod rpc;
mod support;
