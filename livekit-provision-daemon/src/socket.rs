//! One daemon per state directory: the instance lock and the RPC socket.

use std::io;
use std::os::unix::net::UnixStream;

use tokio::net::UnixListener;

use super::DaemonError;
use livekit_provision::StateDir;
use livekit_provision::fsio::{self, FileLock};

/// Mode of the socket: only the daemon's user may talk to it (it hands out tokens).
const SOCKET_MODE: u32 = 0o600;

/// The one daemon of a state directory: `run/daemon.lock`, held until this is dropped (or the
/// process dies, however it dies).
#[derive(Debug)]
#[must_use = "the instance lock is released when this is dropped"]
pub struct InstanceLock {
    _lock: FileLock,
}

/// Hold `run/daemon.lock` for the daemon's lifetime (released when it exits, however it dies).
/// A second daemon on the same state directory fails at once with [`DaemonError::AlreadyRunning`],
/// naming the holder's pid.
pub fn lock_instance(state: &StateDir) -> Result<InstanceLock, DaemonError> {
    let path = state.daemon_lock_file();
    let prepare = |source| DaemonError::Prepare {
        path: state.run_dir(),
        source,
    };
    fsio::create_private_dir(&state.run_dir(), true).map_err(prepare)?;
    match FileLock::try_acquire(&path) {
        Ok(Some(lock)) => Ok(InstanceLock { _lock: lock }),
        Ok(None) => Err(DaemonError::AlreadyRunning {
            lock: path.clone(),
            pid: FileLock::holder(&path),
        }),
        Err(source) => Err(DaemonError::Prepare { path, source }),
    }
}

/// Bind `<state>/run/rpc.sock`, mode 0600. A socket left by a killed daemon (nobody accepts on it)
/// is replaced; one that answers belongs to a running daemon and is an error naming it.
///
/// The socket is bound under a temporary name, given its mode, then renamed into place, so it is
/// never reachable with a wider mode and a stale one is replaced in one step.
///
/// Must be called within a tokio runtime.
pub fn bind(state: &StateDir) -> Result<UnixListener, DaemonError> {
    let socket = state.rpc_socket();
    fsio::create_private_dir(&state.run_dir(), true).map_err(|source| DaemonError::Prepare {
        path: state.run_dir(),
        source,
    })?;
    match UnixStream::connect(&socket) {
        Ok(_) => {
            return Err(DaemonError::SocketInUse {
                socket,
                pid: FileLock::holder(&state.daemon_lock_file()),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %socket.display(), "replacing the stale socket of a daemon that is gone");
        }
        Err(source) => return Err(DaemonError::Bind { socket, source }),
    }
    let temp = state
        .run_dir()
        .join(format!(".rpc.sock.{}.tmp", std::process::id()));
    let bind_err = |source| DaemonError::Bind {
        socket: socket.clone(),
        source,
    };
    match fsio::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = UnixListener::bind(&temp).map_err(bind_err)?;
    if let Err(e) = fsio::rename_into_place(&temp, &socket, Some(SOCKET_MODE)) {
        let _ = fsio::remove_file(&temp);
        return Err(bind_err(e));
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    use super::*;

    #[tokio::test]
    async fn binds_0600_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.run_dir()).unwrap();
        // A stale socket: bound, then its listener dropped (nobody accepts).
        drop(std::os::unix::net::UnixListener::bind(state.rpc_socket()).unwrap());
        let listener = bind(&state).unwrap();
        let meta = std::fs::metadata(state.rpc_socket()).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A live one is refused.
        let err = bind(&state).unwrap_err();
        assert!(matches!(err, DaemonError::SocketInUse { .. }), "{err}");
        drop(listener);
    }

    #[test]
    fn a_second_instance_learns_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let held = lock_instance(&state).unwrap();
        match lock_instance(&state) {
            Err(DaemonError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(held);
        assert!(lock_instance(&state).is_ok());
    }
}
