//! The ACME certificates of a state directory: `tls/certs/<id>/{cert.pem,key.pem}` and the
//! `tls/live` symlink, switched in one rename. The key is written 0600 before the link names
//! it; the three newest issuances are kept (a reader that resolved the link a moment ago still
//! finds its files).

use std::path::PathBuf;
use std::time::SystemTime;

use crate::StateDir;
use crate::fsio;

const KEEP: usize = 3;

fn live(state: &StateDir) -> PathBuf {
    super::tls_dir(state).join("live")
}

/// `tls/live/cert.pem`.
pub(crate) fn live_cert(state: &StateDir) -> PathBuf {
    live(state).join("cert.pem")
}

/// `tls/live/key.pem`.
pub(crate) fn live_key(state: &StateDir) -> PathBuf {
    live(state).join("key.pem")
}

/// Keep a new issuance and make it live.
pub(crate) fn install(
    state: &StateDir,
    chain_pem: &str,
    key_pem: &str,
    serial: &str,
    now: SystemTime,
) -> Result<PathBuf, String> {
    let certs = super::tls_dir(state).join("certs");
    fsio::create_private_dir(&certs, true).map_err(|e| super::io_context("create", &certs, &e))?;
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let short: String = serial.chars().take(16).collect();
    let id = format!("{stamp}-{short}");
    let dir = certs.join(&id);
    fsio::create_private_dir(&dir, false).map_err(|e| super::io_context("create", &dir, &e))?;
    let key = dir.join("key.pem");
    fsio::write_file(&key, key_pem.as_bytes(), 0o600)
        .map_err(|e| super::io_context("write", &key, &e))?;
    let cert = dir.join("cert.pem");
    fsio::write_file(&cert, chain_pem.as_bytes(), 0o644)
        .map_err(|e| super::io_context("write", &cert, &e))?;
    let link = live(state);
    fsio::switch_symlink(&PathBuf::from("certs").join(&id), &link)
        .map_err(|e| super::io_context("switch", &link, &e))?;
    prune(&certs);
    Ok(dir)
}

/// Remove all but the newest [`KEEP`] issuances (ids sort by time).
fn prune(certs: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(certs) else {
        return;
    };
    let mut ids: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    ids.sort();
    let excess = ids.len().saturating_sub(KEEP);
    for old in ids.into_iter().take(excess) {
        if let Err(e) = fsio::staged::remove_unsynced(&old) {
            tracing::warn!("cannot remove {}: {e}", old.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_issuance_goes_live_with_a_private_key_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        for i in 0..5u64 {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i);
            install(
                &state,
                &format!("cert {i}"),
                &format!("key {i}"),
                "abcdef",
                now,
            )
            .unwrap();
            assert_eq!(
                *fsio::read_text(&live_cert(&state)).unwrap(),
                format!("cert {i}")
            );
            assert_eq!(
                *fsio::read_text(&live_key(&state)).unwrap(),
                format!("key {i}")
            );
        }
        let mode = std::fs::metadata(live_key(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let kept = std::fs::read_dir(super::super::tls_dir(&state).join("certs"))
            .unwrap()
            .count();
        assert_eq!(kept, KEEP);
    }
}
