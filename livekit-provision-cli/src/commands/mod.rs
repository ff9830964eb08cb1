//! One module per command; each turns parsed arguments into library calls and prints the result.

mod check;
mod ensure;
mod install;
mod media;
mod render;
mod secrets;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use livekit_provision::ensure::BinaryOptions;
use livekit_provision::fetch::{EventSink, FetchEvent};
use livekit_provision::{SecretStore, StateDir, StoreSpec};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::{CliError, Exit, Printer};

/// What every command needs: where the state is, which store, how to print.
pub struct Ctx {
    pub state: StateDir,
    pub spec: StoreSpec,
    pub printer: Printer,
    pub livekit_bin: Option<PathBuf>,
    global: GlobalArgs,
}

impl Ctx {
    fn new(global: &GlobalArgs) -> Result<Self, CliError> {
        let state = global.state().map_err(CliError::from_report)?;
        let spec = global.store_spec(&state).map_err(CliError::from_report)?;
        Ok(Self {
            state,
            spec,
            printer: Printer {
                json: global.json,
                quiet: global.quiet > 0,
            },
            global: global.clone(),
            livekit_bin: global.livekit_bin.clone(),
        })
    }

    /// How `ensure` and `install` get the binary (`--release-url`, `--livekit-bin`,
    /// `GITHUB_TOKEN`).
    pub fn binary_options(&self) -> BinaryOptions {
        self.global.binary_options()
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

    /// A download progress display on stderr when it is a terminal (bytes, rate, ETA).
    pub fn progress(&self) -> Option<EventSink> {
        if !self.printer.progress_allowed() {
            return None;
        }
        let started = Instant::now();
        Some(Arc::new(move |event: &FetchEvent| match event {
            FetchEvent::Progress { done, total } => {
                #[expect(clippy::cast_precision_loss, reason = "display only")]
                let rate = *done as f64 / started.elapsed().as_secs_f64().max(0.001);
                let mb = |b: u64| {
                    #[expect(clippy::cast_precision_loss, reason = "display only")]
                    let v = b as f64 / 1_048_576.0;
                    v
                };
                let line = match total {
                    Some(total) if *total > 0 => {
                        #[expect(clippy::cast_precision_loss, reason = "display only")]
                        let eta = total.saturating_sub(*done) as f64 / rate.max(1.0);
                        format!(
                            "\r{:7.1} / {:.1} MiB  {:6.1} MiB/s  ETA {:4.0}s ",
                            mb(*done),
                            mb(*total),
                            rate / 1_048_576.0,
                            eta
                        )
                    }
                    _ => format!("\r{:7.1} MiB  {:6.1} MiB/s ", mb(*done), rate / 1_048_576.0),
                };
                eprint!("{line}");
            }
            FetchEvent::Retrying {
                attempt,
                delay,
                reason,
            } => {
                eprintln!("\rattempt {attempt} failed ({reason}); retrying in {delay:?}");
            }
            _ => {}
        }))
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<Exit, CliError> {
    let ctx = Ctx::new(&cli.global)?;
    match cli.command {
        Command::Ensure(args) => ensure::run(&ctx, &args),
        Command::Check(args) => check::run(&ctx, &args),
        Command::Render(args) => render::run(&ctx, &args),
        Command::Install(args) => install::install(&ctx, &args),
        Command::Rollback => install::rollback(&ctx),
        Command::Secrets(cmd) => secrets::run(&ctx, cmd),
        Command::Token(args) => token::run(&ctx, &args),
        Command::Start => media::start(&ctx),
        Command::Stop(args) => media::stop(&ctx, &args, false),
        Command::Restart(args) => media::stop(&ctx, &args, true),
        Command::Status => media::status(&ctx),
    }
}
