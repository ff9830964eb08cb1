//! `livekit-provision logs [NAME] [-n N] [-f]`: the last lines of the media logs
//! (`<state>/logs/<name>.log`), and with `--follow` every line appended after them.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use livekit_provision_daemon::supervise::{LIVEKIT_SERVER, LK_BACKEND, LogFollow};

use super::Ctx;
use crate::cli::LogsArgs;
use crate::output::{CliError, Exit};

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub fn run(ctx: &Ctx, args: &LogsArgs) -> Result<Exit, CliError> {
    let names: Vec<&str> = match &args.name {
        Some(name) => vec![name.as_str()],
        // Every media log there is (lk-backend's only when it is configured and has run).
        None => [LIVEKIT_SERVER, LK_BACKEND]
            .into_iter()
            .filter(|name| ctx.state.log_file(name).exists())
            .collect(),
    };
    if names.is_empty() {
        return Err(no_log(ctx, LIVEKIT_SERVER));
    }
    let out = Lines {
        json: ctx.printer.json,
        prefixed: names.len() > 1,
    };
    let mut follows = Vec::new();
    for name in names {
        let path = ctx.state.log_file(name);
        let (follow, tail) = LogFollow::open(&path, args.lines).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => no_log(ctx, name),
            _ => unreadable(&path, &e),
        })?;
        if !out.print(name, &tail)? {
            return Ok(Exit::Success);
        }
        follows.push((name, path, follow));
    }
    if !args.follow {
        return Ok(Exit::Success);
    }
    loop {
        for (name, path, follow) in &mut follows {
            let lines = follow.poll().map_err(|e| unreadable(path, &e))?;
            if !out.print(name, &lines)? {
                return Ok(Exit::Success);
            }
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

fn no_log(ctx: &Ctx, name: &str) -> CliError {
    CliError::msg(
        format!(
            "no log of {name}: {} does not exist",
            ctx.state.log_file(name).display()
        ),
        Some(format!(
            "a media process writes its log when it starts: run `livekit-provision start`{}",
            if name == LK_BACKEND {
                " (lk-backend runs when `backend_command` is set in provision.yaml)"
            } else {
                ""
            }
        )),
    )
}

fn unreadable(path: &Path, e: &io::Error) -> CliError {
    CliError::msg(format!("cannot read {}: {e}", path.display()), None)
}

/// Log lines on stdout: `name | line` when several logs are shown, or one JSON object per line
/// (`{"name", "line"}`) with `--json`. Flushed at once, so `--follow` output reaches a pipe
/// line by line.
struct Lines {
    json: bool,
    prefixed: bool,
}

impl Lines {
    /// False when stdout was closed (the reader has what it wanted: stop, successfully).
    fn print(&self, name: &str, lines: &[String]) -> Result<bool, CliError> {
        match self.write(name, lines) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::msg(format!("cannot write to stdout: {e}"), None)),
        }
    }

    fn write(&self, name: &str, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut stdout = io::stdout().lock();
        for line in lines {
            if self.json {
                let object = serde_json::json!({ "name": name, "line": line });
                writeln!(stdout, "{object}")?;
            } else if self.prefixed {
                writeln!(stdout, "{name} | {line}")?;
            } else {
                writeln!(stdout, "{line}")?;
            }
        }
        stdout.flush()
    }
}
