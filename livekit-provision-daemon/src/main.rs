//! `livekit-provision-daemon`: the control plane. Parses arguments, sets up logging, the runtime
//! and signals, and calls `livekit_provision::daemon::run`; everything else is in the library.
//!
//! Exit codes: 0 after SIGTERM/SIGINT (the media keep running), 1 on an error (`error:`,
//! `caused by:` and `hint:` lines on stderr).

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use livekit_provision::daemon::{self, Command, DaemonConfig, DaemonError};
use livekit_provision::{Secret, StateDir, StoreSpec};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Serve the livekit-provision RPC socket and keep this LiveKit media node provisioned.
#[derive(Debug, Parser)]
#[command(name = "livekit-provision-daemon", version, about, long_about = None)]
struct Cli {
    /// State directory [default: $XDG_STATE_HOME/livekit-provision or ~/.local/state/livekit-provision]
    #[arg(long, env = "LIVEKIT_PROVISION_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Secret store: file:PATH, exec:PROGRAM or redis://[user:pass@]host:port[/db] [default: file:<state>/secrets.json]
    #[arg(long, env = "LIVEKIT_PROVISION_SECRETS", value_name = "SPEC")]
    secrets: Option<String>,

    /// Log less (-q warnings, -qq errors)
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,

    /// Log more (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Base URL of release downloads (https://, http:// or file://)
    #[arg(long, env = "LIVEKIT_PROVISION_RELEASE_URL", value_name = "URL")]
    release_url: Option<String>,

    /// Use this livekit-server binary; never download one
    #[arg(long, value_name = "PATH")]
    livekit_bin: Option<PathBuf>,

    /// Tests: first provisioning retry after this many ms (capped at 4x)
    #[arg(long, hide = true, env = "LIVEKIT_PROVISION_DAEMON_BACKOFF_MS")]
    backoff_ms: Option<u64>,

    /// Tests: first media restart after this many ms (capped at 4x)
    #[arg(long, hide = true, env = "LIVEKIT_PROVISION_DAEMON_RESTART_BACKOFF_MS")]
    restart_backoff_ms: Option<u64>,
}

/// A failure of `main`, with what to print.
struct Failure {
    error: Box<dyn Error>,
    hint: Option<String>,
}

impl From<DaemonError> for Failure {
    fn from(e: DaemonError) -> Self {
        let hint = e.hint();
        Self {
            error: Box::new(e),
            hint,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.error);
            let mut source = failure.error.source();
            while let Some(cause) = source {
                eprintln!("caused by: {cause}");
                source = cause.source();
            }
            if let Some(hint) = failure.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (q, _) if q >= 2 => "error",
        (1, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn config(cli: Cli) -> Result<DaemonConfig, Failure> {
    let state = match cli.state_dir {
        Some(dir) => StateDir::new(dir),
        None => StateDir::default_location(|k| std::env::var_os(k)).ok_or_else(|| Failure {
            error: "cannot find a default state directory (neither XDG_STATE_HOME nor HOME is set)"
                .into(),
            hint: Some("pass --state-dir or set LIVEKIT_PROVISION_STATE_DIR".to_owned()),
        })?,
    };
    let store_spec = match &cli.secrets {
        Some(spec) => StoreSpec::parse(spec).map_err(|e| Failure {
            hint: e.hint(),
            error: Box::new(e),
        })?,
        None => StoreSpec::default_for(&state),
    };
    let mut config = DaemonConfig::new(state, store_spec);
    config.binary.release_url = cli.release_url;
    config.binary.livekit_bin = cli.livekit_bin;
    config.binary.github_token = std::env::var("GITHUB_TOKEN").ok().map(Secret::new);
    config.media_env = std::env::vars_os().collect();
    if let Some(ms) = cli.backoff_ms {
        config.retry.initial = Duration::from_millis(ms);
        config.retry.max = Duration::from_millis(ms.saturating_mul(4));
    }
    if let Some(ms) = cli.restart_backoff_ms {
        config.restart.initial_backoff = Duration::from_millis(ms);
        config.restart.max_backoff = Duration::from_millis(ms.saturating_mul(4));
    }
    Ok(config)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = config(cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure {
            error: Box::new(e),
            hint: None,
        })?;
    let result = runtime.block_on(serve(config));
    // A stalled download may still hold a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(config: DaemonConfig) -> Result<(), Failure> {
    let signal_error = |e: std::io::Error| Failure {
        error: Box::new(e),
        hint: None,
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;

    let _instance = daemon::lock_instance(&config.state)?;
    let listener = daemon::bind(&config.state)?;

    let (commands, receiver) = daemon::command_channel();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if commands.send(Command::Reload).await.is_err() {
                break;
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM"),
            _ = interrupt.recv() => tracing::info!("SIGINT"),
        }
    };
    daemon::run(listener, config, receiver, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
