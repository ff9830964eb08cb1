//! Downloading, verifying and installing livekit-server against a loopback release server and
//! `file://` mirrors. The "livekit-server" in these releases is a stand-in shell script.

use livekit_provision::Hint;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_provision::fetch::{
    self, ArchiveProblem, FetchError, FetchEvent, InstallNeed, InstallOutcome, InstallRequest,
    Platform, ProxyMode, ReleaseBase, RetryPolicy, Timeouts,
};
use livekit_provision::{LivekitVersion, Secret, StateDir};

use crate::support::release_server::{Entry, Release, ReleaseServer, Reply, stand_in_script};

const SERVER_WAIT_CAP: Duration = Duration::from_millis(40);

pub(super) fn v(s: &str) -> LivekitVersion {
    LivekitVersion::parse(s).unwrap()
}

/// A request with tiny delays and short timeouts, recording events.
pub(super) fn request(
    version: &str,
    base: &str,
    events: &Arc<Mutex<Vec<FetchEvent>>>,
) -> InstallRequest {
    let mut r = InstallRequest::new(v(version), Platform::new("linux", "x86_64"));
    r.base_url = ReleaseBase::parse(base).unwrap();
    r.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        read_idle: Duration::from_millis(300),
    };
    r.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_server_wait: SERVER_WAIT_CAP,
    };
    r.proxy = ProxyMode::Direct;
    let sink = Arc::clone(events);
    r.events = Some(Arc::new(move |e: &FetchEvent| {
        sink.lock().unwrap().push(e.clone());
    }));
    r
}

pub(super) fn no_events() -> Arc<Mutex<Vec<FetchEvent>>> {
    Arc::new(Mutex::new(Vec::new()))
}

pub(super) async fn install(
    state: &StateDir,
    version: &str,
    base: &str,
) -> Result<InstallOutcome, FetchError> {
    fetch::install(state, &request(version, base, &no_events())).await
}

/// What must survive a failed install: the symlink target and the bytes behind it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Snapshot {
    link: PathBuf,
    bytes: Vec<u8>,
    bin_entries: Vec<String>,
}

pub(super) fn snapshot(state: &StateDir) -> Snapshot {
    let mut bin_entries: Vec<String> = std::fs::read_dir(state.bin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    bin_entries.sort();
    Snapshot {
        link: std::fs::read_link(state.livekit_bin()).unwrap(),
        bytes: std::fs::read(state.livekit_bin()).unwrap(),
        bin_entries,
    }
}

/// A state dir with 1.7.0 installed from a `file://` mirror, and a server under `/dl`.
pub(super) async fn installed_state() -> (tempfile::TempDir, StateDir, ReleaseServer, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    Release::new("1.7.0").write_mirror(&mirror);
    let state = StateDir::new(dir.path().join("state"));
    let out = install(&state, "1.7.0", &format!("file://{}", mirror.display()))
        .await
        .unwrap();
    assert!(matches!(out, InstallOutcome::Installed { .. }), "{out:?}");
    let before = snapshot(&state);
    let server = ReleaseServer::start();
    (dir, state, server, before)
}

pub(super) fn asset_path(version: &str) -> String {
    format!("/dl/v{version}/livekit_{version}_linux_amd64.tar.gz")
}

pub(super) fn checksums_path(version: &str) -> String {
    format!("/dl/v{version}/checksums.txt")
}

/// Run `<path> --version`. A binary just written can be "busy" (ETXTBSY) for a moment: a process
/// forked meanwhile by another test of this binary holds the written file open until its exec.
/// That is retried (up to a deadline); any other error fails.
pub(super) fn run_version(path: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match std::process::Command::new(path).arg("--version").output() {
            Ok(out) => return String::from_utf8(out.stdout).unwrap(),
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("running {} --version: {e}", path.display()),
        }
    }
}

#[tokio::test]
async fn file_mirror_install_then_rerun_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let release = Release::new("1.7.2");
    release.write_mirror(&mirror);
    let state = StateDir::new(dir.path().join("state"));
    let base = format!("file://{}", mirror.display());
    assert_eq!(
        fetch::needs_install(&state, &v("1.7.2")),
        InstallNeed::Missing
    );

    let out = install(&state, "1.7.2", &base).await.unwrap();
    let InstallOutcome::Installed {
        version,
        sha256,
        path,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(version, v("1.7.2"));
    assert_eq!(path, state.bin_dir().join("livekit-server-1.7.2"));
    assert_eq!(
        std::fs::read_link(state.livekit_bin()).unwrap(),
        Path::new("livekit-server-1.7.2")
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.7.2\n"
    );

    let current = fetch::installed(&state).unwrap().unwrap();
    assert_eq!(current.manifest.sha256, sha256);
    assert_eq!(current.manifest.size, stand_in_script("1.7.2").len() as u64);
    assert!(
        current
            .manifest
            .source_url
            .ends_with("/v1.7.2/livekit_1.7.2_linux_amd64.tar.gz")
    );
    assert!(
        current.manifest.installed_at.ends_with('Z'),
        "{}",
        current.manifest.installed_at
    );
    assert!(
        release
            .checksums
            .contains(&current.manifest.archive_sha256.to_hex())
    );
    assert!(fetch::verify_installed(&state).unwrap().is_intact());
    assert_eq!(
        fetch::needs_install(&state, &v("1.7.2")),
        InstallNeed::UpToDate
    );

    // Rerun: nothing to do, nothing read from the mirror.
    let before = snapshot(&state);
    std::fs::remove_dir_all(&mirror).unwrap();
    let again = install(&state, "1.7.2", &base).await.unwrap();
    assert_eq!(
        again,
        InstallOutcome::AlreadyInstalled {
            version: v("1.7.2")
        }
    );
    assert_eq!(snapshot(&state), before);
}

#[tokio::test]
async fn upgrade_rollback_and_reactivate_over_http() {
    let (_dir, state, server, _) = installed_state().await;
    for version in ["1.7.1", "1.7.2"] {
        server.publish("/dl", &Release::new(version));
    }
    let base = server.base_url("/dl");
    install(&state, "1.7.1", &base).await.unwrap();
    assert_eq!(
        fetch::needs_install(&state, &v("1.7.2")),
        InstallNeed::VersionDiffers {
            installed: v("1.7.1"),
            pinned: v("1.7.2")
        }
    );
    let out = install(&state, "1.7.2", &base).await.unwrap();
    assert!(matches!(out, InstallOutcome::Installed { .. }), "{out:?}");
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.7.2\n"
    );
    let listed: Vec<_> = fetch::list_installed(&state)
        .unwrap()
        .into_iter()
        .map(|b| b.version.to_string())
        .collect();
    assert_eq!(listed, ["1.7.2", "1.7.1", "1.7.0"]);

    let back = fetch::rollback(&state).unwrap();
    assert_eq!((back.from, back.to), (v("1.7.2"), v("1.7.1")));
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.7.1\n"
    );

    // The kept 1.7.2 is switched back to without downloading it again.
    let hits = server.hits(&asset_path("1.7.2"));
    let out = install(&state, "1.7.2", &base).await.unwrap();
    assert!(matches!(out, InstallOutcome::Reactivated { .. }), "{out:?}");
    assert_eq!(server.hits(&asset_path("1.7.2")), hits);
    assert_eq!(
        fetch::needs_install(&state, &v("1.7.2")),
        InstallNeed::UpToDate
    );
}

#[tokio::test]
async fn keeps_three_versions_and_rollback_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let state = StateDir::new(dir.path().join("state"));
    let base = format!("file://{}", mirror.display());
    Release::new("1.0.0").write_mirror(&mirror);
    install(&state, "1.0.0", &base).await.unwrap();
    let err = fetch::rollback(&state).unwrap_err();
    assert!(matches!(err, FetchError::NoPreviousVersion { .. }), "{err}");
    assert!(err.hint().unwrap().contains("install"), "{err:?}");
    for version in ["1.1.0", "1.2.0", "1.3.0"] {
        Release::new(version).write_mirror(&mirror);
        install(&state, version, &base).await.unwrap();
    }
    let listed: Vec<_> = fetch::list_installed(&state)
        .unwrap()
        .into_iter()
        .map(|b| b.version.to_string())
        .collect();
    assert_eq!(listed, ["1.3.0", "1.2.0", "1.1.0"]);
    assert!(!state.bin_dir().join("livekit-server-1.0.0").exists());
    assert!(
        !state
            .bin_dir()
            .join("livekit-server-1.0.0.manifest.json")
            .exists()
    );
}

#[tokio::test]
async fn tampered_or_truncated_binary_is_found_and_reinstalled() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    Release::new("1.7.2").write_mirror(&mirror);
    let state = StateDir::new(dir.path().join("state"));
    let base = format!("file://{}", mirror.display());
    install(&state, "1.7.2", &base).await.unwrap();
    let versioned = state.bin_dir().join("livekit-server-1.7.2");
    let good = std::fs::read(&versioned).unwrap();

    let mut evil = good.clone();
    evil[12] ^= 0x20; // same size, different bytes
    std::fs::write(&versioned, &evil).unwrap();
    let report = fetch::verify_installed(&state).unwrap();
    assert!(!report.is_intact());
    assert_eq!(report.actual_size, report.binary.manifest.size);

    std::fs::write(&versioned, &good[..10]).unwrap();
    assert!(!fetch::verify_installed(&state).unwrap().is_intact());
    assert!(matches!(
        fetch::needs_install(&state, &v("1.7.2")),
        InstallNeed::Damaged { .. }
    ));

    // A plain install notices and downloads again.
    let out = install(&state, "1.7.2", &base).await.unwrap();
    assert!(matches!(out, InstallOutcome::Installed { .. }), "{out:?}");
    assert_eq!(std::fs::read(&versioned).unwrap(), good);
    assert!(fetch::verify_installed(&state).unwrap().is_intact());
}

/// 2025-01-02T03:04:05.25Z.
pub(super) fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_735_787_045_250)
}

#[tokio::test]
async fn an_unmanaged_binary_is_moved_to_backups_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    Release::new("1.7.2").write_mirror(&mirror);
    let state = StateDir::new(dir.path().join("state"));
    std::fs::create_dir_all(state.bin_dir()).unwrap();
    std::fs::write(state.livekit_bin(), b"hand-installed").unwrap();
    assert!(matches!(
        fetch::installed(&state),
        Err(FetchError::NotManaged { .. })
    ));
    // With the clock injected, the backup's name and the manifest's time are known.
    let base = format!("file://{}", mirror.display());
    let mut req = request("1.7.2", &base, &no_events());
    req.clock = fixed_clock;
    fetch::install(&state, &req).await.unwrap();
    let backups: Vec<_> = std::fs::read_dir(state.backups_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let kept = state.backups_dir().join("livekit-server.20250102T030405Z");
    assert_eq!(backups, std::slice::from_ref(&kept));
    assert_eq!(std::fs::read(&kept).unwrap(), b"hand-installed");
    let current = fetch::installed(&state).unwrap().unwrap();
    assert_eq!(current.manifest.installed_at, "2025-01-02T03:04:05.250000Z");

    // An operator's symlink to a binary elsewhere is moved aside too, its target untouched.
    let elsewhere = dir.path().join("my-livekit-server");
    std::fs::write(&elsewhere, b"mine").unwrap();
    std::fs::remove_file(state.livekit_bin()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.livekit_bin()).unwrap();
    let out = install(&state, "1.7.2", &format!("file://{}", mirror.display()))
        .await
        .unwrap();
    assert!(matches!(out, InstallOutcome::Reactivated { .. }), "{out:?}");
    assert_eq!(std::fs::read_dir(state.backups_dir()).unwrap().count(), 2);
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"mine");
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.7.2\n"
    );
}

#[tokio::test]
async fn pinned_sha256_needs_no_checksum_file() {
    let (_dir, state, server, _) = installed_state().await;
    let release = Release::new("1.8.0");
    server.route(&asset_path("1.8.0"), vec![Reply::ok(&release.tarball)]);
    let mut r = request("1.8.0", &server.base_url("/dl"), &no_events());
    r.pinned_sha256 = Some(
        fetch::Sha256Digest::from_hex(&crate::support::release_server::hex(
            &<sha2::Sha256 as sha2::Digest>::digest(&release.tarball),
        ))
        .unwrap(),
    );
    fetch::install(&state, &r).await.unwrap();
    assert_eq!(server.hits(&checksums_path("1.8.0")), 0);

    // A wrong pin refuses the same bytes.
    let mut wrong = request("1.8.1", &server.base_url("/dl"), &no_events());
    server.route(&asset_path("1.8.1"), vec![Reply::ok(&release.tarball)]);
    wrong.pinned_sha256 = Some(fetch::Sha256Digest([7; 32]));
    let before = snapshot(&state);
    let err = fetch::install(&state, &wrong).await.unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(snapshot(&state), before);
}

/// Entries of a hostile tarball and the refusal expected.
type Case = (Vec<Entry>, fn(&ArchiveProblem) -> bool);

#[tokio::test]
async fn malicious_tarballs_are_refused() {
    use tar::EntryType as T;
    let (_dir, state, server, before) = installed_state().await;
    let bin = stand_in_script("6.6.6");
    let cases: Vec<Case> = vec![
        (vec![Entry::file("../livekit-server", &bin)], |p| {
            matches!(p, ArchiveProblem::UnsafePath(_))
        }),
        (vec![Entry::file("/livekit-server", &bin)], |p| {
            matches!(p, ArchiveProblem::UnsafePath(_))
        }),
        (vec![Entry::special("livekit-server", T::Symlink)], |p| {
            matches!(p, ArchiveProblem::LinkNamedBinary(_))
        }),
        (vec![Entry::special("livekit-server", T::Link)], |p| {
            matches!(p, ArchiveProblem::LinkNamedBinary(_))
        }),
        (vec![Entry::special("livekit-server", T::Fifo)], |p| {
            matches!(p, ArchiveProblem::SpecialFile(_))
        }),
        (
            vec![
                Entry::file("livekit-server", &bin),
                Entry::special("dev-null", T::Char),
            ],
            |p| matches!(p, ArchiveProblem::SpecialFile(_)),
        ),
        (
            vec![
                Entry::file("livekit-server", &bin),
                Entry::file("./livekit-server", &bin),
            ],
            |p| matches!(p, ArchiveProblem::DuplicateBinary),
        ),
        (vec![Entry::file("LICENSE", b"x")], |p| {
            matches!(p, ArchiveProblem::MissingBinary)
        }),
    ];
    for (i, (entries, expected)) in cases.into_iter().enumerate() {
        let version = format!("6.6.{i}");
        server.publish("/dl", &Release::with_entries(&version, &entries));
        let err = install(&state, &version, &server.base_url("/dl"))
            .await
            .unwrap_err();
        match &err {
            FetchError::UnsafeArchive { problem, .. } => {
                assert!(expected(problem), "case {i}: {err}");
            }
            other => panic!("case {i}: {other}"),
        }
        assert_eq!(snapshot(&state), before, "case {i}");
    }
}

#[tokio::test]
async fn the_token_goes_to_github_hosts_only() {
    let (_dir, state, server, _) = installed_state().await;
    server.publish("/dl", &Release::new("1.8.0"));
    let mut r = request("1.8.0", &server.base_url("/dl"), &no_events());
    r.github_token = Some(Secret::new("ghp_never_leaves_github"));
    assert!(!format!("{r:?}").contains("ghp_never"));
    fetch::install(&state, &r).await.unwrap();
    let seen = server.seen();
    assert!(seen.len() >= 2);
    for s in seen {
        assert!(!s.headers.contains_key("authorization"), "{:?}", s.path);
    }
}

#[tokio::test]
async fn unsupported_platform_fails_before_any_request() {
    let (_dir, state, server, before) = installed_state().await;
    let mut r = request("1.8.0", &server.base_url("/dl"), &no_events());
    r.platform = Platform::new("macos", "aarch64");
    let err = fetch::install(&state, &r).await.unwrap_err();
    assert!(
        matches!(err, FetchError::UnsupportedPlatform { .. }),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("livekit_bin"));
    assert!(server.seen().is_empty());
    assert_eq!(snapshot(&state), before);
}

#[tokio::test]
async fn credentials_in_the_base_url_never_show() {
    let (_dir, state, server, _) = installed_state().await;
    let base = server
        .base_url("/dl")
        .replace("http://", "http://user:hunter2@");
    let err = install(&state, "9.9.9", &base).await.unwrap_err();
    let all = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
    assert!(!all.contains("hunter2"), "{all}");
}
