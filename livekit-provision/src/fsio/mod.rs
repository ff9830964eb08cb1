//! Every write to disk goes through this module.
//!
//! `atomic` writes one file crash-safely and renames things into place; `staged` streams a file
//! into place and switches symlinks atomically; `dir` creates private directories and opens
//! append-only logs; `backup` keeps what is about to be replaced; `lock` serializes processes
//! over a lock file. Nothing else in the library renames, creates a directory or opens a file
//! for writing (a test in this module enforces it).

pub(crate) mod atomic;
pub(crate) mod backup;
pub(crate) mod dir;
pub(crate) mod lock;
pub(crate) mod staged;

// What the control plane (`livekit-provision-daemon`) writes with: pid files, start records, its
// socket, logs.
pub use atomic::{rename_into_place, write_file};
pub use dir::{create_private_dir, open_append};
pub use lock::FileLock;
pub use staged::remove_file;

#[cfg(feature = "testing")]
pub use atomic::TEMP_PREFIX;
#[cfg(not(feature = "testing"))]
pub(crate) use atomic::TEMP_PREFIX;
pub(crate) use atomic::fsync_dir;
pub(crate) use backup::{copy_aside, move_aside};
pub(crate) use staged::{StagedFile, StagedLink, switch_symlink};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Calls that write to the filesystem (or read the wall clock). Outside `fsio/` (and
    /// `clock.rs` for the clock) each is an error unless [`ALLOWED`] names it with a reason.
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
    ];

    /// `(file under src/, name, reason)`: the written exceptions. Keep it short.
    const ALLOWED: &[(&str, &str, &str)] = &[(
        "clock.rs",
        "SystemTime::now",
        "the one reading of the wall clock; everything else is handed a `Clock` or a `now`",
    )];

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
        ] {
            assert!(WRITES.iter().any(|w| calls(stray, w)), "{stray}");
        }
        for fine in [
            "fsio::rename_into_place(a, b, None)?;",
            "fsio::staged::remove_file(p)?;",
            "if meta.file_type().is_symlink() {",
            "crate::fsio::create_private_dir(d, true)?;",
        ] {
            assert!(!WRITES.iter().any(|w| calls(fine, w)), "{fine}");
        }
    }
}
