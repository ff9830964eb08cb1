//! `livekit-provision`: every provisioning operation by hand, scriptable.

mod cli;
mod commands;
mod output;
mod progress;
mod units;

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = livekit_provision_daemon::front::main_if_requested() {
        return code;
    }
    let cli: cli::Cli = livekit_provision_setup::parse_args();
    livekit_provision_setup::init_logging(
        livekit_provision_setup::Logging::Command,
        cli.global.quiet,
        cli.global.verbose,
    );
    let printer = output::Printer {
        json: cli.global.json,
        quiet: cli.global.quiet > 0,
        detail: cli.global.verbose > 0,
    };
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            err.report(printer);
            output::Exit::Failure.into()
        }
    }
}
