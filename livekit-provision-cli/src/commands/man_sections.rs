//! The ENVIRONMENT and FILES sections of the man page, built from what the code uses: the
//! variables of the clap definition (`env =`), the table of those read elsewhere
//! ([`OTHER_ENVIRONMENT`], checked against the sources by a test), and the paths
//! [`StateDir`] computes.

use std::fmt::Write as _;
use std::path::PathBuf;

use livekit_provision::{ManagedFile, StateDir};

/// The variables read other than through an option's `env =` (which the clap definition names
/// itself): by the state directory's default, the download, logging and colour.
pub const OTHER_ENVIRONMENT: [(&str, &str); 10] = [
    (
        "XDG_STATE_HOME",
        "The state directory is $XDG_STATE_HOME/livekit-provision when --state-dir and LIVEKIT_PROVISION_STATE_DIR are not given.",
    ),
    (
        "HOME",
        "Else the state directory is $HOME/.local/state/livekit-provision.",
    ),
    (
        "GITHUB_TOKEN",
        "Sent (only over https, only to github.com and its download hosts) when downloading a release; never logged.",
    ),
    (
        "HTTPS_PROXY",
        "The proxy of https:// downloads (also HTTP_PROXY for http://, ALL_PROXY for both).",
    ),
    ("HTTP_PROXY", "The proxy of http:// downloads."),
    ("ALL_PROXY", "The proxy of every download."),
    ("NO_PROXY", "Hosts reached without a proxy."),
    (
        "RUST_LOG",
        "The log filter (e.g. debug, or livekit_provision=trace); overrides -q and -v.",
    ),
    (
        "NO_COLOR",
        "With --color auto (the default): no colour on stderr.",
    ),
    (
        "CLICOLOR_FORCE",
        "With --color auto and without NO_COLOR: colour on stderr even when it is not a terminal.",
    ),
];

/// `.SH ENVIRONMENT`: every variable an option reads (from `cmd`, subcommands included, in the
/// order first met), then [`OTHER_ENVIRONMENT`].
pub fn environment(cmd: &clap::Command) -> String {
    let mut roff = String::from(".SH ENVIRONMENT\n");
    for (name, help) in option_variables(cmd) {
        let _ = write!(roff, ".TP\n\\fB{name}\\fR\n{}\n", escape(&help));
    }
    for (name, help) in OTHER_ENVIRONMENT {
        let _ = write!(roff, ".TP\n\\fB{name}\\fR\n{}\n", escape(help));
    }
    roff
}

/// Each variable an option of `cmd` or of its subcommands reads, with the option's help.
pub fn option_variables(cmd: &clap::Command) -> Vec<(String, String)> {
    fn walk(cmd: &clap::Command, found: &mut Vec<(String, String)>) {
        for arg in cmd.get_arguments() {
            let Some(name) = arg.get_env().and_then(|n| n.to_str()) else {
                continue;
            };
            if found.iter().any(|(known, _)| known == name) {
                continue;
            }
            let option = arg.get_long().map(|l| format!("--{l}")).unwrap_or_default();
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            found.push((name.to_owned(), format!("As {option}: {help}")));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, found);
        }
    }
    let mut found = Vec::new();
    walk(cmd, &mut found);
    found
}

/// What is in a state directory: each path as [`StateDir`] computes it, relative to the
/// directory, with what it holds.
pub fn state_layout() -> Vec<(String, &'static str)> {
    let state = StateDir::new("/");
    let rows: [(PathBuf, &str); 16] = [
        (
            state.managed(ManagedFile::LivekitYaml),
            "livekit-server's config (a symlink through current/, as the next two): one consistent set",
        ),
        (
            state.managed(ManagedFile::BackendEnv),
            "lk-backend's environment",
        ),
        (
            state.managed(ManagedFile::RuntimeJson),
            "the node's URLs and key, for linked services",
        ),
        (
            state.current_link(),
            "the symlink to the live generation, switched by one rename",
        ),
        (
            state.generations_dir(),
            "the published sets of the three files; the last 5 are kept",
        ),
        (
            state.settings_file(),
            "operator settings (optional); unknown keys are refused by name",
        ),
        (
            state.extra_file(),
            "operator overlay merged into livekit.yaml (optional), checked against livekit-server's config model",
        ),
        (state.secrets_file(), "the default file secret store (0600)"),
        (
            state.livekit_bin(),
            "the installed livekit-server: a symlink to livekit-server-<ver> beside <ver>.manifest.json; 3 versions kept",
        ),
        (state.rpc_socket(), "the daemon's JSON-RPC socket (0600)"),
        (
            state.lock_file(),
            "the lock every writer of the directory holds",
        ),
        (
            state.daemon_lock_file(),
            "held by the one control plane of the directory",
        ),
        (
            state.pid_file("<name>"),
            "a media process's pid and start time (with <name>.started.json: what it started with)",
        ),
        (
            state.log_file("<name>"),
            "the output of a media process (livekit-server, lk-backend)",
        ),
        (
            state.backups_dir(),
            "anything replaced that livekit-provision did not write, timestamped, never deleted",
        ),
        (
            state.backend_sqlite(),
            "lk-backend's database (SQLITE_PATH of backend.env)",
        ),
    ];
    rows.into_iter()
        .map(|(path, what)| {
            let rel = path
                .strip_prefix("/")
                .unwrap_or(&path)
                .display()
                .to_string();
            let rel = if what.starts_with("the published") || rel == "backups" {
                format!("{rel}/")
            } else {
                rel
            };
            (rel, what)
        })
        .collect()
}

/// `.SH FILES`: the state directory's layout, each path under `<state>`.
pub fn files() -> String {
    let mut roff = String::from(
        ".SH FILES\nUnder the state directory <state> (--state-dir, LIVEKIT_PROVISION_STATE_DIR, \
         $XDG_STATE_HOME/livekit-provision or ~/.local/state/livekit-provision):\n",
    );
    for (path, what) in state_layout() {
        let _ = write!(
            roff,
            ".TP\n\\fI<state>/{}\\fR\n{}\n",
            escape(&path),
            escape(what)
        );
    }
    roff
}

/// Text as roff reads it: a backslash doubled, a leading dot or quote kept from being a request,
/// a hyphen as a hyphen.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\\\").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every variable the binary's sources read by name is in the man page (a literal in a line
    /// that reads the environment); test-only ones are allowed by name.
    #[test]
    fn every_variable_read_is_documented() {
        let cmd = crate::cli::Cli::command();
        let documented: Vec<String> = option_variables(&cmd)
            .into_iter()
            .map(|(name, _)| name)
            .chain(OTHER_ENVIRONMENT.iter().map(|(name, _)| (*name).to_owned()))
            .collect();
        for name in [
            "LIVEKIT_PROVISION_STATE_DIR",
            "LIVEKIT_PROVISION_SECRETS",
            "LIVEKIT_PROVISION_RELEASE_URL",
            "LIVEKIT_SHA256",
            "NO_COLOR",
            "XDG_STATE_HOME",
        ] {
            assert!(documented.iter().any(|d| d == name), "{name}");
        }
        // Only the contrib unit's test reads this one.
        let test_only = ["UPDATE_CONTRIB"];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut sources = vec![root.join("livekit-provision/src/paths.rs")];
        for dir in [
            "livekit-provision-cli/src",
            "livekit-provision-cli/src/commands",
            "livekit-provision-setup/src",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    sources.push(path);
                }
            }
        }
        let mut seen = 0;
        for path in sources {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| {
                ["var_os(\"", "env::var(\"", "absolute(\"", "env(\""]
                    .iter()
                    .any(|read| l.contains(read))
            }) {
                for name in line.split('"').skip(1).step_by(2) {
                    if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty()
                    {
                        seen += 1;
                        assert!(
                            documented.iter().any(|d| d == name) || test_only.contains(&name),
                            "{} reads {name}, which the man page's ENVIRONMENT does not list",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(
            seen >= 3,
            "the scan found only {seen} reads: it looks in the wrong place"
        );
    }

    #[test]
    fn the_files_are_the_paths_the_code_uses() {
        let layout = state_layout();
        let paths: Vec<&str> = layout.iter().map(|(p, _)| p.as_str()).collect();
        for path in [
            "livekit.yaml",
            "backend.env",
            "runtime.json",
            "current",
            "generations/",
            "provision.yaml",
            "extra.yaml",
            "secrets.json",
            "bin/livekit-server",
            "run/rpc.sock",
            "run/lock",
            "run/daemon.lock",
            "run/<name>.pid",
            "logs/<name>.log",
            "backups/",
        ] {
            assert!(paths.contains(&path), "{path} not in {paths:?}");
        }
        let roff = files();
        assert!(roff.contains("\\fI<state>/run/rpc.sock\\fR"), "{roff}");
    }
}
