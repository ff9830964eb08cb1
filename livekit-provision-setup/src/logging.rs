//! Logging on stderr, set up the same way by both binaries.

use std::io;

/// How a binary logs when neither `-q`, `-v` nor `RUST_LOG` say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logging {
    /// A command: warnings and errors, no timestamps (the terminal has its own time).
    Command,
    /// A long-running service: info and above, with timestamps.
    Service,
}

/// The level names, quietest first.
const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The filter for `quiet`/`verbose`: `-q` is errors only in both binaries; each `-v` is one
/// level more than the binary's default (warnings for a command, info for a service).
pub fn level(style: Logging, quiet: u8, verbose: u8) -> &'static str {
    if quiet > 0 {
        return LEVELS[0];
    }
    let default = match style {
        Logging::Command => 1,
        Logging::Service => 2,
    };
    LEVELS[(default + usize::from(verbose)).min(LEVELS.len() - 1)]
}

/// Log on stderr at [`level`]; `RUST_LOG` overrides it. Colour as chosen
/// ([`crate::stderr_has_color`]: `--color`, `NO_COLOR`, `CLICOLOR_FORCE`, a terminal). A second
/// call does nothing.
pub fn init_logging(style: Logging, quiet: u8, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level(style, quiet, verbose)));
    let color = crate::stderr_has_color();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(color);
    let _ = match style {
        Logging::Command => builder.with_target(false).without_time().try_init(),
        Logging::Service => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_means_errors_only_in_both() {
        assert_eq!(level(Logging::Command, 1, 0), "error");
        assert_eq!(level(Logging::Service, 1, 0), "error");
        assert_eq!(level(Logging::Service, 3, 0), "error");
    }

    #[test]
    fn each_verbose_is_one_level_more() {
        assert_eq!(level(Logging::Command, 0, 0), "warn");
        assert_eq!(level(Logging::Command, 0, 1), "info");
        assert_eq!(level(Logging::Command, 0, 3), "trace");
        assert_eq!(level(Logging::Service, 0, 0), "info");
        assert_eq!(level(Logging::Service, 0, 1), "debug");
        assert_eq!(level(Logging::Service, 0, 9), "trace");
    }
}
