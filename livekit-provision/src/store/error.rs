//! What can go wrong talking to a secret store. "Could not check" is always one of these, never
//! `Ok(None)`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::SecretName;

/// The store operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// [`super::SecretStore::get`].
    Get,
    /// [`super::SecretStore::add_if_absent`].
    Add,
    /// [`super::SecretStore::set`].
    Set,
}

impl StoreOp {
    /// The verb the exec helper receives (`get`, `add`, `set`).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Add => "add",
            Self::Set => "set",
        }
    }
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "read",
            Self::Add => "add",
            Self::Set => "set",
        })
    }
}

/// A secret-store failure. Every variant names the store (credentials redacted) and, where one
/// was involved, the secret's *name*; none ever holds a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The `--secrets` spec could not be parsed.
    #[error("invalid secret store {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec, with any password replaced by `****`.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec is understood but this build cannot open such a store.
    #[error("secret store {store} is not supported: {reason}")]
    NotSupported {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
    /// A value we were asked to write cannot be stored (empty, several lines, too long).
    #[error("cannot {op} secret {name} in {store}: {reason}")]
    InvalidValue {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// What is wrong with the value (never the value itself).
        reason: String,
    },
    /// The store could not be reached or did not answer.
    #[error("could not {op} secret {name} in {store}")]
    Unavailable {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Redis store could not be read or written (down, refused our credentials, timed out,
    /// or our key holds something unusable). Never treated as "absent".
    #[error("could not {op} secret {name} in {store}")]
    Redis {
        /// The store, password redacted.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// What Redis did.
        #[source]
        source: Box<super::RedisError>,
    },
    /// A fleet coordination step (a node's report, a lease) failed on Redis.
    #[error("could not {what} in {store}")]
    Coordination {
        /// The store, password redacted.
        store: String,
        /// What was being done (`publish this node's report`, `take the lease restart`).
        what: String,
        /// What Redis did.
        #[source]
        source: Box<super::RedisError>,
    },
    /// Reading or writing the store's files failed.
    #[error("could not {op} secret {name} in {store}: I/O error on {}", path.display())]
    Io {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The file or directory acted on.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// We may not read or write the store's files.
    #[error("could not {op} secret {name} in {store}: permission denied on {}", path.display())]
    Permission {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The file or directory acted on.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The store's file exists but is not a JSON object of strings. Never treated as "absent".
    #[error("could not {op} secret {name}: {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The corrupt file.
        path: PathBuf,
        /// What is wrong (names keys, never values).
        reason: String,
        /// The JSON syntax error, when that is the problem.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The exec helper could not be started.
    #[error("could not {op} secret {name}: cannot run helper {}", program.display())]
    HelperNotRunnable {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The helper program.
        program: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The exec helper exited with a code the protocol does not define, or was killed.
    #[error(
        "could not {op} secret {name}: helper {store} {}{}",
        exit_text(*code),
        if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
    )]
    HelperFailed {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The exit code; `None` when killed by a signal.
        code: Option<i32>,
        /// The first lines of the helper's stderr, bounded, with any value we sent masked.
        stderr: String,
    },
    /// The exec helper did not finish in time; its process group was killed.
    #[error(
        "could not {op} secret {name}: helper {store} did not finish within {}",
        humantime::format_duration(*timeout)
    )]
    HelperTimedOut {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// The time limit.
        timeout: Duration,
    },
    /// The exec helper exited 0 but its output is not one value on one line.
    #[error("could not {op} secret {name}: helper {store} printed an unusable value: {reason}")]
    HelperGarbage {
        /// The store.
        store: String,
        /// The secret's name.
        name: SecretName,
        /// The operation.
        op: StoreOp,
        /// What is wrong with the output (never the output itself).
        reason: String,
    },
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited with code {code}"),
        None => "was killed by a signal".to_owned(),
    }
}

impl StoreError {
    /// An I/O failure, classified as [`StoreError::Permission`] when it is one.
    pub(crate) fn io(
        store: &str,
        name: &SecretName,
        op: StoreOp,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        let (store, name, path) = (store.to_owned(), name.clone(), path.into());
        if source.kind() == io::ErrorKind::PermissionDenied {
            Self::Permission {
                store,
                name,
                op,
                path,
                source,
            }
        } else {
            Self::Io {
                store,
                name,
                op,
                path,
                source,
            }
        }
    }
}

impl crate::error_chain::Hint for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::InvalidSpec { .. } => Some(
                "use file:PATH, exec:PROGRAM or \
                 redis://[user:pass@]host:port[/db][?prefix=NAME&timeout=2s] (rediss:// for TLS)"
                    .to_owned(),
            ),
            Self::NotSupported { .. } => {
                Some("use a file:PATH, exec:PROGRAM or redis:// secret store".to_owned())
            }
            Self::Redis { source, .. } | Self::Coordination { source, .. } => source.hint(),
            Self::InvalidValue { .. } => {
                Some("values must be one non-empty line of at most 4096 bytes".to_owned())
            }
            Self::Io { path, source, .. } => crate::fsio::read_hint(source, path).or_else(|| {
                Some("nothing was minted or changed; fix the store and run again".to_owned())
            }),
            Self::Unavailable { .. } => {
                Some("nothing was minted or changed; fix the store and run again".to_owned())
            }
            Self::Permission { path, .. } => Some(format!(
                "check the owner and mode of {} (run as the user that owns the state directory)",
                path.display()
            )),
            Self::Corrupt { path, .. } => Some(format!(
                "restore {} from a backup, or move it aside to start over (new credentials will \
                 then be minted and every client must be given them)",
                path.display()
            )),
            Self::HelperNotRunnable { program, .. } => Some(format!(
                "check that {} exists and is executable (exec: takes one program, no arguments)",
                program.display()
            )),
            Self::HelperFailed { .. } | Self::HelperGarbage { .. } => Some(
                "a helper prints the value and exits 0, exits 3 when absent, 4 when `add` finds \
                 the value present; anything else is an error"
                    .to_owned(),
            ),
            Self::HelperTimedOut { .. } => {
                Some("check that the helper does not wait for input or a prompt".to_owned())
            }
        }
    }
}
