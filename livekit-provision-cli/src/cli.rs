//! The definition of the command-line interface (docs/DESIGN.md "CLI").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use livekit_provision_daemon::supervise::{LIVEKIT_SERVER, LK_BACKEND, TLS_FRONT};
pub use livekit_provision_setup::{GlobalArgs, ReleaseArgs};

/// Turn a bare Linux server into a working LiveKit media node, and keep it working.
#[derive(Debug, Parser)]
#[command(
    name = "livekit-provision",
    version,
    styles = livekit_provision_setup::clap_styles()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Accepted before the command too (`livekit-provision --release-url URL ensure`); the
    /// commands they affect list them.
    #[command(flatten)]
    pub release: ReleaseArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The release options in force: the command's own, else those given before it.
    pub fn release(&self) -> ReleaseArgs {
        let own = match &self.command {
            Command::Ensure(a) => &a.release,
            Command::Check(a) => &a.release,
            Command::Install(a) => &a.release,
            Command::Start(a) => &a.release,
            Command::Restart(a) => &a.release,
            Command::Exec(a) => &a.release,
            Command::Secrets(SecretsCommand::Rotate(a)) => &a.release,
            _ => return self.release.clone(),
        };
        own.or(&self.release)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile the node: secrets, config files, binary (and media with --start)
    Ensure(EnsureArgs),
    /// Read-only diagnosis with hints; exit 0 healthy, 1 problems
    Check(CheckArgs),
    /// Print the files ensure would write (secrets redacted)
    Render(RenderArgs),
    /// Download, verify and install livekit-server
    Install(InstallArgs),
    /// Switch bin/livekit-server back to the previously installed version
    Rollback,
    /// Read and change the secrets in the secret store
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Print a LiveKit access token signed with the provisioned credentials
    Token(TokenArgs),
    /// Start the media processes that are not running
    Start(StartArgs),
    /// Stop the media processes (drains calls)
    Stop(StopArgs),
    /// Restart the media processes (drains calls)
    Restart(RestartArgs),
    /// Show the media processes and provisioning state
    Status,
    /// Print the last lines of the media logs; --follow keeps printing new ones
    Logs(LogsArgs),
    /// Become a media process in the foreground, for an outside supervisor (media_owner:
    /// external); exit 78 when the state is not ready for it
    Exec(ExecArgs),
    /// Print systemd units for media_owner: external (livekit-server, lk-backend, the daemon)
    Units(UnitsArgs),
    /// Print a shell completion script (e.g. `livekit-provision completions bash > ...`)
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `livekit-provision man | man -l -`
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct EnsureArgs {
    /// Print the plan and change nothing; exit 0 nothing to do, 2 changes pending
    #[arg(long)]
    pub dry_run: bool,
    /// Also start the media processes that are not running
    #[arg(long, conflicts_with = "dry_run")]
    pub start: bool,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also compare this node's credentials with the shared secret store
    #[arg(long)]
    pub fleet: bool,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Print secrets in clear text
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Version to install [default: the pinned LIVEKIT_VERSION]
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Reinstall even when the version is already installed
    #[arg(long)]
    pub force: bool,
    /// Expected SHA-256 of the release tarball (instead of checksums.txt)
    #[arg(long, value_name = "HEX", env = "LIVEKIT_SHA256")]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List the known secrets, where each comes from, values redacted
    List,
    /// Print one value (the one place a secret is shown, for scripts)
    Get {
        /// Secret name, e.g. LIVEKIT_API_SECRET
        name: String,
    },
    /// Store a value (validated); `-` reads it from stdin
    Set {
        /// Secret name, e.g. LIVEKIT_VERSION
        name: String,
        /// The value, or `-` to read it from stdin (keeps it out of shell history and `ps`)
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Replace the live LIVEKIT_API_KEY or LIVEKIT_API_SECRET at once (every token in use
        /// then fails); without it that is refused, and `secrets rotate` is the safe way
        #[arg(long)]
        force: bool,
    },
    /// Rotate the API key: stage a new pair, then --promote it once livekit-server has loaded it
    ///
    /// Staging lists the new key in livekit.yaml beside the current one; nothing signs with it
    /// yet. livekit-server loads it when it restarts (`livekit-provision restart` when no call is
    /// in progress); then `--promote` switches every signer to it, and the previous key stays
    /// accepted for --grace. --force does both at once.
    Rotate(RotateArgs),
}

/// `secrets rotate`: stage (default), `--promote` or `--force`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Once the new key is promoted, keep the previous one accepted this long (e.g. 1h, at most
    /// 30 days), so tokens already issued keep working
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Option<std::time::Duration>,
    /// Retire the previous key by this long from now at the latest (e.g. 1d, at most 30 days):
    /// its grace is never extended past it, accepting that participants must rejoin
    #[arg(long, value_name = "DURATION", value_parser = parse_retire_by)]
    pub retire_by: Option<std::time::Duration>,
    /// Promote the staged key now: every signer switches to it. Verifies nothing but that
    /// livekit.yaml lists it; run it once livekit-server has loaded it (after a restart)
    #[arg(long, conflicts_with_all = ["grace", "retire_by", "force"])]
    pub promote: bool,
    /// Replace the key at once (stage and promote): tokens signed with the new key are
    /// refused until livekit-server restarts
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    parse_bounded(text, livekit_provision::rotate::ScheduleParam::Grace)
}

fn parse_retire_by(text: &str) -> Result<std::time::Duration, String> {
    parse_bounded(text, livekit_provision::rotate::ScheduleParam::RetireBy)
}

/// A duration, refused beyond the longest grace as the RPC refuses it.
fn parse_bounded(
    text: &str,
    param: livekit_provision::rotate::ScheduleParam,
) -> Result<std::time::Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    livekit_provision::rotate::check_duration(param, duration).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Participant identity (`sub`)
    #[arg(long)]
    pub identity: String,
    /// Room to join
    #[arg(long)]
    pub room: Option<String>,
    /// Display name
    #[arg(long)]
    pub name: Option<String>,
    /// Validity (e.g. 6h, 30m)
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// Grant room administration (create, list, admin, record)
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub stop: StopArgs,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// How long livekit-server may drain its calls (no new rooms; the calls go on) before it is
    /// ended: for `restart` with SIGKILL, after which the participants reconnect [default:
    /// 30s; a forced restart with participants connected: `changes.drain` of provision.yaml]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub grace: Option<std::time::Duration>,
    /// Go ahead although participants are in a call (refused otherwise): `restart` drains
    /// first and restarts when the calls end or the grace is over; `stop` stops anyway
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Which log [default: every media log there is]
    #[arg(value_parser = [LIVEKIT_SERVER, LK_BACKEND, TLS_FRONT])]
    pub name: Option<String>,
    /// How many of the last lines to print
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,
    /// Keep printing lines as they are appended (across log rotation) until interrupted
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The media process to become
    #[arg(value_parser = [LIVEKIT_SERVER, LK_BACKEND, TLS_FRONT])]
    pub name: String,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub struct UnitsArgs {
    /// Write the unit files into this (existing) directory instead of printing them
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// User= of the units [default: none, i.e. root]
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write livekit-provision.1 and a page per subcommand into this (existing) directory
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
