//! The bad-input suite: kinds of bad input at every entrance of the CLI (flags, files, the
//! environment, store contents, unit rendering), each on a converged node. Every case must exit
//! non-zero with an `error` naming the input, never panic, never hang (a FIFO in place of a
//! file), print no secret of the store, and leave the state directory — published files,
//! generations and the stored secrets — byte-for-byte as it was. (The daemon's RPC parameters
//! have their own table in the daemon's tests.)

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Node, finish};

/// Where the bad input enters.
#[derive(Debug, Clone, Copy)]
enum Door {
    /// Only the command line.
    Flags,
    /// A file of the state directory, written before the run (`provision.yaml`, `extra.yaml`).
    File(&'static str, &'static str),
    /// A value written straight into the file store (as another tool or a corrupted store would).
    Stored(&'static str, &'static str),
    /// The whole `secrets.json`, replaced.
    StoreFile(&'static str),
    /// An environment variable.
    Env(&'static str, &'static str),
    /// A FIFO (named pipe) in place of a file of the state directory: nothing may block on it.
    Fifo(&'static str),
    /// A file of the state directory replaced by a symlink (to a device, …).
    Link(&'static str, &'static str),
    /// A value of this many bytes of `1` written straight into the file store.
    StoredHuge(&'static str, usize),
}

struct Case {
    door: Door,
    args: &'static [&'static str],
    /// Text the error must contain: the input, named.
    names: &'static str,
}

const LONG_ROOM: &str = "roooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooom";

const fn case(door: Door, args: &'static [&'static str], names: &'static str) -> Case {
    Case { door, args, names }
}

use Door::{Env, Fifo, File, Flags, Link, StoreFile, Stored, StoredHuge};

const CASES: &[Case] = &[
    // --- flags -------------------------------------------------------------------------------
    case(
        Flags,
        &["token", "--identity", "", "--room", "r"],
        "identity",
    ),
    case(
        Flags,
        &["token", "--identity", "a", "--room", LONG_ROOM],
        "room",
    ),
    case(
        Flags,
        &["token", "--identity", LONG_ROOM, "--room", "r"],
        "identity",
    ),
    case(Flags, &["token", "--identity", "a", "--room", ""], "room"),
    case(
        Flags,
        &["token", "--identity", "a", "--room", "r", "--ttl", "0s"],
        "lifetime",
    ),
    case(
        Flags,
        &["token", "--identity", "a", "--room", "r", "--ttl", "400d"],
        "lifetime",
    ),
    case(
        Flags,
        &["token", "--identity", "a", "--room", "r", "--ttl", "banana"],
        "--ttl",
    ),
    case(Flags, &["token", "--identity", "a"], "room"),
    case(Flags, &["token", "--room", "r"], "--identity"),
    case(Flags, &["stop", "--grace", "banana"], "--grace"),
    case(
        Flags,
        &["secrets", "rotate", "--grace", "banana", "--yes"],
        "--grace",
    ),
    case(
        Flags,
        &["secrets", "rotate", "--grace", "31d", "--yes"],
        "--grace",
    ),
    case(
        Flags,
        &["secrets", "rotate", "--retire-by", "40d", "--yes"],
        "--retire-by",
    ),
    case(
        Flags,
        &[
            "secrets",
            "rotate",
            "--grace",
            "2h",
            "--retire-by",
            "1h",
            "--yes",
        ],
        "--retire-by",
    ),
    case(
        Flags,
        &["secrets", "rotate", "--promote", "--grace", "1h", "--yes"],
        "--grace",
    ),
    case(
        Flags,
        &["secrets", "rotate", "--promote", "--yes"],
        "no key is staged",
    ),
    case(Flags, &["install", "--version", "banana"], "banana"),
    case(
        Flags,
        &["install", "--version", "1.7.2", "--sha256", "xyz"],
        "xyz",
    ),
    case(Flags, &["--secrets", "ftp://x", "ensure"], "ftp://x"),
    case(
        Flags,
        &["--secrets", "exec:/nonexistent/helper", "ensure"],
        "/nonexistent/helper",
    ),
    case(
        Flags,
        &["--secrets", "redis://:pw@host:99999/0", "ensure"],
        "99999",
    ),
    case(Flags, &["--secrets", "file:", "ensure"], "file:"),
    case(Flags, &["secrets", "get", "lower_case"], "lower_case"),
    case(Flags, &["secrets", "set", "lower_case", "v"], "lower_case"),
    case(
        Flags,
        &["secrets", "set", "NOT_A_SETTING", "v"],
        "NOT_A_SETTING",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_VERSION", "banana"],
        "LIVEKIT_VERSION",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_VERSION", ""],
        "LIVEKIT_VERSION",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_VERSION", "1.7"],
        "LIVEKIT_VERSION",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_NODE_IP", "999.1.1.1"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_NODE_IP", "1.2.3.4 5"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_KEY", "a b"],
        "LIVEKIT_API_KEY",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_SECRET", "short"],
        "LIVEKIT_API_SECRET",
    ),
    case(
        Flags,
        &[
            "secrets",
            "set",
            "LIVEKIT_API_SECRET",
            "0123456789012345678901234567890123456789'",
        ],
        "LIVEKIT_API_SECRET",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_REDIS_ADDRESS", "not a host"],
        "not a host",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_REDIS_ADDRESS", "h:99999"],
        "h:99999",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_REDIS_PASSWORD", "pw with spaces"],
        "LIVEKIT_REDIS_PASSWORD",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_SHA256", "xyz"],
        "LIVEKIT_SHA256",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_ROTATION_GRACE_UNTIL", "tomorrow"],
        "LIVEKIT_ROTATION_GRACE_UNTIL",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_ROTATION_GRACE", "99999999"],
        "LIVEKIT_ROTATION_GRACE",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_ROTATION_DEADLINE", "tomorrow"],
        "LIVEKIT_ROTATION_DEADLINE",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_SECRET_NEXT", "x"],
        "LIVEKIT_API_SECRET_NEXT",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_KEY_PREVIOUS", "a:b"],
        "LIVEKIT_API_KEY_PREVIOUS",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_SECRET_PREVIOUS", "x"],
        "LIVEKIT_API_SECRET_PREVIOUS",
    ),
    case(Flags, &["no-such-command"], "no-such-command"),
    case(Flags, &["ensure", "--no-such-flag"], "--no-such-flag"),
    // Round 3 (issue 24).
    case(
        Flags,
        &["secrets", "rotate", "--grace", "1000000000y", "--yes"],
        "--grace",
    ),
    case(
        Flags,
        &[
            "secrets",
            "set",
            "LIVEKIT_NODE_IP",
            "10.0.0.1\nExecStartPre=/bin/id",
        ],
        "LIVEKIT_NODE_IP",
    ),
    case(
        Flags,
        &[
            "secrets",
            "set",
            "LIVEKIT_ROTATION_GRACE_UNTIL",
            "2026-01-01T00:00:00Z",
        ],
        "LIVEKIT_ROTATION_GRACE_UNTIL",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_SHA256", "0123"],
        "LIVEKIT_SHA256",
    ),
    // The live pair is changed by `secrets rotate`, not replaced at once.
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_SECRET", PLANTED_SECRET],
        "secrets rotate",
    ),
    case(
        Flags,
        &["secrets", "set", "LIVEKIT_API_KEY", "APIreplaced"],
        "secrets rotate",
    ),
    // --- unit rendering (`units`, flags into systemd syntax) ---------------------------------
    case(
        Flags,
        &["units", "--user", "livekit\nExecStartPre=/bin/sh -c id"],
        "--user",
    ),
    case(Flags, &["units", "--user", ""], "--user"),
    case(Flags, &["units", "--user", "a b"], "--user"),
    case(Flags, &["units", "--user=-rf"], "--user"),
    case(Flags, &["--livekit-bin", "/", "check"], "is a directory"),
    // --- provision.yaml ----------------------------------------------------------------------
    case(
        File(
            "provision.yaml",
            "webhook:\n  urls: [\"https://h/x\\nExecStart=/bin/id\"]\n",
        ),
        &["ensure"],
        "webhook.urls",
    ),
    case(
        File(
            "provision.yaml",
            "webhook:\n  urls: [\"https://h/a\\tb\"]\n",
        ),
        &["render"],
        "webhook.urls",
    ),
    case(
        File(
            "provision.yaml",
            "webhook:\n  urls: [\"https://h/\\\"x\"]\n",
        ),
        &["check"],
        "webhook.urls",
    ),
    case(
        File("provision.yaml", "release_url: \"https://h/x\\ny\"\n"),
        &["ensure"],
        "release_url",
    ),
    case(
        File("provision.yaml", "livekit_bin: /\n"),
        &["check"],
        "is a directory",
    ),
    case(
        File(
            "provision.yaml",
            "livekit_bin: /nonexistent/livekit-server\n",
        ),
        &["check"],
        "does not exist",
    ),
    case(Fifo("provision.yaml"), &["ensure"], "FIFO"),
    case(Fifo("provision.yaml"), &["check"], "FIFO"),
    case(Fifo("provision.yaml"), &["render"], "FIFO"),
    case(
        Link("provision.yaml", "/dev/zero"),
        &["ensure"],
        "character device",
    ),
    case(
        Link("provision.yaml", "/dev/zero"),
        &["check"],
        "character device",
    ),
    case(Fifo("extra.yaml"), &["ensure"], "FIFO"),
    case(
        Link("extra.yaml", "/dev/zero"),
        &["render"],
        "character device",
    ),
    case(File("provision.yaml", "port: 0\n"), &["ensure"], "port"),
    case(File("provision.yaml", "port: 70000\n"), &["ensure"], "port"),
    case(
        File("provision.yaml", "port: banana\n"),
        &["ensure"],
        "port",
    ),
    case(File("provision.yaml", "prot: 1\n"), &["ensure"], "prot"),
    case(
        File(
            "provision.yaml",
            "rtc_port_range_start: 6000\nrtc_port_range_end: 5000\n",
        ),
        &["ensure"],
        "rtc_port_range",
    ),
    case(
        File("provision.yaml", "backend_port: 7880\n"),
        &["ensure"],
        "7880",
    ),
    case(
        File("provision.yaml", "redis_address: nohost\n"),
        &["ensure"],
        "redis_address",
    ),
    case(
        File("provision.yaml", "release_url: ftp://x\n"),
        &["ensure"],
        "release_url",
    ),
    case(
        File("provision.yaml", "log_level: loud\n"),
        &["ensure"],
        "log_level",
    ),
    case(
        File("provision.yaml", ": : :\n"),
        &["ensure"],
        "provision.yaml",
    ),
    case(
        File("provision.yaml", "- a\n- b\n"),
        &["ensure"],
        "provision.yaml",
    ),
    case(
        File("provision.yaml", "redis_db: -1\n"),
        &["ensure"],
        "redis_db",
    ),
    case(
        File("provision.yaml", "port: 7880\nport: 7881\n"),
        &["ensure"],
        "port",
    ),
    case(
        File("provision.yaml", "port: 7880\n"),
        &["render", "--no-such-flag"],
        "--no-such-flag",
    ),
    // `changes:` (when a restart may apply): an unknown mode, a bad window, absurd durations.
    case(
        File("provision.yaml", "changes:\n  apply: idel\n"),
        &["ensure"],
        "idel",
    ),
    case(
        File("provision.yaml", "changes:\n  apply: window\n"),
        &["ensure"],
        "changes.window",
    ),
    case(
        File(
            "provision.yaml",
            "changes:\n  apply: window\n  window: 2am-4am\n",
        ),
        &["ensure"],
        "changes.window",
    ),
    case(
        File("provision.yaml", "changes:\n  deadline: -5m\n"),
        &["ensure"],
        "-5m",
    ),
    case(
        File("provision.yaml", "changes:\n  deadline: 1000y\n"),
        &["ensure"],
        "changes.deadline",
    ),
    case(
        File("provision.yaml", "changes:\n  drain: 0s\n"),
        &["ensure"],
        "changes.drain",
    ),
    case(
        File("provision.yaml", "changes:\n  window: 02:00-04:00\n"),
        &["ensure"],
        "changes.window",
    ),
    // --- extra.yaml ----------------------------------------------------------------------------
    case(File("extra.yaml", "keys: {a: b}\n"), &["ensure"], "keys"),
    case(File("extra.yaml", "port: 1\n"), &["ensure"], "port"),
    case(
        File("extra.yaml", "rtc: {node_ip: 1.2.3.4}\n"),
        &["ensure"],
        "node_ip",
    ),
    case(
        File("extra.yaml", "nonsense_section: 1\n"),
        &["ensure"],
        "nonsense_section",
    ),
    case(
        File("extra.yaml", "room:\n  empty_timeout_typo: 1\n"),
        &["ensure"],
        "room.empty_timeout_typo",
    ),
    case(
        File("extra.yaml", "turn:\n  tls_port: [5349]\n"),
        &["ensure"],
        "turn.tls_port",
    ),
    case(File("extra.yaml", "- a\n"), &["ensure"], "extra.yaml"),
    case(File("extra.yaml", "room: [\n"), &["ensure"], "extra.yaml"),
    case(
        File("extra.yaml", "key_file: /etc/keys\n"),
        &["ensure"],
        "key_file",
    ),
    // --- store contents (another writer, a corrupted store) --------------------------------
    case(
        Stored("LIVEKIT_NODE_IP", "nope"),
        &["ensure"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        Stored("LIVEKIT_VERSION", "banana"),
        &["ensure"],
        "LIVEKIT_VERSION",
    ),
    case(
        Stored("LIVEKIT_API_SECRET", "short"),
        &["ensure"],
        "LIVEKIT_API_SECRET",
    ),
    case(
        Stored("LIVEKIT_API_KEY", "a b"),
        &["ensure"],
        "LIVEKIT_API_KEY",
    ),
    case(
        Stored("LIVEKIT_REDIS_ADDRESS", "not a host"),
        &["ensure"],
        "LIVEKIT_REDIS_ADDRESS",
    ),
    case(
        Stored("LIVEKIT_ROTATION_GRACE_UNTIL", "soon"),
        &["ensure"],
        "LIVEKIT_ROTATION_GRACE_UNTIL",
    ),
    case(
        Stored("LIVEKIT_NODE_IP", "nope"),
        &["secrets", "rotate", "--yes"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        Stored("LIVEKIT_ROTATION_GRACE", "forever"),
        &["secrets", "rotate", "--yes"],
        "LIVEKIT_ROTATION_GRACE",
    ),
    case(
        Stored("LIVEKIT_API_KEY_NEXT", "a b"),
        &["ensure"],
        "LIVEKIT_API_KEY_NEXT",
    ),
    case(StoreFile("{not json"), &["ensure"], "secrets.json"),
    case(StoreFile("[1, 2]"), &["ensure"], "secrets.json"),
    case(
        StoreFile("{\"LIVEKIT_NODE_IP\": 5}"),
        &["ensure"],
        "secrets.json",
    ),
    case(StoreFile("{not json"), &["secrets", "list"], "secrets.json"),
    case(Fifo("secrets.json"), &["ensure"], "FIFO"),
    case(Fifo("secrets.json"), &["check"], "FIFO"),
    case(Fifo("secrets.json"), &["secrets", "list"], "FIFO"),
    case(
        Fifo("secrets.json"),
        &["secrets", "set", "LIVEKIT_VERSION", "1.7.2"],
        "FIFO",
    ),
    case(
        Link("secrets.json", "/dev/zero"),
        &["ensure"],
        "character device",
    ),
    // 10 MB: secrets.json itself is over the reader's cap, and refused by name.
    case(
        StoredHuge("LIVEKIT_NODE_IP", 10 << 20),
        &["ensure"],
        "secrets.json",
    ),
    // 3 MB: the file is read, the value is refused by name, and not echoed.
    case(
        StoredHuge("LIVEKIT_NODE_IP", 3 << 20),
        &["ensure"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        StoredHuge("LIVEKIT_NODE_IP", 4000),
        &["ensure"],
        "LIVEKIT_NODE_IP",
    ),
    case(
        StoredHuge("LIVEKIT_VERSION", 5000),
        &["check"],
        "LIVEKIT_VERSION",
    ),
    case(
        Stored("LIVEKIT_VERSION", "1.7.2\nExecStart=/bin/id"),
        &["ensure"],
        "LIVEKIT_VERSION",
    ),
    case(
        Stored("LIVEKIT_ROTATION_DEADLINE", "tomorrow"),
        &["secrets", "rotate", "--yes"],
        "LIVEKIT_ROTATION_DEADLINE",
    ),
    case(
        Stored("LIVEKIT_API_SECRET_PREVIOUS", "short"),
        &["ensure"],
        "LIVEKIT_API_SECRET_PREVIOUS",
    ),
    case(
        Stored("LIVEKIT_ROTATION_GRACE_UNTIL", "2026-01-01T00:00:00Z"),
        &["secrets", "rotate", "--yes"],
        "LIVEKIT_ROTATION_GRACE_UNTIL",
    ),
    // --- environment ---------------------------------------------------------------------------
    case(
        Env("LIVEKIT_PROVISION_SECRETS", "ftp://x"),
        &["ensure"],
        "ftp://x",
    ),
    case(
        Env("LIVEKIT_PROVISION_SECRETS", "exec:"),
        &["ensure"],
        "exec:",
    ),
    case(
        Env("LIVEKIT_PROVISION_RELEASE_URL", "ftp://x"),
        &["install", "--version", "1.7.2"],
        "ftp://x",
    ),
    case(
        Env("LIVEKIT_PROVISION_RELEASE_URL", "https://h/x\ny"),
        &["install", "--version", "1.7.2"],
        "control character",
    ),
    case(
        Env("LIVEKIT_PROVISION_SECRETS", "redis://u:pw@h:0/0"),
        &["ensure"],
        "redis://",
    ),
];

/// A valid API secret, refused by `secrets set` because a live one is stored.
const PLANTED_SECRET: &str = "PlantedSecretPlantedSecretPlantedSecret42";

/// How long one case may run before it counts as hung (and is killed by its pid).
const HANG: Duration = Duration::from_secs(120);

#[test]
fn every_kind_of_bad_input_is_refused_by_name_and_changes_nothing() {
    let mut failures = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        if let Err(why) = run_case(c) {
            failures.push(format!("case {i} {:?} {:?}: {why}", c.door, c.args));
        }
    }
    println!(
        "bad-input suite: {} kinds, {} refused as specified",
        CASES.len(),
        CASES.len() - failures.len()
    );
    assert!(
        CASES.len() >= 110,
        "the suite must cover at least 110 kinds"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

fn run_case(c: &Case) -> Result<(), String> {
    let node = Node::converged();
    let plant = |name: &str, value: String| {
        let mut store = node.store();
        store.insert(name.to_owned(), value);
        std::fs::write(
            node.path("secrets.json"),
            serde_json::to_string(&store).unwrap(),
        )
        .unwrap();
    };
    // Every secret the store holds, before the case changes it: none may be printed.
    let secrets: Vec<String> = node
        .store()
        .into_iter()
        .filter(|(name, _)| name.contains("SECRET") || name.contains("PASSWORD"))
        .map(|(_, value)| value)
        .chain([PLANTED_SECRET.to_owned()])
        .collect();
    match c.door {
        File(rel, text) => std::fs::write(node.path(rel), text).unwrap(),
        Stored(name, value) => plant(name, value.to_owned()),
        StoredHuge(name, len) => plant(name, "1".repeat(len)),
        StoreFile(text) => std::fs::write(node.path("secrets.json"), text).unwrap(),
        Fifo(rel) => {
            let path = node.path(rel);
            let _ = std::fs::remove_file(&path);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        Link(rel, target) => {
            let path = node.path(rel);
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(target, &path).unwrap();
        }
        Flags | Env(..) => {}
    }
    let before = node.listing();
    let mut cmd = node.cmd(c.args);
    if let Env(name, value) = c.door {
        cmd.env(name, value);
    }
    let out = run_bounded(&mut cmd)?;
    let output = format!("{}{}", out.stdout, out.stderr);
    let code = out.code;
    if code == 0 || code == -1 {
        return Err(format!("exit {code}, expected a refusal; output: {output}"));
    }
    if output.contains("panicked") {
        return Err(format!("panicked: {output}"));
    }
    if !output.contains("error") {
        return Err(format!("no error line: {output}"));
    }
    if !output.contains(c.names) {
        return Err(format!("the output does not name {:?}: {output}", c.names));
    }
    if let Some(secret) = secrets.iter().find(|s| output.contains(s.as_str())) {
        return Err(format!("a secret ({} bytes) was printed", secret.len()));
    }
    // A refused value is named, never echoed whole (a 10 MB value is not 10 MB of stderr).
    if output.len() > 16 * 1024 {
        return Err(format!("{} bytes of output", output.len()));
    }
    if node.listing() != before {
        return Err(format!("the state directory changed; output: {output}"));
    }
    Ok(())
}

/// Run `cmd` to its end, or kill it by its pid after [`HANG`]: a case that blocks (on a FIFO)
/// fails instead of hanging the suite.
fn run_bounded(cmd: &mut std::process::Command) -> Result<crate::support::Out, String> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = finished.recv_timeout(HANG).is_err();
        if hung {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        hung
    });
    let out = finish(child);
    let _ = done.send(());
    if watchdog.join().unwrap() {
        return Err(format!("hung: killed after {HANG:?}"));
    }
    Ok(out)
}
