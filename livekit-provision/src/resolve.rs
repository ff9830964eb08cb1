//! Secret resolution: from the secret store (and, when the store is empty, from a consistent set
//! of files on disk) to validated render inputs. Invariant 1 lives here.
//!
//! The rules, in order (docs/DESIGN.md invariant 1):
//! - the store is the source of truth: a value it holds is used as is;
//! - a value is minted only when the store *answered* "absent" — a store that could not be read
//!   is an error, never "absent";
//! - before minting, credentials already live on disk are adopted (a wiped store must not rotate
//!   live credentials);
//! - a minted or adopted value goes into the store with add-if-absent and the value the store
//!   holds afterwards is used, so concurrent resolvers agree on one value;
//! - the names of a rotation are read together (`keyring.rs`): a staged pair joins
//!   `livekit.yaml`'s `keys:` only, the previous pair while its grace is in force, and a
//!   promotion stopped between two writes reads as done (the recovery rule).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::OperatorConfig;
use crate::config_model::Release;
use crate::inputs::{Credentials, ExtraOverlay, RedisRouting, RenderInputs, RoutingNodes};
use crate::keyring::{self, Keyring, KeyringError};
use crate::node_ip::NodeIp;
use crate::paths::{ManagedFile, StateDir};
use crate::render::ExtraError;
use crate::secret::{ApiKey, InvalidValue, MIN_API_SECRET_LEN, Secret};
use crate::settings::Settings;
use crate::store::{Added, SecretName, SecretStore, StoreError};
use crate::triple::DiskTriple;
use crate::validate;

/// Where the API credentials of a run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CredentialSource {
    /// The secret store held both values.
    Store,
    /// The store was empty; the credentials live in this file were adopted into it.
    Adopted {
        /// The file they were taken from.
        from: ManagedFile,
    },
    /// The store was empty and nothing was on disk: a new pair was minted and stored.
    Minted,
}

/// Something the operator should know; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Warning {
    /// `LIVEKIT_NODE_IP` is unset: 127.0.0.1 is used, which is wrong on a real server.
    NodeIpDefaulted,
    /// provision.yaml sets `use_external_ip`: livekit-server finds its public address by STUN at
    /// each start, ignoring `LIVEKIT_NODE_IP`, and fails to start when no STUN server answers.
    ExternalIpDiscovery,
    /// The node IP is not on any local interface (NAT, or a typo).
    NodeIpNotLocal {
        /// The configured address.
        ip: IpAddr,
    },
    /// `LIVEKIT_VERSION` is unset: control plane only, no binary is downloaded.
    ControlPlaneOnly,
    /// The files on disk held other credentials than the store; they are rewritten from the
    /// store, and tokens signed with the old secret will be rejected.
    FilesDisagreeWithStore {
        /// The key the files held.
        disk_key: Option<String>,
        /// The key the store holds.
        store_key: String,
    },
    /// The binary could not be installed; everything else was provisioned.
    InstallFailed {
        /// What failed and its innermost cause, one line (no secrets).
        reason: String,
        /// What to do, from where the release was looked for (the host that failed, the layout
        /// a `file://` mirror needs, `--livekit-bin`).
        #[serde(default)]
        hint: Option<String>,
    },
    /// The livekit-server binary on the node gave no verdict on the new `livekit.yaml` (it did not
    /// answer `ports` as livekit-server does, or did not finish); it was published unchecked.
    ConfigUnchecked {
        /// Why (no secrets).
        reason: String,
    },
    /// What `check` would report about the node's own files (a secret-bearing file open beyond
    /// its owner, a `livekit_bin` that cannot run, an unreadable Redis TLS file), reported by
    /// `ensure` too so an operator who runs only `ensure` learns of it.
    Check {
        /// The code `check` reports it under.
        code: crate::check::code::Code,
        /// The files involved.
        files: Vec<std::path::PathBuf>,
        /// What is wrong (never a secret value).
        reason: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// The TURN/TLS certificate expires soon, or its key has an unexpected owner.
    TurnTls {
        /// The certificate or key file.
        file: std::path::PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The files as rendered now are a set livekit-server crash-looped on: the control plane
    /// took it back ([`crate::hold`]) and it is not published again until an input changes.
    HeldBack {
        /// The generation taken back.
        generation: String,
        /// The generation whose files were published again.
        served: String,
        /// Since when (RFC 3339).
        since: String,
        /// Why: livekit-server's last words.
        reason: String,
    },
}

impl Warning {
    /// One line for a human, with what to do.
    pub fn message(&self) -> String {
        match self {
            Self::NodeIpDefaulted => "LIVEKIT_NODE_IP is not set: advertising 127.0.0.1, which only works for local development; on a real server run `livekit-provision secrets set LIVEKIT_NODE_IP <public-ip>`".to_owned(),
            Self::ExternalIpDiscovery => "use_external_ip is true: livekit-server discovers its public address by STUN at each start (outbound UDP to its stun_servers must be open; it fails to start when none answers) and ignores LIVEKIT_NODE_IP, which is then used only in the URLs of backend.env and runtime.json".to_owned(),
            Self::NodeIpNotLocal { ip } => format!("node IP {ip} is not on any local interface: fine behind 1:1 NAT, otherwise check LIVEKIT_NODE_IP"),
            Self::ControlPlaneOnly => "LIVEKIT_VERSION is not set: control plane only, livekit-server is not installed (set it with `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`)".to_owned(),
            Self::FilesDisagreeWithStore { disk_key, store_key } => format!(
                "the files on disk held key {} but the secret store holds {store_key}: rewriting them from the store; tokens signed with the old secret will be rejected",
                disk_key.as_deref().unwrap_or("(unreadable)")
            ),
            Self::InstallFailed { reason, hint } => match hint {
                Some(hint) => format!("livekit-server was not installed: {reason}; {hint}"),
                None => format!("livekit-server was not installed: {reason}"),
            },
            Self::ConfigUnchecked { reason } => format!("the new livekit.yaml was published unchecked: {reason} (a `livekit_bin` wrapper must pass its arguments and environment on to livekit-server)"),
            Self::TurnTls { reason, .. } => reason.clone(),
            Self::HeldBack { generation, served, since, reason } => format!("not published: these files are generation {generation}, on which livekit-server crash-looped ({reason}); since {since} the node serves the files of generation {served} again. Change the setting that made it exit, and the next run publishes"),
            Self::Check { reason, hint, .. } => match hint {
                Some(hint) => format!("{reason}; {hint}"),
                None => reason.clone(),
            },
        }
    }
}

/// Why resolution failed. Nothing has been written when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The store could not be read or written ("could not check" is never "absent").
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value in the store is invalid.
    #[error("secret {name} in {store}: {source}")]
    InvalidStored {
        /// The secret's name.
        name: SecretName,
        /// The store, credentials redacted.
        store: String,
        /// What is wrong (never the value of a secret).
        #[source]
        source: InvalidValue,
    },
    /// The store holds no API secret, and the one live on disk is not valid: adopting it would
    /// store a value every later run refuses, and minting would rotate live credentials.
    #[error("the secret store holds no {name}, and the one in {} (key {key}) cannot be adopted: {source}", file.file_name())]
    InvalidLive {
        /// The secret that is absent from the store.
        name: SecretName,
        /// The file the live credentials were read from.
        file: ManagedFile,
        /// Their key (not secret).
        key: String,
        /// What is wrong (never the value).
        #[source]
        source: InvalidValue,
    },
    /// A setting the pinned livekit-server does not accept.
    #[error(transparent)]
    NeedsNewerServer(#[from] crate::settings::NeedsNewerServer),
    /// `extra.yaml` sets a key the pinned livekit-server release does not know.
    #[error("extra.yaml is refused for the pinned livekit-server: {source}")]
    ExtraForRelease {
        /// Which key, which release lacks it and which first has it.
        #[source]
        source: ExtraError,
    },
    /// The OS random number generator failed.
    #[error("could not mint {name}: the OS random number generator failed: {source}")]
    Random {
        /// What was being minted.
        name: SecretName,
        /// The RNG error.
        #[source]
        source: getrandom::Error,
    },
}

impl crate::error_chain::Hint for ResolveError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Store(e) => e.hint(),
            Self::InvalidStored { name, .. } => Some(format!(
                "fix it with `livekit-provision secrets set {name} <value>`"
            )),
            Self::InvalidLive { name, .. } => Some(format!(
                "store a valid value with `livekit-provision secrets set {name} <value>` (at least {MIN_API_SECRET_LEN} characters); tokens signed with the old secret will then be rejected"
            )),
            Self::NeedsNewerServer(e) => Some(e.hint()),
            Self::ExtraForRelease { source } => source.hint(),
            Self::Random { .. } => None,
        }
    }
}

/// The result of resolution: everything `render` needs, and how it was obtained.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Validated inputs for [`crate::render::render`].
    pub inputs: RenderInputs,
    /// Where the credentials came from.
    pub credentials_source: CredentialSource,
    /// Secrets other than the API pair that were (with `dry_run`: would be) minted, or adopted
    /// from the live `livekit.yaml`, and stored: `LIVEKIT_PROMETHEUS_PASSWORD`.
    pub secrets_stored: Vec<SecretName>,
    /// Things to tell the operator.
    pub warnings: Vec<Warning>,
    /// When the rotation grace in force ends (seconds since the Unix epoch): the previous pair
    /// is in `inputs` until then. (A staged pair is `inputs.next`.)
    pub grace_until: Option<u64>,
    /// The previous key whose grace is over: `livekit.yaml` no longer lists it (`check` reports
    /// a file on disk that still does).
    pub retired: Option<ApiKey>,
}

/// What resolution needs besides the store.
#[derive(Debug, Clone)]
pub struct ResolveContext<'a> {
    /// The state directory (for adoption and paths).
    pub state: &'a StateDir,
    /// `provision.yaml`, already parsed.
    pub settings: &'a Settings,
    /// `extra.yaml`, already parsed.
    pub extra: &'a ExtraOverlay,
    /// What is on disk now (for adoption and the disagreement warning).
    pub disk: &'a DiskTriple,
    /// The addresses of this machine's interfaces (for the NAT warning).
    pub local_addresses: &'a [IpAddr],
    /// The clock (for rotation grace).
    pub now: SystemTime,
    /// Plan only: never write to the store. Values that would be minted are minted in memory.
    pub dry_run: bool,
}

impl<'a> ResolveContext<'a> {
    /// A planning context (`dry_run`) for `state` with its loaded `config` and the files `disk`
    /// holds now; a run that writes sets `dry_run: false`.
    pub fn new(
        state: &'a StateDir,
        config: &'a OperatorConfig,
        disk: &'a DiskTriple,
        local_addresses: &'a [IpAddr],
        now: SystemTime,
    ) -> Self {
        Self {
            state,
            settings: &config.settings,
            extra: &config.extra,
            disk,
            local_addresses,
            now,
            dry_run: true,
        }
    }
}

/// Resolve the inputs of a run from `store` (invariant 1).
pub fn resolve(
    store: &dyn SecretStore,
    cx: &ResolveContext<'_>,
) -> Result<Resolution, ResolveError> {
    let mut warnings = Vec::new();
    // One batch for what every run reads (a Redis store: one round trip).
    let prefetched = Prefetched::load(store, &first_reads(cx.settings))?;
    let store: &dyn SecretStore = &prefetched;

    let version = get_parsed(store, &SecretName::LIVEKIT_VERSION, validate::version)?;
    if version.is_none() {
        warnings.push(Warning::ControlPlaneOnly);
    }
    // Before anything is minted or written: the overlay must suit the pinned release.
    cx.extra
        .check_release(Release::for_version(version.as_ref()))
        .map_err(|source| ResolveError::ExtraForRelease { source })?;

    let node_ip = get_parsed(store, &SecretName::LIVEKIT_NODE_IP, validate::node_ip)?;
    crate::settings::production::require_version(cx.settings, node_ip.as_ref(), version.as_ref())?;
    if cx.settings.use_external_ip {
        warnings.push(Warning::ExternalIpDiscovery);
    }
    let node_ip = if let Some(ip) = node_ip {
        for address in ip.addresses() {
            if !address.is_loopback()
                && !cx.local_addresses.is_empty()
                && !cx.local_addresses.contains(&address)
            {
                warnings.push(Warning::NodeIpNotLocal { ip: address });
            }
        }
        ip
    } else {
        if !cx.settings.use_external_ip {
            warnings.push(Warning::NodeIpDefaulted);
        }
        NodeIp {
            primary: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ipv6: None,
        }
    };

    let ring = Keyring::load_names(store, &keyring::PAIR_NAMES)
        .map_err(|e| keyring_error(store, e))?;
    let (credentials, credentials_source) = resolve_credentials(store, cx, &ring)?;
    let (previous, grace_until) = ring.previous_in_grace(&credentials, cx.now).unzip();
    // Files that still sign with the previous key of a promotion, in its grace, are the
    // rotation doing its work (livekit-server keeps accepting that key): not a disagreement.
    if let Some(disagreement) = cx.disk.disagreement(&credentials)
        && !previous.as_ref().is_some_and(|p| {
            disagreement.disk_key.as_deref() == Some(p.key.as_str())
        })
    {
        warnings.push(Warning::FilesDisagreeWithStore {
            disk_key: disagreement.disk_key,
            store_key: credentials.key.to_string(),
        });
    }

    let next = ring.next_for(&credentials);
    let retired = ring.retired_key(&credentials, cx.now);
    let redis = resolve_redis(store, cx.settings)?;
    let (prometheus_password, password_stored) = resolve_prometheus_password(store, cx)?;

    let inputs = RenderInputs {
        credentials,
        previous,
        next,
        node_ip: node_ip.primary,
        node_ip6: node_ip.ipv6,
        version,
        settings: cx.settings.clone(),
        redis,
        extra: cx.extra.clone(),
        sqlite_path: cx.state.backend_sqlite(),
        prometheus_password,
        turn_certificate: turn_certificate(&cx.settings.turn),
    };
    Ok(Resolution {
        inputs,
        credentials_source,
        secrets_stored: if password_stored {
            vec![SecretName::LIVEKIT_PROMETHEUS_PASSWORD]
        } else {
            Vec::new()
        },
        warnings,
        grace_until,
        retired,
    })
}

/// The current pair: the store's (through the recovery rule of `keyring.rs`: a promotion stopped
/// between its writes reads as done); else adopted from disk or minted, then stored.
fn resolve_credentials(
    store: &dyn SecretStore,
    cx: &ResolveContext<'_>,
    ring: &Keyring,
) -> Result<(Credentials, CredentialSource), ResolveError> {
    if let Some(creds) = ring.current() {
        return Ok((creds, CredentialSource::Store));
    }
    let key = ring.key.clone();
    let secret = ring.secret.clone();

    // At least one half is absent. Live credentials on disk win over minting, but only when they
    // do not contradict the half the store already holds (a crash between the two add-if-absent
    // calls leaves exactly that state).
    let adoptable = cx.disk.live_credentials().filter(|(disk, _)| {
        key.as_ref().is_none_or(|k| *k == disk.key)
            && secret.as_ref().is_none_or(|s| *s == disk.secret)
    });
    if let Some((disk, from)) = &adoptable
        && secret.is_none()
        && let Err(source) =
            crate::secret::validate_secret_text(disk.secret.expose(), MIN_API_SECRET_LEN)
    {
        return Err(ResolveError::InvalidLive {
            name: SecretName::LIVEKIT_API_SECRET,
            file: *from,
            key: disk.key.to_string(),
            source,
        });
    }
    let (candidate, source) = if let Some((disk, from)) = adoptable {
        (disk, CredentialSource::Adopted { from })
    } else {
        let key = match key.clone() {
            Some(k) => k,
            None => ApiKey::mint().map_err(|source| ResolveError::Random {
                name: SecretName::LIVEKIT_API_KEY,
                source,
            })?,
        };
        let secret = match secret.clone() {
            Some(s) => s,
            None => Secret::mint_api_secret().map_err(|source| ResolveError::Random {
                name: SecretName::LIVEKIT_API_SECRET,
                source,
            })?,
        };
        (Credentials { key, secret }, CredentialSource::Minted)
    };
    if cx.dry_run {
        return Ok((candidate, source));
    }

    // Store before use: add-if-absent, then use whatever the store holds afterwards.
    let stored_key = if let Some(k) = key {
        k
    } else {
        let added = store.add_if_absent(
            &SecretName::LIVEKIT_API_KEY,
            &Secret::new(candidate.key.as_str()),
        )?;
        ApiKey::new(added.value.expose())
            .map_err(|source| invalid(store, &SecretName::LIVEKIT_API_KEY, source))?
    };
    let stored_secret = if let Some(s) = secret {
        s
    } else {
        let added = store.add_if_absent(&SecretName::LIVEKIT_API_SECRET, &candidate.secret)?;
        Secret::api_secret(added.value.expose())
            .map_err(|source| invalid(store, &SecretName::LIVEKIT_API_SECRET, source))?
    };
    let creds = Credentials {
        key: stored_key,
        secret: stored_secret,
    };
    // Another writer may have won the race; then the credentials are the store's, not ours.
    let source = if creds == candidate {
        source
    } else {
        CredentialSource::Store
    };
    Ok((creds, source))
}

fn resolve_redis(
    store: &dyn SecretStore,
    settings: &Settings,
) -> Result<Option<RedisRouting>, ResolveError> {
    let nodes = if let Some(master_name) = &settings.redis_sentinel_master_name {
        let password = get_parsed(store, &SecretName::LIVEKIT_REDIS_SENTINEL_PASSWORD, |s| {
            validate::redis_password(s).map(|()| Secret::new(s))
        })?;
        RoutingNodes::Sentinel {
            master_name: master_name.clone(),
            addresses: settings.redis_sentinel_addresses.clone(),
            username: settings.redis_sentinel_username.clone(),
            password,
        }
    } else if !settings.redis_cluster_addresses.is_empty() {
        RoutingNodes::Cluster(settings.redis_cluster_addresses.clone())
    } else {
        let address = match &settings.redis_address {
            Some(a) => Some(a.clone()),
            None => get_parsed(
                store,
                &SecretName::LIVEKIT_REDIS_ADDRESS,
                validate::redis_address,
            )?,
        };
        let Some(address) = address else {
            return Ok(None);
        };
        RoutingNodes::Address(address)
    };
    let password = get_parsed(store, &SecretName::LIVEKIT_REDIS_PASSWORD, |s| {
        validate::redis_password(s).map(|()| Secret::new(s))
    })?;
    Ok(Some(RedisRouting {
        nodes,
        username: settings.redis_username.clone(),
        password,
        db: settings.redis_db,
        tls: settings.redis_tls,
        tls_files: crate::store::TlsFiles {
            ca: settings.redis_tls_ca_cert_file.clone(),
            cert: settings.redis_tls_client_cert_file.clone(),
            key: settings.redis_tls_client_key_file.clone(),
        },
    }))
}

/// The metrics password, when provision.yaml sets `prometheus:`: the store's; else the one live
/// in `livekit.yaml` (adopted); else minted. Either goes in with add-if-absent and the stored
/// value is used (invariant 1). True when the store was (with `dry_run`: would be) written.
fn resolve_prometheus_password(
    store: &dyn SecretStore,
    cx: &ResolveContext<'_>,
) -> Result<(Option<Secret>, bool), ResolveError> {
    let name = &SecretName::LIVEKIT_PROMETHEUS_PASSWORD;
    if cx.settings.prometheus.is_none() {
        return Ok((None, false));
    }
    let check = |value: &Secret| {
        validate::prometheus_password(value.expose())
            .map(|()| value.clone())
            .map_err(|source| invalid(store, name, source))
    };
    if let Some(stored) = store.get(name)? {
        return Ok((Some(check(&stored)?), false));
    }
    let live = cx
        .disk
        .livekit_yaml
        .valid()
        .and_then(|file| file.extra.get("prometheus")?.get("password")?.as_str())
        .map(Secret::new)
        .filter(|p| validate::prometheus_password(p.expose()).is_ok());
    let candidate = match live {
        Some(password) => password,
        None => Secret::mint_api_secret().map_err(|source| ResolveError::Random {
            name: name.clone(),
            source,
        })?,
    };
    if cx.dry_run {
        return Ok((Some(candidate), true));
    }
    let added = store.add_if_absent(name, &candidate)?;
    Ok((Some(check(&added.value)?), added.inserted))
}

/// The names every resolution reads, whatever their values: fetched in one batch.
/// `LIVEKIT_REDIS_PASSWORD` is read only when LiveKit's Redis is known (from provision.yaml
/// here; when the address comes from the store, the password is read after it), the
/// sentinels' password only with Sentinel, the metrics password only with `prometheus:`; the
/// three pairs of a rotation and the end of its grace always (the recovery rule reads them
/// together).
fn first_reads(settings: &Settings) -> Vec<SecretName> {
    let mut names = vec![SecretName::LIVEKIT_VERSION, SecretName::LIVEKIT_NODE_IP];
    names.extend(keyring::PAIR_NAMES);
    let routed = settings.redis_address.is_some()
        || settings.redis_sentinel_master_name.is_some()
        || !settings.redis_cluster_addresses.is_empty();
    names.push(if routed {
        SecretName::LIVEKIT_REDIS_PASSWORD
    } else {
        SecretName::LIVEKIT_REDIS_ADDRESS
    });
    if settings.redis_sentinel_master_name.is_some() {
        names.push(SecretName::LIVEKIT_REDIS_SENTINEL_PASSWORD);
    }
    if settings.prometheus.is_some() {
        names.push(SecretName::LIVEKIT_PROMETHEUS_PASSWORD);
    }
    names
}

/// A store whose first reads of some names were batched: each batched value is handed out once
/// (a second read, or a read after a write to that name, goes to the store).
#[derive(Debug)]
struct Prefetched<'a> {
    store: &'a dyn SecretStore,
    values: Mutex<HashMap<SecretName, Option<Secret>>>,
}

impl<'a> Prefetched<'a> {
    fn load(store: &'a dyn SecretStore, names: &[SecretName]) -> Result<Self, StoreError> {
        let values = names.iter().cloned().zip(store.get_many(names)?).collect();
        Ok(Self {
            store,
            values: Mutex::new(values),
        })
    }

    #[expect(
        clippy::option_option,
        reason = "not in the batch (None) differs from read as absent (Some(None))"
    )]
    fn forget(&self, name: &SecretName) -> Option<Option<Secret>> {
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }
}

impl SecretStore for Prefetched<'_> {
    fn describe(&self) -> String {
        self.store.describe()
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        match self.forget(name) {
            Some(value) => Ok(value),
            None => self.store.get(name),
        }
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        self.forget(name);
        self.store.add_if_absent(name, value)
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        self.forget(name);
        self.store.set(name, value)
    }
}

fn get_parsed<T>(
    store: &dyn SecretStore,
    name: &SecretName,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, ResolveError> {
    match store.get(name)? {
        None => Ok(None),
        // The rule of every door first (bounded, one line, this name's validator), then the
        // typed parse: the store refuses what `secrets set` refuses, for the same reason.
        Some(value) => validate::secret_value(name, value.expose())
            .and_then(|_| parse(value.expose()))
            .map(Some)
            .map_err(|source| invalid(store, name, source)),
    }
}

fn keyring_error(store: &dyn SecretStore, e: KeyringError) -> ResolveError {
    match e {
        KeyringError::Store(e) => ResolveError::Store(e),
        KeyringError::Invalid { name, source } => invalid(store, &name, source),
    }
}

fn invalid(store: &dyn SecretStore, name: &SecretName, source: InvalidValue) -> ResolveError {
    ResolveError::InvalidStored {
        name: name.clone(),
        store: store.describe(),
        source,
    }
}

/// The SHA-256 of the leaf livekit-server's TURN/TLS loads, when it loads one it can read.
fn turn_certificate(turn: &crate::settings::TurnSettings) -> Option<String> {
    let path = turn.cert_file.as_ref().filter(|_| turn.loads_certificate())?;
    crate::tls::read_certificate(path).ok().map(|info| info.sha256)
}
