//! Provision a LiveKit media node and keep it consistent.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map and the invariants.

#![deny(missing_docs)]

mod backoff;
pub mod check;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod ensure;
pub mod fetch;
pub mod fleet;
pub mod fsio;
mod hex;
pub mod inputs;
pub mod media;
pub mod paths;
pub mod publish;
pub mod redact;
pub mod render;
pub mod resolve;
pub mod rotate;
pub mod secret;
pub mod settings;
pub mod store;
pub mod supervise;
pub mod sys;
pub mod token;
pub mod triple;
pub mod validate;
pub mod version;

pub use check::{CheckOptions, CheckReport, Code, Finding, Severity, check};
pub use config::{ConfigError, OperatorConfig};
pub use ensure::{Action, EnsureError, EnsureOptions, EnsureReport, ensure};
pub use fetch::{
    FetchError, InstallNeed, InstallOutcome, InstallRequest, InstalledBinary, Platform,
    ReleaseBase, install, installed, needs_install, rollback, verify_installed,
};
pub use fleet::{FleetDifference, FleetReport, fleet_check};
pub use inputs::{Credentials, ExtraOverlay, RedisRouting, RenderInputs, RoutingNodes};
pub use paths::{ManagedFile, StateDir};
pub use publish::{
    Backup, Checkpoint, CurrentState, FixedPath, GenerationId, PublishError, PublishOptions,
    PublishOutcome, StateLock, publish,
};
pub use render::{
    BackendEnv, ExtraError, LivekitYaml, ParseError, ParsedFiles, Rendered, RuntimeJson, expected,
    livekit_url, render,
};
pub use resolve::{CredentialSource, ResolveError, Warning};
pub use secret::{ApiKey, InvalidValue, Secret};
pub use settings::{LogLevel, Settings};
pub use store::{Added, SecretName, SecretStore, StoreError, StoreSpec};
pub use supervise::{
    Ensured, MediaProcess, ProcessSpec, ProcessStatus, SuperviseError, Supervisor,
};
pub use token::{Claims, TokenError, TokenRequest, VideoGrants};
pub use triple::{DiskTriple, NotProvisioned, provisioned_credentials};
pub use version::LivekitVersion;
