//! Every write to disk goes through this module.
//!
//! `atomic` writes one file crash-safely and renames things into place; `staged` streams a file
//! into place and switches symlinks atomically; `dir` creates private directories and opens
//! append-only logs; `backup` keeps what is about to be replaced; `lock` serializes processes
//! over a lock file; `read` is the one reader of a file the product is given (regular files
//! only, size-capped, never blocking). Nothing else in the library renames, creates a directory or opens a file
//! for writing (a test in this module enforces it).

pub(crate) mod atomic;
pub(crate) mod backup;
pub(crate) mod dir;
pub(crate) mod lock;
pub(crate) mod read;
pub(crate) mod staged;

// What the control plane (`livekit-provision-daemon`) writes with: pid files, start records, its
// socket, logs.
pub use atomic::{rename_into_place, write_file};
pub use dir::{create_private_dir, open_append};
pub use lock::FileLock;
pub use read::{MAX_FILE, ReadRefusal, read_regular};
pub use staged::remove_file;

#[cfg(feature = "testing")]
pub use atomic::TEMP_PREFIX;
#[cfg(not(feature = "testing"))]
pub(crate) use atomic::TEMP_PREFIX;
pub(crate) use atomic::fsync_dir;
pub(crate) use backup::{copy_aside, move_aside};
pub(crate) use read::{hint as read_hint, read_text, read_with_metadata};
pub(crate) use staged::{StagedFile, StagedLink, switch_symlink};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Calls that write to the filesystem, read a whole file past the bounded reader, or read
    /// the wall clock. Outside `fsio/` (and `clock.rs` for the clock) each is an error unless
    /// [`ALLOWED`] names it with a reason.
    /// `std::fs::`, `fs_err::` and `tokio::fs::` forms all end in these names.
    const WRITES: &[&str] = &[
        "rename(",
        "DirBuilder",
        "OpenOptions",
        "create_dir(",
        "create_dir_all(",
        "set_permissions(",
        "hard_link(",
        "symlink(",
        "remove_file(",
        "remove_dir(",
        "remove_dir_all(",
        "File::create(",
        "fs::write(",
        "fs_err::write(",
        "SystemTime::now",
        // Reads of a whole file: through `read::read_regular` (regular files only, capped,
        // never blocking on a FIFO).
        "fs::read(",
        "fs_err::read(",
        "read_to_string(",
        "File::open(",
    ];

    /// `(file under src/, name, reason)`: the written exceptions. Keep it short.
    const ALLOWED: &[(&str, &str, &str)] = &[
        (
            "clock.rs",
            "SystemTime::now",
            "the one reading of the wall clock; everything else is handed a `Clock` or a `now`",
        ),
        (
            "fetch/download.rs",
            "File::open(",
            "a release tarball or checksums.txt streamed from a file:// mirror under the \
             download's own size limits",
        ),
        (
            "fetch/extract.rs",
            "fs_err::read(",
            "the binary just extracted into our own staged temp file (size-limited)",
        ),
        (
            "fetch/install.rs",
            "File::open(",
            "the installed binary, streamed through SHA-256 (a large file by nature)",
        ),
        (
            "apply/state.rs",
            "fs::read(",
            "the daemon's own run/changes.json (0700 run/); apply/ is the supervision work's",
        ),
        (
            "supervise/health.rs",
            "File::open(",
            "a media log followed from its end (grows by design)",
        ),
        (
            "supervise/identity.rs",
            "read_to_string(",
            "/proc/<pid>/stat, which reports size 0",
        ),
        (
            "supervise/identity.rs",
            "fs::read(",
            "the daemon's own pid file under run/ (0700); supervise/ is the supervision work's",
        ),
        (
            "supervise/port_owner.rs",
            "read_to_string(",
            "/proc/net tables and /proc/<pid>/comm, which report size 0",
        ),
        (
            "supervise/spawn.rs",
            "File::open(",
            "/dev/null as a child's stdin",
        ),
        (
            "supervise/started.rs",
            "fs::read(",
            "the daemon's own start records under run/ (0700); supervise/ is the supervision \
             work's",
        ),
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// `name` called in `line` other than as `fsio::…`/`staged::…` and not as the tail of a longer
    /// identifier (`is_symlink(` is not `symlink(`).
    fn calls(line: &str, name: &str) -> bool {
        line.match_indices(name).any(|(at, _)| {
            let before = &line[..at];
            let joined = before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let ours = ["fsio::", "staged::", "backup::", "dir::"]
                .iter()
                .any(|p| before.ends_with(p));
            !joined && !ours
        })
    }

    /// Each `(file, line number, name)` of a write outside `fsio/` in the non-test code of the
    /// library's files under `src`, and the [`ALLOWED`] entries that were needed.
    fn strays(src: &Path) -> (Vec<(String, usize, &'static str)>, Vec<usize>) {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut found = Vec::new();
        let mut used = Vec::new();
        for file in files {
            let rel = file
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // fsio itself, and test modules kept in files of their own (`mod tests;`).
            if rel.starts_with("fsio/") || file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for name in WRITES.iter().filter(|name| calls(line, name)) {
                    match ALLOWED.iter().position(|(f, w, _)| *f == rel && w == name) {
                        Some(entry) => used.push(entry),
                        None => found.push((rel.clone(), n + 1, *name)),
                    }
                }
            }
        }
        found.sort();
        (found, used)
    }

    #[test]
    fn every_write_goes_through_fsio() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let (mut strays, mut used) = strays(&src);
        // The control plane writes through this module too (pid files, records, its socket).
        let daemon = Path::new(env!("CARGO_MANIFEST_DIR")).join("../livekit-provision-daemon/src");
        let (daemon_strays, daemon_used) = self::strays(&daemon);
        assert!(
            daemon.join("supervise/spawn.rs").is_file(),
            "the scan must see the daemon crate"
        );
        strays.extend(daemon_strays);
        used.extend(daemon_used);
        for (entry, (file, name, _)) in ALLOWED.iter().enumerate() {
            assert!(
                used.contains(&entry),
                "stale allow-list entry {file} {name}"
            );
        }
        assert!(
            strays.is_empty(),
            "writes outside fsio (route them through fsio, or allow-list one with its reason): \
             {strays:?}"
        );
        // The scan sees what it must: fsio itself holds each kind of write.
        let fsio = std::fs::read_to_string(src.join("fsio/staged.rs")).unwrap();
        assert!(calls(&fsio, "rename(") && calls(&fsio, "symlink("));
    }

    #[test]
    fn the_scan_catches_each_form_and_spares_fsio_calls() {
        for stray in [
            "std::fs::rename(a, b)?;",
            "fs_err::rename(a, b)?;",
            "tokio::fs::rename(a, b).await?;",
            "let mut b = std::fs::DirBuilder::new();",
            "OpenOptions::new().append(true).open(p)?;",
            "fs_err::OpenOptions::new()",
            "symlink(target, &link)?;",
            "let t = SystemTime::now();",
            "let text = std::fs::read_to_string(path)?;",
            "let bytes = fs_err::read(&self.path)?;",
            "let f = std::fs::File::open(p)?;",
        ] {
            assert!(WRITES.iter().any(|w| calls(stray, w)), "{stray}");
        }
        for fine in [
            "fsio::rename_into_place(a, b, None)?;",
            "fsio::staged::remove_file(p)?;",
            "if meta.file_type().is_symlink() {",
            "crate::fsio::create_private_dir(d, true)?;",
            "let bytes = crate::fsio::read_regular(&path)?;",
        ] {
            assert!(!WRITES.iter().any(|w| calls(fine, w)), "{fine}");
        }
    }
}
