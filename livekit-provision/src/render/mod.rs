//! Pure rendering of the three managed files, and their parsers.

use std::fmt;

use crate::paths::ManagedFile;

/// The bytes of the three managed files, as one consistent set.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `livekit.yaml`
    pub livekit_yaml: String,
    /// `backend.env`
    pub backend_env: String,
    /// `runtime.json`
    pub runtime_json: String,
}

impl Rendered {
    /// The text of one file.
    pub fn get(&self, file: ManagedFile) -> &str {
        match file {
            ManagedFile::LivekitYaml => &self.livekit_yaml,
            ManagedFile::BackendEnv => &self.backend_env,
            ManagedFile::RuntimeJson => &self.runtime_json,
        }
    }
}

/// The files hold secrets: print only their sizes.
impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field(
                "livekit_yaml",
                &format_args!("<{} bytes>", self.livekit_yaml.len()),
            )
            .field(
                "backend_env",
                &format_args!("<{} bytes>", self.backend_env.len()),
            )
            .field(
                "runtime_json",
                &format_args!("<{} bytes>", self.runtime_json.len()),
            )
            .finish()
    }
}
