//! `file:PATH`: a secret store kept in one JSON file (see [`FileStore`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use serde::ser::{SerializeMap, Serializer};
use zeroize::Zeroizing;

use super::{Added, SecretName, SecretStore, StoreError, StoreOp, check_storable};
use crate::fsio;
use crate::secret::Secret;

/// Mode of the secrets file.
const FILE_MODE: u32 = 0o600;

/// The `file:PATH` store, the default: a JSON object `{"NAME": "value"}` in one mode-0600 file.
///
/// Reads need no lock: every write replaces the file atomically ([`crate::fsio::write_file`]),
/// so a reader sees the old or the new object. Writes (`add_if_absent`, `set`) read, modify and
/// write under an exclusive `FileLock` (fsio) on `PATH.lock`, so of two processes
/// minting at once, exactly one inserts and both return its value.
///
/// A missing file means every name is absent. A file that exists but is not a JSON object of
/// strings is an error, never "absent": treating it as empty would mint new credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    path: PathBuf,
}

/// The parsed file: every entry, including names this version does not know (kept on rewrite).
type Entries = BTreeMap<String, Secret>;

impl FileStore {
    /// A store kept in `path` (nothing is read or created until first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The secrets file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file serializing writers: `PATH.lock`.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Every entry in the file; empty when the file does not exist.
    fn load(&self, name: &SecretName, op: StoreOp) -> Result<Entries, StoreError> {
        let bytes = match crate::fsio::read_regular(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Entries::new()),
            Err(e) => return Err(self.io_error(name, op, &self.path, e)),
        };
        let corrupt = |reason: String, source| StoreError::Corrupt {
            store: self.describe(),
            name: name.clone(),
            op,
            path: self.path.clone(),
            reason,
            source,
        };
        // Parse into a `Value` first: its errors are syntax errors with a line and column only,
        // whereas typed deserialization would quote offending values.
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt("it is not valid JSON".to_owned(), Some(e)))?;
        let serde_json::Value::Object(object) = value else {
            return Err(corrupt("it is not a JSON object".to_owned(), None));
        };
        let mut entries = Entries::new();
        for (key, value) in object {
            match value {
                serde_json::Value::String(text) => {
                    entries.insert(key, Secret::new(text));
                }
                other => {
                    return Err(corrupt(
                        format!(
                            "the value of {key:?} is {}, not a string",
                            json_kind(&other)
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(entries)
    }

    /// Read, change and write the file under the lock. `change` returns what to report and
    /// whether to write.
    fn update<T>(
        &self,
        name: &SecretName,
        op: StoreOp,
        change: impl FnOnce(&mut Entries) -> (T, bool),
    ) -> Result<T, StoreError> {
        self.create_parent(name, op)?;
        let lock_path = self.lock_path();
        let _lock = fsio::FileLock::acquire(&lock_path, |holder| {
            tracing::debug!(
                lock = %lock_path.display(),
                holder = ?holder,
                "waiting for another writer of the secret store"
            );
        })
        .map_err(|e| self.io_error(name, op, &lock_path, e))?;
        let mut entries = self.load(name, op)?;
        let (result, write) = change(&mut entries);
        if write {
            let bytes = serialize(&entries).map_err(|e| StoreError::Io {
                store: self.describe(),
                name: name.clone(),
                op,
                path: self.path.clone(),
                source: io::Error::other(e),
            })?;
            fsio::write_file(&self.path, &bytes, FILE_MODE)
                .map_err(|e| self.io_error(name, op, &self.path, e))?;
        }
        Ok(result)
    }

    fn create_parent(&self, name: &SecretName, op: StoreOp) -> Result<(), StoreError> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                fsio::create_private_dir(dir, true).map_err(|e| self.io_error(name, op, dir, e))
            }
            _ => Ok(()),
        }
    }

    fn io_error(&self, name: &SecretName, op: StoreOp, path: &Path, e: io::Error) -> StoreError {
        StoreError::io(&self.describe(), name, op, path, e)
    }
}

impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        Ok(self.load(name, StoreOp::Get)?.remove(name.as_str()))
    }

    /// One read of the file for all of `names` (an error names the first).
    fn get_many(&self, names: &[SecretName]) -> Result<Vec<Option<Secret>>, StoreError> {
        let Some(first) = names.first() else {
            return Ok(Vec::new());
        };
        let entries = self.load(first, StoreOp::Get)?;
        Ok(names
            .iter()
            .map(|name| entries.get(name.as_str()).cloned())
            .collect())
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        check_storable(&self.describe(), name, StoreOp::Add, value)?;
        self.update(name, StoreOp::Add, |entries| {
            if let Some(existing) = entries.get(name.as_str()) {
                let added = Added {
                    value: existing.clone(),
                    inserted: false,
                };
                return (added, false);
            }
            entries.insert(name.as_str().to_owned(), value.clone());
            let added = Added {
                value: value.clone(),
                inserted: true,
            };
            (added, true)
        })
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        check_storable(&self.describe(), name, StoreOp::Set, value)?;
        self.update(name, StoreOp::Set, |entries| {
            let unchanged = entries.get(name.as_str()) == Some(value);
            if !unchanged {
                entries.insert(name.as_str().to_owned(), value.clone());
            }
            ((), !unchanged)
        })
    }
}

/// Pretty JSON with a trailing newline, in a buffer zeroed on drop.
fn serialize(entries: &Entries) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(64 * (entries.len() + 1)));
    let mut ser = serde_json::Serializer::pretty(&mut *out);
    let mut map = ser.serialize_map(Some(entries.len()))?;
    for (key, value) in entries {
        map.serialize_entry(key, value.expose())?;
    }
    map.end()?;
    out.push(b'\n');
    Ok(out)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    const VALUE: &str = "s3cr3t-value-that-must-not-leak";

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("state/secrets.json"));
        (dir, store)
    }

    #[test]
    fn missing_file_is_absent_and_first_add_creates_it_private() {
        let (_dir, store) = store();
        let name = SecretName::LIVEKIT_API_SECRET;
        assert_eq!(store.get(&name).unwrap(), None);
        let added = store.add_if_absent(&name, &Secret::new(VALUE)).unwrap();
        assert!(added.inserted);
        assert_eq!(added.value.expose(), VALUE);
        assert_eq!(store.get(&name).unwrap().unwrap().expose(), VALUE);
        let meta = std::fs::metadata(store.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let parent = std::fs::metadata(store.path().parent().unwrap()).unwrap();
        assert_eq!(parent.mode() & 0o777, 0o700);
    }

    #[test]
    fn get_many_reads_once_and_answers_as_get_does() {
        let (_dir, store) = store();
        let key = SecretName::LIVEKIT_API_KEY;
        let secret = SecretName::LIVEKIT_API_SECRET;
        let unset = SecretName::LIVEKIT_VERSION;
        assert_eq!(store.get_many(&[]).unwrap().len(), 0);
        store.set(&key, &Secret::new("APIkey")).unwrap();
        store.set(&secret, &Secret::new(VALUE)).unwrap();
        let names = [secret.clone(), unset.clone(), key.clone(), secret.clone()];
        let many = store.get_many(&names).unwrap();
        let one_by_one: Vec<Option<Secret>> = names.iter().map(|n| store.get(n).unwrap()).collect();
        let shown = |values: &[Option<Secret>]| {
            values
                .iter()
                .map(|v| v.as_ref().map(|s| s.expose().to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&many), shown(&one_by_one));
        assert_eq!(
            shown(&many)[3].as_deref(),
            Some(VALUE),
            "a name asked twice"
        );
        // A corrupt file fails the whole read, naming the first name asked.
        std::fs::write(store.path(), "{ not json").unwrap();
        let err = store.get_many(&names).unwrap_err();
        assert!(err.to_string().contains("LIVEKIT_API_SECRET"), "{err}");
    }

    #[test]
    fn add_if_absent_returns_the_existing_winner() {
        let (_dir, store) = store();
        let name = SecretName::LIVEKIT_API_KEY;
        store.add_if_absent(&name, &Secret::new("first")).unwrap();
        let second = store.add_if_absent(&name, &Secret::new("second")).unwrap();
        assert!(!second.inserted);
        assert_eq!(second.value.expose(), "first");
        assert_eq!(store.get(&name).unwrap().unwrap().expose(), "first");
    }

    #[test]
    fn set_overwrites_and_keeps_other_entries() {
        let (_dir, store) = store();
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        let other = br#"{"OTHER_TOOL_key": "kept", "LIVEKIT_API_KEY": "old"}"#;
        fsio::write_file(store.path(), other, 0o644).unwrap();
        store
            .set(&SecretName::LIVEKIT_API_KEY, &Secret::new("new"))
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"OTHER_TOOL_key": "kept", "LIVEKIT_API_KEY": "new"})
        );
        // Every write leaves the file private, whatever mode it had.
        let meta = std::fs::metadata(store.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_never_absent() {
        let (_dir, store) = store();
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        let name = SecretName::LIVEKIT_API_SECRET;
        let cases: [(&[u8], &str); 4] = [
            (b"{not json", "not valid JSON"),
            (b"", "not valid JSON"),
            (
                b"[\"s3cr3t-value-that-must-not-leak\"]",
                "not a JSON object",
            ),
            (
                b"{\"LIVEKIT_API_SECRET\": {\"v\": \"s3cr3t-value-that-must-not-leak\"}}",
                "\"LIVEKIT_API_SECRET\" is an object",
            ),
        ];
        for (bytes, expected) in cases {
            fsio::write_file(store.path(), bytes, 0o600).unwrap();
            for result in [
                store.get(&name).map(|_| ()),
                store.add_if_absent(&name, &Secret::new("x")).map(|_| ()),
                store.set(&name, &Secret::new("x")),
            ] {
                let err = result.unwrap_err();
                assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
                let shown = format!("{err} {err:?} {}", err.hint().unwrap());
                assert!(shown.contains(expected), "{shown}");
                assert!(!shown.contains(VALUE), "{shown}");
                assert!(shown.contains(&store.path().display().to_string()));
            }
            // Nothing was written over the corrupt file.
            assert_eq!(std::fs::read(store.path()).unwrap(), bytes);
        }
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let (_dir, store) = store();
        // A directory where the file should be: reading fails with something other than
        // "not found", which must not be mistaken for "absent".
        std::fs::create_dir_all(store.path()).unwrap();
        let err = store.get(&SecretName::LIVEKIT_API_KEY).unwrap_err();
        assert!(
            matches!(err, StoreError::Io { .. } | StoreError::Permission { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_values_it_could_not_read_back() {
        let (_dir, store) = store();
        for bad in ["", "two\nlines"] {
            let err = store
                .add_if_absent(&SecretName::LIVEKIT_API_KEY, &Secret::new(bad))
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
        }
        assert!(!store.path().exists());
    }

    #[test]
    fn debug_and_describe_hold_no_values() {
        let (_dir, store) = store();
        store
            .set(&SecretName::LIVEKIT_API_SECRET, &Secret::new(VALUE))
            .unwrap();
        let shown = format!("{store:?} {}", store.describe());
        assert!(!shown.contains(VALUE));
        assert!(store.describe().starts_with("file:/"));
        let added = store
            .add_if_absent(&SecretName::LIVEKIT_API_SECRET, &Secret::new("x"))
            .unwrap();
        assert!(!format!("{added:?}").contains(VALUE));
    }
}
