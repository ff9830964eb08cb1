//! What self-healing remembers between ticks: a leaf, so that `shared.rs` can hold it without
//! importing the healing itself.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

/// What healing remembers between ticks.
#[derive(Debug, Default)]
pub(crate) struct HealState {
    /// The server (pid) and generation last recorded as served.
    pub served: Option<(u32, String)>,
    /// The server and generation whose recording failed, once said.
    pub served_unrecorded: Option<(u32, String)>,
    /// The live generation a take-back was last tried for (tried once per generation).
    pub tried: Option<String>,
    /// The address the running server advertises, as last looked for.
    pub address: Option<AddressWatch>,
}

/// The running server's advertised address and what was seen of it.
#[derive(Debug)]
pub(crate) struct AddressWatch {
    pub pid: u32,
    pub ip: Option<IpAddr>,
    pub checked: Option<Instant>,
    /// It was on an interface of this machine at least once.
    pub was_local: bool,
    pub gone_since: Option<SystemTime>,
}
