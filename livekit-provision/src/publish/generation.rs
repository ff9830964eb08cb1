//! Generations on disk: their names, what the fixed paths currently show, debris and pruning.
//!
//! ```text
//! <state>/current          -> generations/0000000007
//! <state>/livekit.yaml     -> current/livekit.yaml      (likewise backend.env, runtime.json)
//! <state>/generations/0000000007/{livekit.yaml,backend.env,runtime.json}   0600
//! <state>/generations/.lkp-tmp-0000000008/   a generation being written (debris if left over)
//! ```
//!
//! A generation directory gets its final name only once its three files are written and synced,
//! so a directory with a generation name is always complete; anything with the temp prefix is
//! a killed writer's debris.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::PublishError;
use crate::fsio::{TEMP_PREFIX, fsync_dir};
use crate::paths::{ManagedFile, StateDir};
use crate::render::Rendered;

/// Mode of every published file: they hold the API secret.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Digits of a generation directory's name: zero-padded so names sort like numbers.
const ID_WIDTH: usize = 10;

/// The number of a generation: one more than any generation present when it was published, so
/// ids increase and sort by age. Shown as the zero-padded directory name (`0000000007`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationId(u64);

impl GenerationId {
    /// The id named by a generation directory, if `name` is one (exactly as [`Display`] spells it).
    ///
    /// [`Display`]: fmt::Display
    pub fn parse(name: &str) -> Option<Self> {
        if name.len() != ID_WIDTH || !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name.parse().ok().map(Self)
    }

    pub(crate) fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    pub(crate) const FIRST: Self = Self(1);
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = ID_WIDTH)
    }
}

/// The bytes of a file we read. They may hold secrets, so `Debug` prints only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Contents(Vec<u8>);

impl Contents {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, when they are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// What `<state>/current` is.
#[derive(Debug)]
pub enum CurrentLink {
    /// Nothing: never published.
    Missing,
    /// Our symlink to `generations/<id>` (the directory itself may have gone missing: then the
    /// files read through it are [`FixedPath::Unreadable`]).
    Generation(GenerationId),
    /// A symlink that does not name one of our generations.
    Foreign,
    /// A file or directory, not a symlink.
    NotASymlink,
    /// It could not be inspected.
    Unreadable,
}

/// What is at the fixed path of one managed file.
#[derive(Debug)]
pub enum FixedPath {
    /// Nothing.
    Missing,
    /// Our symlink `current/<name>`, with the file of the current generation.
    Ours {
        /// The generation it resolves to.
        generation: GenerationId,
        /// The file's bytes.
        contents: Contents,
        /// The file's permission bits.
        mode: u32,
    },
    /// Our symlink `current/<name>`, but `current` does not name a generation.
    OursDangling,
    /// A plain file, as older tools wrote them (backed up before it is replaced).
    Legacy {
        /// The file's bytes.
        contents: Contents,
        /// The file's permission bits.
        mode: u32,
    },
    /// A symlink that is not ours (kept as a link in `backups/` before it is replaced; its
    /// target is never written).
    ForeignSymlink {
        /// Its target, as stored in the link.
        target: PathBuf,
        /// Whether the target lies outside the state directory (judged lexically).
        outside_state_dir: bool,
    },
    /// A directory or other non-file: publish refuses to replace it.
    NotAFile,
    /// It could not be inspected or read.
    Unreadable(io::Error),
}

impl FixedPath {
    /// The bytes found there, if it was read.
    pub fn contents(&self) -> Option<&Contents> {
        match self {
            Self::Ours { contents, .. } | Self::Legacy { contents, .. } => Some(contents),
            _ => None,
        }
    }

}

/// What the fixed paths of a state directory show, read without any lock and without writing.
///
/// Files behind our links are read from the generation `current` named when it was read, so the
/// three always come from one generation even while a publish switches `current`.
#[derive(Debug)]
pub struct CurrentState {
    /// What `current` is.
    pub current: CurrentLink,
    /// Each managed file's fixed path, in [`ManagedFile::ALL`] order.
    pub files: [(ManagedFile, FixedPath); 3],
}

impl CurrentState {
    /// What is at the fixed path of `file`.
    pub fn file(&self, file: ManagedFile) -> &FixedPath {
        let index = ManagedFile::ALL
            .iter()
            .position(|f| *f == file)
            .unwrap_or_default();
        &self.files[index].1
    }

    /// The live generation, when `current` names one.
    pub fn generation(&self) -> Option<GenerationId> {
        match self.current {
            CurrentLink::Generation(id) => Some(id),
            _ => None,
        }
    }

    /// Whether every fixed path is our link to exactly these bytes, mode 0600: publishing
    /// `rendered` again would change nothing.
    pub fn matches(&self, rendered: &Rendered) -> bool {
        self.generation().is_some()
            && self.files.iter().all(|(file, at)| match at {
                FixedPath::Ours { contents, mode, .. } => {
                    contents.as_bytes() == rendered.get(*file).as_bytes()
                        && mode & 0o777 == FILE_MODE
                }
                _ => false,
            })
    }
}

/// The target of our fixed-path link for `file`: `current/<name>`.
pub(crate) fn fixed_link_target(file: ManagedFile) -> PathBuf {
    Path::new("current").join(file.file_name())
}

/// The target of `current` for generation `id`: `generations/<id>`.
pub(crate) fn current_link_target(id: GenerationId) -> PathBuf {
    Path::new("generations").join(id.to_string())
}

/// Describe what `current` and each managed file's fixed path hold. Reads at most the three
/// small files; writes nothing.
pub fn read_current(state: &StateDir) -> CurrentState {
    let current = inspect_current(state);
    let generation = match current {
        CurrentLink::Generation(id) => Some(id),
        _ => None,
    };
    let files = ManagedFile::ALL.map(|file| (file, inspect_fixed(state, file, generation)));
    CurrentState { current, files }
}

fn inspect_current(state: &StateDir) -> CurrentLink {
    let path = state.current_link();
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => CurrentLink::Missing,
        Err(_) => CurrentLink::Unreadable,
        Ok(meta) if !meta.file_type().is_symlink() => CurrentLink::NotASymlink,
        Ok(_) => match std::fs::read_link(&path) {
            Err(_) => CurrentLink::Unreadable,
            Ok(target) => {
                generation_of_target(&target).map_or(CurrentLink::Foreign, CurrentLink::Generation)
            }
        },
    }
}

pub(crate) fn generation_of_target(target: &Path) -> Option<GenerationId> {
    let mut parts = target.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(dir)), Some(Component::Normal(name)), None)
            if dir == "generations" =>
        {
            GenerationId::parse(name.to_str()?)
        }
        _ => None,
    }
}

fn inspect_fixed(
    state: &StateDir,
    file: ManagedFile,
    generation: Option<GenerationId>,
) -> FixedPath {
    let path = state.managed(file);
    let meta = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return FixedPath::Missing,
        Err(e) => return FixedPath::Unreadable(e),
        Ok(meta) => meta,
    };
    if meta.file_type().is_symlink() {
        let target = match std::fs::read_link(&path) {
            Ok(target) => target,
            Err(e) => return FixedPath::Unreadable(e),
        };
        if target != fixed_link_target(file) {
            let outside_state_dir = !lexically_inside(state.root(), &target);
            return FixedPath::ForeignSymlink {
                target,
                outside_state_dir,
            };
        }
        let Some(generation) = generation else {
            return FixedPath::OursDangling;
        };
        let in_generation = state
            .generations_dir()
            .join(generation.to_string())
            .join(file.file_name());
        return match read_with_mode(&in_generation) {
            Ok((contents, mode)) => FixedPath::Ours {
                generation,
                contents,
                mode,
            },
            Err(e) => FixedPath::Unreadable(e),
        };
    }
    if !meta.is_file() {
        return FixedPath::NotAFile;
    }
    match read_with_mode(&path) {
        Ok((contents, mode)) => FixedPath::Legacy { contents, mode },
        Err(e) => FixedPath::Unreadable(e),
    }
}

fn read_with_mode(path: &Path) -> io::Result<(Contents, u32)> {
    let (bytes, meta) = crate::fsio::read_with_metadata(path)?;
    Ok((Contents(bytes.to_vec()), meta.mode() & 0o7777))
}

/// Whether `target` of a link in `root` stays inside `root`, judged on the path text alone
/// (`..` pops a component; symlinks along the way are not followed).
fn lexically_inside(root: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return match (lexical_normal(target), lexical_normal(root)) {
            (Some(target), Some(root)) => target.starts_with(root),
            _ => false,
        };
    }
    let mut depth: usize = 0;
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => return false,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    true
}

fn lexical_normal(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// The generations present (complete directories with a generation name), oldest first.
pub fn generations(state: &StateDir) -> Result<Vec<GenerationId>, PublishError> {
    let dir = state.generations_dir();
    let entries = match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(PublishError::io("list", &dir))?,
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(PublishError::io("list", &dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(GenerationId::parse) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Leftovers of a killed writer: temp-prefixed entries in the root, `generations/` and
/// `backups/`, and generation directories that `current` (as `current` shows it, read by the
/// caller just before) does not name and that lack one of the three files. Reads only; a missing
/// or unreadable directory contributes nothing. Each directory is listed once.
///
/// Without the [`StateLock`](super::StateLock), the temp files of a publish in flight are
/// reported too (`check` says "debris (or a write in progress)"). [`publish`](super::publish)
/// sweeps everything listed here — so any other writer of temp files into the state root must
/// hold the lock too (if not, the worst case is that its write fails and leaves its destination
/// untouched).
pub fn debris(state: &StateDir, current: &CurrentState) -> Vec<PathBuf> {
    let temp = |dir: &Path| {
        entries(dir)
            .into_iter()
            .filter(|path| has_temp_prefix(path))
    };
    let mut debris: Vec<PathBuf> = temp(state.root()).chain(temp(&state.backups_dir())).collect();
    let live = current.generation();
    for path in entries(&state.generations_dir()) {
        if has_temp_prefix(&path) {
            debris.push(path);
            continue;
        }
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(GenerationId::parse);
        if id.is_some() && id != live && !is_complete(&path) {
            debris.push(path);
        }
    }
    debris.sort();
    debris
}

/// [`debris`], reading `current` first (the tests' form).
#[cfg(any(test, feature = "testing"))]
pub fn find_debris(state: &StateDir) -> Vec<PathBuf> {
    debris(state, &read_current(state))
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn has_temp_prefix(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

fn is_complete(generation_dir: &Path) -> bool {
    ManagedFile::ALL.iter().all(|file| {
        std::fs::symlink_metadata(generation_dir.join(file.file_name())).is_ok_and(|m| m.is_file())
    })
}

/// Remove `paths` (files, links, or whole directories; links are never followed) and fsync
/// their directories. Already-gone paths are fine. Returns what was removed.
pub(crate) fn sweep(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PublishError> {
    let mut removed = Vec::new();
    let mut parents: Vec<&Path> = Vec::new();
    for path in paths {
        match crate::fsio::staged::remove_unsynced(path) {
            Ok(()) => removed.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PublishError::io("remove", path)(e)),
        }
        if let Some(parent) = path.parent().filter(|p| !parents.contains(p)) {
            parents.push(parent);
        }
    }
    for parent in parents {
        fsync_dir(parent).map_err(PublishError::io("fsync", parent))?;
    }
    Ok(removed)
}

/// Remove all but the newest `keep` generations, never `live`. Returns what was removed.
pub(crate) fn prune(
    state: &StateDir,
    keep: usize,
    live: GenerationId,
) -> Result<Vec<GenerationId>, PublishError> {
    let all = generations(state)?;
    let old = all.len().saturating_sub(keep);
    let doomed: Vec<GenerationId> = all[..old]
        .iter()
        .copied()
        .filter(|id| *id != live)
        .collect();
    let dir = state.generations_dir();
    let paths: Vec<PathBuf> = doomed.iter().map(|id| dir.join(id.to_string())).collect();
    sweep(&paths)?;
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_as_numbers() {
        let id = GenerationId(7);
        assert_eq!(id.to_string(), "0000000007");
        assert_eq!(GenerationId::parse("0000000007"), Some(id));
        assert_eq!(GenerationId::parse("7"), None);
        assert_eq!(GenerationId::parse(".lkp-tmp-0000000007"), None);
        assert!(GenerationId(9).to_string() < GenerationId(10).to_string());
    }

    #[test]
    fn current_targets_are_recognised_exactly() {
        let id = GenerationId(3);
        assert_eq!(generation_of_target(&current_link_target(id)), Some(id));
        assert_eq!(
            generation_of_target(Path::new("/abs/generations/0000000003")),
            None
        );
        assert_eq!(generation_of_target(Path::new("generations/3")), None);
    }

    #[test]
    fn link_targets_inside_or_outside_the_state_dir() {
        let root = Path::new("/s/state");
        assert!(lexically_inside(root, Path::new("current/livekit.yaml")));
        assert!(lexically_inside(root, Path::new("a/../b")));
        assert!(!lexically_inside(root, Path::new("../other/livekit.yaml")));
        assert!(lexically_inside(root, Path::new("/s/state/x")));
        assert!(!lexically_inside(root, Path::new("/s/state/../x")));
        assert!(!lexically_inside(root, Path::new("/etc/livekit.yaml")));
    }

    #[test]
    fn contents_debug_hides_the_bytes() {
        let c = Contents(b"secret".to_vec());
        assert_eq!(format!("{c:?}"), "<6 bytes>");
    }
}
