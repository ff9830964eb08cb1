//! What both binaries — `livekit-provision` (the CLI) and `livekit-provision-daemon` — set up
//! the same way: the global options ([`GlobalArgs`], flattened into both clap definitions),
//! the state directory and secret store they name, logging ([`init_logging`]: `-q` errors
//! only, `-v` one level more, `RUST_LOG` overrides), and how a failure is printed
//! ([`print_error`]: `error:`, `caused by:` with `-v`, `hint:`) with which exit code
//! ([`Exit`]), and colour ([`ColorWhen`]: `--color`, `NO_COLOR`, `CLICOLOR_FORCE`; one scheme,
//! clap's included).
//!
//! It is a crate of its own, not part of the library: the library never reads `std::env` and
//! does not depend on clap, and this is exactly the code that does both.

#![deny(missing_docs)]

mod args;
mod logging;
mod report;
mod style;

pub use args::{GlobalArgs, ReleaseArgs};
pub use logging::{Logging, init_logging, level};
pub use report::{Exit, parse_args, print_error, print_warning, write_error};
pub use style::{ColorWhen, Label, clap_styles, stderr, stderr_has_color};
