//! Downloads over a loopback HTTP server that misbehaves on demand: retries, rate limits,
//! resumes, truncation, stalls, wrong and oversized bytes. Helpers are `fetch.rs`'s.

use livekit_provision::Hint;
use std::time::Duration;

use livekit_provision::fetch::{self, FetchError, FetchEvent, InstallOutcome, SizeLimits};

use crate::support::release_server::{Entry, Release, Reply, stand_in_script};

const SERVER_WAIT_CAP: Duration = Duration::from_millis(40);

use super::fetch::{
    asset_path, checksums_path, install, installed_state, no_events, request, run_version, snapshot,
};

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
            err.at_source(),
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
    assert!(
        matches!(err.at_source(), FetchError::RateLimited { .. }),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("GITHUB_TOKEN"));

    server.route(&checksums_path("1.8.0"), vec![Reply::status(403, &[])]);
    let err = install(&state, "1.8.0", &base).await.unwrap_err();
    assert!(
        matches!(
            err.at_source(),
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
    assert!(
        matches!(err.at_source(), FetchError::NotFound { .. }),
        "{err}"
    );
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
        matches!(err.at_source(), FetchError::NotFound { url, .. } if url.ends_with("livekit_9.9.9_linux_amd64.tar.gz")),
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
        matches!(err.at_source(), FetchError::Truncated { attempts: 4, .. }),
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
            err.at_source(),
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
