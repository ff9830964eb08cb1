//! **Test stand-in for the control-plane daemon's start path** (not the real daemon): starts
//! `<program> --config <state>/livekit.yaml` detached through `livekit_provision_daemon::supervise`,
//! prints `pid <N>` on stdout, then blocks until its stdin closes. Tests kill its whole process
//! group to show the media process survives the death of whoever started it.
//!
//! Usage: `daemon-launcher-standin <state-dir> <program> <port>`

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use livekit_provision::StateDir;
use livekit_provision_daemon::supervise::ProcessSpec;
use livekit_provision_daemon::supervise::health::probe_address;
use livekit_provision_daemon::supervise::spawn::start_detached;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, program, port] = args.as_slice() else {
        eprintln!("usage: daemon-launcher-standin <state-dir> <program> <port>");
        return ExitCode::from(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("daemon-launcher-standin: bad port {port}");
        return ExitCode::from(2);
    };
    let state = StateDir::new(state);
    let spec =
        ProcessSpec::livekit_server(&state, PathBuf::from(program), probe_address(&[], port));
    match start_detached(
        &state,
        &spec,
        std::env::vars_os(),
        livekit_provision::clock::system(),
    ) {
        Ok(process) => {
            println!("pid {}", process.pid());
            let _ = std::io::stdout().flush();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("daemon-launcher-standin: {e}");
            ExitCode::from(1)
        }
    }
}
