//! `livekit-provision logs [NAME] [-n N] [-f]`: the last lines of the media logs
//! (`<state>/logs/<name>.log`), and with `--follow` every line appended after them. With
//! `--json`, each log's lines are the daemon's `logs.tail` result ([`LogsTailResult`]), one
//! compact object per line of output: the tail of each log, then (`--follow`) one per batch of
//! appended lines.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use livekit_provision_daemon::protocol::LogsTailResult;
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
        if !out.print(name, &path, tail, true)? {
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
            if !out.print(name, path, lines, false)? {
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

/// Log lines on stdout: `name | line` when several logs are shown, or, with `--json`, each batch
/// as one compact [`LogsTailResult`] on a line. Flushed at once, so `--follow` output reaches a
/// pipe line by line.
struct Lines {
    json: bool,
    prefixed: bool,
}

impl Lines {
    /// Print `lines` of log `name` at `path`: its `tail` (in JSON, an object even when empty,
    /// as `logs.tail` answers), or lines appended since (nothing when there are none). False
    /// when stdout was closed (the reader has what it wanted: stop, successfully).
    fn print(
        &self,
        name: &str,
        path: &Path,
        lines: Vec<String>,
        tail: bool,
    ) -> Result<bool, CliError> {
        if lines.is_empty() && !(tail && self.json) {
            return Ok(true);
        }
        let batch = LogsTailResult {
            name: name.to_owned(),
            path: path.to_owned(),
            lines,
        };
        match self.write(&batch) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::msg(format!("cannot write to stdout: {e}"), None)),
        }
    }

    fn write(&self, batch: &LogsTailResult) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        if self.json {
            writeln!(stdout, "{}", serde_json::to_string(batch)?)?;
        } else {
            for line in &batch.lines {
                if self.prefixed {
                    writeln!(stdout, "{} | {line}", batch.name)?;
                } else {
                    writeln!(stdout, "{line}")?;
                }
            }
        }
        stdout.flush()
    }
}
