//! One fleet node: `fleet_node STATE_DIR SECRETS_SPEC` runs `ensure` for `STATE_DIR` against the
//! secret store `SECRETS_SPEC` (e.g. `redis://127.0.0.1:6379`) and prints the API key it serves.
//! Used by `benches/fleet.sh` to start many nodes at once.

use livekit_provision::Hint;
use std::process::ExitCode;

use livekit_provision::{EnsureOptions, StateDir, StoreSpec, ensure};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, spec] = args.as_slice() else {
        eprintln!("usage: fleet_node STATE_DIR SECRETS_SPEC");
        return ExitCode::from(2);
    };
    let store = match StoreSpec::parse(spec).and_then(|s| s.open()) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ensure(&StateDir::new(state), &*store, &EnsureOptions::default()) {
        Ok(report) => {
            println!("{}", report.api_key.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("caused by: {cause}");
                source = cause.source();
            }
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
