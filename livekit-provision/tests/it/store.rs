//! Secret stores: the file store under real multi-process contention, and the exec store against
//! small bash helpers written into a temp dir.

// Makes clippy treat the helper functions below as test code (unwrap allowed).
#![cfg(test)]

use livekit_provision::Hint;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use livekit_provision::Secret;
use livekit_provision::store::{
    ExecStore, FileStore, SecretName, SecretStore, StoreError, StoreOp,
};

const SECRET: &str = "Zq8-this-is-the-secret-value-never-to-leak";

// ---------------------------------------------------------------------------------------------
// File store: N processes × M threads race add_if_absent on one fresh file.

/// Env var that turns [`race_child_process`] into a racer; it names the secrets file.
const RACE_FILE_ENV: &str = "LKP_TEST_RACE_FILE";
/// Env var naming the file whose appearance starts the race.
const RACE_GO_ENV: &str = "LKP_TEST_RACE_GO";
const RACE_PROCESSES: usize = 8;
const RACE_THREADS: usize = 4;

/// Child entry point of [`file_store_add_if_absent_agrees_across_processes`]: the parent
/// re-executes this test binary running only this test, with [`RACE_FILE_ENV`] set. Without it
/// (a normal test run) there is nothing to do.
#[test]
fn race_child_process() {
    let (Some(file), Some(go)) = (
        std::env::var_os(RACE_FILE_ENV),
        std::env::var_os(RACE_GO_ENV),
    ) else {
        return;
    };
    wait_until("the race to start", || Path::new(&go).exists());
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACE_THREADS)
            .map(|_| {
                let file = PathBuf::from(&file);
                s.spawn(move || {
                    let mine = Secret::mint_api_secret().unwrap();
                    let added = FileStore::new(file)
                        .add_if_absent(&SecretName::LIVEKIT_API_SECRET, &mine)
                        .unwrap();
                    (added.inserted, added.value.expose().to_owned())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (inserted, value) in results {
        println!("RACE-RESULT {inserted} {value}");
    }
}

#[test]
fn file_store_add_if_absent_agrees_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state/secrets.json");
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..RACE_PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "store::race_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(RACE_FILE_ENV, &file)
                .env(RACE_GO_ENV, &go)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"").unwrap();

    let mut inserted = 0;
    let mut values = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "racer failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<_> = stdout
            .lines()
            // libtest may print "test … " on the same line before the first result.
            .filter_map(|l| l.split_once("RACE-RESULT ").map(|(_, r)| r))
            .collect();
        assert_eq!(lines.len(), RACE_THREADS, "{stdout}");
        for line in lines {
            let (was_inserted, value) = line.split_once(' ').unwrap();
            inserted += usize::from(was_inserted == "true");
            values.insert(value.to_owned());
        }
    }
    assert_eq!(inserted, 1, "exactly one racer inserts");
    assert_eq!(
        values.len(),
        1,
        "every racer sees the same value: {values:?}"
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        on_disk,
        serde_json::json!({ "LIVEKIT_API_SECRET": values.first().unwrap() })
    );
}

// ---------------------------------------------------------------------------------------------
// Exec store.

/// A helper keeping one file per name in `$DIR/values`, logging its arguments to `$DIR/argv`.
const DIR_HELPER: &str = r#"
printf '%s\n' "$*" >> "$DIR/argv"
mkdir -p "$DIR/values"
f="$DIR/values/$2"
case "$1" in
  get) [ -f "$f" ] || exit 3; cat "$f" ;;
  add) [ -f "$f" ] && exit 4; IFS= read -r v; printf '%s\n' "$v" > "$f" ;;
  set) IFS= read -r v; printf '%s\n' "$v" > "$f" ;;
  *) echo "unknown verb $1" >&2; exit 2 ;;
esac
"#;

/// Write `body` as an executable bash script in `dir`, with `$DIR` set to `dir`.
fn helper(dir: &Path, name: &str, body: &str) -> ExecStore {
    let path = dir.join(name);
    let script = format!("#!/bin/bash\nDIR='{}'\n{body}", dir.display());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    ExecStore::new(path).with_timeout(Duration::from_secs(60))
}

fn secret() -> Secret {
    Secret::new(SECRET)
}

/// Assert that nothing a user or log can see of `err` holds the secret.
fn assert_no_secret(err: &StoreError) {
    let shown = format!("{err} | {err:?} | {:?}", err.hint());
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn exec_store_speaks_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(dir.path(), "helper", DIR_HELPER);
    let name = SecretName::LIVEKIT_API_SECRET;

    assert_eq!(store.get(&name).unwrap(), None, "exit 3 is absent");
    let added = store.add_if_absent(&name, &secret()).unwrap();
    assert!(added.inserted);
    assert_eq!(added.value, secret());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("values/LIVEKIT_API_SECRET")).unwrap(),
        format!("{SECRET}\n"),
        "the value arrives on stdin followed by one newline"
    );
    assert_eq!(store.get(&name).unwrap(), Some(secret()));

    let again = store.add_if_absent(&name, &Secret::new("another")).unwrap();
    assert!(!again.inserted, "exit 4 is already present");
    assert_eq!(again.value, secret(), "the stored winner is returned");

    store.set(&name, &Secret::new("replaced")).unwrap();
    assert_eq!(store.get(&name).unwrap().unwrap().expose(), "replaced");

    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(
        argv,
        "get LIVEKIT_API_SECRET\nadd LIVEKIT_API_SECRET\nget LIVEKIT_API_SECRET\n\
         add LIVEKIT_API_SECRET\nget LIVEKIT_API_SECRET\nset LIVEKIT_API_SECRET\n\
         get LIVEKIT_API_SECRET\n"
    );
    assert!(!argv.contains(SECRET) && !argv.contains("replaced"));
    assert!(!format!("{store:?} {}", store.describe()).contains(SECRET));
}

#[test]
fn exec_store_unknown_exit_is_an_error_with_masked_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(
        dir.path(),
        "seven",
        "read -r v\necho \"vault says no to $v\" >&2\necho second line >&2\nexit 7\n",
    );
    let name = SecretName::LIVEKIT_API_SECRET;
    for result in [
        store.add_if_absent(&name, &secret()).map(|_| ()),
        store.set(&name, &secret()),
    ] {
        let err = result.unwrap_err();
        let StoreError::HelperFailed { code, stderr, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*code, Some(7));
        assert_eq!(stderr, "vault says no to **** / second line");
        assert!(err.to_string().contains("exited with code 7"), "{err}");
        assert!(err.to_string().contains("LIVEKIT_API_SECRET"), "{err}");
        assert_no_secret(&err);
    }
    // `get` with an unknown exit code is "could not check", never "absent".
    let err = store.get(&name).unwrap_err();
    assert!(
        matches!(err, StoreError::HelperFailed { code: Some(7), .. }),
        "{err:?}"
    );
}

#[test]
fn exec_store_rejects_garbage_output() {
    let dir = tempfile::tempdir().unwrap();
    let name = SecretName::LIVEKIT_API_KEY;
    let cases = [
        ("empty", "exit 0\n", "empty"),
        ("newline-only", "echo\n", "empty"),
        ("non-utf8", "printf 'AB\\xff\\xfeCD\\n'\n", "UTF-8"),
        ("two-lines", "printf 'one\\ntwo\\n'\n", "2 lines"),
        (
            "huge",
            "head -c 100000 /dev/zero | tr '\\0' a\n",
            "longer than",
        ),
    ];
    for (file, body, expected) in cases {
        let err = helper(dir.path(), file, body).get(&name).unwrap_err();
        assert!(
            matches!(err, StoreError::HelperGarbage { .. }),
            "{file}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{file}: {err}");
    }
    // A value with CRLF is one line: the trailing "\r\n" is stripped.
    let crlf = helper(dir.path(), "crlf", "printf 'APIkey\\r\\n'\n");
    assert_eq!(crlf.get(&name).unwrap().unwrap().expose(), "APIkey");
}

#[test]
fn exec_store_add_present_but_get_absent_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(dir.path(), "liar", "[ \"$1\" = add ] && exit 4\nexit 3\n");
    let err = store
        .add_if_absent(&SecretName::LIVEKIT_API_KEY, &secret())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::HelperGarbage {
                op: StoreOp::Add,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[test]
fn exec_store_survives_a_helper_that_floods_stderr_and_ignores_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(
        dir.path(),
        "flood",
        "head -c 1000000 /dev/zero | tr '\\0' e >&2\nexit 9\n",
    );
    let err = store
        .set(&SecretName::LIVEKIT_API_KEY, &secret())
        .unwrap_err();
    let StoreError::HelperFailed { code, stderr, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*code, Some(9));
    assert!(stderr.len() < 1000, "the excerpt is bounded");
}

#[test]
fn exec_store_kills_a_hung_helper_and_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(
        dir.path(),
        "hang",
        r#"
echo $$ > "$DIR/pid.tmp"; mv "$DIR/pid.tmp" "$DIR/pid"
sleep 60 &
echo $! > "$DIR/sleeper.tmp"; mv "$DIR/sleeper.tmp" "$DIR/sleeper"
wait
"#,
    )
    .with_timeout(Duration::from_secs(2));
    let err = store.get(&SecretName::LIVEKIT_API_KEY).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::HelperTimedOut {
                op: StoreOp::Get,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.hint().is_some());
    // The helper itself was killed and reaped before `get` returned.
    let pid = read_pid(&dir.path().join("pid"));
    assert!(!alive(pid), "helper {pid} still running");
    // Its child, in the same process group, was killed too (reaped by init, eventually).
    let sleeper = read_pid(&dir.path().join("sleeper"));
    wait_until("the helper's child to die", || !alive(sleeper));
}

#[test]
fn exec_store_missing_program_is_not_runnable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ExecStore::new(dir.path().join("no-such-helper"));
    let err = store.get(&SecretName::LIVEKIT_API_KEY).unwrap_err();
    assert!(
        matches!(err, StoreError::HelperNotRunnable { .. }),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("no-such-helper"));
}

#[test]
fn exec_store_refuses_values_the_protocol_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    let store = helper(dir.path(), "helper", DIR_HELPER);
    let err = store
        .set(
            &SecretName::LIVEKIT_API_KEY,
            &Secret::new(format!("{SECRET}\nx")),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
    assert_no_secret(&err);
    assert!(!dir.path().join("argv").exists(), "the helper never ran");
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
