//! The global options and what they resolve to.

use std::path::PathBuf;

use clap::Args;
use livekit_provision::BinaryOptions;
use livekit_provision::{ErrorReport, Platform, Secret, StateDir, StoreSpec};

use crate::style::ColorWhen;

/// The heading the options both binaries take are listed under in every `--help`.
pub const GLOBAL_HEADING: &str = "Global options";

/// The options both binaries take, on every command (DESIGN.md: the daemon takes the CLI's
/// global options; the release options are [`ReleaseArgs`], on the commands they affect).
/// `Debug` hides `--secrets`: it may hold a password.
#[derive(Clone, Default, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
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

    /// Print more, one level per -v (CLI: info, debug, trace; daemon: debug, trace), and every
    /// cause of an error; RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colour on stderr: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it),
    /// always or never
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "WHEN",
        hide_possible_values = true
    )]
    pub color: ColorWhen,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("state_dir", &self.state_dir)
            .field("secrets", &self.secrets.as_ref().map(|_| "****"))
            .field("json", &self.json)
            .field("quiet", &self.quiet)
            .field("verbose", &self.verbose)
            .field("color", &self.color)
            .finish()
    }
}

/// Where livekit-server comes from: on the commands that install or run it (the CLI's `ensure`,
/// `install`, `check`, `start`, `restart`, `status`, `exec`, `secrets rotate`; the daemon),
/// listed under the same heading as [`GlobalArgs`]. `Debug` hides `--release-url`: it may hold
/// a password.
#[derive(Clone, Default, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct ReleaseArgs {
    /// Base URL of release downloads (https://, http:// or file:///DIR holding
    /// v<ver>/livekit_<ver>_linux_<arch>.tar.gz and v<ver>/checksums.txt)
    #[arg(long, env = "LIVEKIT_PROVISION_RELEASE_URL", value_name = "URL")]
    pub release_url: Option<String>,

    /// Use this livekit-server binary; never download one
    #[arg(long, value_name = "PATH")]
    pub livekit_bin: Option<PathBuf>,
}

impl std::fmt::Debug for ReleaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseArgs")
            .field("release_url", &self.release_url.as_ref().map(|_| "****"))
            .field("livekit_bin", &self.livekit_bin)
            .finish()
    }
}

impl ReleaseArgs {
    /// These options, each taken from `self` when given, else from `outer` (the same options
    /// given before the command: `livekit-provision --release-url URL ensure`).
    #[must_use]
    pub fn or(&self, outer: &Self) -> Self {
        Self {
            release_url: self
                .release_url
                .clone()
                .or_else(|| outer.release_url.clone()),
            livekit_bin: self
                .livekit_bin
                .clone()
                .or_else(|| outer.livekit_bin.clone()),
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
        #[command(flatten)]
        release: ReleaseArgs,
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
    fn release_options_after_the_command_win_over_those_before() {
        let before = ReleaseArgs {
            release_url: Some("file:///before".into()),
            livekit_bin: Some("/before".into()),
        };
        let after = ReleaseArgs {
            release_url: Some("file:///after".into()),
            livekit_bin: None,
        };
        let both = after.or(&before);
        assert_eq!(both.release_url.as_deref(), Some("file:///after"));
        assert_eq!(both.livekit_bin, Some(PathBuf::from("/before")));
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
