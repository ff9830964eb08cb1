//! One module per command; each turns parsed arguments into library calls and prints the result.

mod check;
mod ensure;
mod exec;
mod generate;
mod install;
mod logs;
mod man_sections;
mod media;
mod render;
mod secrets;
mod token;

use std::path::PathBuf;
use std::time::Duration;

use livekit_provision::BinaryOptions;
use livekit_provision::{SecretStore, StateDir, StoreSpec};
use livekit_provision_daemon::protocol::Method;
use livekit_provision_daemon::{ClientError, request};

use crate::cli::{Cli, Command, GlobalArgs, ReleaseArgs};
use crate::output::{CliError, Exit, Printer};
use crate::progress::Progress;

/// How long a command waits for the daemon's answer (a provisioning run may be in flight).
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(60);

/// What every command needs: where the state is, which store, how to print.
pub struct Ctx {
    pub state: StateDir,
    pub spec: StoreSpec,
    pub printer: Printer,
    pub livekit_bin: Option<PathBuf>,
    release: ReleaseArgs,
}

impl Ctx {
    /// Call method `M` of the daemon of this state directory; `None` when no daemon is running.
    pub fn via_daemon<M: Method>(
        &self,
        params: &M::Params,
        timeout: Duration,
    ) -> Result<Option<M::Result>, CliError> {
        match request::<M>(&self.state.rpc_socket(), params, timeout) {
            Ok(result) => Ok(Some(result)),
            Err(ClientError::NotRunning { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn new(global: &GlobalArgs, release: ReleaseArgs) -> Result<Self, CliError> {
        let state = global.state().map_err(CliError::from_report)?;
        let spec = global.store_spec(&state).map_err(CliError::from_report)?;
        Ok(Self {
            state,
            spec,
            printer: Printer {
                json: global.json,
                quiet: global.quiet > 0,
                detail: global.verbose > 0,
            },
            livekit_bin: release.livekit_bin.clone(),
            release,
        })
    }

    /// How `ensure` and `install` get the binary (`--release-url`, `--livekit-bin`,
    /// `GITHUB_TOKEN`).
    pub fn binary_options(&self) -> BinaryOptions {
        self.release.binary_options()
    }

    /// Open the secret store.
    pub fn open_store(&self) -> Result<Box<dyn SecretStore>, CliError> {
        Ok(self.spec.open()?)
    }

    /// Say what we wait for when another writer holds the state lock.
    pub fn lock_waiter(&self) -> impl Fn(Option<u32>) + '_ {
        move |pid| {
            let holder = pid.map_or_else(|| "another process".to_owned(), |p| format!("pid {p}"));
            self.printer.status(format!(
                "waiting for {holder}, which holds {}",
                self.state.lock_file().display()
            ));
        }
    }

    /// The download progress bar on stderr, when one may be shown (see [`Progress`]).
    pub fn progress(&self) -> Option<Progress> {
        Progress::on_stderr(self.printer)
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<Exit, CliError> {
    // Generated from the clap definition: no state directory needed.
    match &cli.command {
        Command::Completions(args) => return generate::completions(args),
        Command::Man(args) => return generate::man(args),
        _ => {}
    }
    let ctx = Ctx::new(&cli.global, cli.release())?;
    match cli.command {
        Command::Ensure(args) => ensure::run(&ctx, &args),
        Command::Check(args) => check::run(&ctx, &args),
        Command::Render(args) => render::run(&ctx, &args),
        Command::Install(args) => install::install(&ctx, &args),
        Command::Rollback => install::rollback(&ctx),
        Command::Secrets(cmd) => secrets::run(&ctx, cmd),
        Command::Token(args) => token::run(&ctx, &args),
        Command::Start(_) => media::start(&ctx, None),
        Command::Stop(args) => media::stop(&ctx, &args, false),
        Command::Restart(args) => media::stop(&ctx, &args.stop, true),
        Command::Status => media::status(&ctx),
        Command::Logs(args) => logs::run(&ctx, &args),
        Command::Exec(args) => Ok(exec::exec(&ctx, &args)),
        Command::Units(args) => exec::units(&ctx, &args),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
    }
}
