//! Who listens on a TCP port: the listening sockets of `/proc/net/tcp` and `/proc/net/tcp6`
//! (state `0A`) give their inodes, and the process holding a descriptor `socket:[inode]` in
//! `/proc/<pid>/fd` owns it. Used to find a livekit-server we did not start (an older deployment
//! being migrated) on the configured port, and an externally supervised one without a pid file.
//!
//! Only processes whose `/proc/<pid>/fd` this user may read are seen (all of them as root, the
//! user's own otherwise): a listener found is named, one not found is "unknown", never "free".

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::identity::PidFileState;
use super::spec::ProcessSpec;
use livekit_provision::StateDir;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PortOwner {
    /// The port.
    pub port: u16,
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub name: String,
    /// Its executable, when readable.
    pub exe: Option<PathBuf>,
}

impl PortOwner {
    /// Why `name` is not started while this process holds its port, and how to take over:
    /// `(message, hint)`.
    pub fn refusal(&self, name: &str) -> (String, String) {
        let what = if self.name.is_empty() {
            "a process"
        } else {
            &self.name
        };
        (
            format!(
                "{name} is not started: {what} (pid {}), which we did not start, already listens on port {}",
                self.pid, self.port
            ),
            format!(
                "to take it over, stop it (`systemctl stop <its unit>` or `kill {}`), then `livekit-provision start`; to leave it to its own supervisor, set media_owner: external in provision.yaml",
                self.pid
            ),
        )
    }
}

/// The process listening on TCP `port` (any address), if one can be seen.
pub fn listening_on(port: u16) -> Option<PortOwner> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let pid = socket_holder(&inodes)?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default();
    let exe = super::identity::proc_exe(pid).ok().flatten();
    Some(PortOwner {
        port,
        pid,
        name,
        exe,
    })
}

/// A process we did not start on `spec`'s health port: someone listens there while
/// `run/<name>.pid` records no live process of `spec`'s. `None` when the port is free, when our
/// own process runs, or when the pid file cannot be read (nothing is claimed then).
pub fn foreign_listener(state: &StateDir, spec: &ProcessSpec) -> Option<PortOwner> {
    let port = spec.health?.port();
    match super::identity::inspect(state, &spec.name) {
        Ok(PidFileState::Live(_)) | Err(_) => None,
        Ok(_) => listening_on(port),
    }
}

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp{,6}` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let listening = *state == "0A" && u16::from_str_radix(hex_port, 16).ok()? == port;
            listening.then(|| inode.parse().ok()).flatten()
        })
        .filter(|inode| *inode != 0)
        .collect()
}

/// The lowest pid holding a descriptor on one of `inodes`.
fn socket_holder(inodes: &BTreeSet<u64>) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|inode| inodes.contains(&inode))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1CC8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1CC8 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn only_listening_sockets_on_the_port_count() {
        assert_eq!(listening_inodes(TABLE, 7368), [4242]);
        assert_eq!(listening_inodes(TABLE, 8080), [4444]);
        assert!(listening_inodes(TABLE, 7880).is_empty());
    }

    #[test]
    fn finds_this_process_listening() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let owner = listening_on(port).unwrap();
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.port, port);
        assert!(!owner.name.is_empty());
        drop(listener);
    }
}
