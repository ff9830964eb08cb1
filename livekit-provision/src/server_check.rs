//! Ask the real livekit-server whether it accepts a candidate `livekit.yaml` before it is
//! published.
//!
//! livekit-server parses its config strictly at every level (`room: {empty_timeout_typo: 5}` is
//! refused as surely as an unknown top-level key) and exits 0 whatever happens, so a refusal is
//! only visible in its output. Its `ports` subcommand loads the config exactly as a start does,
//! prints the ports and exits without serving or checking keys. Measured on livekit-server
//! 1.13.5 (`<bin> --config FILE ports`, every case exit status 0, everything on stdout):
//! - accepted: `TCP Ports` on the first line, then the ports;
//! - refused: `could not parse config: yaml: unmarshal errors:` and one
//!   `  line N: field X not found in type config.Y` line per unknown key (or another
//!   `could not parse config: …` line for a value of the wrong type);
//! - an unreadable file: `open FILE: no such file or directory`.
//!
//! The candidate reaches the binary as `LIVEKIT_CONFIG` (its `--config-body`, how LiveKit's Helm
//! chart passes a config; known to every release from 1.7 on, and it wins over `--config`), the one
//! variable of an otherwise empty environment: nothing else can override it (`LIVEKIT_KEYS`,
//! `NODE_IP`, …), the secrets in it stay off the command line, and nothing is written — `check`
//! stays read-only and `ensure --dry-run` can ask too. The binary is killed after
//! [`CHECK_TIMEOUT`].

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::child::{self, Limits, RunError};

/// How long livekit-server may take to parse a config (it takes ~50 ms).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of each output stream kept: the verdict is in the first lines (a refusal names
/// every unknown key on a line of its own, a few dozen at most).
const MAX_OUTPUT: usize = 256 * 1024;

/// livekit-server's `--config-body` flag reads this variable.
const CONFIG_VARIABLE: &str = "LIVEKIT_CONFIG";

/// The first line livekit-server's `ports` prints when it accepts the config.
const ACCEPTED_MARKER: &str = "TCP Ports";

/// What livekit-server prints when it refuses a config (`NewConfig`'s and `Validate`'s errors).
const REFUSAL_MARKERS: &[&str] = &[
    "could not parse config",
    "could not validate",
    " not found in type ",
];

/// At most this many lines of livekit-server's output are kept in an error.
const MAX_OUTPUT_LINES: usize = 12;

/// Why a candidate `livekit.yaml` was not accepted by the real binary. Nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerCheckError {
    /// livekit-server refused the config (its own words in `output`, quoted values redacted).
    #[error(
        "{} refuses the new livekit.yaml{}: {output}",
        program.display(),
        key.as_ref().map(|k| format!(" at `{k}`")).unwrap_or_default()
    )]
    Refused {
        /// The binary that was asked.
        program: PathBuf,
        /// The dotted path of the refused key (`room.empty_timeout_typo`), when named.
        key: Option<String>,
        /// What livekit-server printed.
        output: String,
    },
    /// The binary could not be run.
    #[error("could not ask {} to check the new livekit.yaml", program.display())]
    Run {
        /// The binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The binary answered, but not as livekit-server answers `ports` (a wrapper that does not
    /// pass its arguments on, another program): no verdict.
    #[error(
        "{} gave no verdict on the new livekit.yaml (expected `TCP Ports` or a config error): {output}",
        program.display()
    )]
    Unrecognized {
        /// The binary.
        program: PathBuf,
        /// What it printed (quoted values redacted), or a note that it printed nothing.
        output: String,
    },
    /// The binary did not finish in time (it was killed).
    #[error(
        "{} did not finish checking the new livekit.yaml within {} s",
        program.display(),
        after.as_secs()
    )]
    TimedOut {
        /// The binary.
        program: PathBuf,
        /// The time limit.
        after: Duration,
    },
}

impl ServerCheckError {
    /// True when livekit-server refused the config; every other error means "no verdict".
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }



    /// The dotted key livekit-server refused, when it named one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Refused { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

impl crate::error_chain::Hint for ServerCheckError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Refused { key: Some(key), .. } => format!(
                "fix or remove `{key}` in extra.yaml (or provision.yaml); the published files were left as they were"
            ),
            Self::Refused { key: None, .. } => {
                "fix extra.yaml or provision.yaml; the published files were left as they were"
                    .to_owned()
            }
            Self::Run { program, .. }
            | Self::TimedOut { program, .. }
            | Self::Unrecognized { program, .. } => format!(
                "check that `{} --version` runs; the published files were left as they were",
                program.display()
            ),
        })
    }
}

/// Ask `program` whether it accepts `candidate` as its `livekit.yaml` (`<program> ports` with
/// the candidate in `LIVEKIT_CONFIG`; see the module documentation).
pub fn check_config(
    program: &Path,
    candidate: &str,
    timeout: Duration,
) -> Result<(), ServerCheckError> {
    let run_error = |source| ServerCheckError::Run {
        program: program.to_owned(),
        source,
    };
    let mut command = Command::new(program);
    command
        .arg("ports")
        .env_clear()
        .env(CONFIG_VARIABLE, candidate)
        .current_dir("/");
    // Its own process group (`child::run`), so that a timeout kills a wrapper's children too.
    let limits = Limits {
        stdout: MAX_OUTPUT,
        stderr: MAX_OUTPUT,
    };
    let finished = child::run(&mut command, None, timeout, limits).map_err(|e| match e {
        RunError::TimedOut => ServerCheckError::TimedOut {
            program: program.to_owned(),
            after: timeout,
        },
        RunError::Spawn(source) | RunError::Io(source) => run_error(source),
    })?;
    let mut output = finished.stdout.bytes.to_vec();
    output.extend_from_slice(&finished.stderr.bytes);
    let output = String::from_utf8_lossy(&output);
    judge(program, candidate, &output)
}

/// Read livekit-server's verdict from its output (its exit status says nothing).
fn judge(program: &Path, candidate: &str, output: &str) -> Result<(), ServerCheckError> {
    let first = output.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.trim() == ACCEPTED_MARKER {
        return Ok(());
    }
    let refused = REFUSAL_MARKERS.iter().any(|m| output.contains(m));
    let key = output.lines().find_map(|line| refused_key(candidate, line));
    let kept: Vec<&str> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(MAX_OUTPUT_LINES)
        .collect();
    let shown = if kept.is_empty() {
        "it printed nothing (expected the list of ports)".to_owned()
    } else {
        redact_quoted(&kept.join("\n"))
    };
    if refused {
        Err(ServerCheckError::Refused {
            program: program.to_owned(),
            key,
            output: shown,
        })
    } else {
        Err(ServerCheckError::Unrecognized {
            program: program.to_owned(),
            output: shown,
        })
    }
}

/// `line N: field X not found in type config.Y` → the dotted path of `X` in `candidate`.
fn refused_key(candidate: &str, line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("line ")?;
    let (number, rest) = rest.split_once(": field ")?;
    let (field, _) = rest.split_once(" not found in type ")?;
    let number: usize = number.trim().parse().ok()?;
    Some(dotted_path(candidate, number, field.trim()))
}

/// The dotted path of `field` found on line `number` (1-based) of a block-style YAML document:
/// the keys of the less indented lines above it. A one-line flow mapping
/// (`room: {empty_timeout_typo: 5}`) puts the line's own key in the path too.
fn dotted_path(text: &str, number: usize, field: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(line) = number.checked_sub(1).and_then(|i| lines.get(i)) else {
        return field.to_owned();
    };
    let mut path = vec![field.to_owned()];
    if let Some(own) = key_of(line)
        && own != field
    {
        path.push(own);
    }
    let mut indent = indent_of(line);
    for above in lines[..number - 1].iter().rev() {
        if indent == 0 {
            break;
        }
        let Some(key) = key_of(above) else { continue };
        let here = indent_of(above);
        if here < indent {
            path.push(key);
            indent = here;
        }
    }
    path.reverse();
    path.join(".")
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The mapping key a block-style line starts with (`  key: …`), quotes removed.
fn key_of(line: &str) -> Option<String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with(['#', '-']) {
        return None;
    }
    let (key, _) = trimmed.split_once(':')?;
    Some(key.trim().trim_matches(['"', '\'']).to_owned())
}

/// livekit's YAML errors quote the offending value in backticks (`` cannot unmarshal !!str `x`
/// into uint32 ``); that value may be a secret of the overlay, so it is not repeated.
fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && text.split('`').count() > i + 1 {
            out.push_str("`****`");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANDIDATE: &str = "port: 7880\nrtc:\n  tcp_port: 7881\n  node_ip: \"127.0.0.1\"\nkeys:\n  \"APIk\": \"s\"\nroom:\n  empty_timeout_typo: 5\nturn: {enabled: false, udp_prot: 1}\n";

    #[test]
    fn the_ports_listing_means_accepted() {
        let out = "TCP Ports\n7880 - HTTP service\n7881 - ICE/TCP\nUDP Ports\n50000-60000 - ICE/UDP range\n";
        assert!(judge(Path::new("lk"), CANDIDATE, out).is_ok());
    }

    #[test]
    fn a_refusal_names_the_dotted_key() {
        let out = "could not parse config: yaml: unmarshal errors:\n  line 8: field empty_timeout_typo not found in type config.RoomConfig\n";
        let err = judge(Path::new("/bin/lk"), CANDIDATE, out).unwrap_err();
        assert_eq!(err.key(), Some("room.empty_timeout_typo"));
        let message = err.to_string();
        assert!(
            message.contains("at `room.empty_timeout_typo`"),
            "{message}"
        );
        assert!(message.contains("config.RoomConfig"), "{message}");
        let flow = "  line 9: field udp_prot not found in type config.TURNConfig";
        assert_eq!(
            refused_key(CANDIDATE, flow).as_deref(),
            Some("turn.udp_prot")
        );
        let top = "  line 1: field port not found in type config.Config";
        assert_eq!(refused_key(CANDIDATE, top).as_deref(), Some("port"));
    }

    #[test]
    fn a_wrong_value_is_a_refusal_without_a_key_and_quoted_values_are_redacted() {
        let out = "could not parse config: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `hunter2` into uint32\n";
        let err = judge(Path::new("lk"), CANDIDATE, out).unwrap_err();
        assert!(err.is_refusal());
        assert_eq!(err.key(), None);
        let message = err.to_string();
        assert!(
            !message.contains("hunter2") && message.contains("`****`"),
            "{message}"
        );
    }

    #[test]
    fn output_that_is_not_livekits_gives_no_verdict() {
        for out in ["", "starting LiveKit server\n", "usage: wrapper\n"] {
            let err = judge(Path::new("lk"), CANDIDATE, out).unwrap_err();
            assert!(!err.is_refusal(), "{out:?}: {err}");
            assert!(
                matches!(err, ServerCheckError::Unrecognized { .. }),
                "{err}"
            );
        }
        let empty = judge(Path::new("lk"), CANDIDATE, "").unwrap_err();
        assert!(empty.to_string().contains("printed nothing"), "{empty}");
    }
}
