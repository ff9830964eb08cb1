//! The keys of `livekit.yaml` on disk against the rotation the store declares
//! (`rotate.rs`, `keyring.rs`): a staged key not listed yet, a retired key still listed, a key
//! no rotation explains.

use std::collections::BTreeSet;

use super::{Code, ENSURE_HINT, Findings, Severity};
use crate::paths::{ManagedFile, StateDir};
use crate::resolve::Resolution;
use crate::triple::DiskTriple;

pub(super) fn check_rotation(
    state: &StateDir,
    disk: &DiskTriple,
    resolution: &Resolution,
    out: &mut Findings,
) {
    let Some(lk) = disk.livekit_yaml.valid() else {
        return;
    };
    let file = || vec![state.managed(ManagedFile::LivekitYaml)];
    let listed: BTreeSet<&str> = lk.keys.iter().map(|c| c.key.as_str()).collect();
    let inputs = &resolution.inputs;
    if let Some(next) = &inputs.next
        && !lk.keys.contains(next)
    {
        out.add(
            Code::NextKeyNotListed,
            Severity::Warning,
            file(),
            format!(
                "the staged key {} is not in livekit.yaml: livekit-server cannot load it, and it cannot be promoted",
                next.key
            ),
            Some(
                "run `livekit-provision ensure`, restart livekit-server when no call is in progress \
                 (`livekit-provision restart`), then `livekit-provision secrets rotate --promote`",
            ),
        );
    }
    if let Some(retired) = &resolution.retired
        && listed.contains(retired.as_str())
    {
        out.add(
            Code::RetiredKeyListed,
            Severity::Warning,
            file(),
            format!(
                "the grace of the previous key {retired} is over, but livekit.yaml still lists it"
            ),
            Some(
                "run `livekit-provision ensure` to drop it; the running livekit-server accepts it \
                 until it restarts (`livekit-provision restart` when no call is in progress)",
            ),
        );
    }
    let declared: BTreeSet<&str> = [
        Some(&inputs.credentials),
        inputs.next.as_ref(),
        inputs.previous.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|c| c.key.as_str())
    .chain(
        resolution
            .retired
            .as_ref()
            .map(crate::secret::ApiKey::as_str),
    )
    .collect();
    let unexplained: Vec<&str> = listed.difference(&declared).copied().collect();
    if listed.len() > 1 && !unexplained.is_empty() {
        out.add(
            Code::MultipleKeys,
            Severity::Warning,
            file(),
            format!(
                "livekit.yaml has {} keys, and no rotation declares {}",
                listed.len(),
                unexplained.join(", ")
            ),
            Some(ENSURE_HINT),
        );
    }
}
