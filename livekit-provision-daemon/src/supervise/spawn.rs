//! Detached start of a media process: what it runs with (program, arguments, a cleaned
//! environment, stdio, working directory) and the start itself.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use super::spec::ProcessSpec;
use super::identity::{Liveness, MediaProcess, ProcessIdentity, remove_pid_file, write_pid_file};
use super::sys::{self, ChildStep, ExecPlan, SpawnFailure};
use super::{StartLog, SuperviseError};
use livekit_provision::fsio;
use livekit_provision::StateDir;

/// Must this variable be kept from the media processes? Those that silently override
/// livekit-server's config file: the `LIVEKIT_*` flags and config paths
/// ([`livekit_provision::overrides_config`]; a `LIVEKIT_` name that is not UTF-8 counts),
/// `NODE_IP`, `UDP_PORT`, `REDIS_*`; and livekit-provision's own `LIVEKIT_PROVISION_*` (a store
/// spec may hold a password). Other `LIVEKIT_*` variables, such as `LIVEKIT_CPU_REQUEST`, pass.
pub fn is_overriding_variable(name: &OsStr) -> bool {
    let livekit = match name.to_str() {
        Some(text) => livekit_provision::overrides_config(text),
        None => name.as_bytes().starts_with(b"LIVEKIT_"),
    };
    let name = name.as_bytes();
    livekit
        || name.starts_with(b"LIVEKIT_PROVISION_")
        || name.starts_with(b"REDIS_")
        || name == b"NODE_IP"
        || name == b"UDP_PORT"
}

/// The base environment without the variables that override livekit-server's config.
pub fn clean_environment(
    base: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    base.into_iter()
        .filter(|(name, _)| !is_overriding_variable(name))
        .collect()
}

/// The names of `env`'s variables, for a `Debug` that must not show their values (the
/// environment a host hands over may hold a token).
pub(crate) fn env_names(env: &[(OsString, OsString)]) -> Vec<std::borrow::Cow<'_, str>> {
    env.iter().map(|(name, _)| name.to_string_lossy()).collect()
}

/// Start `spec` detached: its own session and process group, not a descendant of the caller,
/// stdin from `/dev/null`, stdout and stderr appended to `logs/<name>.log`, cwd the state
/// directory, environment `base_env` cleaned by [`clean_environment`] plus `spec.env`. Records
/// its identity in `run/<name>.pid`, started at `now`. Does not wait for readiness.
pub fn start_detached(
    state: &StateDir,
    spec: &ProcessSpec,
    base_env: impl IntoIterator<Item = (OsString, OsString)>,
    now: SystemTime,
) -> Result<MediaProcess, SuperviseError> {
    let name = spec.name.as_str();
    let (program, command) = command_line(spec, base_env)?;
    let plan = plan(state, spec, command)?;
    let log = state.log_file(name);
    let pid = sys::spawn_detached(&plan).map_err(|failure| match failure {
        SpawnFailure::Child(step, source) => SuperviseError::Exec {
            name: name.to_owned(),
            program: program.clone(),
            step: step.describe(),
            not_found: step == ChildStep::Exec && source.kind() == io::ErrorKind::NotFound,
            source,
        },
        SpawnFailure::Parent(source) | SpawnFailure::IntermediateFork(source) => {
            SuperviseError::Spawn {
                name: name.to_owned(),
                source,
            }
        }
    })?;
    drop(plan);
    let argv0 = program.to_string_lossy().into_owned();
    let exited = || SuperviseError::ExitedDuringStart {
        name: name.to_owned(),
        pid,
        log: StartLog::read(log.clone()),
    };
    let inspect = |source| SuperviseError::Inspect {
        name: name.to_owned(),
        pid,
        source,
    };
    let Some(identity) = ProcessIdentity::of_live_process(pid, &argv0, now).map_err(inspect)?
    else {
        return Err(exited());
    };
    write_pid_file(state, name, &identity)?;
    match MediaProcess::verify(name, identity).map_err(inspect)? {
        Ok(process) => Ok(process),
        Err(Liveness::Alive | Liveness::Dead | Liveness::Recycled(_)) => {
            remove_pid_file(state, name)?;
            Err(exited())
        }
    }
}

/// The program, `argv` and environment entries `spec` runs with, from `base_env`: the one
/// preparation of both the detached start and [`exec_in_place`].
struct CommandLine {
    program: CString,
    argv: Vec<CString>,
    env: Vec<Zeroizing<Vec<u8>>>,
}

/// Clean `base_env` ([`clean_environment`]), resolve the program in its `PATH`, add `spec.env`
/// (winning over the base) and build the C strings.
fn command_line(
    spec: &ProcessSpec,
    base_env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(PathBuf, CommandLine), SuperviseError> {
    let name = spec.name.as_str();
    let mut env = clean_environment(base_env);
    let program = resolve_program(name, &spec.program, &env)?;
    env.retain(|(k, _)| !spec.env.contains_key(&*k.to_string_lossy()));
    let nul = |what: String| SuperviseError::NulByte {
        name: name.to_owned(),
        what,
    };
    let program_c = sys::c_string(program.as_os_str().as_bytes())
        .ok_or_else(|| nul(format!("program {}", program.display())))?;
    let mut argv = vec![program_c.clone()];
    for (i, arg) in spec.args.iter().enumerate() {
        argv.push(sys::c_string(arg.as_bytes()).ok_or_else(|| nul(format!("argument {}", i + 1)))?);
    }
    let mut entries = Vec::with_capacity(env.len() + spec.env.len());
    let base = env.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
    let extra = spec.env.iter().map(|(k, v)| (k.as_bytes(), v.bytes()));
    for (key, value) in base.chain(extra) {
        let shown = String::from_utf8_lossy(key).into_owned();
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) || value.contains(&0) {
            return Err(nul(format!("environment variable {shown}")));
        }
        let mut entry = Zeroizing::new(Vec::with_capacity(key.len() + value.len() + 2));
        entry.extend_from_slice(key);
        entry.push(b'=');
        entry.extend_from_slice(value);
        entry.push(0);
        entries.push(entry);
    }
    Ok((
        program,
        CommandLine {
            program: program_c,
            argv,
            env: entries,
        },
    ))
}

/// Become `spec` in this very process, for an outside supervisor (`livekit-provision exec`):
/// the environment prepared exactly as for [`start_detached`] (one preparation), the working
/// directory the state directory, `run/<name>.pid` recording this pid and start time (an
/// `execve` keeps both) and `run/<name>.started.json` what it starts with; then `execve`, so
/// the supervisor's pid is the program's. Returns only when something failed (the pid file is
/// then removed again). The signal mask and dispositions are reset as for a detached start;
/// stdin, stdout and stderr are left as they are (the supervisor's).
pub fn exec_in_place(
    state: &StateDir,
    spec: &ProcessSpec,
    base_env: impl IntoIterator<Item = (OsString, OsString)>,
    now: SystemTime,
) -> SuperviseError {
    let name = spec.name.as_str();
    let (program, command) = match command_line(spec, base_env) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let pid = std::process::id();
    let inspect = |source| SuperviseError::Inspect {
        name: name.to_owned(),
        pid,
        source,
    };
    let argv0 = program.to_string_lossy().into_owned();
    let identity = match ProcessIdentity::of_live_process(pid, &argv0, now) {
        Ok(Some(identity)) => identity,
        Ok(None) => return inspect(io::Error::from(io::ErrorKind::NotFound)),
        Err(e) => return inspect(e),
    };
    if let Err(e) = nix::unistd::chdir(state.root()) {
        return SuperviseError::Prepare {
            name: name.to_owned(),
            what: "working directory",
            path: state.root().to_owned(),
            source: e.into(),
        };
    }
    if let Err(e) = write_pid_file(state, name, &identity) {
        return e;
    }
    super::started::record_now(state, spec, pid);
    let env: Vec<&std::ffi::CStr> = command
        .env
        .iter()
        .filter_map(|entry| std::ffi::CStr::from_bytes_with_nul(entry).ok())
        .collect();
    sys::reset_for_exec();
    let errno = match nix::unistd::execve(&command.program, &command.argv, &env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    let _ = remove_pid_file(state, name);
    let source = io::Error::from(errno);
    SuperviseError::Exec {
        name: name.to_owned(),
        program,
        step: ChildStep::Exec.describe(),
        not_found: source.kind() == io::ErrorKind::NotFound,
        source,
    }
}

fn plan(
    state: &StateDir,
    spec: &ProcessSpec,
    command: CommandLine,
) -> Result<ExecPlan, SuperviseError> {
    let name = spec.name.as_str();
    let prepare = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SuperviseError::Prepare {
            name: name.to_owned(),
            what,
            path,
            source,
        }
    };
    let nul = |what: String| SuperviseError::NulByte {
        name: name.to_owned(),
        what,
    };
    fsio::create_private_dir(&state.logs_dir(), true)
        .map_err(prepare("log directory", &state.logs_dir()))?;
    fsio::create_private_dir(&state.run_dir(), true)
        .map_err(prepare("run directory", &state.run_dir()))?;
    let log = state.log_file(name);
    let output = open_log(&log).map_err(prepare("log file", &log))?;
    let dev_null = Path::new("/dev/null");
    let stdin = std::fs::File::open(dev_null)
        .map(OwnedFd::from)
        .and_then(|fd| fd.try_clone())
        .map_err(prepare("stdin", dev_null))?;

    let cwd = sys::c_string(state.root().as_os_str().as_bytes())
        .ok_or_else(|| nul(format!("state directory {}", state.root().display())))?;
    Ok(ExecPlan {
        program: command.program,
        argv: command.argv,
        env: command.env,
        cwd,
        stdin,
        output,
    })
}

/// Open `path` for appending (created 0600). The descriptor is close-on-exec and >= 3. A symlink
/// at `path` is refused (`ELOOP`), never followed: a link planted in `logs/` must not make the
/// child's output land in a file elsewhere.
fn open_log(path: &Path) -> io::Result<OwnedFd> {
    let file = fsio::open_append(path, 0o600)?;
    // `try_clone` duplicates to the lowest free descriptor >= 3, close-on-exec: the child's
    // dup2 onto 0, 1 and 2 can then never clobber it.
    OwnedFd::from(file).try_clone()
}

/// A program name without `/` is looked up in `PATH` of the child's environment, before the fork.
fn resolve_program(
    name: &str,
    program: &Path,
    env: &[(OsString, OsString)],
) -> Result<PathBuf, SuperviseError> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(program.to_owned());
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| SuperviseError::Exec {
            name: name.to_owned(),
            program: program.to_owned(),
            step: "looking it up in PATH",
            not_found: true,
            source: io::Error::from(io::ErrorKind::NotFound),
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use std::net::SocketAddr;

    use super::*;
    use crate::supervise::spec::ProcessSpec;

    #[test]
    fn cleaning_removes_every_overriding_variable() {
        let base = [
            "PATH",
            "HOME",
            "LIVEKIT_KEYS",
            "LIVEKIT_CONFIG",
            "NODE_IP",
            "UDP_PORT",
            "REDIS_HOST",
            "REDIS_PASSWORD",
            "LIVEKITX",
            "MY_NODE_IP",
            "LIVEKIT_CPU_REQUEST",
            "LIVEKIT_RTC_PORT_RANGE_START",
            "LIVEKIT_REDIS_PASSWORD",
            "LIVEKIT_LOGGING_LEVEL",
            "LIVEKIT_PROVISION_SECRETS",
        ]
        .map(|k| (OsString::from(k), OsString::from("v")));
        let mut base = base.to_vec();
        base.push((
            OsString::from_vec(b"LIVEKIT_\xff".to_vec()),
            OsString::from("v"),
        ));
        let kept: Vec<String> = clean_environment(base)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "HOME",
                "LIVEKITX",
                "MY_NODE_IP",
                "LIVEKIT_CPU_REQUEST"
            ]
        );
    }

    #[test]
    fn livekit_spec_points_at_the_config() {
        let state = StateDir::new("/s");
        let health = SocketAddr::from(([127, 0, 0, 1], 7880));
        let spec =
            ProcessSpec::livekit_server(&state, PathBuf::from("/s/bin/livekit-server"), health);
        assert_eq!(
            spec.args,
            [
                OsString::from("--config"),
                OsString::from("/s/livekit.yaml")
            ]
        );
        assert_eq!(spec.health, Some(SocketAddr::from(([127, 0, 0, 1], 7880))));
    }

    #[test]
    fn a_program_missing_from_path_is_an_error() {
        let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent"))];
        let err = resolve_program("x", Path::new("no-such-program"), &env).unwrap_err();
        assert!(
            matches!(
                err,
                SuperviseError::Exec {
                    not_found: true,
                    ..
                }
            ),
            "{err}"
        );
    }
}
