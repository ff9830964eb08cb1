//! The idempotent reconcile: lock → resolve → plan → apply → verify (invariants 1–4 and 7).
//!
//! A run on a converged node writes nothing, downloads nothing and reports "nothing to do".

use std::time::SystemTime;

use crate::binary::LivekitBinary;
use crate::config::OperatorConfig;
use crate::error_chain::ErrorReport;
use crate::fetch::{self, FetchError, InstallNeed, InstallOutcome, Sha256Digest};
use crate::inputs::RenderInputs;
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{self, FixedPath, PublishError, PublishOutcome, StateLock};
// Part of `EnsureOptions`: the generations kept (and, for the crash tests, the checkpoint hook).
#[cfg(feature = "testing")]
pub use crate::publish::Checkpoint;
pub use crate::publish::PublishOptions;
use crate::render::{Rendered, render};
use crate::resolve::{CredentialSource, Resolution, ResolveContext, Warning, resolve};
use crate::server_check;
use crate::snapshot::NodeSnapshot;
use crate::store::{SecretName, SecretStore};
use crate::triple::{DiskTriple, Parsed};
use crate::turn_tls::TlsIssue;
use crate::version::LivekitVersion;

mod report;

pub use report::*;

/// Reconcile `state` with `store`: resolve the secrets, publish the three files when they differ,
/// install the pinned binary when it is missing or another version, verify. The report of
/// [`reconcile`], for a caller that does not act on the node afterwards.
pub fn ensure(
    state: &StateDir,
    store: &dyn SecretStore,
    opts: &EnsureOptions<'_>,
) -> Result<EnsureReport, EnsureError> {
    reconcile(state, store, opts).map(|run| run.report)
}

/// A run of [`reconcile`]: what it did, and the node it left.
#[derive(Debug)]
pub struct Reconciled {
    /// What the run did (or would do): the result of `ensure` (`--json`, the RPC).
    pub report: EnsureReport,
    /// The settings the run used, the files as they are after it (read back after publishing,
    /// or, when nothing was published, the reading the run planned from) and the binary it
    /// chose: what a caller that starts the media next uses instead of reading them again.
    pub snapshot: NodeSnapshot,
}

/// [`ensure`], returning also the [`NodeSnapshot`] the run ended with.
pub fn reconcile(
    state: &StateDir,
    store: &dyn SecretStore,
    opts: &EnsureOptions<'_>,
) -> Result<Reconciled, EnsureError> {
    let lock = if opts.dry_run {
        refuse_non_directory(state)?;
        None
    } else {
        publish::prepare(state).map_err(EnsureError::State)?;
        Some(StateLock::acquire(state, opts.on_lock_wait).map_err(EnsureError::State)?)
    };

    (opts.on_phase)(Phase::Resolving);
    let config = OperatorConfig::load(state)?;
    // The certificate first: TURN/TLS may load it, and nothing serves wss:// without it.
    let certificate = certificate_step(state, &config, opts)?;
    let turn_warnings = turn_preflight(state, &config, opts.now)?;
    let chosen = LivekitBinary::choose(state, &config.settings, opts.binary.livekit_bin.as_deref());
    // The files as planned from; after publishing, as read back (the snapshot's).
    let mut disk = DiskTriple::read(state);
    let resolution = resolve(
        store,
        &ResolveContext {
            dry_run: opts.dry_run,
            ..ResolveContext::new(state, &config, &disk, &opts.local_addresses, opts.now)
        },
    )?;
    let inputs = &resolution.inputs;
    (opts.on_phase)(Phase::Rendering);
    let rendered = render(inputs);

    let mut actions = store_actions(&resolution, opts.dry_run);
    actions.extend(certificate.0);
    actions.extend(plan_files(&disk, &rendered));
    let mut warnings: Vec<ReportedWarning> = resolution
        .warnings
        .iter()
        .cloned()
        .chain(turn_warnings)
        .chain(certificate.1)
        .map(ReportedWarning::from)
        .collect();

    if let Some(warning) = check_with_server(&chosen, &actions, &rendered)? {
        warnings.push(warning.into());
    }
    let mut generation = disk.current.generation().map(|g| g.to_string());
    let held = held_back(state, &rendered, opts.dry_run, &mut actions, &mut warnings);
    if let Some(lock) = &lock {
        (opts.on_phase)(Phase::Publishing);
        if !held {
            keep_unparsable(state, &disk, &mut actions, opts.now)?;
            let published = publish_rendered(state, lock, &rendered, opts, &mut actions)?;
            let changed = published.is_some();
            generation = published.or(generation);
            disk = verify_after_publish(state, disk, changed, &rendered, inputs)?;
        }
    }

    let binary = ensure_binary(
        state,
        store,
        inputs,
        &config.settings,
        &chosen,
        opts,
        &mut actions,
        &mut warnings,
    )?;
    drop(lock);
    // What `check` would say about the node's own files, as warnings.
    warnings.extend(
        crate::check::node_findings(
            state,
            &disk,
            Some(&config.settings),
            opts.binary.livekit_bin.as_deref(),
        )
        .into_iter()
        .map(|f| {
            ReportedWarning::from(Warning::Check {
                code: f.code,
                files: f.files,
                reason: f.message,
                hint: f.hint,
            })
        }),
    );

    let report = EnsureReport {
        dry_run: opts.dry_run,
        actions,
        warnings,
        api_key: (!(opts.dry_run && resolution.credentials_source == CredentialSource::Minted))
            .then(|| inputs.credentials.key.to_string()),
        credentials: resolution.credentials_source,
        version: inputs.version.as_ref().map(ToString::to_string),
        binary,
        generation,
        grace_until: resolution.grace_until.map(crate::clock::from_unix_secs),
    };
    Ok(Reconciled {
        report,
        snapshot: NodeSnapshot {
            config,
            disk,
            binary: chosen,
        },
    })
}

/// The set livekit-server crash-looped on is kept out until an input changes
/// ([`crate::hold`]): when `rendered` is it, its writes leave the plan and a warning says why.
fn held_back(
    state: &StateDir,
    rendered: &Rendered,
    dry_run: bool,
    actions: &mut Vec<Action>,
    warnings: &mut Vec<ReportedWarning>,
) -> bool {
    let Some(held) = crate::hold::holds_back(state, rendered, dry_run) else {
        return false;
    };
    actions.retain(|a| !matches!(a, Action::WriteFile { .. }));
    warnings.push(
        Warning::HeldBack {
            generation: held.generation,
            served: held.served,
            since: held.since,
            reason: held.reason,
        }
        .into(),
    );
    true
}

/// Publish `rendered` (nothing when the files already are that set), adding what was backed up
/// and swept to `actions`: the new generation, when one was published.
fn publish_rendered(
    state: &StateDir,
    lock: &StateLock,
    rendered: &Rendered,
    opts: &EnsureOptions<'_>,
    actions: &mut Vec<Action>,
) -> Result<Option<String>, EnsureError> {
    let publish_options = PublishOptions {
        now: opts.now,
        ..opts.publish
    };
    let (generation, swept) = match publish::publish(state, lock, rendered, &publish_options)
        .map_err(EnsureError::Publish)?
    {
        PublishOutcome::Unchanged { swept } => (None, swept),
        PublishOutcome::Published {
            generation,
            backed_up,
            swept,
            ..
        } => {
            actions.extend(backed_up.into_iter().map(|b| Action::BackupFile {
                path: b.original,
                to: b.saved,
            }));
            (Some(generation.to_string()), swept)
        }
    };
    if !swept.is_empty() {
        actions.push(Action::SweepDebris { paths: swept });
    }
    Ok(generation)
}

/// When livekit.yaml is about to change and a livekit-server binary is on this node (installed,
/// or `livekit_bin`), ask it whether it accepts the new file before anything is published. A
/// refusal is an error; a binary that gives no verdict is a warning (the file is published).
fn check_with_server(
    chosen: &LivekitBinary,
    actions: &[Action],
    rendered: &Rendered,
) -> Result<Option<Warning>, EnsureError> {
    let changes = actions.iter().any(|a| {
        matches!(
            a,
            Action::WriteFile {
                file: ManagedFile::LivekitYaml,
                ..
            }
        )
    });
    let program = &chosen.path;
    if !changes || !program.exists() {
        return Ok(None);
    }
    match server_check::check_config(program, &rendered.livekit_yaml, server_check::CHECK_TIMEOUT) {
        Ok(()) => Ok(None),
        Err(e) if e.is_refusal() => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "livekit-server gave no verdict on the new livekit.yaml");
            Ok(Some(Warning::ConfigUnchecked {
                reason: e.to_string(),
            }))
        }
    }
}

/// Inspect the TURN/TLS certificate and key before anything is resolved or written: the first
/// error refuses the run, warnings are returned for the report.
/// `ensure`'s certificate step ([`crate::tls::provision`]) as an action or a warning.
fn certificate_step(
    state: &StateDir,
    config: &OperatorConfig,
    opts: &EnsureOptions<'_>,
) -> Result<(Option<Action>, Option<Warning>), EnsureError> {
    use crate::tls::Outcome;
    Ok(
        match crate::tls::provision(state, &config.settings, opts.dry_run, opts.now)? {
            Outcome::Fresh => (None, None),
            Outcome::Obtained(order) => (
                Some(Action::ObtainCertificate {
                    names: order.names,
                    directory: order.directory,
                    reason: order.reason,
                }),
                None,
            ),
            Outcome::Kept { cert, reason, hint } => (
                None,
                Some(Warning::Check {
                    code: crate::check::code::Code::TlsRenewalFailing,
                    files: vec![cert],
                    reason,
                    hint: Some(hint),
                }),
            ),
        },
    )
}

fn turn_preflight(
    state: &StateDir,
    config: &OperatorConfig,
    now: SystemTime,
) -> Result<Vec<Warning>, TlsIssue> {
    let uid = nix::unistd::geteuid().as_raw();
    let mut warnings = Vec::new();
    for issue in crate::tls::turn_issues(state, &config.settings, now, uid) {
        if issue.is_error() {
            return Err(issue);
        }
        warnings.push(Warning::TurnTls {
            file: issue.path().to_owned(),
            reason: format!("{issue} ({})", issue.hint()),
        });
    }
    Ok(warnings)
}

/// What resolution stored (or, in a dry run, would store): the API pair, then other secrets.
fn store_actions(resolution: &Resolution, dry_run: bool) -> Vec<Action> {
    let key = || resolution.inputs.credentials.key.to_string();
    let credentials = match resolution.credentials_source {
        // A dry run's pair is drawn only to plan with: it is never stored nor shown.
        CredentialSource::Minted => Some(Action::MintCredentials {
            key: (!dry_run).then(key),
        }),
        CredentialSource::Adopted { from } => Some(Action::AdoptCredentials { key: key(), from }),
        CredentialSource::Store => None,
    };
    credentials
        .into_iter()
        .chain(
            resolution
                .secrets_stored
                .iter()
                .map(|name| Action::StoreSecret { name: name.clone() }),
        )
        .collect()
}

/// For a dry run: refuse what `prepare` would refuse, without creating anything, so a dry run
/// fails the way the real run would (not with an unreadable provision.yaml inside a file).
fn refuse_non_directory(state: &StateDir) -> Result<(), EnsureError> {
    let not_a_dir = match std::fs::metadata(state.root()) {
        Ok(meta) => !meta.is_dir(),
        Err(e) => e.kind() == std::io::ErrorKind::NotADirectory,
    };
    if not_a_dir {
        return Err(EnsureError::State(PublishError::NotADirectory {
            path: state.root().to_owned(),
        }));
    }
    Ok(())
}

/// Which files differ from `rendered`, and why.
fn plan_files(disk: &DiskTriple, rendered: &Rendered) -> Vec<Action> {
    let mut actions = Vec::new();
    for file in ManagedFile::ALL {
        let want = rendered.get(file).as_bytes();
        let invalid = match file {
            ManagedFile::LivekitYaml => {
                !matches!(disk.livekit_yaml, Parsed::Valid(_) | Parsed::Missing)
            }
            ManagedFile::BackendEnv => {
                !matches!(disk.backend_env, Parsed::Valid(_) | Parsed::Missing)
            }
            ManagedFile::RuntimeJson => {
                !matches!(disk.runtime_json, Parsed::Valid(_) | Parsed::Missing)
            }
        };
        let reason = match disk.current.file(file) {
            FixedPath::Missing => Some(WriteReason::Missing),
            // Publishing rewrites a file whose mode was loosened too (`CurrentState::matches`),
            // so the plan must list it, or a rerun would write while reporting "nothing to do".
            FixedPath::Ours { contents, mode, .. }
                if contents.as_bytes() == want && mode & 0o777 == 0o600 =>
            {
                None
            }
            FixedPath::Legacy { .. } => Some(WriteReason::LegacyImport),
            FixedPath::ForeignSymlink { .. } => Some(WriteReason::ForeignSymlink),
            _ if invalid => Some(WriteReason::Unparsable),
            _ => Some(WriteReason::Changed),
        };
        if let Some(reason) = reason {
            actions.push(Action::WriteFile { file, reason });
        }
    }
    actions
}

/// Copy into `backups/` each file of the live generation that is about to be replaced because
/// it no longer parses (edited in place through its link): publishing keeps the old generation
/// only until it is pruned, and invariant 4 says such a file is kept, never deleted.
fn keep_unparsable(
    state: &StateDir,
    disk: &DiskTriple,
    actions: &mut Vec<Action>,
    now: SystemTime,
) -> Result<(), EnsureError> {
    let unparsable: Vec<ManagedFile> = actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteFile {
                file,
                reason: WriteReason::Unparsable,
            } => Some(*file),
            _ => None,
        })
        .collect();
    for file in unparsable {
        if let FixedPath::Ours { generation, .. } = disk.current.file(file) {
            let path = state
                .generations_dir()
                .join(generation.to_string())
                .join(file.file_name());
            let kept = publish::backup(state, &path, now).map_err(EnsureError::Publish)?;
            actions.push(Action::BackupFile {
                path: kept.original,
                to: kept.saved,
            });
        }
    }
    Ok(())
}

/// Verify the files after publishing, and return them as verified. When nothing was published
/// and `before` (read under the same lock) already is the rendered set, verify that read rather
/// than reading and parsing the three files a second time.
fn verify_after_publish(
    state: &StateDir,
    before: DiskTriple,
    published: bool,
    rendered: &Rendered,
    inputs: &RenderInputs,
) -> Result<DiskTriple, EnsureError> {
    let after = if !published && before.current.matches(rendered) {
        before
    } else {
        DiskTriple::read(state)
    };
    verify(state, &after, rendered, inputs)?;
    Ok(after)
}

/// Check that `after` (what is on disk after publishing) is the set just rendered, and that it
/// agrees.
fn verify(
    state: &StateDir,
    after: &DiskTriple,
    rendered: &Rendered,
    inputs: &RenderInputs,
) -> Result<(), EnsureError> {
    let fail = |reason: String| EnsureError::Verify {
        state: state.root().to_owned(),
        reason,
    };
    if !after.current.matches(rendered) {
        return Err(fail(
            "the fixed paths do not show the set just written".to_owned(),
        ));
    }
    match after.consistent_credentials() {
        Some(creds) if creds == inputs.credentials => Ok(()),
        Some(_) => Err(fail(
            "the files hold other credentials than the secret store".to_owned(),
        )),
        None => Err(fail(
            "the three files do not name the same key and secret".to_owned(),
        )),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the run's state, passed down rather than read again"
)]
fn ensure_binary(
    state: &StateDir,
    store: &dyn SecretStore,
    inputs: &RenderInputs,
    settings: &crate::settings::Settings,
    chosen: &LivekitBinary,
    opts: &EnsureOptions<'_>,
    actions: &mut Vec<Action>,
    warnings: &mut Vec<ReportedWarning>,
) -> Result<BinaryState, EnsureError> {
    let Some(version) = &inputs.version else {
        return Ok(BinaryState::NotPinned);
    };
    if let Some(path) = chosen.clone().external() {
        return Ok(BinaryState::External { path });
    }
    let replaces = match fetch::needs_install(state, version) {
        InstallNeed::UpToDate => {
            return Ok(BinaryState::Installed {
                version: version.to_string(),
            });
        }
        InstallNeed::VersionDiffers { installed, .. } => Some(installed.to_string()),
        _ => None,
    };
    let pending = BinaryState::Pending {
        version: version.to_string(),
    };
    if opts.dry_run || opts.binary.offline {
        actions.push(Action::Install {
            version: version.to_string(),
            replaces,
        });
        return Ok(pending);
    }
    let pinned_sha256 = match store.get(&SecretName::LIVEKIT_SHA256)? {
        Some(hex) => Some(
            hex.expose()
                .parse::<Sha256Digest>()
                .map_err(|_| EnsureError::InvalidPinnedDigest)?,
        ),
        None => None,
    };
    match install_blocking(state, version, settings, pinned_sha256, opts) {
        Ok(InstallOutcome::AlreadyInstalled { .. }) => {}
        Ok(InstallOutcome::Reactivated { .. }) => actions.push(Action::Reactivate {
            version: version.to_string(),
        }),
        Ok(_) => actions.push(Action::Install {
            version: version.to_string(),
            replaces,
        }),
        Err(e) => {
            let report = ErrorReport::of(&e);
            warnings.push(
                Warning::InstallFailed {
                    reason: report.headline(),
                    hint: report.hint,
                }
                .into(),
            );
            return Ok(pending);
        }
    }
    Ok(BinaryState::Installed {
        version: version.to_string(),
    })
}

/// Install on a runtime of its own: only this path pays for an async runtime and TLS setup.
fn install_blocking(
    state: &StateDir,
    version: &LivekitVersion,
    settings: &crate::settings::Settings,
    pinned_sha256: Option<Sha256Digest>,
    opts: &EnsureOptions<'_>,
) -> Result<InstallOutcome, FetchError> {
    let mut request = crate::binary::install_request(version.clone(), settings, &opts.binary)?;
    request.pinned_sha256 = pinned_sha256;
    request.events.clone_from(&opts.fetch_events);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FetchError::Io {
            action: "start an async runtime for",
            path: state.bin_dir(),
            source,
        })?;
    runtime.block_on(fetch::install(state, &request))
}
