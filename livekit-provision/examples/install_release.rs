//! Install a livekit-server release with the library: `install_release STATE_DIR BASE_URL VERSION`.
//!
//! A stand-in for `livekit-provision install` used by `benches/fetch_compare.sh` until the CLI
//! has that command. `GITHUB_TOKEN` is read here, at the edge, never by the library.

use std::process::ExitCode;

use livekit_provision::fetch::{self, InstallRequest, Platform, ReleaseBase};
use livekit_provision::{LivekitVersion, Secret, StateDir};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, base, version] = args.as_slice() else {
        eprintln!("usage: install_release STATE_DIR BASE_URL VERSION");
        return ExitCode::from(2);
    };
    let version = match LivekitVersion::parse(version) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: version {e}");
            return ExitCode::from(2);
        }
    };
    match run(state, base, version) {
        Ok(outcome) => {
            println!("{outcome:?}");
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

fn run(
    state: &str,
    base: &str,
    version: LivekitVersion,
) -> Result<fetch::InstallOutcome, fetch::FetchError> {
    let mut request = InstallRequest::new(version, Platform::current());
    request.base_url = ReleaseBase::parse(base)?;
    request.github_token = std::env::var("GITHUB_TOKEN").ok().map(Secret::new);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| fetch::FetchError::Io {
            action: "start",
            path: "tokio runtime".into(),
            source,
        })?;
    runtime.block_on(fetch::install(&StateDir::new(state), &request))
}
