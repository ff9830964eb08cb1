//! Coordination of the nodes of a fleet that share a store (Redis): each node publishes a short
//! report of itself that expires unless refreshed, reads the others', and takes a lease before
//! a step that must happen one node at a time (a rolling restart). Secrets are never part of
//! it: reports hold key *names*, versions and counts.
//!
//! Stores that serve one node (a file, a helper program) have no coordinator
//! ([`SecretStore::coordinator`](super::SecretStore::coordinator) is `None`): the node is a
//! fleet of one.

use std::fmt;
use std::time::Duration;

use super::StoreError;

/// What a shared store offers a fleet.
pub trait Coordinator: Send + Sync + fmt::Debug {
    /// Publish `report` as node `node`'s, for `ttl`: it disappears unless refreshed.
    fn report(&self, node: &str, report: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Every node's live report, by node.
    fn reports(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Hold the lease `name` for `holder` for `ttl`: taken when free, renewed when `holder`
    /// holds it. `Ok(false)` when another holder has it.
    fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Give up the lease `name` when `holder` holds it.
    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Who holds the lease `name`, if anyone.
    fn holder(&self, name: &str) -> Result<Option<String>, StoreError>;
}
