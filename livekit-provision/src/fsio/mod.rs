//! Every write to disk goes through this module.
//!
//! `atomic` writes one file crash-safely; `staged` streams a file into place and switches
//! symlinks atomically; `lock` serializes processes over a lock file.
//! Nothing else in the library calls `std::fs::write` or opens a file for writing.

pub mod atomic;
pub mod lock;
pub mod staged;

pub use atomic::{TEMP_PREFIX, fsync_dir, write_file};
pub use lock::FileLock;
pub use staged::{StagedFile, switch_symlink};
