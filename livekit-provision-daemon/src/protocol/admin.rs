//! What an admin UI needs: `secrets.*`, `install`, `rollback`, `render`, `logs.tail`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use livekit_provision::CredentialSource;
use livekit_provision::admin::{Installed, Preview};
use livekit_provision::ensure::EnsureReport;
use livekit_provision::fetch::{InstallOutcome, RollbackOutcome};
use livekit_provision::rotate::{Epoch, RotateAction, RotateOutcome, Schedule, ScheduleParam};
use livekit_provision::store::{KNOWN, SecretStore, StoreError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RpcError, Ttl};

/// One setting of `secrets.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretEntry {
    /// Its name (`LIVEKIT_NODE_IP`, …).
    pub name: String,
    /// Whether the store holds a value.
    pub set: bool,
    /// Whether the value is a secret (then never shown).
    pub secret: bool,
    /// The value: `****` for a secret that is set, the text for other settings, `null` when
    /// unset.
    pub value: Option<String>,
    /// What it is for.
    pub description: String,
}

/// The result of `secrets.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretsListResult {
    /// The store, credentials redacted.
    pub store: String,
    /// Every setting livekit-provision reads, set or not.
    pub secrets: Vec<SecretEntry>,
}

impl SecretsListResult {
    /// Every known setting as `store` holds it; secret values as `****`.
    pub fn of(store: &dyn SecretStore) -> Result<Self, StoreError> {
        // One batch (one Redis round trip, one read of secrets.json) for every name.
        let names: Vec<livekit_provision::SecretName> =
            KNOWN.iter().map(|k| k.name.clone()).collect();
        let values = store.get_many(&names)?;
        let secrets = KNOWN
            .iter()
            .zip(values)
            .map(|(known, value)| {
                Ok(SecretEntry {
                    name: known.name.as_str().to_owned(),
                    set: value.is_some(),
                    secret: known.is_secret,
                    value: value.map(|v| {
                        if known.is_secret {
                            livekit_provision::redact::MASK.to_owned()
                        } else {
                            v.expose().to_owned()
                        }
                    }),
                    description: known.description.to_owned(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            store: store.describe(),
            secrets,
        })
    }
}

/// The parameters of `secrets.set`. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsSetParams {
    /// A setting livekit-provision reads (see `secrets.list`).
    pub name: String,
    /// Its value (one line; validated as `ensure` validates it). Never echoed or logged.
    #[serde(deserialize_with = "secret_text")]
    pub value: String,
    /// Replace the live `LIVEKIT_API_KEY` or `LIVEKIT_API_SECRET` at once (every token in use
    /// then fails). Without it, changing either is refused: `secrets.rotate` is the safe way.
    #[serde(default)]
    pub force: bool,
}

/// A string parameter that may be a secret: a value of another JSON type is refused naming only
/// its type (serde's own message would quote it, e.g. ``integer `12345678` ``).
fn secret_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
                Value::String(_) => "a string",
            };
            Err(D::Error::custom(format!("expected a string, got {kind}")))
        }
    }
}

impl fmt::Debug for SecretsSetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsSetParams")
            .field("name", &self.name)
            .field("value", &"****")
            .field("force", &self.force)
            .finish()
    }
}

/// The result of `secrets.set` (and of the CLI's `secrets set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretsSetResult {
    /// The setting stored.
    pub name: String,
    /// The store it went to, credentials redacted.
    pub store: String,
    /// A provisioning run was scheduled to apply it (`status` shows it); the CLI schedules
    /// none (`ensure` applies it).
    pub provisioning_scheduled: bool,
}

/// The parameters of `secrets.rotate`: it stages a new pair (the current one is untouched; the
/// staged key is promoted once livekit-server has loaded it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateParams {
    /// How long the previous key stays accepted once the staged key is promoted (humantime or
    /// seconds, at most 30 days); none when absent: the previous key leaves `livekit.yaml` at
    /// the promotion, and livekit-server drops it at its next restart.
    #[serde(default)]
    pub grace: Option<Ttl>,
    /// The operator's deadline for retiring the previous key, counted from now (humantime or
    /// seconds, at most 30 days, no shorter than `grace`): the grace is never extended past it,
    /// accepting that participants still connected must rejoin.
    #[serde(default)]
    pub retire_by: Option<Ttl>,
}

impl RotateParams {
    /// The schedule these parameters ask for; `-32602` naming the parameter at fault.
    pub fn schedule(&self) -> Result<Schedule, RpcError> {
        let grace = self
            .grace
            .as_ref()
            .map(|g| g.duration("grace"))
            .transpose()?;
        let retire_by = self
            .retire_by
            .as_ref()
            .map(|r| r.duration("retire_by"))
            .transpose()?;
        Schedule::new(grace, retire_by).map_err(|e| {
            let param = match e.param() {
                ScheduleParam::Grace => "grace",
                _ => "retire_by",
            };
            RpcError::invalid_params(format!("{param}: {e}"))
        })
    }
}

/// The result of `secrets.rotate` (and of the CLI's `secrets rotate`, with or without
/// `--promote`/`--force`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RotateResult {
    /// What the call did: `staged`, `already_staged` (nothing minted), `promoted`,
    /// `nothing_staged`.
    pub action: RotateAction,
    /// The staged key, while one waits for its promotion.
    pub staged_key: Option<String>,
    /// The key every signer uses.
    pub current_key: Option<String>,
    /// Where the rotation stands after the call (`phase`: `stable`, `staged`, `grace`).
    pub epoch: Epoch,
    /// A daemon's provisioning run was scheduled to publish it (the CLI: a running daemon was
    /// asked to run, and did).
    pub provisioning_scheduled: bool,
    /// The provisioning run that published it, when the caller ran one itself (the CLI does;
    /// the daemon schedules its run and answers `null`: `status` shows that run).
    pub ensure: Option<EnsureReport>,
}

impl RotateResult {
    /// What `outcome` did, with whether a daemon's run was scheduled; no run of the caller's
    /// own yet (`ensure` is `None`).
    pub fn new(outcome: RotateOutcome, provisioning_scheduled: bool) -> Self {
        Self {
            action: outcome.action,
            staged_key: outcome.epoch.next_key().map(str::to_owned),
            current_key: outcome.epoch.current_key().map(str::to_owned),
            epoch: outcome.epoch,
            provisioning_scheduled,
            ensure: None,
        }
    }
}

/// The parameters of `install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallParams {
    /// The version (`v1.7.2` or `1.7.2`); `LIVEKIT_VERSION` of the store when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Download again even when that version is installed.
    #[serde(default)]
    pub force: Option<bool>,
    /// The release tarball's SHA-256 (64 hex digits); `LIVEKIT_SHA256` of the store, else
    /// `checksums.txt`, when absent.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// What `install` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstallVerdict {
    /// Downloaded, verified and switched to.
    Installed,
    /// Already on disk: switched back to it.
    Reactivated,
    /// It was the installed version already; nothing changed.
    AlreadyInstalled,
}

/// The result of `install` (and of the CLI's `install`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstallResult {
    /// What happened.
    pub outcome: InstallVerdict,
    /// The version.
    pub version: String,
    /// The verified SHA-256 of the release tarball, when one was downloaded or switched to.
    pub sha256: Option<String>,
    /// `bin/livekit-server`.
    pub path: PathBuf,
}

impl From<Installed> for InstallResult {
    fn from(installed: Installed) -> Self {
        let (outcome, sha256) = match installed.outcome {
            InstallOutcome::Installed { sha256, .. } => (InstallVerdict::Installed, Some(sha256)),
            InstallOutcome::Reactivated { sha256, .. } => {
                (InstallVerdict::Reactivated, Some(sha256))
            }
            _ => (InstallVerdict::AlreadyInstalled, None),
        };
        Self {
            outcome,
            version: installed.version.to_string(),
            sha256: sha256.map(|s| s.to_hex()),
            path: installed.path,
        }
    }
}

/// The result of `rollback` (and of the CLI's `rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackResult {
    /// The version that was active.
    pub from: String,
    /// The version now active, and pinned in `LIVEKIT_VERSION`.
    pub to: String,
}

impl From<RollbackOutcome> for RollbackResult {
    fn from(outcome: RollbackOutcome) -> Self {
        Self {
            from: outcome.from.to_string(),
            to: outcome.to.to_string(),
        }
    }
}

/// The result of `render` (and of the CLI's `render`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RenderResult {
    /// Where the credentials would come from.
    pub credentials: CredentialSource,
    /// Each file by name (`livekit.yaml`, `backend.env`, `runtime.json`), secrets as `****`
    /// (unless the CLI's `--show-secrets` asked for them).
    pub files: BTreeMap<String, String>,
}

impl From<Preview> for RenderResult {
    fn from(preview: Preview) -> Self {
        Self {
            credentials: preview.credentials,
            files: preview
                .files
                .into_iter()
                .map(|(file, text)| (file.file_name().to_owned(), text))
                .collect(),
        }
    }
}

/// The texts may hold secrets (`--show-secrets`): `Debug` names the files only.
impl fmt::Debug for RenderResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderResult")
            .field("credentials", &self.credentials)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The most lines `logs.tail` returns.
pub const MAX_LOG_LINES: usize = 10_000;

/// The parameters of `logs.tail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsTailParams {
    /// The media process (`livekit-server`, `lk-backend`).
    pub name: String,
    /// How many lines (1 to 10000); 100 when absent.
    #[serde(default)]
    pub lines: Option<usize>,
}

/// The result of `logs.tail`; the CLI's `logs --json` prints one per log (and, with
/// `--follow`, one per batch of appended lines), a compact object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogsTailResult {
    /// The process.
    pub name: String,
    /// Its log file.
    pub path: PathBuf,
    /// Its last lines, oldest first (empty when it has not logged yet).
    pub lines: Vec<String>,
}
