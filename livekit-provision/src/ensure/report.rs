//! What a run of `ensure` reports and takes: its options, actions, warnings, binary state and
//! errors (the types `--json`, the RPC and embedders see). A leaf: the run itself is in
//! `mod.rs`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::binary::BinaryOptions;
use crate::config::ConfigError;
use crate::error_chain::ErrorReport;
use crate::fetch;
use crate::paths::ManagedFile;
use crate::publish::{PublishError, PublishOptions};
use crate::resolve::{CredentialSource, ResolveError, Warning};
use crate::server_check::ServerCheckError;
use crate::store::{SecretName, StoreError};
use crate::turn_tls::TlsIssue;

/// Why a managed file is (or would be) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteReason {
    /// It does not exist yet.
    Missing,
    /// It differs from what the current inputs render (changed inputs, or drift).
    Changed,
    /// A plain file written by an older tool: backed up and replaced by the managed layout.
    LegacyImport,
    /// A symlink we did not make: backed up (as a link) and replaced.
    ForeignSymlink,
    /// It could not be parsed or read: backed up and replaced.
    Unparsable,
}

/// One step of the plan; after applying, what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "action")]
#[non_exhaustive]
pub enum Action {
    /// A new API key/secret pair was minted and stored.
    MintCredentials {
        /// The new key (not secret); `null` in a dry run, which draws none ("a new key": the
        /// real run mints its own).
        key: Option<String>,
    },
    /// The store was empty; credentials live on disk were stored instead of minting.
    AdoptCredentials {
        /// The adopted key.
        key: String,
        /// The file they came from.
        from: ManagedFile,
    },
    /// A secret besides the API pair (`LIVEKIT_PROMETHEUS_PASSWORD`) was minted, or adopted
    /// from the live `livekit.yaml`, and stored.
    StoreSecret {
        /// Its name (the value is never reported).
        name: SecretName,
    },
    /// A managed file is written.
    WriteFile {
        /// Which one.
        file: ManagedFile,
        /// Why.
        reason: WriteReason,
    },
    /// A file was moved to `backups/` before being replaced.
    BackupFile {
        /// The path it was at.
        path: PathBuf,
        /// Where it is now.
        to: PathBuf,
    },
    /// Debris of a killed writer was removed.
    SweepDebris {
        /// What was removed.
        paths: Vec<PathBuf>,
    },
    /// livekit-server is (or would be) downloaded and installed.
    Install {
        /// The pinned version.
        version: String,
        /// The version it replaces, if any.
        replaces: Option<String>,
    },
    /// A kept binary of the pinned version was switched back in without a download.
    Reactivate {
        /// The version.
        version: String,
    },
    /// A TLS certificate was (or would be) obtained by ACME and made live (`tls:`).
    ObtainCertificate {
        /// The names it covers.
        names: Vec<String>,
        /// The ACME directory.
        directory: String,
        /// Why now: none yet, names changed, expired, renewal time.
        reason: String,
    },
}

/// Options of one [`ensure`](super::ensure) run.
pub struct EnsureOptions<'a> {
    /// Plan only: write nothing (not even to the store), download nothing.
    pub dry_run: bool,
    /// The clock (rotation grace).
    pub now: SystemTime,
    /// Addresses of this machine's interfaces (for the NAT warning); see [`crate::sys::local_addresses`].
    pub local_addresses: Vec<IpAddr>,
    /// How to get the binary.
    pub binary: BinaryOptions,
    /// Called once before waiting for another writer's lock, with its pid when known.
    pub on_lock_wait: &'a dyn Fn(Option<u32>),
    /// Publish options (crash-test seam).
    pub publish: PublishOptions<'a>,
    /// Progress of a download.
    pub fetch_events: Option<fetch::EventSink>,
    /// Called as the run enters each phase (`Resolving`, `Rendering`, `Publishing`; a download
    /// reports through `fetch_events`).
    pub on_phase: &'a dyn Fn(Phase),
}

/// The phase of a provisioning run, in order (the daemon's `status` reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Reading the secret store and the files on disk.
    Resolving,
    /// Rendering and checking the three files.
    Rendering,
    /// Writing a generation and switching `current`.
    Publishing,
    /// Downloading (and verifying) the livekit-server release.
    Downloading,
    /// Starting the media that are down (the daemon, after `ensure`).
    Starting,
}

impl std::fmt::Debug for EnsureOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsureOptions")
            .field("dry_run", &self.dry_run)
            .field("now", &self.now)
            .field("binary", &self.binary)
            .finish_non_exhaustive()
    }
}

impl Default for EnsureOptions<'_> {
    fn default() -> Self {
        Self {
            dry_run: false,
            now: crate::clock::system(),
            local_addresses: Vec::new(),
            binary: BinaryOptions::default(),
            on_lock_wait: &|_| {},
            publish: PublishOptions::default(),
            fetch_events: None,
            on_phase: &|_| {},
        }
    }
}

/// The state of the binary after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum BinaryState {
    /// `LIVEKIT_VERSION` is unset: control plane only.
    NotPinned,
    /// The operator's own binary (`livekit_bin`) is used; nothing is downloaded.
    External {
        /// Its path.
        path: PathBuf,
    },
    /// The pinned version is installed.
    Installed {
        /// The version.
        version: String,
    },
    /// The pinned version is not installed (dry run, offline, or the install failed).
    Pending {
        /// The pinned version.
        version: String,
    },
}

/// What a run did (or, for a dry run, would do). Serialized as the `--json` output of `ensure`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnsureReport {
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// What was done (or would be), in order. Empty on a converged node.
    pub actions: Vec<Action>,
    /// Things the operator should know.
    pub warnings: Vec<ReportedWarning>,
    /// The live API key (not secret); `null` in a dry run that would mint one (the key the real
    /// run mints is not known before it runs).
    pub api_key: Option<String>,
    /// Where the credentials came from.
    pub credentials: CredentialSource,
    /// The pinned version, when set.
    pub version: Option<String>,
    /// The binary after this run.
    pub binary: BinaryState,
    /// The live generation of the files.
    pub generation: Option<String>,
    /// While a rotation grace is in force (the previous key is still in `livekit.yaml`): when
    /// it ends (RFC 3339). The first run after it removes that key; the daemon runs then.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::clock::optional_rfc3339"
    )]
    #[schemars(with = "Option<String>")]
    pub grace_until: Option<SystemTime>,
}

/// A warning with its human message, as serialized in reports.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportedWarning {
    /// The typed warning.
    #[serde(flatten)]
    pub warning: Warning,
    /// One line for a human.
    pub message: String,
}

impl From<Warning> for ReportedWarning {
    fn from(warning: Warning) -> Self {
        let message = warning.message();
        Self { warning, message }
    }
}

impl EnsureReport {
    /// True when nothing was (or would be) changed.
    pub fn is_noop(&self) -> bool {
        self.actions.is_empty()
    }

    /// True when the binary could not be installed (files were still provisioned).
    pub fn is_incomplete(&self) -> bool {
        !self.dry_run && matches!(self.binary, BinaryState::Pending { .. })
    }

    /// Why the run is incomplete, as the one error every face shows (the CLI's `error:` and
    /// `hint:` lines, its `--json` `error` object, the daemon's `last_error` and `hint`): what
    /// failed with its innermost cause, and the hint built from where the release was looked
    /// for. `None` when the run is complete.
    pub fn failure(&self) -> Option<ErrorReport> {
        let BinaryState::Pending { version } = &self.binary else {
            return None;
        };
        if self.dry_run {
            return None;
        }
        let failed = self.warnings.iter().find_map(|w| match &w.warning {
            Warning::InstallFailed { reason, hint } => Some((reason, hint)),
            _ => None,
        });
        Some(match failed {
            Some((reason, hint)) => ErrorReport::message(
                format!("livekit-server {version} was not installed: {reason}"),
                hint.clone(),
            ),
            None => ErrorReport::message(
                format!("livekit-server {version} is not installed"),
                Some("it is installed by the next run that may download".to_owned()),
            ),
        })
    }
}

/// Why `ensure` failed. Unless the variant says otherwise, nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnsureError {
    /// The state directory could not be prepared or locked.
    #[error(transparent)]
    State(PublishError),
    /// `provision.yaml` or `extra.yaml` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secrets could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The files could not be published (the previous set is still in place).
    #[error(transparent)]
    Publish(PublishError),
    /// After publishing, the files on disk did not read back as the set just written.
    #[error("after writing, the files in {} do not agree: {reason}", state.display())]
    Verify {
        /// The state directory.
        state: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// The TURN/TLS certificate or key would stop livekit-server (or TURN/TLS): refused before
    /// anything is written.
    #[error(transparent)]
    TurnTls(#[from] TlsIssue),
    /// An invalid `LIVEKIT_SHA256` in the store.
    #[error("secret LIVEKIT_SHA256 is not a SHA-256 hex digest")]
    InvalidPinnedDigest,
    /// The livekit-server binary on this node refused the new `livekit.yaml`; nothing was
    /// published.
    #[error(transparent)]
    ServerRefused(#[from] ServerCheckError),
    /// `tls:` is set, no certificate can serve, and none could be obtained.
    #[error(transparent)]
    Certificate(#[from] crate::tls::CertificateError),
}

impl crate::error_chain::Hint for EnsureError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::State(e) | Self::Publish(e) => e.hint(),
            Self::Config(e) => e.hint(),
            Self::Resolve(e) => e.hint(),
            Self::TurnTls(e) => Some(e.hint()),
            Self::Verify { .. } => Some("run `livekit-provision check` for details".to_owned()),
            Self::ServerRefused(e) => e.hint(),
            Self::Certificate(e) => Some(e.hint.clone()),
            Self::InvalidPinnedDigest => Some(
                "set it to the 64 hex digits of the release tarball's SHA-256, or remove it"
                    .to_owned(),
            ),
        }
    }
}

impl From<StoreError> for EnsureError {
    fn from(e: StoreError) -> Self {
        Self::Resolve(ResolveError::Store(e))
    }
}
