//! Symlink attacks: a path `ensure` manages, replaced beforehand by a symlink to a file outside
//! the state directory, is never written through — the link is replaced (after a copy of it is
//! kept in `backups/`), or the run stops with an error naming the path.

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use crate::support::Node;

/// A file outside the state directory that must never change.
struct Victim {
    path: PathBuf,
    bytes: Vec<u8>,
    mtime_ns: i128,
}

impl Victim {
    fn new(dir: &Path, name: &str, bytes: &[u8]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mtime_ns = mtime_ns(&path);
        Self {
            path,
            bytes: bytes.to_vec(),
            mtime_ns,
        }
    }

    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "{what}: written through"
        );
        assert_eq!(mtime_ns(&self.path), self.mtime_ns, "{what}: modified");
    }
}

fn mtime_ns(path: &Path) -> i128 {
    let meta = std::fs::metadata(path).unwrap();
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

fn plant(node: &Node, rel: &str, victim: &Victim) {
    let link = node.path(rel);
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&link).unwrap(),
        Ok(_) => std::fs::remove_file(&link).unwrap(),
        Err(_) => {}
    }
    symlink(&victim.path, &link).unwrap();
}

#[test]
fn managed_files_replaced_by_symlinks_are_replaced_not_written_through() {
    // `secrets.json` -> a valid empty store elsewhere: it is read, then replaced by our file.
    // The fixed paths and `current` -> files elsewhere: backed up as links, then replaced.
    for (rel, bytes, converged) in [
        ("secrets.json", &b"{}"[..], false),
        ("livekit.yaml", b"port: 1\n", true),
        ("backend.env", b"PORT=1\n", true),
        ("runtime.json", b"{}", true),
        ("current", b"not a directory\n", true),
        ("livekit.yaml", b"port: 1\n", false),
    ] {
        let node = if converged {
            Node::converged()
        } else {
            let node = Node::new();
            std::fs::create_dir_all(&node.state).unwrap();
            node
        };
        let victim = Victim::new(&node.tmp.path().join("outside"), "victim", bytes);
        plant(&node, rel, &victim);
        // With provision.yaml changed the files must be rewritten, so the run is a real write.
        std::fs::write(node.path("provision.yaml"), "port: 7990\n").unwrap();
        node.run(&["ensure"]).ok();
        victim.assert_untouched(rel);
        let meta = std::fs::symlink_metadata(node.path(rel)).unwrap();
        if rel == "secrets.json" {
            assert!(meta.is_file(), "{rel} is still a link");
        } else {
            assert_ne!(
                std::fs::read_link(node.path(rel)).unwrap(),
                victim.path,
                "{rel} still points outside"
            );
        }
        node.triple().consistent();
        node.run(&["ensure", "--dry-run"]).ok();
    }
}

#[test]
fn lock_files_replaced_by_symlinks_are_refused_with_the_path() {
    for rel in ["run/lock", "secrets.json.lock"] {
        let node = Node::new();
        std::fs::create_dir_all(node.path("run")).unwrap();
        let victim = Victim::new(&node.tmp.path().join("outside"), "victim", b"precious\n");
        plant(&node, rel, &victim);
        let out = node.run(&["ensure"]).expect_code(1);
        assert!(
            out.stderr.contains(rel),
            "{rel}: error does not name it\n{out}"
        );
        victim.assert_untouched(rel);
        // Removing the planted link is all it takes.
        std::fs::remove_file(node.path(rel)).unwrap();
        node.run(&["ensure"]).ok();
        node.triple().consistent();
    }
}
