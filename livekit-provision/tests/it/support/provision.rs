//! Helpers for the tests of `ensure`, `check` and the never-rotate properties: options that never
//! download, store access by name, and snapshots of a state directory to prove "wrote nothing".

use std::collections::BTreeMap;
use std::error::Error as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use livekit_provision::BinaryOptions;
use livekit_provision::inputs::RenderInputs;
use livekit_provision::render::{Rendered, render};
use livekit_provision::store::{Added, MemoryStore, StoreError, StoreOp};
use livekit_provision::triple::DiskTriple;
use livekit_provision::{
    ApiKey, Credentials, EnsureError, EnsureOptions, ManagedFile, Platform, Secret, SecretName,
    SecretStore, Settings, StateDir,
};

/// Options that never download: offline, linux/amd64 (the shape of the test releases), and no
/// interface list (so no NAT warning unless a test asks for one).
pub fn offline() -> EnsureOptions<'static> {
    EnsureOptions {
        binary: BinaryOptions {
            offline: true,
            platform: Platform::new("linux", "x86_64"),
            ..BinaryOptions::default()
        },
        ..EnsureOptions::default()
    }
}

/// Options that install from `mirror` (a `file://` directory) for linux/amd64.
pub fn from_mirror(mirror: &Path) -> EnsureOptions<'static> {
    EnsureOptions {
        binary: BinaryOptions {
            release_url: Some(format!("file://{}", mirror.display())),
            platform: Platform::new("linux", "x86_64"),
            ..BinaryOptions::default()
        },
        ..EnsureOptions::default()
    }
}

/// A state directory inside a fresh temp dir (not created).
pub fn fresh_state() -> (tempfile::TempDir, StateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path().join("state"));
    (tmp, state)
}

pub fn name(text: &str) -> SecretName {
    SecretName::new(text).unwrap()
}

/// Store `value` under `name`, overwriting.
pub fn put(store: &dyn SecretStore, name_text: &str, value: &str) {
    store.set(&name(name_text), &Secret::new(value)).unwrap();
}

/// The value stored under `name_text`, if any.
pub fn get(store: &dyn SecretStore, name_text: &str) -> Option<String> {
    store
        .get(&name(name_text))
        .unwrap()
        .map(|s| s.expose().to_owned())
}

/// The key/secret the store holds, when it holds both.
pub fn store_pair(store: &dyn SecretStore) -> Option<(String, String)> {
    Some((
        get(store, "LIVEKIT_API_KEY")?,
        get(store, "LIVEKIT_API_SECRET")?,
    ))
}

/// The pair all three files agree on, as plain strings.
pub fn disk_pair(state: &StateDir) -> Option<(String, String)> {
    DiskTriple::read(state)
        .consistent_credentials()
        .map(|c| (c.key.to_string(), c.secret.expose().to_owned()))
}

/// Credentials from text (valid by construction in the tests).
pub fn creds(key: &str, secret: &str) -> Credentials {
    Credentials {
        key: ApiKey::new(key).unwrap(),
        secret: Secret::api_secret(secret).unwrap(),
    }
}

/// A memory store holding `pair`.
pub fn store_with(pair: &Credentials) -> MemoryStore {
    let store = MemoryStore::new();
    put(&store, "LIVEKIT_API_KEY", pair.key.as_str());
    put(&store, "LIVEKIT_API_SECRET", pair.secret.expose());
    store
}

/// Render inputs as `ensure` would build them for `state` with defaults, for files planted by
/// tests.
pub fn inputs(state: &StateDir, pair: &Credentials) -> RenderInputs {
    RenderInputs {
        credentials: pair.clone(),
        previous: None,
        next: None,
        node_ip: "127.0.0.1".parse().unwrap(),
        node_ip6: None,
        version: None,
        settings: Settings::default(),
        redis: None,
        extra: livekit_provision::ExtraOverlay::default(),
        sqlite_path: state.backend_sqlite(),
        turn_certificate: None,
        prometheus_password: None,
    }
}

/// The three files for `pair`, as `ensure` would render them with default settings.
pub fn rendered_for(state: &StateDir, pair: &Credentials) -> Rendered {
    render(&inputs(state, pair))
}

/// Write `rendered` as three plain files (the layout of older tools), mode 0600.
pub fn write_plain(state: &StateDir, rendered: &Rendered) {
    std::fs::create_dir_all(state.root()).unwrap();
    for file in ManagedFile::ALL {
        livekit_provision::fsio::write_file(
            &state.managed(file),
            rendered.get(file).as_bytes(),
            0o600,
        )
        .unwrap();
    }
}

/// One entry of a recursive listing: what changes when anything is written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub mode: u32,
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub link: Option<PathBuf>,
}

/// Every path under `root` (links not followed) with its inode, mode, size, mtime and ctime.
/// `run/lock` is included: taking the state lock writes nothing (the holder is read from
/// `/proc/locks`), so a run that changes nothing leaves every entry as it was.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Stamp>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_owned();
        let is_dir = meta.is_dir();
        out.insert(
            rel,
            Stamp {
                ino: meta.ino(),
                mode: meta.mode(),
                // A directory's size changes with its entries; its mtime says the same.
                len: if is_dir { 0 } else { meta.len() },
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
                link: std::fs::read_link(&path).ok(),
            },
        );
        if is_dir {
            walk(root, &path, out);
        }
    }
}

/// Names in `dir`, sorted (empty when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A [`MemoryStore`] whose `nth` call (0-based) of `op` fails as an unreachable store would;
/// every other call goes through. Tells afterwards whether the fault was reached.
#[derive(Debug)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    op: StoreOp,
    nth: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl FlakyStore {
    pub fn new(
        values: impl IntoIterator<Item = (SecretName, Secret)>,
        op: StoreOp,
        nth: usize,
    ) -> Self {
        Self {
            inner: MemoryStore::with_values(values),
            op,
            nth,
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Whether the injected fault happened.
    pub fn failed(&self) -> bool {
        self.calls.load(std::sync::atomic::Ordering::SeqCst) > self.nth
    }

    fn arm(&self, op: StoreOp) {
        if op == self.op && self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == self.nth
        {
            self.inner.fail_next(op);
        }
    }
}

impl SecretStore for FlakyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        self.arm(StoreOp::Get);
        self.inner.get(name)
    }
    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        self.arm(StoreOp::Add);
        self.inner.add_if_absent(name, value)
    }
    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        self.arm(StoreOp::Set);
        self.inner.set(name, value)
    }
}

/// An error and its sources, as the CLI prints them.
pub fn chain(e: &EnsureError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
