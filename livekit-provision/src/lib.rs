//! Provision a LiveKit media node and keep it consistent.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map and the invariants.

#![deny(missing_docs)]

pub mod inputs;
pub mod paths;
pub mod secret;
pub mod settings;
pub mod version;

pub use inputs::{Credentials, ExtraOverlay, RedisRouting, RenderInputs};
pub use paths::{ManagedFile, StateDir};
pub use secret::{ApiKey, InvalidValue, Secret};
pub use settings::{LogLevel, Settings};
pub use version::LivekitVersion;
pub mod fsio;
pub mod render;
pub mod supervise;

pub use render::Rendered;
pub use supervise::{
    Ensured, MediaProcess, ProcessSpec, ProcessStatus, SuperviseError, Supervisor,
};
