//! systemd unit files for `media_owner: external` (`livekit-provision units`): livekit-server
//! and lk-backend each run by their own unit through `livekit-provision exec <name>` (so the
//! unit's main pid is the program's), and the daemon's unit. Pure rendering: the CLI prints
//! them or writes them into a directory.
//!
//! The choices, each said in a comment of the unit it is in:
//! - `Restart=always` with `RestartPreventExitStatus=78`: livekit-server exits 0 when it
//!   rejects its config, so `on-failure` would leave it down; `exec` exits 78 (`EX_CONFIG`)
//!   when the state is not provisioned or inconsistent, which a restart cannot fix.
//! - `ExecStartPre=… ensure`: the config exists (and agrees) before `exec` looks at it.
//! - `KillSignal=SIGTERM` and a long `TimeoutStopSec`: livekit-server drains its rooms on
//!   SIGTERM before it exits.
//! - lk-backend `Requires=` and is ordered `After=` livekit-server.
//! - The daemon's `KillMode=process`: with `media_owner: daemon` the media live in its cgroup.
//! - Hardening: `NoNewPrivileges`, `ProtectSystem=strict` with the state directory in
//!   `ReadWritePaths`, `ProtectHome=read-only`, `PrivateTmp`, `PrivateDevices`, kernel and
//!   cgroup protections, `LimitNOFILE` raised for many connections.

use std::fmt::Write as _;
use std::path::PathBuf;

use livekit_provision_daemon::supervise::{LIVEKIT_SERVER, LK_BACKEND, TLS_FRONT};
use livekit_provision_setup::Exit;

/// The exit code of `livekit-provision exec` when it refuses to start (`EX_CONFIG` of
/// sysexits.h): not provisioned, inconsistent, not configured for an outside supervisor.
const EXIT_REFUSED: u8 = Exit::Refused.code();

/// The daemon's unit name.
pub const DAEMON_UNIT: &str = "livekit-provision-daemon.service";

/// What the units refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOptions {
    /// The `livekit-provision` binary.
    pub cli: PathBuf,
    /// The `livekit-provision-daemon` binary.
    pub daemon: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// `User=` of the units; `None` leaves it out (root).
    pub user: Option<String>,
    /// Whether an lk-backend unit is wanted (`backend_command` is set).
    pub backend: bool,
    /// Whether a tls-front unit is wanted (`tls:` is set).
    pub tls_front: bool,
}

/// One unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Its file name (`livekit-server.service`).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// A value `units` will not write: systemd would read it otherwise than meant (a newline starts
/// a new directive, an empty `User=` runs the service as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitValueError {
    /// The option or flag (`--user`, `the state directory`, …).
    pub what: &'static str,
    /// The value, escaped for a terminal.
    pub shown: String,
    /// Why.
    pub reason: &'static str,
}

impl std::fmt::Display for UnitValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} cannot go into a systemd unit: {}",
            self.what, self.shown, self.reason
        )
    }
}

impl std::error::Error for UnitValueError {}

/// Where a value goes in a unit: each kind is read back differently by systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// A path in an `Exec*=` line: `$` expands, `%` is a specifier, spaces split words.
    ExecPath,
    /// A path in a list setting (`ReadWritePaths=`): `%` is a specifier, spaces split.
    ListPath,
    /// The value of an `Environment=` assignment (`NAME=value`, as one quoted word).
    Environment,
    /// `User=`: a user name or a numeric uid, as systemd accepts it.
    User,
}

/// `value` as it must be written in a unit for systemd to read it back as one word, exactly:
/// the one quoting and validation of every value `units` writes. Refused: any control
/// character (a newline would start a new directive), `"` and `\\` in paths (systemd would
/// unescape them), relative paths, an empty or malformed user name. Escaped: `%` (`%%`), `$` in
/// an exec line (`$$`); quoted (`"…"`) when it holds a space.
fn systemd_value(what: &'static str, value: &str, field: Field) -> Result<String, UnitValueError> {
    let refuse = |reason| UnitValueError {
        what,
        shown: format!("{value:?}"),
        reason,
    };
    if value.chars().any(char::is_control) {
        return Err(refuse(
            "it holds a control character (a newline would start a new directive)",
        ));
    }
    if field == Field::User {
        if value.is_empty() {
            return Err(refuse(
                "it is empty (`User=` with no name runs the service as root); leave --user out \
                 to run as root on purpose",
            ));
        }
        let name_ok = value.len() <= 32
            && (value.bytes().all(|b| b.is_ascii_digit())
                || (value
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))));
        if !name_ok {
            return Err(refuse(
                "it is not a user name systemd accepts (letters, digits, '_', '-', '.', at most 32, \
                 not starting with a digit or '-'), nor a numeric uid",
            ));
        }
        return Ok(value.to_owned());
    }
    if value.contains(['"', '\\']) {
        return Err(refuse(
            "it holds '\"' or '\\', which systemd would unescape",
        ));
    }
    let body = match field {
        Field::Environment => value.split_once('=').map_or(value, |(_, v)| v),
        _ => value,
    };
    if !body.starts_with('/') {
        return Err(refuse("it is not an absolute path"));
    }
    let mut out = value.replace('%', "%%");
    if field == Field::ExecPath {
        out = out.replace('$', "$$");
    }
    if out.contains([' ', '\'']) {
        out = format!("\"{out}\"");
    }
    Ok(out)
}

/// The values of [`UnitOptions`] as written in the units, each through [`systemd_value`].
struct Values {
    cli: String,
    daemon: String,
    state: String,
    environment: String,
    user: Option<String>,
    backend: bool,
    tls_front: bool,
}

impl Values {
    fn of(opts: &UnitOptions) -> Result<Self, UnitValueError> {
        let path = |what, path: &std::path::Path, field| {
            let text = path.to_str().ok_or_else(|| UnitValueError {
                what,
                shown: format!("{:?}", path.display().to_string()),
                reason: "it is not UTF-8",
            })?;
            systemd_value(what, text, field)
        };
        let state_text = opts.state.display().to_string();
        Ok(Self {
            cli: path("the livekit-provision binary", &opts.cli, Field::ExecPath)?,
            daemon: path(
                "the livekit-provision-daemon binary",
                &opts.daemon,
                Field::ExecPath,
            )?,
            state: path("the state directory", &opts.state, Field::ListPath)?,
            environment: systemd_value(
                "the state directory",
                &format!("LIVEKIT_PROVISION_STATE_DIR={state_text}"),
                Field::Environment,
            )?,
            user: opts
                .user
                .as_deref()
                .map(|user| systemd_value("--user", user, Field::User))
                .transpose()?,
            backend: opts.backend,
            tls_front: opts.tls_front,
        })
    }
}

/// The units: livekit-server, lk-backend (when wanted), the daemon. A value systemd would read
/// otherwise than meant is refused ([`UnitValueError`]) and nothing is rendered.
pub fn render(opts: &UnitOptions) -> Result<Vec<Unit>, UnitValueError> {
    let values = Values::of(opts)?;
    let mut units = vec![media_unit(&values, LIVEKIT_SERVER)];
    if values.backend {
        units.push(media_unit(&values, LK_BACKEND));
    }
    if values.tls_front {
        units.push(media_unit(&values, TLS_FRONT));
    }
    units.push(daemon_unit(&values));
    Ok(units)
}

/// The `[Service]` lines both media units and the daemon share: user, state directory,
/// hardening.
fn common_service(values: &Values, out: &mut String) {
    if let Some(user) = &values.user {
        let _ = writeln!(out, "User={user}");
    }
    let _ = writeln!(out, "Environment={}", values.environment);
    out.push_str(
        "# Secrets may come from another store, e.g.:\n\
         # Environment=LIVEKIT_PROVISION_SECRETS=redis://10.0.0.5:6379/0\n\
         # Hardening: nothing but the state directory is writable.\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n",
    );
    let _ = writeln!(out, "ReadWritePaths={}", values.state);
    out.push_str(
        "ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictNamespaces=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         LimitNOFILE=65536\n",
    );
}

fn media_unit(values: &Values, name: &str) -> Unit {
    let cli = &values.cli;
    let server = name == LIVEKIT_SERVER;
    let mut out = format!(
        "# {name}, run by systemd (media_owner: external in provision.yaml).\n\
         # Generated by `livekit-provision units`. Install: copy to /etc/systemd/system/, then\n\
         #   systemctl daemon-reload && systemctl enable --now {name}\n\
         [Unit]\n"
    );
    if server {
        out.push_str(
            "Description=LiveKit media server (livekit-server, provisioned by livekit-provision)\n\
             After=network-online.target livekit-provision-daemon.service\n\
             Wants=network-online.target\n",
        );
    } else if name == TLS_FRONT {
        out.push_str(
            "Description=wss:// for LiveKit (the TLS front of livekit-provision)\n\
             After=livekit-server.service\n\
             Wants=livekit-server.service\n",
        );
    } else {
        out.push_str(
            "Description=LiveKit backend (lk-backend, provisioned by livekit-provision)\n\
             After=livekit-server.service\n\
             Requires=livekit-server.service\n",
        );
    }
    out.push_str("\n[Service]\nType=exec\n");
    common_service(values, &mut out);
    let _ = write!(
        out,
        "# The config exists and agrees before `exec` looks at it.\n\
         ExecStartPre={cli} ensure\n\
         # `exec` checks the state, cleans the environment as the daemon does and becomes\n\
         # {name}: this unit's main pid is {name}'s.\n\
         ExecStart={cli} exec {name}\n\
         # {name} may exit 0 on a bad config: restart on any exit, except 78 (EX_CONFIG):\n\
         # `exec` refused (not provisioned, inconsistent files), which a restart cannot fix.\n\
         Restart=always\n\
         RestartSec=2\n\
         RestartPreventExitStatus={EXIT_REFUSED}\n\
         KillMode=mixed\n\
         KillSignal=SIGTERM\n"
    );
    if server {
        out.push_str(
            "# On SIGTERM livekit-server drains: it waits for the rooms to empty before it exits.\n\
             TimeoutStopSec=1h\n",
        );
    } else {
        out.push_str("TimeoutStopSec=30s\n");
    }
    if name == TLS_FRONT {
        out.push_str(
            "# tls.port and tls.http_port (443, 80) are below 1024.\n\
             AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
        );
    }
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Unit {
        name: format!("{name}.service"),
        text: out,
    }
}

fn daemon_unit(values: &Values) -> Unit {
    let daemon = &values.daemon;
    let mut out = String::from(
        "# livekit-provision-daemon: provisions the node, reports and answers health.\n\
         # Generated by `livekit-provision units`. Install: copy to /etc/systemd/system/, then\n\
         #   systemctl daemon-reload && systemctl enable --now livekit-provision-daemon\n\
         [Unit]\n\
         Description=livekit-provision control plane\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n",
    );
    common_service(values, &mut out);
    let _ = write!(
        out,
        "ExecStart={daemon}\n\
         # SIGHUP makes the daemon run ensure again.\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=always\n\
         RestartSec=2\n\
         # KillMode=process: systemd signals only the daemon. With media_owner: external the media\n\
         # run in their own units; with media_owner: daemon they live in this unit's cgroup and\n\
         # the default (control-group) would kill every call whenever the daemon restarts.\n\
         KillMode=process\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=10\n"
    );
    if values.tls_front {
        // The first certificate is obtained before the front runs: the daemon's `ensure`
        // answers HTTP-01 on tls.http_port (80) itself.
        out.push_str(
            "# tls: ACME HTTP-01 on tls.http_port (80) before the front runs, and the front.\n\
             AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
        );
    }
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Unit {
        name: DAEMON_UNIT.to_owned(),
        text: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_front_unit_with_tls_that_may_bind_443() {
        let mut opts = options(false);
        opts.tls_front = true;
        let units = render(&opts).unwrap();
        let front = units
            .iter()
            .find(|u| u.name == "tls-front.service")
            .unwrap_or_else(|| panic!("no front unit"));
        assert_eq!(
            value(&front.text, "ExecStart"),
            Some("/usr/local/bin/livekit-provision exec tls-front")
        );
        assert_eq!(
            value(&front.text, "AmbientCapabilities"),
            Some("CAP_NET_BIND_SERVICE")
        );
        assert!(
            render(&options(false))
                .unwrap()
                .iter()
                .all(|u| u.name != "tls-front.service")
        );
    }

    fn options(backend: bool) -> UnitOptions {
        UnitOptions {
            cli: PathBuf::from("/usr/local/bin/livekit-provision"),
            daemon: PathBuf::from("/usr/local/bin/livekit-provision-daemon"),
            state: PathBuf::from("/var/lib/livekit-provision"),
            user: Some("livekit".to_owned()),
            backend,
            tls_front: false,
        }
    }

    /// The value of `key=` in `text` (the last one).
    fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    #[test]
    fn the_media_units_exec_restart_and_drain() {
        let units = render(&options(true)).unwrap();
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "livekit-server.service",
                "lk-backend.service",
                "livekit-provision-daemon.service"
            ]
        );
        let server = &units[0].text;
        assert_eq!(
            value(server, "ExecStart"),
            Some("/usr/local/bin/livekit-provision exec livekit-server")
        );
        assert_eq!(value(server, "Restart"), Some("always"));
        assert_eq!(value(server, "RestartPreventExitStatus"), Some("78"));
        assert_eq!(value(server, "KillSignal"), Some("SIGTERM"));
        assert_eq!(value(server, "TimeoutStopSec"), Some("1h"));
        assert_eq!(
            value(server, "ReadWritePaths"),
            Some("/var/lib/livekit-provision")
        );
        for key in ["NoNewPrivileges", "PrivateTmp"] {
            assert_eq!(value(server, key), Some("yes"), "{key}");
        }
        assert_eq!(value(server, "ProtectSystem"), Some("strict"));
        assert_eq!(value(server, "LimitNOFILE"), Some("65536"));
        let backend = &units[1].text;
        assert_eq!(value(backend, "After"), Some("livekit-server.service"));
        assert_eq!(value(backend, "Requires"), Some("livekit-server.service"));
        assert_eq!(
            value(backend, "ExecStart"),
            Some("/usr/local/bin/livekit-provision exec lk-backend")
        );
        assert_eq!(value(&units[2].text, "KillMode"), Some("process"));
        assert_eq!(value(&units[2].text, "User"), Some("livekit"));
    }

    /// `contrib/systemd/livekit-provision-daemon.service` is this module's daemon unit for the
    /// usual install (binaries in `/usr/local/bin`, state in `/var/lib/livekit-provision`, user
    /// `livekit`): one renderer, so the shipped unit has the same hardening as `units` prints.
    /// `UPDATE_CONTRIB=1 cargo test -p livekit-provision-cli contrib` rewrites it.
    #[test]
    fn the_contrib_unit_is_the_rendered_daemon_unit() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contrib/systemd")
            .join(DAEMON_UNIT);
        let rendered = render(&options(false))
            .unwrap()
            .into_iter()
            .find(|u| u.name == DAEMON_UNIT)
            .unwrap()
            .text;
        if std::env::var_os("UPDATE_CONTRIB").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            shipped,
            rendered,
            "{} differs from `livekit-provision units`; rewrite it with \
             `UPDATE_CONTRIB=1 cargo test -p livekit-provision-cli contrib`",
            path.display()
        );
    }

    #[test]
    fn no_backend_unit_without_a_backend() {
        let units = render(&options(false)).unwrap();
        assert!(units.iter().all(|u| u.name != "lk-backend.service"));
        assert_eq!(units.len(), 2);
    }

    #[test]
    fn every_value_goes_through_one_quoting_and_is_refused_when_systemd_would_misread_it() {
        let with = |change: &dyn Fn(&mut UnitOptions)| {
            let mut opts = options(true);
            change(&mut opts);
            render(&opts)
        };
        // A newline in --user would inject a directive; an empty one runs as root.
        for user in [
            "livekit\nExecStartPre=/bin/sh -c id",
            "",
            "a b",
            "-x",
            "1abc",
        ] {
            let err = with(&|o| o.user = Some(user.to_owned())).unwrap_err();
            assert_eq!(err.what, "--user", "{user:?}");
        }
        assert!(with(&|o| o.user = Some("1000".to_owned())).is_ok());
        let err =
            with(&|o| o.state = PathBuf::from("/var/lib/lk\nExecStartPre=/bin/id")).unwrap_err();
        assert_eq!(err.what, "the state directory");
        assert!(with(&|o| o.state = PathBuf::from("relative/state")).is_err());
        assert!(with(&|o| o.cli = PathBuf::from("/opt/\"q\"/lkp")).is_err());
        // A space is quoted where systemd would split, `%` and `$` escaped.
        let units = with(&|o| {
            o.state = PathBuf::from("/srv/live kit/100%");
            o.cli = PathBuf::from("/opt/my tools/$lkp");
        })
        .unwrap();
        let server = &units[0].text;
        assert_eq!(
            value(server, "ReadWritePaths"),
            Some("\"/srv/live kit/100%%\"")
        );
        assert_eq!(
            value(server, "Environment"),
            Some("\"LIVEKIT_PROVISION_STATE_DIR=/srv/live kit/100%%\"")
        );
        assert_eq!(
            value(server, "ExecStart"),
            Some("\"/opt/my tools/$$lkp\" exec livekit-server")
        );
        // Every line of every unit is a comment, a section, a blank or one `Key=value`.
        for unit in &units {
            for line in unit.text.lines() {
                assert!(
                    line.is_empty()
                        || line.starts_with('#')
                        || line.starts_with('[')
                        || line.split_once('=').is_some_and(|(k, _)| {
                            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric())
                        }),
                    "{line:?}"
                );
            }
        }
    }
}
