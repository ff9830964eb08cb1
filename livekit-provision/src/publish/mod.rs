//! Publishing the three managed files as one set (docs/DESIGN.md invariants 2 and 4).
//!
//! The files are written into a new generation directory, and one symlink, `current`, is
//! switched to it with a single `rename` — the technique of Kubernetes' AtomicWriter. The fixed
//! paths `livekit.yaml`, `backend.env`, `runtime.json` are relative symlinks `current/<name>`,
//! so a reader opening any of them sees the previous complete set or the new one, never a mix,
//! whenever the writer is killed.
//!
//! Steps of [`publish`], each durable before the next (a crash between any two leaves the old
//! set visible and, at worst, debris that the next publish sweeps):
//! 1. sweep debris ([`debris`]); if the fixed paths already show these bytes, stop here;
//! 2. write the three files (0600, each fsynced) into `generations/.lkp-tmp-<id>/`, fsync it,
//!    rename it to `generations/<id>`, fsync `generations/`;
//! 3. make each fixed path our `current/<name>` link where it is not yet (once per state
//!    directory), after keeping a copy of whatever was there in `backups/` ([`backup`]);
//! 4. create a temp link to `generations/<id>`, rename it over `current`, fsync the root;
//! 5. prune old generations, keeping the newest N and always the live one.
//!
//! The one exception to "never a mix" is the one-time import of a legacy layout (three plain
//! files): those paths turn into links one at a time, and while `current` does not exist yet
//! such a link dangles, so a reader then sees a legacy file or no file — never new bytes next to
//! legacy ones. Once the links exist, every later publish is a single rename.
//!
//! Every publish happens under the [`StateLock`]; [`prepare`] makes the directories first.
//!
//! ```no_run
//! use livekit_provision::publish::{PublishOptions, PublishOutcome, StateLock, prepare, publish};
//! # fn demo(
//! #     state: &livekit_provision::StateDir,
//! #     rendered: &livekit_provision::render::Rendered,
//! # ) -> Result<(), livekit_provision::PublishError> {
//! prepare(state)?;
//! let lock = StateLock::acquire(state, |pid| match pid {
//!     Some(pid) => eprintln!("waiting for pid {pid} holding {}", state.lock_file().display()),
//!     None => eprintln!("waiting for {}", state.lock_file().display()),
//! })?;
//! match publish(state, &lock, rendered, &PublishOptions::default())? {
//!     PublishOutcome::Unchanged { .. } => println!("files up to date"),
//!     PublishOutcome::Published { generation, .. } => println!("published {generation}"),
//!     _ => {}
//! }
//! # Ok(())
//! # }
//! ```

mod backup;
mod error;
mod generation;
mod layout;
mod state_lock;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use backup::{Backup, backup};
pub use error::PublishError;
#[cfg(feature = "testing")]
pub use generation::{Contents, CurrentLink, find_debris};
pub use generation::{
    CurrentState, FixedPath, GenerationId, debris, generations, read_current,
};
pub use layout::prepare;
pub use state_lock::StateLock;

use crate::fsio::{
    StagedLink, TEMP_PREFIX, create_private_dir, fsync_dir, rename_into_place, write_file,
};
use crate::paths::{ManagedFile, StateDir};
use crate::render::Rendered;
use generation::{FILE_MODE, current_link_target, fixed_link_target, generation_of_target};
use layout::ensure_dir;

/// How many generations [`PublishOptions::default`] keeps.
pub const DEFAULT_KEEP_GENERATIONS: usize = 5;

/// A step of a publish that has just completed: what the crash-safety tests' hook
/// (`PublishOptions::checkpoint`, with the `testing` feature) is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
// Without the `testing` feature no hook reads the steps' payloads.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum Checkpoint {
    /// Debris of an earlier, killed publish was removed.
    DebrisSwept,
    /// One file of the new generation was written and fsynced.
    FileWritten(ManagedFile),
    /// The new generation's directory was fsynced.
    GenerationSynced,
    /// The new generation got its final name, and `generations/` was fsynced.
    GenerationNamed,
    /// A fixed path was turned into our `current/<name>` link (after any backup).
    FixedLinkPlaced(ManagedFile),
    /// The temp link to the new generation was created beside `current`.
    TempLinkCreated,
    /// The temp link was renamed over `current`: the new set is live.
    CurrentSwitched,
    /// The state root was fsynced: the switch is durable.
    RootSynced,
    /// Old generations were pruned.
    Pruned,
}

/// How to publish.
#[derive(Clone, Copy)]
pub struct PublishOptions<'a> {
    /// How many generations to keep (the live one is always kept). Default 5.
    pub keep_generations: usize,
    /// Called after each step; an error stops the publish there, as a crash would (returned
    /// as [`PublishError::Interrupted`]). A seam for the crash-safety tests, compiled only with
    /// the `testing` feature.
    #[cfg(feature = "testing")]
    pub checkpoint: Option<&'a dyn Fn(Checkpoint) -> io::Result<()>>,
    /// The time that names backups (default: [`crate::clock::system`] when the options are made).
    pub now: SystemTime,
    /// Keeps the lifetime the test hook borrows for.
    #[cfg(not(feature = "testing"))]
    #[doc(hidden)]
    pub _hook: std::marker::PhantomData<&'a ()>,
}

impl Default for PublishOptions<'_> {
    fn default() -> Self {
        Self {
            keep_generations: DEFAULT_KEEP_GENERATIONS,
            #[cfg(feature = "testing")]
            checkpoint: None,
            now: crate::clock::system(),
            #[cfg(not(feature = "testing"))]
            _hook: std::marker::PhantomData,
        }
    }
}

impl fmt::Debug for PublishOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PublishOptions");
        out.field("keep_generations", &self.keep_generations);
        #[cfg(feature = "testing")]
        out.field("checkpoint", &self.checkpoint.map(|_| "<hook>"));
        out.field("now", &self.now).finish()
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishOutcome {
    /// The fixed paths already showed these bytes: no generation was made, and nothing was
    /// written unless debris had to be swept.
    Unchanged {
        /// Debris removed (empty on a converged node: then nothing at all was written).
        swept: Vec<PathBuf>,
    },
    /// A new generation is live.
    Published {
        /// The new live generation.
        generation: GenerationId,
        /// The generation it replaced, if any.
        previous: Option<GenerationId>,
        /// What was kept in `backups/` before being replaced.
        backed_up: Vec<Backup>,
        /// Debris removed.
        swept: Vec<PathBuf>,
        /// Old generations removed.
        pruned: Vec<GenerationId>,
    },
}

/// Publish `rendered` as the live set of the state directory, under `lock` (which must be the
/// lock of `state`). Writes nothing when the fixed paths already show these exact bytes.
pub fn publish(
    state: &StateDir,
    lock: &StateLock,
    rendered: &Rendered,
    opts: &PublishOptions<'_>,
) -> Result<PublishOutcome, PublishError> {
    lock.check_guards(state)?;
    #[cfg(feature = "testing")]
    let reached = |checkpoint: Checkpoint| match opts.checkpoint {
        Some(hook) => {
            hook(checkpoint).map_err(|source| PublishError::Interrupted { checkpoint, source })
        }
        None => Ok(()),
    };
    #[cfg(not(feature = "testing"))]
    let reached = |_: Checkpoint| Ok::<(), PublishError>(());

    let before = read_current(state);
    let swept = generation::sweep(&debris(state, &before))?;
    if !swept.is_empty() {
        reached(Checkpoint::DebrisSwept)?;
    }
    if before.matches(rendered) {
        return Ok(PublishOutcome::Unchanged { swept });
    }

    let generations_dir = state.generations_dir();
    ensure_dir(&generations_dir, false)?;
    let id = next_id(state, &before)?;
    write_generation(state, id, rendered, &reached)?;

    let mut backed_up = Vec::new();
    for file in ManagedFile::ALL {
        let link = state.managed(file);
        if let Some(kept) = make_link(state, &link, &fixed_link_target(file), opts.now)? {
            backed_up.push(kept);
        }
        reached(Checkpoint::FixedLinkPlaced(file))?;
    }

    let current = state.current_link();
    let ours = |t: &Path| generation_of_target(t).is_some();
    if let Some(kept) = keep_if_foreign(state, &current, ours, opts.now)? {
        backed_up.push(kept);
    }
    let temp = stage_link(&current, &current_link_target(id))?;
    reached(Checkpoint::TempLinkCreated)?;
    switch(temp, &current)?;
    reached(Checkpoint::CurrentSwitched)?;
    fsync_dir(state.root()).map_err(PublishError::io("fsync", state.root()))?;
    reached(Checkpoint::RootSynced)?;

    let pruned = generation::prune(state, opts.keep_generations, id)?;
    reached(Checkpoint::Pruned)?;
    Ok(PublishOutcome::Published {
        generation: id,
        previous: before.generation(),
        backed_up,
        swept,
        pruned,
    })
}

/// One past every generation present or named by `current`.
fn next_id(state: &StateDir, before: &CurrentState) -> Result<GenerationId, PublishError> {
    let newest = generations(state)?
        .into_iter()
        .chain(before.generation())
        .max();
    Ok(newest.map_or(GenerationId::FIRST, GenerationId::next))
}

/// Step 2: the complete, synced `generations/<id>/`.
fn write_generation(
    state: &StateDir,
    id: GenerationId,
    rendered: &Rendered,
    reached: &impl Fn(Checkpoint) -> Result<(), PublishError>,
) -> Result<(), PublishError> {
    let generations_dir = state.generations_dir();
    let staging = generations_dir.join(format!("{TEMP_PREFIX}{id}"));
    create_private_dir(&staging, false).map_err(PublishError::io("create directory", &staging))?;
    for file in ManagedFile::ALL {
        let path = staging.join(file.file_name());
        write_file(&path, rendered.get(file).as_bytes(), FILE_MODE)
            .map_err(PublishError::io("write", &path))?;
        reached(Checkpoint::FileWritten(file))?;
    }
    fsync_dir(&staging).map_err(PublishError::io("fsync", &staging))?;
    reached(Checkpoint::GenerationSynced)?;
    let named = generations_dir.join(id.to_string());
    rename_into_place(&staging, &named, None)
        .map_err(PublishError::io("rename into place", &named))?;
    reached(Checkpoint::GenerationNamed)
}

/// Make `link` a symlink to `target`, unless it already is one. Whatever else was there is
/// kept in `backups/` first (returned). The link is replaced atomically: never missing.
fn make_link(
    state: &StateDir,
    link: &Path,
    target: &Path,
    now: SystemTime,
) -> Result<Option<Backup>, PublishError> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(None);
    }
    let kept = keep_if_foreign(state, link, |t| t == target, now)?;
    let temp = stage_link(link, target)?;
    switch(temp, link)?;
    Ok(kept)
}

/// Back up what is at `path` unless it is missing or a link whose target `is_ours`.
fn keep_if_foreign(
    state: &StateDir,
    path: &Path,
    is_ours: impl Fn(&Path) -> bool,
    now: SystemTime,
) -> Result<Option<Backup>, PublishError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PublishError::io("inspect", path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let current = std::fs::read_link(path).map_err(PublishError::io("read link", path))?;
            if is_ours(&current) {
                Ok(None)
            } else {
                backup(state, path, now).map(Some)
            }
        }
        Ok(meta) if meta.is_file() => backup(state, path, now).map(Some),
        Ok(_) => Err(PublishError::NotAFile {
            path: path.to_owned(),
        }),
    }
}

/// A fresh temporary symlink to `target` beside `link`, ready to be renamed over it.
fn stage_link(link: &Path, target: &Path) -> Result<StagedLink, PublishError> {
    StagedLink::new(target, link).map_err(PublishError::io("create symlink", link))
}

fn switch(temp: StagedLink, link: &Path) -> Result<(), PublishError> {
    temp.switch()
        .map_err(PublishError::io("rename into place", link))
}
