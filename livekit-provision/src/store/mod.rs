//! Secret stores (docs/DESIGN.md "Secret stores"): where the API key and secret live, so that they are
//! minted once and never rotate by accident.
//!
//! [`SecretStore`] is synchronous; async callers use `spawn_blocking`. Backends: [`FileStore`]
//! (`file:PATH`, the default), [`ExecStore`] (`exec:PROGRAM`, a git-credential-style helper),
//! [`RedisStore`] (`redis://…`, Sentinel or Cluster: one store for a fleet) and, with the
//! `testing` feature, `MemoryStore` (tests, fault injection).
//! [`StoreSpec`] parses `--secrets` and opens the store it names.
//!
//! The contract every backend keeps:
//! - `get` returns `Ok(None)` only when the store *answered* "absent". When it could not check
//!   (unreadable, corrupt, helper failed, timed out), it returns an error — a caller mints a
//!   secret only on `Ok(None)`.
//! - `add_if_absent` is atomic: of concurrent callers (threads, processes, nodes), one inserts
//!   and every one gets back the value stored afterwards.
//! - Values are one non-empty line of at most [`MAX_SECRET_LEN`] bytes; writes of anything else
//!   are refused with [`StoreError::InvalidValue`].
//! - No value ever appears in `Debug`, `Display`, an error, a log line or a process argument.

use std::fmt;

use crate::secret::{MAX_SECRET_LEN, Secret};

mod coordinate;
mod error;
mod exec;
mod file;
#[cfg(any(test, feature = "testing"))]
mod memory;
mod name;
mod redis;
mod spec;

pub use coordinate::Coordinator;
pub use error::{StoreError, StoreOp};
pub use exec::{EXIT_ABSENT, EXIT_PRESENT, ExecStore};
pub use file::FileStore;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryStore;
pub use name::{KNOWN, KnownSecret, MAX_NAME_LEN, SecretName, known_names_hint};
pub(crate) use redis::probe_routing;
pub use redis::{RedisError, RedisStore, RedisTraffic};
pub use spec::{
    DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisSpec, StoreSpec, TlsFiles, Topology,
};

/// A place secrets are kept. See the [module documentation](self) for the contract.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// What this store is, for messages: `file:/x/secrets.json`, `exec:/usr/bin/helper`,
    /// `redis://user:****@host:6379`. Credentials are always redacted.
    fn describe(&self) -> String;

    /// The value stored under `name`; `Ok(None)` only when the store answered "absent".
    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError>;

    /// The values stored under `names`, in order, each as [`get`](Self::get) would return it;
    /// any failure fails the whole read. Backends that can batch (Redis: one round trip) do.
    fn get_many(&self, names: &[SecretName]) -> Result<Vec<Option<Secret>>, StoreError> {
        names.iter().map(|name| self.get(name)).collect()
    }

    /// Store `value` under `name` unless a value is already there, atomically. Returns the value
    /// stored afterwards — ours, or the one that was already there — and whether we inserted it.
    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError>;

    /// Store `value` under `name`, replacing any value (an explicit overwrite, e.g. `secrets set`
    /// or `secrets rotate`).
    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError>;

    /// What the nodes sharing this store coordinate through: reports and leases. `None` (the
    /// default) for a store that serves one node.
    fn coordinator(&self) -> Option<&dyn Coordinator> {
        None
    }
}

/// The outcome of [`SecretStore::add_if_absent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The value stored afterwards, whoever wrote it.
    pub value: Secret,
    /// True when our value was inserted; false when one was already there.
    pub inserted: bool,
}

/// Refuse a value no backend can store faithfully. The reason never holds the value.
pub(crate) fn check_storable(
    store: &str,
    name: &SecretName,
    op: StoreOp,
    value: &Secret,
) -> Result<(), StoreError> {
    let reason = value_problem(value.expose().as_bytes());
    match reason {
        None => Ok(()),
        Some(reason) => Err(StoreError::InvalidValue {
            store: store.to_owned(),
            name: name.clone(),
            op,
            reason,
        }),
    }
}

/// What makes `bytes` unusable as a stored value, if anything (never quoting them).
pub(crate) fn value_problem(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the value is empty".to_owned());
    }
    if bytes.len() > MAX_SECRET_LEN {
        return Some(format!(
            "the value is {} bytes long; at most {MAX_SECRET_LEN} are allowed",
            bytes.len()
        ));
    }
    let lines = bytes.split(|b| *b == b'\n').count();
    if lines > 1 {
        return Some(format!(
            "the value spans {lines} lines; it must be a single line"
        ));
    }
    if bytes.contains(&b'\r') || bytes.contains(&0) {
        return Some("the value contains a carriage return or NUL byte".to_owned());
    }
    if std::str::from_utf8(bytes).is_err() {
        return Some("the value is not UTF-8".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_problems_never_quote_the_value() {
        let cases: [&[u8]; 5] = [
            b"",
            b"hunter2\nhunter2",
            b"hunter2\r",
            b"hunter2\0",
            b"hunter2\xff",
        ];
        for bytes in cases {
            let reason = value_problem(bytes).unwrap();
            assert!(!reason.contains("hunter2"), "{reason}");
        }
        assert!(value_problem(&vec![b'a'; MAX_SECRET_LEN + 1]).is_some());
        assert!(value_problem(b"fine value: with spaces").is_none());
    }
}
