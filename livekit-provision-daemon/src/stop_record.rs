//! The operator's stop, kept on disk: `run/media.stopped` (0600, through `fsio`), written by
//! `stop` before any process is signalled and removed by `start` (and `restart`) before any is
//! started. While it exists, provisioning runs leave the media down — across restarts of the
//! control plane (the daemon, or a host embedding it) and of the machine — and `status` says
//! they were stopped on purpose, and since when.
//!
//! A record that exists but cannot be read or parsed still holds the media down (it exists only
//! because someone stopped them); its time is then the file's modification time, when that can
//! be read.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use livekit_provision::StateDir;
use livekit_provision::clock::{from_unix_secs, rfc3339};
use livekit_provision::fsio;

/// The record's file name in `run/`.
const FILE_NAME: &str = "media.stopped";

/// `run/media.stopped`.
pub(crate) fn path(state: &StateDir) -> PathBuf {
    state.run_dir().join(FILE_NAME)
}

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// When (RFC 3339), for a human reading the file.
    since: String,
    /// When, in seconds since the Unix epoch: what is read back.
    since_unix: u64,
}

/// The operator stopped the media: since when, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped {
    pub since: Option<SystemTime>,
}

impl Stopped {
    /// `since` as RFC 3339, for `status`.
    pub(crate) fn since_rfc3339(self) -> Option<String> {
        self.since.map(rfc3339)
    }
}

/// Record that the operator stopped the media at `now`.
pub(crate) fn write(state: &StateDir, now: SystemTime) -> io::Result<()> {
    let since_unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = Record {
        since: rfc3339(now),
        since_unix,
    };
    let mut bytes = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
    bytes.push(b'\n');
    fsio::create_private_dir(&state.run_dir(), true)?;
    fsio::write_file(&path(state), &bytes, 0o600)
}

/// Forget the operator's stop (nothing to do when there is none).
pub(crate) fn clear(state: &StateDir) -> io::Result<()> {
    match fsio::remove_file(&path(state)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The operator's stop, when the media are held down by one.
pub(crate) fn read(state: &StateDir) -> Option<Stopped> {
    let path = path(state);
    let bytes = match livekit_provision::fsio::read_regular(&path) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the record of the operator's stop; the media stay down");
            Vec::new()
        }
    };
    let since = serde_json::from_slice::<Record>(&bytes)
        .ok()
        .map(|r| from_unix_secs(r.since_unix))
        .or_else(|| std::fs::metadata(&path).and_then(|m| m.modified()).ok());
    Some(Stopped { since })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_stop_is_kept_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(read(&state), None);
        clear(&state).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        write(&state, at).unwrap();
        let stopped = read(&state).unwrap();
        assert_eq!(stopped.since, Some(at));
        assert_eq!(
            stopped.since_rfc3339().as_deref(),
            Some("2025-06-15T15:06:40Z")
        );
        let mode = std::fs::metadata(path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        clear(&state).unwrap();
        assert_eq!(read(&state), None);
    }

    #[test]
    fn a_damaged_record_still_holds_the_media_down() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.run_dir()).unwrap();
        std::fs::write(path(&state), "not json").unwrap();
        let stopped = read(&state).expect("a record that exists holds the media down");
        assert!(stopped.since.is_some(), "the file's time stands in");
    }
}
