//! Read-only diagnosis of a state directory: a structured report of findings, each with a stable
//! code, a severity, the files involved and a hint. `check` never writes anything.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::binary::{BinarySource, LivekitBinary};
use crate::config::OperatorConfig;
use crate::error_chain::Hint;
use crate::fetch;
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{FixedPath, debris};
use crate::render::render;
use crate::resolve::{CredentialSource, ResolveContext, ResolveError, Warning, resolve};
use crate::secret::MIN_API_SECRET_LEN;
use crate::store::SecretStore;
use crate::triple::{DiskTriple, Parsed};

pub(crate) mod code;
mod rotation;
mod tls;

pub use code::{Code, Severity};

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// How bad.
    pub severity: Severity,
    /// The files involved.
    pub files: Vec<PathBuf>,
    /// What is wrong (never a secret value).
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// The result of [`check`]. Serialized as the `--json` output of `check`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// The state directory checked.
    pub state_dir: PathBuf,
    /// True when no finding is an error.
    pub healthy: bool,
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
    /// With `--fleet`: this node's credentials against the store's (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetReport>,
}

impl CheckReport {
    /// The findings with `code`.
    pub fn with_code(&self, code: Code) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.code == code)
    }
}

/// What `check` needs besides the state directory.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The clock (rotation grace).
    pub now: SystemTime,
    /// This machine's interface addresses; see [`crate::sys::local_addresses`].
    pub local_addresses: Vec<IpAddr>,
    /// Re-hash the installed binary against its manifest.
    pub verify_binary: bool,
    /// The livekit-server to inspect instead of `livekit_bin` of `provision.yaml`
    /// (`--livekit-bin`; see [`LivekitBinary::choose`]).
    pub livekit_bin: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            now: crate::clock::system(),
            local_addresses: Vec::new(),
            verify_binary: true,
            livekit_bin: None,
        }
    }
}

const ENSURE_HINT: &str =
    "run `livekit-provision ensure` to rewrite the files from the secret store";

struct Findings {
    list: Vec<Finding>,
}

impl Findings {
    fn add(
        &mut self,
        code: Code,
        severity: Severity,
        files: Vec<PathBuf>,
        message: String,
        hint: Option<&str>,
    ) {
        self.list.push(Finding {
            code,
            severity,
            files,
            message,
            hint: hint.map(str::to_owned),
        });
    }
}

/// Diagnose `state`. `store` is consulted read-only (never written) when given.
pub fn check(
    state: &StateDir,
    store: Option<&dyn SecretStore>,
    opts: &CheckOptions,
) -> CheckReport {
    let mut out = Findings { list: Vec::new() };
    let root = state.root();
    if !root.is_dir() {
        out.add(
            Code::NotProvisioned,
            Severity::Error,
            vec![root.to_owned()],
            format!("{} is not a provisioned state directory", root.display()),
            Some("run `livekit-provision ensure`"),
        );
        return finish(state, out);
    }
    let disk = DiskTriple::read(state);
    check_triple(state, &disk, &mut out);
    for path in debris(state, &disk.current) {
        out.add(
            Code::Debris,
            Severity::Warning,
            vec![path.clone()],
            format!(
                "{} is left over from a writer that was killed",
                path.display()
            ),
            Some("the next `livekit-provision ensure` removes it"),
        );
    }
    let config = match OperatorConfig::load(state) {
        Ok(c) => Some(c),
        Err(e) => {
            let hint = e.hint();
            out.add(
                Code::ConfigInvalid,
                Severity::Error,
                vec![],
                crate::error_chain::one_line(&e),
                hint.as_deref(),
            );
            None
        }
    };
    out.list.extend(node_findings(
        state,
        &disk,
        config.as_ref().map(|c| &c.settings),
        opts.livekit_bin.as_deref(),
    ));
    if let Some(config) = &config {
        check_turn(state, config, opts.now, &mut out);
        out.list
            .extend(tls::findings(state, &config.settings, opts.now));
    }
    if let (Some(store), Some(config)) = (store, &config) {
        check_against_store(state, store, &disk, config, opts, &mut out);
    }
    finish(state, out)
}

/// The TURN/TLS certificate and key, as `ensure` inspects them before writing.
fn check_turn(state: &StateDir, config: &OperatorConfig, now: SystemTime, out: &mut Findings) {
    use crate::turn_tls::TlsIssue;
    let uid = nix::unistd::geteuid().as_raw();
    for issue in crate::tls::turn_issues(state, &config.settings, now, uid) {
        let code = match &issue {
            TlsIssue::Unreadable { .. } => Code::TurnTlsUnreadable,
            TlsIssue::KeyPermissions { .. } => Code::TurnKeyPermissions,
            TlsIssue::KeyOwner { .. } => Code::TurnKeyOwner,
            TlsIssue::KeyMismatch { .. } => Code::TurnKeyMismatch,
            TlsIssue::WrongDomain { .. } => Code::TurnCertDomain,
            TlsIssue::Expired { .. } => Code::TurnCertExpired,
            TlsIssue::NotYetValid { .. } => Code::TurnCertNotYetValid,
            TlsIssue::ExpiresSoon { .. } => Code::TurnCertExpiring,
            _ => Code::TurnTlsInvalid,
        };
        let severity = if issue.is_error() {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.add(
            code,
            severity,
            vec![issue.path().to_owned()],
            issue.to_string(),
            Some(&issue.hint()),
        );
    }
}

fn finish(state: &StateDir, mut out: Findings) -> CheckReport {
    out.list
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
    CheckReport {
        state_dir: state.root().to_owned(),
        healthy: out.list.iter().all(|f| f.severity != Severity::Error),
        findings: out.list,
        fleet: None,
    }
}

fn check_triple(state: &StateDir, disk: &DiskTriple, out: &mut Findings) {
    let path = |f: ManagedFile| state.managed(f);
    let missing: Vec<ManagedFile> = ManagedFile::ALL
        .into_iter()
        .filter(|f| matches!(disk.current.file(*f), FixedPath::Missing))
        .collect();
    if missing.len() == 3 {
        out.add(
            Code::NotProvisioned,
            Severity::Error,
            missing.iter().map(|f| path(*f)).collect(),
            "none of livekit.yaml, backend.env, runtime.json exists".to_owned(),
            Some("run `livekit-provision ensure`"),
        );
        return;
    }
    if !missing.is_empty() {
        out.add(
            Code::PartialTriple,
            Severity::Error,
            missing.iter().map(|f| path(*f)).collect(),
            format!(
                "missing: {}",
                missing
                    .iter()
                    .map(|f| f.file_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(ENSURE_HINT),
        );
    }
    for file in ManagedFile::ALL {
        let problem = match file {
            ManagedFile::LivekitYaml => parse_problem(&disk.livekit_yaml),
            ManagedFile::BackendEnv => parse_problem(&disk.backend_env),
            ManagedFile::RuntimeJson => parse_problem(&disk.runtime_json),
        };
        if let Some(problem) = problem {
            out.add(
                Code::Unparsable,
                Severity::Error,
                vec![path(file)],
                format!("{file}: {problem}"),
                Some("`livekit-provision ensure` moves it to backups/ and writes a fresh one"),
            );
        }
        match disk.current.file(file) {
            FixedPath::ForeignSymlink { target, outside_state_dir: true } => out.add(
                Code::SymlinkOutside,
                Severity::Error,
                vec![path(file)],
                format!("{file} is a symlink to {}, outside the state directory", target.display()),
                Some("`livekit-provision ensure` keeps the link in backups/ and replaces it; the target is never written"),
            ),
            FixedPath::Legacy { .. } => out.add(
                Code::LegacyLayout,
                Severity::Warning,
                vec![path(file)],
                format!("{file} is a plain file from an older layout"),
                Some("`livekit-provision ensure` backs it up and publishes it atomically with the other two"),
            ),
            _ => {}
        }
    }

    check_credentials(state, disk, out);
}

/// The production settings as `livekit.yaml` holds them: STUN discovery, the webhook key.
fn check_node_sections(state: &StateDir, lk: &crate::render::LivekitYaml, out: &mut Findings) {
    let file = vec![state.managed(ManagedFile::LivekitYaml)];
    if lk.use_external_ip {
        out.add(
            Code::ExternalIp,
            Severity::Warning,
            file.clone(),
            "rtc.use_external_ip is true: livekit-server ignores node_ip, asks STUN servers for its public address at each start (outbound UDP needed) and fails to start when none answers".to_owned(),
            Some("on a host without outbound UDP, set `use_external_ip: false` in provision.yaml and the address with `livekit-provision secrets set LIVEKIT_NODE_IP <public-ip>`"),
        );
    }
    let webhook = lk.extra.get("webhook");
    let has_urls = webhook
        .and_then(|w| w.get("urls"))
        .and_then(serde_yaml::Value::as_sequence)
        .is_some_and(|urls| !urls.is_empty());
    let api_key = webhook
        .and_then(|w| w.get("api_key"))
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_default();
    if has_urls && !lk.keys.iter().any(|c| c.key.as_str() == api_key) {
        out.add(
            Code::WebhookKey,
            Severity::Error,
            file,
            format!(
                "livekit.yaml's webhook.api_key {api_key:?} is not a key of its keys:; livekit-server refuses to start (`api_key is required to use webhooks`)"
            ),
            Some("set the URLs in provision.yaml's `webhook:` section and run `livekit-provision ensure`: the current managed key is rendered"),
        );
    }
}

fn check_credentials(state: &StateDir, disk: &DiskTriple, out: &mut Findings) {
    let path = |f: ManagedFile| state.managed(f);
    let runtime = disk
        .runtime_json
        .valid()
        .map(crate::render::RuntimeJson::credentials);
    let backend = disk
        .backend_env
        .valid()
        .and_then(crate::render::BackendEnv::credentials);
    let livekit = disk.livekit_yaml.valid();
    if let Some(lk) = livekit {
        if lk.key_file.is_some() {
            out.add(
                Code::KeyFile,
                Severity::Error,
                vec![path(ManagedFile::LivekitYaml)],
                "livekit.yaml sets key_file, so livekit-server ignores its keys:".to_owned(),
                Some(ENSURE_HINT),
            );
        }
        check_node_sections(state, lk, out);
        for creds in &lk.keys {
            if creds.secret.len() < MIN_API_SECRET_LEN {
                out.add(
                    Code::ShortSecret,
                    Severity::Warning,
                    vec![path(ManagedFile::LivekitYaml)],
                    format!(
                        "the secret of key {} is {} characters; livekit-server wants at least {MIN_API_SECRET_LEN}",
                        creds.key,
                        creds.secret.len()
                    ),
                    Some("rotate it with `livekit-provision secrets rotate`"),
                );
            }
        }
    }
    let mut disagree = Vec::new();
    if let (Some(r), Some(b)) = (&runtime, &backend)
        && r != b
    {
        disagree.push("runtime.json and backend.env name different credentials".to_owned());
    }
    if let (Some(r), Some(lk)) = (&runtime, livekit)
        && !lk.keys.contains(r)
    {
        disagree.push("livekit.yaml's keys do not hold runtime.json's key and secret".to_owned());
    }
    if let (Some(b), Some(lk), None) = (&backend, livekit, &runtime)
        && !lk.keys.contains(b)
    {
        disagree.push("livekit.yaml's keys do not hold backend.env's key and secret".to_owned());
    }
    if !disagree.is_empty() {
        out.add(
            Code::KeysDisagree,
            Severity::Error,
            ManagedFile::ALL.iter().map(|f| path(*f)).collect(),
            format!(
                "{}: tokens signed by lk-backend will be rejected with 401",
                disagree.join("; ")
            ),
            Some(ENSURE_HINT),
        );
    }
}

fn parse_problem<T>(parsed: &Parsed<T>) -> Option<String> {
    match parsed {
        Parsed::Unreadable(why) => Some(why.clone()),
        Parsed::Invalid(e) => Some(e.to_string()),
        Parsed::Missing | Parsed::Valid(_) => None,
    }
}

/// What `check` finds about the node's own files, and `ensure` reports as warnings: a
/// secret-bearing file open beyond its owner, an operator's `livekit_bin` that cannot run (missing,
/// a directory, not executable), a Redis TLS file that cannot be read. `settings` is `None` when
/// `provision.yaml` could not be loaded (only the permissions are judged then).
pub(crate) fn node_findings(
    state: &StateDir,
    disk: &DiskTriple,
    settings: Option<&crate::settings::Settings>,
    livekit_bin: Option<&std::path::Path>,
) -> Vec<Finding> {
    let mut out = Findings { list: Vec::new() };
    check_permissions(state, disk, &mut out);
    if let Some(settings) = settings {
        let chosen = LivekitBinary::choose(state, settings, livekit_bin);
        if let Some(problem) = chosen.problem() {
            out.add(
                Code::BinaryMissing,
                Severity::Error,
                vec![chosen.path.clone()],
                problem,
                Some("fix livekit_bin in provision.yaml (or --livekit-bin): it must name an executable file"),
            );
        }
        if settings.redis_tls {
            for path in [
                &settings.redis_tls_ca_cert_file,
                &settings.redis_tls_client_cert_file,
                &settings.redis_tls_client_key_file,
            ]
            .into_iter()
            .flatten()
            {
                if let Err(e) = crate::fsio::read_regular(path) {
                    let hint = crate::fsio::read_hint(&e, path).unwrap_or_else(|| {
                        format!(
                            "fix the path in provision.yaml, or make {} readable by this user",
                            crate::shell::quote(path)
                        )
                    });
                    out.add(
                        Code::RedisTlsUnreadable,
                        Severity::Error,
                        vec![path.clone()],
                        format!(
                            "the Redis TLS file {} cannot be read: {e}; livekit-server cannot connect to its Redis",
                            path.display()
                        ),
                        Some(&hint),
                    );
                }
            }
        }
    }
    out.list
}

fn check_permissions(state: &StateDir, disk: &DiskTriple, out: &mut Findings) {
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for file in ManagedFile::ALL {
        if let FixedPath::Ours { mode, .. } | FixedPath::Legacy { mode, .. } =
            disk.current.file(file)
        {
            files.push((state.managed(file), *mode));
        }
    }
    let mut extra = vec![state.secrets_file()];
    if let Ok(entries) = std::fs::read_dir(state.backups_dir()) {
        extra.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    for path in extra {
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.is_file()
        {
            files.push((path, meta.permissions().mode()));
        }
    }
    for (path, mode) in files {
        if mode & 0o077 != 0 {
            out.add(
                Code::Permissions,
                Severity::Error,
                vec![path.clone()],
                format!(
                    "{} holds secrets but has mode {:04o} (readable beyond its owner)",
                    path.display(),
                    mode & 0o7777
                ),
                Some(&format!("chmod 600 {}", crate::shell::quote(&path))),
            );
        }
    }
}

/// The resolution's warnings that `check` reports as findings.
fn report_warnings(state: &StateDir, warnings: &[Warning], out: &mut Findings) {
    for warning in warnings {
        match warning {
            Warning::NodeIpDefaulted => out.add(
                Code::NodeIpDefault,
                Severity::Warning,
                vec![],
                warning.message(),
                None,
            ),
            Warning::NodeIpNotLocal { .. } => {
                out.add(
                    Code::NodeIpNotLocal,
                    Severity::Warning,
                    vec![],
                    warning.message(),
                    None,
                );
            }
            Warning::FilesDisagreeWithStore { .. } => out.add(
                Code::StoreDisagrees,
                Severity::Error,
                ManagedFile::ALL.iter().map(|f| state.managed(*f)).collect(),
                warning.message(),
                Some(ENSURE_HINT),
            ),
            _ => {}
        }
    }
}

fn check_against_store(
    state: &StateDir,
    store: &dyn SecretStore,
    disk: &DiskTriple,
    config: &OperatorConfig,
    opts: &CheckOptions,
    out: &mut Findings,
) {
    let resolution = match resolve(
        store,
        &ResolveContext::new(state, config, disk, &opts.local_addresses, opts.now),
    ) {
        Ok(r) => r,
        Err(e @ ResolveError::ExtraForRelease { .. }) => {
            let hint = e.hint();
            out.add(
                Code::ExtraNotInRelease,
                Severity::Error,
                vec![state.extra_file()],
                e.to_string(),
                hint.as_deref(),
            );
            return;
        }
        Err(e) => {
            let hint = e.hint();
            out.add(
                Code::StoreUnreadable,
                Severity::Error,
                vec![],
                format!("{} ({})", e, store.describe()),
                hint.as_deref(),
            );
            return;
        }
    };
    report_warnings(state, &resolution.warnings, out);
    rotation::check_rotation(state, disk, &resolution, out);
    let rendered = render(&resolution.inputs);
    // A set taken back after a crash loop: the drift is on purpose, and `ensure` will not undo it.
    if let Some(held) = crate::hold::holds_back(state, &rendered, true) {
        out.add(
            Code::HeldBack,
            Severity::Warning,
            vec![state.managed(ManagedFile::LivekitYaml)],
            format!(
                "the files as the settings and secrets render them are generation {}, on which livekit-server crash-looped ({}); since {} the node serves the files of generation {} again",
                held.generation, held.reason, held.since, held.served
            ),
            Some("change the setting that made it exit (logs/livekit-server.log says why); the next `livekit-provision ensure` then publishes"),
        );
    } else if resolution.credentials_source == CredentialSource::Store {
        // Drift is only meaningful against credentials the store really holds.
        for file in ManagedFile::ALL {
            if let Some(contents) = disk.current.file(file).contents()
                && contents.as_bytes() != rendered.get(file).as_bytes()
            {
                out.add(
                    Code::Drift,
                    Severity::Warning,
                    vec![state.managed(file)],
                    format!("{file} differs from what the current settings and secrets render"),
                    Some("`livekit-provision render` shows the expected file; `livekit-provision ensure` writes it"),
                );
            }
        }
    }
    if let Some(routing) = &resolution.inputs.redis {
        check_routing_redis(routing, out);
    }
    check_with_server(
        state,
        &config.settings,
        opts.livekit_bin.as_deref(),
        &rendered,
        out,
    );
    check_binary(state, &resolution.inputs, &config.settings, opts, out);
}

/// Ask the livekit-server binary of this node (installed, or `livekit_bin`) whether it accepts
/// the `livekit.yaml` the current inputs render.
fn check_with_server(
    state: &StateDir,
    settings: &crate::settings::Settings,
    flag: Option<&std::path::Path>,
    rendered: &crate::render::Rendered,
    out: &mut Findings,
) {
    let program = crate::binary::LivekitBinary::choose(state, settings, flag).path;
    if !program.exists() {
        return;
    }
    if let Err(e) = crate::server_check::check_config(
        &program,
        &rendered.livekit_yaml,
        crate::server_check::CHECK_TIMEOUT,
    ) {
        let hint = e.hint();
        let (code, severity) = if e.is_refusal() {
            (Code::ConfigRefused, Severity::Error)
        } else {
            (Code::ConfigUnchecked, Severity::Warning)
        };
        out.add(
            code,
            severity,
            vec![state.managed(ManagedFile::LivekitYaml), state.extra_file()],
            e.to_string(),
            hint.as_deref(),
        );
    }
}

/// How long `check` waits for the routing Redis at each step.
const ROUTING_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// PING the Redis livekit-server will route through, authenticating as it will.
fn check_routing_redis(routing: &crate::inputs::RedisRouting, out: &mut Findings) {
    if let Err(e) = crate::store::probe_routing(routing, ROUTING_PROBE_TIMEOUT) {
        let message = format!(
            "livekit-server will not start: {}",
            crate::error_chain::one_line(&e)
        );
        let origin = match &routing.nodes {
            crate::inputs::RoutingNodes::Address(_) => {
                "the address comes from redis_address in provision.yaml or \
                 LIVEKIT_REDIS_ADDRESS in the secret store, the password from \
                 LIVEKIT_REDIS_PASSWORD"
            }
            crate::inputs::RoutingNodes::Sentinel { .. } => {
                "the sentinels and master name come from redis_sentinel_addresses and \
                 redis_sentinel_master_name in provision.yaml, the passwords from \
                 LIVEKIT_REDIS_SENTINEL_PASSWORD (sentinels) and LIVEKIT_REDIS_PASSWORD (master)"
            }
            crate::inputs::RoutingNodes::Cluster(_) => {
                "the nodes come from redis_cluster_addresses in provision.yaml, the password \
                 from LIVEKIT_REDIS_PASSWORD"
            }
        };
        let hint = match e.hint() {
            Some(h) => format!("{h} ({origin})"),
            None => origin.to_owned(),
        };
        out.add(
            Code::RedisUnreachable,
            Severity::Error,
            vec![],
            message,
            Some(&hint),
        );
    }
}

fn check_binary(
    state: &StateDir,
    inputs: &crate::inputs::RenderInputs,
    settings: &crate::settings::Settings,
    opts: &CheckOptions,
    out: &mut Findings,
) {
    let Some(version) = &inputs.version else {
        return;
    };
    let chosen = LivekitBinary::choose(state, settings, opts.livekit_bin.as_deref());
    if chosen.source != BinarySource::Installed {
        // The operator's own binary: never downloaded, so no version to compare; whether it
        // can run at all is one of the `node_findings`.
        return;
    }
    let bin = chosen.path;
    match fetch::needs_install(state, version) {
        fetch::InstallNeed::Missing => out.add(
            Code::BinaryMissing,
            Severity::Error,
            vec![bin],
            format!("livekit-server {version} is pinned but not installed"),
            Some("run `livekit-provision ensure` (or `livekit-provision install`)"),
        ),
        fetch::InstallNeed::VersionDiffers { installed, pinned } => out.add(
            Code::BinaryVersion,
            Severity::Warning,
            vec![bin],
            format!("livekit-server {installed} is installed but {pinned} is pinned"),
            Some("run `livekit-provision ensure` to upgrade; running media keep the old binary until restarted"),
        ),
        fetch::InstallNeed::Damaged { reason } => out.add(
            Code::BinaryTampered,
            Severity::Error,
            vec![bin],
            reason,
            Some("reinstall with `livekit-provision install --force`"),
        ),
        _ => {
            if opts.verify_binary
                && let Ok(report) = fetch::verify_installed(state)
                && !report.is_intact()
            {
                out.add(
                    Code::BinaryTampered,
                    Severity::Error,
                    vec![report.binary.path.clone()],
                    format!(
                        "{} differs from its install manifest (size {} vs {}, sha256 {} vs {})",
                        report.binary.path.display(),
                        report.actual_size,
                        report.binary.manifest.size,
                        report.actual_sha256.to_hex(),
                        report.binary.manifest.sha256.to_hex()
                    ),
                    Some("reinstall with `livekit-provision install --force`"),
                );
            }
        }
    }
}

impl CheckReport {
    /// This report with the fleet comparison added (`check --fleet`): the node is healthy only
    /// when it is also in sync with the store.
    #[must_use]
    pub fn with_fleet(mut self, fleet: crate::fleet::FleetReport) -> Self {
        self.healthy = self.healthy && fleet.in_sync;
        self.fleet = Some(fleet);
        self
    }
}
