//! `livekit-provision-daemon`: the control plane. Parses arguments, sets up logging, the runtime
//! and signals, and calls `livekit_provision_daemon::run`; everything else is in the library.
//!
//! Exit codes: 0 after SIGTERM/SIGINT (the media keep running), 1 on an error (`error:`,
//! `caused by:` and `hint:` lines on stderr). The global options, logging, error printing and
//! exit codes are the CLI's, from `livekit-provision-setup`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use livekit_provision::ErrorReport;
use livekit_provision_daemon::{self as daemon, Command, DaemonConfig, Provision};
use livekit_provision_setup::{
    Exit, GlobalArgs, Logging, ReleaseArgs, init_logging, parse_args, print_error,
};
use tokio::signal::unix::{SignalKind, signal};

/// Serve the livekit-provision RPC socket and keep this LiveKit media node provisioned.
#[derive(Debug, Parser)]
#[command(
    name = "livekit-provision-daemon",
    version,
    about,
    long_about = None,
    styles = livekit_provision_setup::clap_styles()
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(flatten)]
    release: ReleaseArgs,

    /// Tests: first provisioning retry after this many ms (capped at 4x)
    #[arg(long, hide = true, env = "LIVEKIT_PROVISION_DAEMON_BACKOFF_MS")]
    backoff_ms: Option<u64>,

    /// Tests: first media restart after this many ms (capped at 4x)
    #[arg(long, hide = true, env = "LIVEKIT_PROVISION_DAEMON_RESTART_BACKOFF_MS")]
    restart_backoff_ms: Option<u64>,
}

fn main() -> ExitCode {
    if let Some(code) = daemon::front::main_if_requested() {
        return code;
    }
    let cli: Cli = parse_args();
    init_logging(Logging::Service, cli.global.quiet, cli.global.verbose);
    match run(&cli) {
        Ok(()) => Exit::Success.into(),
        Err(report) => {
            print_error(&report, cli.global.verbose > 0);
            Exit::Failure.into()
        }
    }
}

fn config(cli: &Cli) -> Result<DaemonConfig, ErrorReport> {
    let state = cli.global.state()?;
    let store_spec = cli.global.store_spec(&state)?;
    // The media get this process's environment, and every run provisions: without
    // LIVEKIT_VERSION the control-plane files are still rendered (docs/DESIGN.md 4.7). A host
    // embedding the control plane gets neither unless it asks (`DaemonConfig::new`).
    let mut config = DaemonConfig::new(state, store_spec).with_media_env(std::env::vars_os());
    config.provision = Provision::Always;
    config.binary = cli.release.binary_options();
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

fn run(cli: &Cli) -> Result<(), ErrorReport> {
    let config = config(cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ErrorReport::new(&e, None))?;
    let result = runtime.block_on(serve(config));
    // A stalled download may still hold a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(config: DaemonConfig) -> Result<(), ErrorReport> {
    let signal_error = |e: std::io::Error| ErrorReport::new(&e, None);
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;

    let _instance = daemon::lock_instance(&config.state).map_err(|e| ErrorReport::of(&e))?;
    let listener = daemon::bind(&config.state).map_err(|e| ErrorReport::of(&e))?;

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
    daemon::run(listener, config, receiver, shutdown)
        .await
        .map_err(|e| ErrorReport::of(&e))
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
