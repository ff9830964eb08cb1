//! Publishing the three managed files as one set: unchanged reruns write nothing, backups keep

//! what was there, debris is found and swept, the lock serializes writers, and a writer stopped
//! (by the checkpoint seam, or by SIGKILL) at any step leaves the old complete set or the new one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions"
)]

use livekit_provision::Hint;
use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livekit_provision::fsio::write_file;
use livekit_provision::publish::{
    Checkpoint, CurrentLink, FixedPath, PublishError, PublishOptions, PublishOutcome, StateLock,
    find_debris, generations, prepare, publish, read_current,
};
use livekit_provision::render::Rendered;
use livekit_provision::{ManagedFile, StateDir};

/// A set whose every file names `marker` in its first and last line, so a reader can tell which
/// set a file belongs to and that it is complete.
fn rendered(marker: &str) -> Rendered {
    let body = |name: &str| format!("{name} {marker}\n{}\nend {marker}\n", "x".repeat(8192));
    Rendered {
        livekit_yaml: body("livekit.yaml"),
        backend_env: body("backend.env"),
        runtime_json: body("runtime.json"),
    }
}

/// The marker of a complete file of ours, or a panic naming what is wrong.
fn marker_of(file: ManagedFile, bytes: &[u8]) -> String {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let first = text.lines().next().expect("a first line");
    let marker = first
        .strip_prefix(&format!("{} ", file.file_name()))
        .unwrap_or_else(|| panic!("{file} does not start with its name: {first:?}"));
    assert_eq!(
        text,
        rendered(marker).get(file),
        "{file} of set {marker} is torn"
    );
    marker.to_owned()
}

/// What a reader opening each fixed path sees: `None` when absent, else the marker of a
/// complete file.
fn seen(state: &StateDir) -> [Option<String>; 3] {
    ManagedFile::ALL.map(|file| match std::fs::read(state.managed(file)) {
        Ok(bytes) => Some(marker_of(file, &bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {file}: {e}"),
    })
}

/// With no writer running: the three fixed paths are all absent, or all complete files of one
/// set. Returns that set's marker.
fn assert_one_set(state: &StateDir) -> Option<String> {
    let [a, b, c] = seen(state);
    assert!(
        a == b && b == c,
        "not one whole set at the fixed paths: {:?}",
        [a, b, c]
    );
    a
}

fn new_state() -> (tempfile::TempDir, StateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path().join("state"));
    prepare(&state).unwrap();
    (tmp, state)
}

fn publish_locked(
    state: &StateDir,
    set: &Rendered,
    opts: &PublishOptions<'_>,
) -> Result<PublishOutcome, PublishError> {
    let lock = StateLock::acquire(state, |_| {}).unwrap();
    publish(state, &lock, set, opts)
}

fn published(
    outcome: Result<PublishOutcome, PublishError>,
) -> livekit_provision::publish::GenerationId {
    match outcome.unwrap() {
        PublishOutcome::Published { generation, .. } => generation,
        other => panic!("expected a new generation, got {other:?}"),
    }
}

/// Identity and times of a path, links not followed.
fn stamp(path: &Path) -> (u64, i64, i64, i64, i64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

#[test]
fn first_publish_makes_links_into_one_generation_with_private_modes() {
    let (_tmp, state) = new_state();
    let id = published(publish_locked(
        &state,
        &rendered("a"),
        &PublishOptions::default(),
    ));
    assert_eq!(assert_one_set(&state).as_deref(), Some("a"));
    assert_eq!(
        std::fs::read_link(state.current_link()).unwrap(),
        Path::new("generations").join(id.to_string())
    );
    let dir = state.generations_dir().join(id.to_string());
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    for file in ManagedFile::ALL {
        assert_eq!(
            std::fs::read_link(state.managed(file)).unwrap(),
            Path::new("current").join(file.file_name())
        );
        let mode = std::fs::metadata(dir.join(file.file_name()))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
        assert!(
            matches!(read_current(&state).file(file), FixedPath::Ours { generation, .. } if *generation == id)
        );
    }
    assert!(read_current(&state).matches(&rendered("a")));
    assert!(!read_current(&state).matches(&rendered("b")));
}

#[test]
fn an_unchanged_rerun_writes_nothing() {
    let (_tmp, state) = new_state();
    let set = rendered("a");
    let id = published(publish_locked(&state, &set, &PublishOptions::default()));
    let gen_dir = state.generations_dir().join(id.to_string());
    let mut watched = vec![
        state.root().to_owned(),
        state.current_link(),
        state.generations_dir(),
        gen_dir.clone(),
    ];
    for file in ManagedFile::ALL {
        watched.push(state.managed(file));
        watched.push(gen_dir.join(file.file_name()));
    }
    let before: Vec<_> = watched.iter().map(|p| stamp(p)).collect();

    let outcome = publish_locked(&state, &set, &PublishOptions::default()).unwrap();

    assert_eq!(outcome, PublishOutcome::Unchanged { swept: vec![] });
    let after: Vec<_> = watched.iter().map(|p| stamp(p)).collect();
    assert_eq!(before, after, "an unchanged rerun touched something");
    assert_eq!(generations(&state).unwrap(), vec![id]);
}

#[test]
fn a_changed_mode_is_republished() {
    let (_tmp, state) = new_state();
    let set = rendered("a");
    let id = published(publish_locked(&state, &set, &PublishOptions::default()));
    let loose = state
        .generations_dir()
        .join(id.to_string())
        .join("backend.env");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let next = published(publish_locked(&state, &set, &PublishOptions::default()));
    assert!(next > id);
    assert!(read_current(&state).matches(&set));
}

#[test]
fn legacy_files_and_foreign_links_are_backed_up_and_replaced() {
    let (tmp, state) = new_state();
    // An older tool's layout: plain files; and runtime.json a link to someone else's file.
    write_file(
        &state.managed(ManagedFile::LivekitYaml),
        b"legacy yaml",
        0o644,
    )
    .unwrap();
    write_file(
        &state.managed(ManagedFile::BackendEnv),
        b"legacy env",
        0o640,
    )
    .unwrap();
    let theirs = tmp.path().join("theirs.json");
    write_file(&theirs, b"not yours", 0o644).unwrap();
    symlink(&theirs, state.managed(ManagedFile::RuntimeJson)).unwrap();

    let before = read_current(&state);
    assert!(matches!(before.current, CurrentLink::Missing));
    assert!(
        matches!(before.file(ManagedFile::LivekitYaml), FixedPath::Legacy { contents, mode }
            if contents.as_bytes() == b"legacy yaml" && *mode == 0o644)
    );
    assert!(
        matches!(before.file(ManagedFile::RuntimeJson), FixedPath::ForeignSymlink { target, outside_state_dir: true }
            if *target == theirs)
    );

    // The clock is injected: backups are named for the publish's `now`.
    let opts = PublishOptions {
        now: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_735_787_045),
        ..PublishOptions::default()
    };
    let PublishOutcome::Published { backed_up, .. } =
        publish_locked(&state, &rendered("a"), &opts).unwrap()
    else {
        panic!("expected a publish")
    };

    assert_eq!(assert_one_set(&state).as_deref(), Some("a"));
    assert_eq!(backed_up.len(), 3);
    let saved = |file: ManagedFile| {
        let kept = backed_up
            .iter()
            .find(|b| b.original == state.managed(file))
            .unwrap();
        assert_eq!(kept.saved.parent().unwrap(), state.backups_dir());
        let name = kept.saved.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("{}.20250102T030405Z", file.file_name()));
        kept.saved.clone()
    };
    for (file, bytes) in [
        (ManagedFile::LivekitYaml, &b"legacy yaml"[..]),
        (ManagedFile::BackendEnv, b"legacy env"),
    ] {
        let copy = saved(file);
        assert_eq!(std::fs::read(&copy).unwrap(), bytes);
        assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_link(saved(ManagedFile::RuntimeJson)).unwrap(),
        theirs
    );
    assert_eq!(std::fs::read(&theirs).unwrap(), b"not yours");
    assert_eq!(std::fs::metadata(&theirs).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::metadata(state.backups_dir()).unwrap().mode() & 0o777,
        0o700
    );

    // Once converted, nothing more is backed up.
    let PublishOutcome::Published { backed_up, .. } =
        publish_locked(&state, &rendered("b"), &PublishOptions::default()).unwrap()
    else {
        panic!("expected a publish")
    };
    assert!(backed_up.is_empty());
}

#[test]
fn a_directory_at_a_fixed_path_is_refused_and_nothing_switches() {
    let (_tmp, state) = new_state();
    published(publish_locked(
        &state,
        &rendered("a"),
        &PublishOptions::default(),
    ));
    let path = state.managed(ManagedFile::BackendEnv);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = publish_locked(&state, &rendered("b"), &PublishOptions::default()).unwrap_err();
    assert!(
        matches!(&err, PublishError::NotAFile { path: p } if *p == path),
        "{err:?}"
    );
    assert!(err.hint().is_some());
    assert!(matches!(
        read_current(&state).file(ManagedFile::BackendEnv),
        FixedPath::NotAFile
    ));
    assert_eq!(
        std::fs::read(state.managed(ManagedFile::LivekitYaml)).unwrap(),
        rendered("a").livekit_yaml.as_bytes()
    );
}

#[test]
fn prune_keeps_the_newest_n() {
    let (_tmp, state) = new_state();
    let mut ids = Vec::new();
    for n in 0..8 {
        let id = published(publish_locked(
            &state,
            &rendered(&n.to_string()),
            &PublishOptions::default(),
        ));
        ids.push(id);
    }
    assert_eq!(generations(&state).unwrap(), ids[3..]);
    let keep_two = PublishOptions {
        keep_generations: 2,
        ..PublishOptions::default()
    };
    let PublishOutcome::Published {
        generation, pruned, ..
    } = publish_locked(&state, &rendered("x"), &keep_two).unwrap()
    else {
        panic!("expected a publish")
    };
    assert_eq!(pruned, ids[3..7]);
    assert_eq!(generations(&state).unwrap(), vec![ids[7], generation]);
    // Keeping none still keeps the live one.
    let keep_none = PublishOptions {
        keep_generations: 0,
        ..PublishOptions::default()
    };
    let live = published(publish_locked(&state, &rendered("y"), &keep_none));
    assert_eq!(generations(&state).unwrap(), vec![live]);
    assert_eq!(assert_one_set(&state).as_deref(), Some("y"));
}

#[test]
fn debris_is_found_then_swept_by_the_next_publish() {
    let (_tmp, state) = new_state();
    let kept = published(publish_locked(
        &state,
        &rendered("a"),
        &PublishOptions::default(),
    ));
    published(publish_locked(
        &state,
        &rendered("b"),
        &PublishOptions::default(),
    ));
    let prefix = livekit_provision::fsio::TEMP_PREFIX;
    let root_temp = state.root().join(format!("{prefix}link-current"));
    symlink("generations/0000000042", &root_temp).unwrap();
    let half_written = state.generations_dir().join(format!("{prefix}0000000042"));
    std::fs::create_dir(&half_written).unwrap();
    write_file(&half_written.join("livekit.yaml"), b"half", 0o600).unwrap();
    let incomplete = state.generations_dir().join("0000000041");
    std::fs::create_dir(&incomplete).unwrap();
    let staging = state.backups_dir().join(format!("{prefix}backup-1"));
    write_file(&staging, b"x", 0o600).unwrap();

    let mut planted = vec![root_temp, half_written, incomplete, staging];
    planted.sort();
    assert_eq!(find_debris(&state), planted);

    // Same bytes: no new generation, but the debris goes.
    let outcome = publish_locked(&state, &rendered("b"), &PublishOptions::default()).unwrap();
    assert_eq!(outcome, PublishOutcome::Unchanged { swept: planted });
    assert!(find_debris(&state).is_empty());
    // A complete older generation is history, not debris.
    assert!(state.generations_dir().join(kept.to_string()).is_dir());
}

/// Stop the publish after every step in turn, as a crash there would; the fixed paths must
/// show the complete old set or the complete new one, and the next publish must converge.
fn stop_at_every_step(setup: impl Fn(&StateDir), old: Option<&str>) {
    let new = rendered("new");
    for stop_at in 0.. {
        let (_tmp, state) = new_state();
        setup(&state);
        let steps = std::cell::Cell::new(0);
        let hook = |checkpoint: Checkpoint| {
            let step = steps.get();
            steps.set(step + 1);
            if step == stop_at {
                Err(io::Error::other(format!("stop after {checkpoint:?}")))
            } else {
                Ok(())
            }
        };
        let opts = PublishOptions {
            checkpoint: Some(&hook),
            ..PublishOptions::default()
        };
        let result = publish_locked(&state, &new, &opts);
        let seen = assert_one_set(&state);
        assert!(
            seen.as_deref() == old || seen.as_deref() == Some("new"),
            "stopped at step {stop_at}: saw {seen:?}"
        );
        let stopped = matches!(result, Err(PublishError::Interrupted { .. }));
        if !stopped {
            result.unwrap();
        }
        publish_locked(&state, &new, &PublishOptions::default()).unwrap();
        assert_eq!(assert_one_set(&state).as_deref(), Some("new"));
        assert!(read_current(&state).matches(&new));
        assert!(find_debris(&state).is_empty(), "{:?}", find_debris(&state));
        if !stopped {
            assert!(stop_at > 8, "too few checkpoints: {stop_at}");
            break;
        }
    }
}

#[test]
fn a_publish_stopped_at_any_step_leaves_the_old_set_or_the_new() {
    stop_at_every_step(
        |state| {
            publish_locked(state, &rendered("old"), &PublishOptions::default()).unwrap();
        },
        Some("old"),
    );
}

#[test]
fn a_first_publish_stopped_at_any_step_leaves_nothing_or_the_new_set() {
    stop_at_every_step(|_| {}, None);
}

#[test]
fn a_legacy_import_stopped_at_any_step_never_mixes_legacy_and_new() {
    let new = rendered("new");
    let legacy = rendered("legacy");
    for stop_at in 0..20 {
        let (_tmp, state) = new_state();
        for file in ManagedFile::ALL {
            write_file(&state.managed(file), legacy.get(file).as_bytes(), 0o644).unwrap();
        }
        let steps = std::cell::Cell::new(0);
        let hook = |_: Checkpoint| {
            steps.set(steps.get() + 1);
            if steps.get() > stop_at {
                Err(io::Error::other("stop"))
            } else {
                Ok(())
            }
        };
        let opts = PublishOptions {
            checkpoint: Some(&hook),
            ..PublishOptions::default()
        };
        let _ = publish_locked(&state, &new, &opts);
        let seen = seen(&state);
        let sets: BTreeSet<_> = seen.iter().flatten().collect();
        assert!(sets.len() <= 1, "stopped after {stop_at} steps: {seen:?}");
        publish_locked(&state, &new, &PublishOptions::default()).unwrap();
        assert_eq!(assert_one_set(&state).as_deref(), Some("new"));
        // Every legacy file was kept, once or more, byte for byte.
        for file in ManagedFile::ALL {
            let kept = std::fs::read_dir(state.backups_dir())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with(file.file_name())
                })
                .any(|p| std::fs::read(p).unwrap() == legacy.get(file).as_bytes());
            assert!(kept, "{file} lost after stopping at step {stop_at}");
        }
    }
}

#[test]
fn concurrent_publishers_are_serialized_by_the_lock() {
    let (_tmp, state) = new_state();
    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (state, ids) = (&state, &ids);
            scope.spawn(move || {
                for n in 0..8 {
                    let set = rendered(&format!("t{thread}-{n}"));
                    let outcome = publish_locked(state, &set, &PublishOptions::default());
                    ids.lock().unwrap().push(published(outcome));
                }
            });
        }
    });
    let mut ids = ids.into_inner().unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 32, "two publishers made the same generation");
    let live = read_current(&state).generation().unwrap();
    assert_eq!(live, *ids.last().unwrap());
    assert!(assert_one_set(&state).is_some());
    assert!(find_debris(&state).is_empty());
    assert_eq!(generations(&state).unwrap(), ids[ids.len() - 5..]);
}

#[test]
fn a_waiter_is_told_who_holds_the_lock() {
    let (_tmp, state) = new_state();
    let held = StateLock::acquire(&state, |_| {}).unwrap();
    let (told, heard) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            StateLock::acquire(&state, move |pid| told.send(pid).unwrap()).unwrap();
        });
        assert_eq!(heard.recv().unwrap(), Some(std::process::id()));
        drop(held);
        waiter.join().unwrap();
    });
}

// ---- A real writer, SIGKILLed at random moments ----------------------------------------------

const CHILD_STATE: &str = "LKP_PUBLISH_KILL_CHILD_STATE";
const CHILD_START: &str = "LKP_PUBLISH_KILL_CHILD_START";

/// Not a test on its own: the body of the child process of
/// `a_writer_killed_at_random_moments_never_leaves_a_torn_or_mixed_set`, which re-runs this test
/// binary with only this test selected and the state directory in the environment. It publishes
/// new sets until it is killed.
#[test]
fn kill_child_entry() {
    let Some(root) = std::env::var_os(CHILD_STATE) else {
        return;
    };
    let state = StateDir::new(PathBuf::from(root));
    let start: u64 = std::env::var(CHILD_START).unwrap().parse().unwrap();
    let opts = PublishOptions {
        keep_generations: 2,
        ..PublishOptions::default()
    };
    for n in start.. {
        publish_locked(&state, &rendered(&format!("c{n}")), &opts).unwrap();
    }
}

#[test]
fn a_writer_killed_at_random_moments_never_leaves_a_torn_or_mixed_set() {
    const KILLS: u64 = 50;
    let (_tmp, state) = new_state();
    let exe = std::env::current_exe().unwrap();
    for round in 0..KILLS {
        let last = published(publish_locked(
            &state,
            &rendered(&format!("p{round}")),
            &PublishOptions::default(),
        ));
        assert!(find_debris(&state).is_empty(), "{:?}", find_debris(&state));
        let mut child = Command::new(&exe)
            .args(["--exact", "publish::kill_child_entry", "--test-threads=1"])
            .env(CHILD_STATE, state.root())
            .env(CHILD_START, (round * 1_000_000).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has published at least once, reading as a bystander would
        // meanwhile, then let it run a random while longer (more bystander reads) and kill it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_current(&state).generation() == Some(last) {
            bystander_read(&state);
            assert!(Instant::now() < deadline, "the child never published");
            assert!(child.try_wait().unwrap().is_none(), "the child exited");
        }
        for _ in 0..getrandom::u32().unwrap() % 64 {
            bystander_read(&state);
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        child.wait().unwrap();

        let marker = assert_one_set(&state).expect("a published set stays published");
        assert!(
            marker.starts_with('c') || marker.starts_with('p'),
            "{marker}"
        );
    }
    publish_locked(&state, &rendered("final"), &PublishOptions::default()).unwrap();
    assert_eq!(assert_one_set(&state).as_deref(), Some("final"));
    assert!(find_debris(&state).is_empty(), "{:?}", find_debris(&state));
}

/// What a reader may rely on while a writer runs: each file it opens is complete, and the three
/// read through one `current` (as `read_current` does) are one set.
fn bystander_read(state: &StateDir) {
    let _ = seen(state);
    let now = read_current(state);
    let markers: BTreeSet<String> = now
        .files
        .iter()
        .filter_map(|(file, at)| match at {
            FixedPath::Ours { contents, .. } => Some(marker_of(*file, contents.as_bytes())),
            // A generation pruned between reading `current` and reading its files.
            FixedPath::Unreadable(e) if e.kind() == io::ErrorKind::NotFound => None,
            other => panic!("{file}: unexpected {other:?}"),
        })
        .collect();
    assert!(markers.len() <= 1, "read_current mixed sets: {markers:?}");
}
