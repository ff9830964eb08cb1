//! Integration tests of the `livekit-provision` binary: each runs the real executable against a
//! temporary state directory, with a clean environment and no network (releases come from
//! `file://` mirrors holding a stand-in `livekit-server` shell script).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod bad_input_suite;
mod completions;
mod concurrency;
mod help;
mod hints;
mod hygiene;
mod install;
mod logs;
mod quick_start;
mod readme_transcript;
mod render_check;
mod secrets;
mod stores;
mod support;
mod symlink_attack;
mod token;
