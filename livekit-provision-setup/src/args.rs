//! The global options and what they resolve to.

use std::path::PathBuf;

use clap::Args;
use livekit_provision::BinaryOptions;
use livekit_provision::{ErrorReport, Platform, Secret, StateDir, StoreSpec};

/// The options both binaries take (DESIGN.md: the daemon takes the CLI's global options).
/// `Debug` hides `--secrets` and `--release-url`: either may hold a password.
#[derive(Clone, Default, Args)]
pub struct GlobalArgs {
    /// State directory [default: $XDG_STATE_HOME/livekit-provision or ~/.local/state/livekit-provision]
    #[arg(
        long,
        global = true,
        env = "LIVEKIT_PROVISION_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,

    /// Secret store (`--help` shows the forms)
    #[arg(
        help = "Secret store: file:PATH, exec:PROGRAM or redis://[user:pass@]host:port[/db] [default: file:<state>/secrets.json]",
        long,
        global = true,
        env = "LIVEKIT_PROVISION_SECRETS",
        value_name = "SPEC"
    )]
    pub secrets: Option<String>,

    /// Print machine-readable JSON on stdout (the daemon prints no data: its answers are on its socket)
    #[arg(long, global = true)]
    pub json: bool,

    /// Print less: errors only
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Print more, one level per -v (CLI: info, debug, trace; daemon: debug, trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Base URL of release downloads (https://, http:// or file://)
    #[arg(
        long,
        global = true,
        env = "LIVEKIT_PROVISION_RELEASE_URL",
        value_name = "URL"
    )]
    pub release_url: Option<String>,

    /// Use this livekit-server binary; never download one
    #[arg(long, global = true, value_name = "PATH")]
    pub livekit_bin: Option<PathBuf>,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("state_dir", &self.state_dir)
            .field("secrets", &self.secrets.as_ref().map(|_| "****"))
            .field("json", &self.json)
            .field("quiet", &self.quiet)
            .field("verbose", &self.verbose)
            .field("release_url", &self.release_url.as_ref().map(|_| "****"))
            .field("livekit_bin", &self.livekit_bin)
            .finish()
    }
}

impl GlobalArgs {
    /// The state directory: `--state-dir` (made absolute), else the XDG default.
    pub fn state(&self) -> Result<StateDir, ErrorReport> {
        match &self.state_dir {
            Some(dir) => std::path::absolute(dir).map(StateDir::new).map_err(|e| {
                ErrorReport::message(
                    format!("cannot resolve state directory {}: {e}", dir.display()),
                    None,
                )
            }),
            None => StateDir::default_location(|k| std::env::var_os(k)).ok_or_else(|| {
                ErrorReport::message(
                    "cannot find a state directory: neither XDG_STATE_HOME nor HOME is set to an absolute path",
                    Some("pass --state-dir DIR or set LIVEKIT_PROVISION_STATE_DIR".to_owned()),
                )
            }),
        }
    }

    /// The secret store: `--secrets`, else the file store of `state`.
    pub fn store_spec(&self, state: &StateDir) -> Result<StoreSpec, ErrorReport> {
        match &self.secrets {
            Some(text) => StoreSpec::parse(text).map_err(|e| ErrorReport::of(&e)),
            None => Ok(StoreSpec::default_for(state)),
        }
    }

    /// How `ensure` gets the binary: `--release-url`, `--livekit-bin`, `GITHUB_TOKEN` (sent only
    /// to GitHub hosts, never logged), this machine's platform.
    pub fn binary_options(&self) -> BinaryOptions {
        BinaryOptions {
            release_url: self.release_url.clone(),
            livekit_bin: self.livekit_bin.clone(),
            github_token: github_token(),
            platform: Platform::current(),
            offline: false,
        }
    }
}

/// `GITHUB_TOKEN` from the environment, when set and not empty.
fn github_token() -> Option<Secret> {
    std::env::var("GITHUB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Both {
        #[command(flatten)]
        global: GlobalArgs,
    }

    #[test]
    fn the_definition_is_consistent() {
        Both::command().debug_assert();
    }

    #[test]
    fn a_relative_state_dir_is_made_absolute() {
        let args = Both::try_parse_from(["x", "--state-dir", "rel/state"]).unwrap();
        let state = args.global.state().unwrap();
        assert!(state.root().is_absolute());
        assert!(state.root().ends_with("rel/state"));
    }

    #[test]
    fn quiet_and_verbose_exclude_each_other() {
        assert!(Both::try_parse_from(["x", "-q", "-v"]).is_err());
        let args = Both::try_parse_from(["x", "-vv"]).unwrap();
        assert_eq!(args.global.verbose, 2);
    }

    #[test]
    fn debug_hides_the_store_spec_and_the_release_url() {
        let args = Both::try_parse_from([
            "x",
            "--secrets",
            "redis://:hunter2@10.0.0.5:6379/0",
            "--release-url",
            "https://u:pa55@mirror/",
        ])
        .unwrap();
        let text = format!("{args:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("pa55"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_store_spec_names_it_with_a_hint() {
        let args = Both::try_parse_from(["x", "--secrets", "bogus:x"]).unwrap();
        let state = StateDir::new("/srv/lk");
        let report = args.global.store_spec(&state).unwrap_err();
        assert!(report.message.contains("bogus:x"), "{report}");
        assert!(report.hint.is_some());
    }
}
