//! Explicit rotation of the API credentials: the only way a secret changes (invariant 1), in
//! epochs that cut no call and lock nobody out (docs/DESIGN.md, "Key epochs").
//!
//! 1. [`stage`] mints a pair into `LIVEKIT_API_KEY_NEXT`/`LIVEKIT_API_SECRET_NEXT`; `ensure` then
//!    lists it in `livekit.yaml` beside the current key, and nothing signs with it yet.
//!    livekit-server has no hot reload: it loads the new key when it restarts.
//! 2. [`promote`], once the running livekit-server accepts the staged key (the caller's to
//!    verify: the daemon asks the server; the CLI's `--promote` trusts the operator), makes it
//!    current: every signer (`backend.env`, `runtime.json`, `token`) switches to it, and the key
//!    it replaces stays accepted for the grace. `livekit.yaml` does not change by a byte, so no
//!    restart is needed.
//! 3. The previous key leaves `livekit.yaml` at the first `ensure` after the grace;
//!    [`extend_grace`] keeps it while participants may hold tokens signed with it (livekit-server
//!    re-signs their tokens with any configured key), never past the operator's deadline.
//!
//! [`rotate_now`] is the forced form (`secrets rotate --force`): stage and promote at once;
//! tokens signed with the new key are refused until livekit-server restarts. [`epoch`] says
//! where a rotation stands. Every step is a few writes to the store, ordered so that a kill
//! between any two leaves the store reading as before the step or as after it (the recovery
//! rule of `keyring.rs`); the next rotation command finishes a step left half done.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::inputs::Credentials;
pub use crate::keyring::Epoch;
use crate::keyring::{Keyring, KeyringError, unix_secs};
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{self, PublishError, StateLock};
use crate::secret::{ApiKey, InvalidValue, Secret};
use crate::store::{KNOWN, SecretName, SecretStore, StoreError};
use crate::triple::DiskTriple;
use crate::validate;

pub use crate::validate::MAX_GRACE;

/// How a rotation retires the key it replaces: the grace the previous key gets at promotion,
/// and an optional deadline after which the grace is never extended. Both are checked against
/// [`MAX_GRACE`]; the deadline may not come before the grace could end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    grace: Duration,
    retire_by: Option<Duration>,
}

/// Which parameter of a [`Schedule`] was refused (each face names it its own way: the CLI's
/// `--grace`/`--retire-by`, the RPC's `grace`/`retire_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleParam {
    /// The grace.
    Grace,
    /// The deadline.
    RetireBy,
}

/// Why a [`Schedule`] was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Longer than [`MAX_GRACE`].
    #[error("{} is longer than 30 days, the longest allowed", shown(*.value))]
    TooLong {
        /// Which parameter.
        param: ScheduleParam,
        /// What was asked.
        value: Duration,
    },
    /// The deadline comes before the grace could end.
    #[error(
        "the deadline ({}) is shorter than the grace ({}): the previous key would be retired before its grace ends",
        shown(*.retire_by),
        shown(*.grace)
    )]
    DeadlineBeforeGrace {
        /// The grace asked for.
        grace: Duration,
        /// The deadline asked for.
        retire_by: Duration,
    },
}

/// A duration as an operator wrote it: whole days as days (humantime shows 31 days as
/// "1month 13h 26m 24s"), the rest as humantime does.
fn shown(d: Duration) -> String {
    const DAY: u64 = 86_400;
    let (days, rest) = (d.as_secs() / DAY, Duration::from_secs(d.as_secs() % DAY));
    match (days, rest.is_zero()) {
        (0, _) => humantime::format_duration(d).to_string(),
        (1, true) => "1 day".to_owned(),
        (_, true) => format!("{days} days"),
        _ => format!("{days} days {}", humantime::format_duration(rest)),
    }
}

impl ScheduleError {
    /// The parameter at fault.
    pub fn param(&self) -> ScheduleParam {
        match self {
            Self::TooLong { param, .. } => *param,
            Self::DeadlineBeforeGrace { .. } => ScheduleParam::RetireBy,
        }
    }
}

/// Check one duration of a schedule against [`MAX_GRACE`] (the CLI's flag parsers and the RPC's
/// parameters call it, so both refuse the same values).
pub fn check_duration(param: ScheduleParam, value: Duration) -> Result<Duration, ScheduleError> {
    if value > MAX_GRACE {
        return Err(ScheduleError::TooLong { param, value });
    }
    Ok(value)
}

impl Schedule {
    /// A schedule: `grace` (none: the previous key is retired at promotion, so livekit-server
    /// drops it at its next restart) and `retire_by`, the operator's deadline counted from now,
    /// after which the grace is never extended — accepting that participants must rejoin.
    pub fn new(
        grace: Option<Duration>,
        retire_by: Option<Duration>,
    ) -> Result<Self, ScheduleError> {
        let grace = check_duration(ScheduleParam::Grace, grace.unwrap_or_default())?;
        let retire_by = retire_by
            .map(|d| check_duration(ScheduleParam::RetireBy, d))
            .transpose()?;
        if let Some(retire_by) = retire_by
            && retire_by < grace
        {
            return Err(ScheduleError::DeadlineBeforeGrace { grace, retire_by });
        }
        Ok(Self { grace, retire_by })
    }

    /// The grace the previous key gets at promotion.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The deadline, counted from the staging.
    pub fn retire_by(&self) -> Option<Duration> {
        self.retire_by
    }
}

/// What a rotation command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RotateAction {
    /// A new pair was minted and staged.
    Staged,
    /// A pair was staged already: nothing was minted (a rerun changes nothing).
    AlreadyStaged,
    /// The staged pair became current (or a promotion stopped half way was finished).
    Promoted,
    /// Nothing was staged: nothing changed.
    NothingStaged,
}

/// What a rotation command did, and where the rotation stands after it. (Its wire form is the
/// daemon protocol's `RotateResult`, which the CLI prints too.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateOutcome {
    /// What was done.
    pub action: RotateAction,
    /// The epoch after it, as the store reads back.
    pub epoch: Epoch,
}

/// What [`extend_grace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraceExtension {
    /// No grace is in force: nothing to extend (a retired key never comes back).
    NotInGrace,
    /// The grace now ends at `until`, later than before.
    Extended {
        /// The new end.
        until: SystemTime,
        /// True when the operator's deadline cut the extension short.
        at_deadline: bool,
    },
    /// The grace already ends at `until`, no earlier than asked, or at the deadline.
    Unchanged {
        /// When it ends.
        until: SystemTime,
        /// True when the deadline keeps it from being extended.
        at_deadline: bool,
    },
}

/// Why a rotation command failed. Nothing was written unless the store failed between two
/// writes; the store then reads as before the step or as after it, and a rerun finishes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// The state directory could not be locked.
    #[error(transparent)]
    State(#[from] PublishError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random number generator failed.
    #[error("could not mint new credentials: {0}")]
    Random(#[from] getrandom::Error),
    /// A value in the store is one `ensure` would refuse: rotating now would leave the store
    /// rotated and the files not, so nothing was changed.
    #[error("secret {name} in {store}: {source}; nothing was rotated")]
    InvalidStored {
        /// The name.
        name: SecretName,
        /// The store (redacted description).
        store: String,
        /// Why it was refused.
        source: InvalidValue,
    },
    /// The store holds no current pair: there is nothing to rotate yet.
    #[error("{store} holds no API key and secret yet; nothing was rotated")]
    NotProvisioned {
        /// The store (redacted description).
        store: String,
    },
    /// A grace is in force: the previous key must be retired before another rotation moves on.
    #[error(
        "the previous key {previous_key} is still accepted until {}; nothing was rotated",
        crate::clock::rfc3339(*.until)
    )]
    GraceInForce {
        /// The key in its grace.
        previous_key: String,
        /// When its grace ends.
        until: SystemTime,
    },
    /// The staged key is not in the `livekit.yaml` on disk, so livekit-server cannot have
    /// loaded it: promoting it would make every signer use a key the server refuses.
    #[error("the staged key {next_key} is not in {}; nothing was promoted", .file.display())]
    NextNotListed {
        /// The staged key.
        next_key: String,
        /// The `livekit.yaml` read.
        file: PathBuf,
    },
}

impl crate::error_chain::Hint for RotateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::State(e) => e.hint(),
            Self::Store(e) => e.hint(),
            Self::Random(_) => None,
            Self::InvalidStored { name, .. } => Some(format!(
                "fix it with `livekit-provision secrets set {name} <value>`, then rotate"
            )),
            Self::NotProvisioned { .. } => {
                Some("run `livekit-provision ensure` first: it mints the first pair".to_owned())
            }
            Self::GraceInForce { .. } => Some(
                "rotate again once the grace is over (`livekit-provision status` shows it), or \
                 replace the key at once with `livekit-provision secrets rotate --force` (the \
                 previous key is retired now; tokens signed with the new key are refused until \
                 livekit-server restarts)"
                    .to_owned(),
            ),
            Self::NextNotListed { .. } => Some(
                "run `livekit-provision ensure` to list it, restart livekit-server when no call \
                 is in progress (`livekit-provision restart`), then promote it"
                    .to_owned(),
            ),
        }
    }
}

/// Stage a new pair (`secrets rotate`): mint it into `LIVEKIT_API_KEY_NEXT` /
/// `LIVEKIT_API_SECRET_NEXT` and store the schedule (`LIVEKIT_ROTATION_GRACE`,
/// `LIVEKIT_ROTATION_DEADLINE` = `now` + `retire_by`, `0` for none). The current pair is
/// untouched; run `ensure` afterwards to list the staged key in `livekit.yaml`.
///
/// A pair already staged is kept and reported ([`RotateAction::AlreadyStaged`]; its schedule
/// too): nothing is minted twice. Refused while a grace is in force
/// ([`RotateError::GraceInForce`]) and before the first `ensure`
/// ([`RotateError::NotProvisioned`]). Writes, in order: the grace, the deadline, the next
/// secret, the next key (the last one stages; stopped before it, nothing is staged).
pub fn stage(
    state: &StateDir,
    store: &dyn SecretStore,
    schedule: &Schedule,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<RotateOutcome, RotateError> {
    let _lock = lock(state, on_lock_wait)?;
    let ring = read_checked(store)?;
    let ring = finish_interrupted(store, ring)?;
    let current = current(store, &ring)?;
    if let Some((previous, until)) = ring.previous_in_grace(&current, now) {
        return Err(grace_in_force(&previous, until));
    }
    if ring.next_for(&current).is_some() {
        return outcome(store, RotateAction::AlreadyStaged, now);
    }
    write_schedule(store, schedule, now)?;
    write_next(store, &current)?;
    outcome(store, RotateAction::Staged, now)
}

/// Promote the staged pair (the daemon calls this once the running livekit-server accepts the
/// staged key; the CLI's `secrets rotate --promote` on the operator's word): the current pair
/// becomes `LIVEKIT_API_KEY_PREVIOUS`/`LIVEKIT_API_SECRET_PREVIOUS`, accepted until
/// `LIVEKIT_ROTATION_GRACE_UNTIL` = `now` + the staged grace (no later than the deadline), and
/// the staged pair becomes current. Run `ensure` afterwards: the signers' files change,
/// `livekit.yaml` does not.
///
/// Nothing staged: [`RotateAction::NothingStaged`], nothing written (a rerun after a promotion
/// lands here). A promotion stopped half way is finished ([`RotateAction::Promoted`]). Refused
/// while an earlier grace is in force, and when the `livekit.yaml` on disk does not list the
/// staged pair ([`RotateError::NextNotListed`]: livekit-server cannot have loaded it). Writes,
/// in order: `LIVEKIT_ROTATION_GRACE_UNTIL` `0`, the previous secret, the previous key, the
/// grace's end, the secret, the key (see the recovery rule in `keyring.rs`).
pub fn promote(
    state: &StateDir,
    store: &dyn SecretStore,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<RotateOutcome, RotateError> {
    let _lock = lock(state, on_lock_wait)?;
    let ring = read_checked(store)?;
    promote_locked(state, store, ring, now, false)
}

/// Replace the key at once (`secrets rotate --force`): stage a pair with `schedule` unless one
/// is staged, and promote it without waiting for livekit-server to load it — tokens signed with
/// the new key are refused until livekit-server restarts — even during a grace, which then ends
/// now. The schedule given replaces a staged one.
pub fn rotate_now(
    state: &StateDir,
    store: &dyn SecretStore,
    schedule: &Schedule,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<RotateOutcome, RotateError> {
    let _lock = lock(state, on_lock_wait)?;
    let ring = read_checked(store)?;
    if ring.promotion_interrupted() {
        // A forced rotation killed in its promotion: a rerun finishes it, minting nothing.
        return promote_locked(state, store, ring, now, true);
    }
    let current = current(store, &ring)?;
    write_schedule(store, schedule, now)?;
    if ring.next_for(&current).is_none() {
        write_next(store, &current)?;
    }
    let ring = read_checked(store)?;
    promote_locked(state, store, ring, now, true)
}

/// Keep the previous key accepted until `until` (the daemon, while its node has participants
/// who may hold tokens signed with it): `LIVEKIT_ROTATION_GRACE_UNTIL` only ever moves later,
/// never past `LIVEKIT_ROTATION_DEADLINE`, and only while a grace is in force at `now` (a
/// retired key never comes back). One write, under the state lock. Two nodes extending at once
/// through a shared store may keep the earlier of their two ends (the store has no
/// compare-and-set); each extends again while it has participants.
pub fn extend_grace(
    state: &StateDir,
    store: &dyn SecretStore,
    until: SystemTime,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<GraceExtension, RotateError> {
    let _lock = lock(state, on_lock_wait)?;
    let ring = Keyring::load(store).map_err(|e| keyring_error(store, e))?;
    let ring = finish_interrupted(store, ring)?;
    let Some(current) = ring.current() else {
        return Ok(GraceExtension::NotInGrace);
    };
    let Some((_, ends)) = ring.previous_in_grace(&current, now) else {
        return Ok(GraceExtension::NotInGrace);
    };
    let wanted = unix_secs(until).max(ends);
    let capped = ring
        .deadline
        .map_or(wanted, |deadline| wanted.min(deadline));
    let at_deadline = capped < wanted;
    if capped <= ends {
        return Ok(GraceExtension::Unchanged {
            until: crate::clock::from_unix_secs(ends),
            at_deadline,
        });
    }
    store.set(
        &SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
        &Secret::new(capped.to_string()),
    )?;
    Ok(GraceExtension::Extended {
        until: crate::clock::from_unix_secs(capped),
        at_deadline,
    })
}

/// Where the rotation stands at `now`, read from `store` (one batch, no lock, nothing written;
/// a promotion stopped half way reads as done).
pub fn epoch(store: &dyn SecretStore, now: SystemTime) -> Result<Epoch, RotateError> {
    Keyring::load(store)
        .map(|ring| ring.epoch(now))
        .map_err(|e| keyring_error(store, e))
}

fn lock(
    state: &StateDir,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<StateLock, RotateError> {
    publish::prepare(state)?;
    Ok(StateLock::acquire(state, on_lock_wait)?)
}

/// Every stored value in one batch (one Redis round trip, one read of secrets.json), each
/// checked as `ensure` checks it — the `ensure` that follows must be able to publish what a
/// rotation leaves — and the rotation's names among them.
fn read_checked(store: &dyn SecretStore) -> Result<Keyring, RotateError> {
    let names: Vec<SecretName> = KNOWN.iter().map(|k| k.name.clone()).collect();
    let values = store.get_many(&names)?;
    for (name, value) in names.iter().zip(&values) {
        if let Some(value) = value {
            validate::secret_value(name, value.expose())
                .map_err(|source| invalid(store, name.clone(), source))?;
        }
    }
    Keyring::from_values(names.into_iter().zip(values)).map_err(|e| keyring_error(store, e))
}

/// Write the key a stopped promotion did not write, so the store holds what it reads as.
fn finish_interrupted(store: &dyn SecretStore, ring: Keyring) -> Result<Keyring, RotateError> {
    if !ring.promotion_interrupted() {
        return Ok(ring);
    }
    if let Some(next) = ring.stored_next() {
        tracing::info!(key = %next.key, "finishing a promotion that was stopped half way");
        store.set(
            &SecretName::LIVEKIT_API_KEY,
            &Secret::new(next.key.as_str()),
        )?;
    }
    Keyring::load(store).map_err(|e| keyring_error(store, e))
}

fn current(store: &dyn SecretStore, ring: &Keyring) -> Result<Credentials, RotateError> {
    ring.current().ok_or_else(|| RotateError::NotProvisioned {
        store: store.describe(),
    })
}

fn grace_in_force(previous: &Credentials, until: u64) -> RotateError {
    RotateError::GraceInForce {
        previous_key: previous.key.to_string(),
        until: crate::clock::from_unix_secs(until),
    }
}

fn write_schedule(
    store: &dyn SecretStore,
    schedule: &Schedule,
    now: SystemTime,
) -> Result<(), RotateError> {
    let deadline = schedule
        .retire_by
        .map_or(0, |d| unix_secs(now).saturating_add(d.as_secs()));
    store.set(
        &SecretName::LIVEKIT_ROTATION_GRACE,
        &Secret::new(schedule.grace.as_secs().to_string()),
    )?;
    store.set(
        &SecretName::LIVEKIT_ROTATION_DEADLINE,
        &Secret::new(deadline.to_string()),
    )?;
    Ok(())
}

/// Mint a pair and stage it: the secret first, then the key, whose write stages it.
fn write_next(store: &dyn SecretStore, current: &Credentials) -> Result<(), RotateError> {
    let mut key = ApiKey::mint()?;
    while key == current.key {
        key = ApiKey::mint()?;
    }
    let secret = Secret::mint_api_secret()?;
    store.set(&SecretName::LIVEKIT_API_SECRET_NEXT, &secret)?;
    store.set(
        &SecretName::LIVEKIT_API_KEY_NEXT,
        &Secret::new(key.as_str()),
    )?;
    Ok(())
}

fn promote_locked(
    state: &StateDir,
    store: &dyn SecretStore,
    ring: Keyring,
    now: SystemTime,
    force: bool,
) -> Result<RotateOutcome, RotateError> {
    if ring.promotion_interrupted() {
        finish_interrupted(store, ring)?;
        return outcome(store, RotateAction::Promoted, now);
    }
    let current = current(store, &ring)?;
    let Some(next) = ring.next_for(&current) else {
        return outcome(store, RotateAction::NothingStaged, now);
    };
    if !force {
        if let Some((previous, until)) = ring.previous_in_grace(&current, now) {
            return Err(grace_in_force(&previous, until));
        }
        let file = state.managed(ManagedFile::LivekitYaml);
        let listed = DiskTriple::read(state)
            .livekit_yaml
            .valid()
            .is_some_and(|yaml| yaml.keys.contains(&next));
        if !listed {
            return Err(RotateError::NextNotListed {
                next_key: next.key.to_string(),
                file,
            });
        }
    }
    let grace = ring.grace.unwrap_or(0);
    let until = unix_secs(now).saturating_add(grace);
    let until = ring.deadline.map_or(until, |deadline| until.min(deadline));
    let set = |name: &SecretName, value: &str| store.set(name, &Secret::new(value));
    // The order the recovery rule of `keyring.rs` reads: a kill between any two writes leaves
    // the store reading as staged (before the secret) or as promoted (from the secret on).
    if ring.grace_until.is_some_and(|u| u != 0) {
        set(&SecretName::LIVEKIT_ROTATION_GRACE_UNTIL, "0")?;
    }
    store.set(&SecretName::LIVEKIT_API_SECRET_PREVIOUS, &current.secret)?;
    set(&SecretName::LIVEKIT_API_KEY_PREVIOUS, current.key.as_str())?;
    set(
        &SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
        &until.to_string(),
    )?;
    store.set(&SecretName::LIVEKIT_API_SECRET, &next.secret)?;
    set(&SecretName::LIVEKIT_API_KEY, next.key.as_str())?;
    outcome(store, RotateAction::Promoted, now)
}

/// The outcome of `action`, with the epoch as the store reads back after it.
fn outcome(
    store: &dyn SecretStore,
    action: RotateAction,
    now: SystemTime,
) -> Result<RotateOutcome, RotateError> {
    Ok(RotateOutcome {
        action,
        epoch: epoch(store, now)?,
    })
}

fn keyring_error(store: &dyn SecretStore, e: KeyringError) -> RotateError {
    match e {
        KeyringError::Store(e) => RotateError::Store(e),
        KeyringError::Invalid { name, source } => invalid(store, name, source),
    }
}

fn invalid(store: &dyn SecretStore, name: SecretName, source: InvalidValue) -> RotateError {
    RotateError::InvalidStored {
        name,
        store: store.describe(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_bounded_and_the_deadline_follows_the_grace() {
        let day = Duration::from_secs(86_400);
        assert!(Schedule::new(None, None).is_ok());
        assert!(Schedule::new(Some(MAX_GRACE), Some(MAX_GRACE)).is_ok());
        let too_long = Schedule::new(Some(31 * day), None).unwrap_err();
        assert_eq!(too_long.param(), ScheduleParam::Grace);
        assert_eq!(
            too_long.to_string(),
            "31 days is longer than 30 days, the longest allowed"
        );
        let err = Schedule::new(None, Some(31 * day)).unwrap_err();
        assert_eq!(err.param(), ScheduleParam::RetireBy);
        let err = Schedule::new(Some(day), Some(day / 2)).unwrap_err();
        assert_eq!(err.param(), ScheduleParam::RetireBy);
        assert!(err.to_string().contains("shorter than the grace"), "{err}");
    }
}
