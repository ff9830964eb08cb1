//! Provision a LiveKit media node and keep it consistent.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map and the invariants.
//!
//! # Embedding
//! A host service (hero_livekit_server, say) uses three pieces of this crate: [`ensure()`] to
//! provision a state directory from any [`SecretStore`], [`provisioned_credentials`] to read what
//! was provisioned, and [`token::mint`] for access tokens; the `livekit-provision-daemon` crate
//! serves the control plane inside the host's own tokio runtime. What an operator does
//! besides `ensure` (store a setting, install or roll back livekit-server, preview the files) is
//! in [`admin`], the functions behind the CLI's and the daemon's commands of the same names.
//! `livekit-provision-daemon/examples/embed.rs` is a runnable host with its own in-process store
//! (`cargo run -p livekit-provision-daemon --example embed`).
//!
//! ## Provision a node
//! [`ensure()`] mints the API key and secret into the store when it answers "absent" (never when
//! it could not check), renders and publishes `livekit.yaml`, `backend.env` and
//! `runtime.json` atomically, and installs the pinned binary when `LIVEKIT_VERSION` is set. A
//! second call on a converged node changes nothing.
//!
//! ```
//! use livekit_provision::{EnsureOptions, StateDir, StoreSpec, ensure};
//!
//! let dir = tempfile::tempdir()?;
//! let state = StateDir::new(dir.path().join("state"));
//! // Any `SecretStore` works; here the default: a 0600 JSON file in the state directory.
//! let store = StoreSpec::default_for(&state).open()?;
//! let options = EnsureOptions { local_addresses: Vec::new(), ..EnsureOptions::default() };
//!
//! let first = ensure(&state, store.as_ref(), &options)?;
//! assert!(first.api_key.is_some_and(|k| k.starts_with("API")));
//! let again = ensure(&state, store.as_ref(), &options)?;
//! assert!(again.is_noop(), "a converged node is left alone");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Read the provisioned credentials and mint tokens
//! Linked services read the credentials the three files agree on ([`provisioned_credentials`]:
//! an error when they disagree or are missing, never a guess) and sign tokens with them; the
//! limits of the running `livekit.yaml` ([`validate::TokenLimits::provisioned`]) refuse a token
//! livekit-server would refuse at join.
//!
//! ```
//! use std::time::SystemTime;
//!
//! use livekit_provision::validate::TokenLimits;
//! use livekit_provision::{
//!     EnsureOptions, StateDir, StoreSpec, TokenRequest, VideoGrants, ensure,
//!     provisioned_credentials, token,
//! };
//!
//! # let dir = tempfile::tempdir()?;
//! # let state = StateDir::new(dir.path().join("state"));
//! # let store = StoreSpec::default_for(&state).open()?;
//! # let options = EnsureOptions { local_addresses: Vec::new(), ..EnsureOptions::default() };
//! # ensure(&state, store.as_ref(), &options)?;
//! let creds = provisioned_credentials(&state)?;
//! let mut request = TokenRequest::new("alice", VideoGrants::join("standup"));
//! request.limits = TokenLimits::provisioned(&state);
//! let now = SystemTime::now();
//! let jwt = token::mint(&creds, &request, now)?;
//!
//! let claims = token::verify(&jwt, |key| (key == creds.key.as_str()).then(|| creds.secret.clone()), now)?;
//! assert_eq!(claims.sub, "alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Run the control plane in the host's runtime
//! The control plane — media supervision, the control loop and its JSON-RPC methods — is the
//! `livekit-provision-daemon` crate, a library over this one (and the daemon binary).

#![deny(missing_docs)]
// Every type the API hands out can be named by its user (checked without the `testing` feature).
#![warn(unnameable_types)]

/// Declares internal modules: `mod m;` (or `pub(crate) mod m;`) as written, or `pub mod m;`
/// hidden from the docs with the `testing` feature, for this workspace's integration tests,
/// benches, stand-ins and fuzz targets, which drive the mechanisms directly. An embedding service
/// never needs them.
macro_rules! internal {
    ($($(#[$attr:meta])* $vis:vis mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        $vis mod $name;
    )*};
}

/// Declares an item of a public module that only the crate uses: `pub(crate)`, or `pub` but
/// hidden from the docs with the `testing` feature (the workspace's tests drive it directly).
macro_rules! internal_item {
    ($(#[$attr:meta])* $kw:ident $($rest:tt)*) => {
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub $kw $($rest)*
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        pub(crate) $kw $($rest)*
    };
}

pub mod admin;
pub mod backoff;
mod binary;
pub mod check;
mod child;
pub mod clock;
mod config;
pub mod config_diff;
pub mod ensure;
mod error_chain;
pub mod fetch;
pub mod fleet;
pub mod fsio;
pub mod hex;
pub mod hold;
mod keyring;
mod node_ip;
mod paths;
pub mod redact;
pub mod rotate;
pub mod secret;
pub mod settings;
mod shell;
mod snapshot;
pub mod store;
mod sys;
pub mod tls;
pub mod token;
pub mod validate;
mod version;

internal! {
    mod config_model;
    mod inputs;
    mod publish;
    mod render;
    mod resolve;
    mod server_check;
    mod triple;
    mod turn_tls;
}

pub use binary::{BinaryOptions, BinarySource, LivekitBinary};
pub use check::{CheckOptions, CheckReport, Code, Finding, Severity, check};
pub use config::{ConfigError, OperatorConfig};
pub use config_model::{ModelError, Release, overrides_config};
pub use ensure::{Action, EnsureError, EnsureOptions, EnsureReport, Reconciled, ensure, reconcile};
pub use error_chain::{ErrorReport, Hint, one_line};
pub use fetch::{
    FetchError, InstallNeed, InstallOutcome, InstalledBinary, Platform, ReleaseBase, installed,
    needs_install, verify_installed,
};
pub use fleet::{FleetDifference, FleetReport, fleet_check};
pub use fsio::write_file as write_atomically;
pub use inputs::{Credentials, ExtraOverlay, RedisRouting, RoutingNodes};
pub use paths::{ManagedFile, StateDir};
pub use publish::PublishError;
pub use render::{
    BackendEnv, ExtraError, LivekitYaml, ParseError, RuntimeJson, YamlSyntaxError, livekit_url,
};
pub use resolve::{CredentialSource, ResolveError, Warning};
pub use secret::{ApiKey, InvalidValue, Secret};
pub use server_check::ServerCheckError;
pub use settings::{LogLevel, Settings, TurnSettings, TurnSettingsError};
pub use snapshot::NodeSnapshot;
pub use store::{Added, SecretName, SecretStore, StoreError, StoreSpec};
pub use sys::local_addresses;
pub use token::{Claims, TokenError, TokenRequest, VideoGrants};
pub use triple::{Disagreement, DiskTriple, NotProvisioned, Parsed, provisioned_credentials};
pub use turn_tls::TlsIssue;
pub use version::LivekitVersion;
