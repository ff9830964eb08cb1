//! What can go wrong while preparing the state directory, locking it or publishing into it.

use std::io;
use std::path::PathBuf;

#[cfg(feature = "testing")]
use super::Checkpoint;

/// An error of the `publish` module. Every variant names the path it acted on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The state directory (or a directory inside it) exists but is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },

    /// The state directory exists but this process may not write into it.
    #[error("state directory {path} is not writable")]
    NotWritable {
        /// The state directory.
        path: PathBuf,
        /// Why `access(W_OK)` refused.
        #[source]
        source: io::Error,
    },

    /// Something that is neither a file nor a symlink (a directory, a socket…) sits where a
    /// managed file or the `current` link belongs; it is not ours, so we do not move it.
    #[error("{path} is not a regular file or symlink; refusing to replace it")]
    NotAFile {
        /// The offending path.
        path: PathBuf,
    },

    /// The state lock could not be taken.
    #[error("could not lock {path}")]
    Lock {
        /// The lock file (`run/lock`).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `publish` was handed the lock of another state directory.
    #[error("the lock held is {held}, but publishing into the state directory needs {needed}")]
    WrongLock {
        /// The lock file the caller holds.
        held: PathBuf,
        /// The lock file of the state directory being published into.
        needed: PathBuf,
    },

    /// A filesystem operation failed.
    #[error("could not {op} {path}")]
    Io {
        /// What we were doing ("create directory", "rename", …).
        op: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The checkpoint hook of `PublishOptions` stopped the publish (tests only).
    #[cfg(feature = "testing")]
    #[error("publish stopped at checkpoint {checkpoint:?}")]
    Interrupted {
        /// The step that had just completed.
        checkpoint: Checkpoint,
        /// The hook's error.
        #[source]
        source: io::Error,
    },
}

impl PublishError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }


}

impl crate::error_chain::Hint for PublishError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotADirectory { path } => Some(format!(
                "move {} aside, or pass --state-dir naming a directory",
                path.display()
            )),
            Self::NotWritable { path, .. } => Some(permission_hint(path)),
            Self::NotAFile { path } => Some(format!(
                "move {} out of the state directory by hand, then run again",
                path.display()
            )),
            Self::Lock { path, source } | Self::Io { path, source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    Some(permission_hint(path))
                }
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Some(format!(
                    "free some disk space on the filesystem of {}",
                    path.display()
                )),
                io::ErrorKind::NotFound => Some(
                    "run `livekit-provision ensure`, which prepares the state directory".to_owned(),
                ),
                io::ErrorKind::NotADirectory => Some(format!(
                    "a component of {} is a file; pass --state-dir naming a directory",
                    path.display()
                )),
                _ => None,
            },
            Self::WrongLock { .. } => None,
            #[cfg(feature = "testing")]
            Self::Interrupted { .. } => None,
        }
    }
}

fn permission_hint(path: &std::path::Path) -> String {
    format!(
        "check the owner and mode of {} (`ls -ld`), or pass --state-dir naming a writable directory",
        path.display()
    )
}
