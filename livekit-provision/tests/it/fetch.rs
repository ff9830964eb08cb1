//! Downloading, verifying and installing livekit-server against a loopback release server and
//! `file://` mirrors. The "livekit-server" in these releases is a stand-in shell script.

use livekit_provision::Hint;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_provision::fetch::{
    self, ArchiveProblem, FetchError, FetchEvent, InstallNeed, InstallOutcome, InstallRequest,
    Platform, ProxyMode, ReleaseBase, RetryPolicy, SizeLimits, Timeouts,
};
use livekit_provision::{LivekitVersion, Secret, StateDir};

use crate::support::release_server::{Entry, Release, ReleaseServer, Reply, stand_in_script};

const SERVER_WAIT_CAP: Duration = Duration::from_millis(40);

fn v(s: &str) -> LivekitVersion {
    LivekitVersion::parse(s).unwrap()
}

/// A request with tiny delays and short timeouts, recording events.
fn request(version: &str, base: &str, events: &Arc<Mutex<Vec<FetchEvent>>>) -> InstallRequest {
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

fn no_events() -> Arc<Mutex<Vec<FetchEvent>>> {
    Arc::new(Mutex::new(Vec::new()))
}

async fn install(
    state: &StateDir,
    version: &str,
    base: &str,
) -> Result<InstallOutcome, FetchError> {
    fetch::install(state, &request(version, base, &no_events())).await
}

/// What must survive a failed install: the symlink target and the bytes behind it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    link: PathBuf,
    bytes: Vec<u8>,
    bin_entries: Vec<String>,
}

fn snapshot(state: &StateDir) -> Snapshot {
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
async fn installed_state() -> (tempfile::TempDir, StateDir, ReleaseServer, Snapshot) {
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

fn asset_path(version: &str) -> String {
    format!("/dl/v{version}/livekit_{version}_linux_amd64.tar.gz")
}

fn checksums_path(version: &str) -> String {
    format!("/dl/v{version}/checksums.txt")
}

/// Run `<path> --version`. A binary just written can be "busy" (ETXTBSY) for a moment: a process
/// forked meanwhile by another test of this binary holds the written file open until its exec.
/// That is retried (up to a deadline); any other error fails.
fn run_version(path: &Path) -> String {
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
fn fixed_clock() -> SystemTime {
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

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let (_dir, state, server, _) = installed_state().await;
    let release = Release::new("1.8.0");
    server.publish("/dl", &release);
    let reset = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    server.route(
        &checksums_path("1.8.0"),
        vec![
            Reply::status(500, &[]),
            Reply::status(429, &[("Retry-After", "1")]),
            Reply::status(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
            ),
            Reply::ok(release.checksums.as_bytes()),
        ],
    );
    let events = no_events();
    let out = fetch::install(&state, &request("1.8.0", &server.base_url("/dl"), &events))
        .await
        .unwrap();
    assert!(matches!(out, InstallOutcome::Installed { .. }), "{out:?}");
    assert_eq!(server.hits(&checksums_path("1.8.0")), 4);
    let delays: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            FetchEvent::Retrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 3, "{delays:?}");
    // Backoff for the 500 stays under the policy's ceiling; the server-asked waits (1 s, an hour)
    // are honoured up to the cap.
    assert!(delays[0] <= Duration::from_millis(20), "{delays:?}");
    assert_eq!(delays[1..], [SERVER_WAIT_CAP, SERVER_WAIT_CAP]);
}

#[tokio::test]
async fn persistent_failures_give_up_and_keep_the_old_binary() {
    let (_dir, state, server, before) = installed_state().await;
    let base = server.base_url("/dl");
    let release = Release::new("1.8.0");
    server.publish("/dl", &release);

    server.route(&checksums_path("1.8.0"), vec![Reply::status(503, &[])]);
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(server.hits(&checksums_path("1.8.0")), 4);

    server.route(
        &checksums_path("1.8.0"),
        vec![Reply::status(
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
        )],
    );
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(matches!(err, FetchError::RateLimited { .. }), "{err}");
    assert!(err.hint().unwrap().contains("GITHUB_TOKEN"));

    server.route(&checksums_path("1.8.0"), vec![Reply::status(403, &[])]);
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HttpStatus {
                status: 403,
                attempts: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&state), before);
}

#[tokio::test]
async fn not_found_is_final_and_names_url_and_version() {
    let (_dir, state, server, before) = installed_state().await;
    let err = install(&state, "9.9.9", &server.base_url("/dl"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/dl/v9.9.9/checksums.txt") && text.contains("9.9.9"),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("9.9.9"));
    assert_eq!(server.hits(&checksums_path("9.9.9")), 1);

    // The checksum file exists but the tarball does not.
    server.route(
        &checksums_path("9.9.9"),
        vec![Reply::ok(Release::new("9.9.9").checksums.as_bytes())],
    );
    let err = install(&state, "9.9.9", &server.base_url("/dl"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::NotFound { ref url, .. } if url.ends_with("livekit_9.9.9_linux_amd64.tar.gz")),
        "{err}"
    );
    assert_eq!(snapshot(&state), before);
}

#[tokio::test]
async fn a_broken_body_resumes_with_range() {
    let (_dir, state, server, _) = installed_state().await;
    let release = Release::with_entries(
        "1.8.0",
        &[
            Entry::file("livekit-server", &stand_in_script("1.8.0")),
            Entry::file("LICENSE", &vec![b'L'; 64 * 1024]),
        ],
    );
    server.publish("/dl", &release);
    let cut = release.tarball.len() / 2;
    server.route(
        &asset_path("1.8.0"),
        vec![
            Reply::CutAfter {
                bytes: release.tarball.clone(),
                send: cut,
            },
            Reply::ok(&release.tarball),
        ],
    );
    install(&state, "1.8.0", &server.base_url("/dl"))
        .await
        .unwrap();
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.8.0\n"
    );
    let ranges: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == asset_path("1.8.0"))
        .map(|s| s.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges, [None, Some(format!("bytes={cut}-"))]);
}

#[tokio::test]
async fn a_server_ignoring_range_restarts_from_zero() {
    let (_dir, state, server, _) = installed_state().await;
    let release = Release::new("1.8.0");
    server.publish("/dl", &release);
    server.route(
        &asset_path("1.8.0"),
        vec![
            Reply::CutAfter {
                bytes: release.tarball.clone(),
                send: release.tarball.len() - 10,
            },
            Reply::Body {
                bytes: release.tarball.clone(),
                ignore_range: true,
            },
        ],
    );
    let events = no_events();
    fetch::install(&state, &request("1.8.0", &server.base_url("/dl"), &events))
        .await
        .unwrap();
    let events = events.lock().unwrap();
    assert!(events.contains(&FetchEvent::Restarted));
    let last_progress = events.iter().rev().find_map(|e| match e {
        FetchEvent::Progress { done, total } => Some((*done, *total)),
        _ => None,
    });
    let size = release.tarball.len() as u64;
    assert_eq!(last_progress, Some((size, Some(size))));
    assert!(fetch::verify_installed(&state).unwrap().is_intact());
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.8.0\n"
    );
}

#[tokio::test]
async fn truncation_and_stalls_fail_cleanly_or_recover() {
    let (_dir, state, server, before) = installed_state().await;
    let base = server.base_url("/dl");
    let release = Release::new("1.8.0");
    server.publish("/dl", &release);
    let half = release.tarball.len() / 2;

    // Truncated every time (Content-Length larger than what is sent): give up, retryable.
    server.route(
        &asset_path("1.8.0"),
        vec![Reply::CutAfter {
            bytes: release.tarball.clone(),
            send: 0,
        }],
    );
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Truncated { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(snapshot(&state), before);

    // Stalled past the read-idle timeout every time.
    server.route(
        &asset_path("1.8.0"),
        vec![Reply::StallAfter {
            bytes: release.tarball.clone(),
            send: half,
        }],
    );
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Network { .. } | FetchError::Truncated { .. }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&state), before);

    // Stalled once, then fine: resumed and installed.
    server.route(
        &asset_path("1.8.0"),
        vec![
            Reply::StallAfter {
                bytes: release.tarball.clone(),
                send: half,
            },
            Reply::ok(&release.tarball),
        ],
    );
    install(&state, "1.8.0", &base).await.unwrap();
    assert_eq!(
        run_version(&state.livekit_bin()),
        "livekit-server version 1.8.0\n"
    );
}

#[tokio::test]
async fn wrong_bytes_never_install() {
    let (_dir, state, server, before) = installed_state().await;
    let base = server.base_url("/dl");
    let good = Release::new("1.8.0");
    let other = Release::new("1.8.1");

    // A well-formed tarball whose digest is not the listed one.
    server.publish("/dl", &good);
    server.route(&asset_path("1.8.0"), vec![Reply::ok(&other.tarball)]);
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    assert_eq!(snapshot(&state), before);

    // An HTML page served with 200.
    let html = b"<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>".to_vec();
    server.route(&asset_path("1.8.0"), vec![Reply::ok(&html)]);
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::NotAnArchive { .. } | FetchError::ChecksumMismatch { .. }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&state), before);

    // checksums.txt without the asset: the tarball is never fetched.
    let hits = server.hits(&asset_path("1.8.0"));
    server.route(
        &checksums_path("1.8.0"),
        vec![Reply::ok(
            format!("{}  livekit_1.8.0_linux_arm64.tar.gz\n", "a".repeat(64)).as_bytes(),
        )],
    );
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(matches!(err, FetchError::ChecksumList { .. }), "{err}");
    assert!(
        err.to_string().contains("livekit_1.8.0_linux_amd64.tar.gz"),
        "{err}"
    );
    assert_eq!(server.hits(&asset_path("1.8.0")), hits);
    assert_eq!(snapshot(&state), before);
}

#[tokio::test]
async fn oversized_downloads_are_refused() {
    let (_dir, state, server, before) = installed_state().await;
    let release = Release::with_entries(
        "1.8.0",
        &[Entry::file("livekit-server", &vec![b'x'; 200 * 1024])],
    );
    server.publish("/dl", &release);
    let mut r = request("1.8.0", &server.base_url("/dl"), &no_events());
    r.limits = SizeLimits {
        max_download: 100,
        max_binary: 1 << 20,
    };
    let err = fetch::install(&state, &r).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                what: "download",
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
    r.limits = SizeLimits {
        max_download: 1 << 20,
        max_binary: 1000,
    };
    let err = fetch::install(&state, &r).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                what: "livekit-server entry",
                ..
            }
        ),
        "{err}"
    );
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
