//! `token.create`: an access token signed with the credentials the three files agree on.

use livekit_provision::token;
use livekit_provision::{DiskTriple, ErrorReport, Hint};

use crate::protocol::{NOT_PROVISIONED, RpcError, TokenCreateParams, TokenCreateResult};
use crate::shared::Shared;
use crate::status::rfc3339;

pub(super) fn create(
    shared: &Shared,
    params: &TokenCreateParams,
) -> Result<TokenCreateResult, RpcError> {
    let mut request = params.request()?;
    let disk = DiskTriple::read(&shared.config.state);
    // The limits of the livekit.yaml the server runs with: a token it would refuse at join
    // is refused here.
    request.limits = disk
        .livekit_yaml
        .valid()
        .map(livekit_provision::LivekitYaml::token_limits)
        .unwrap_or_default();
    let creds = disk.consistent_credentials().ok_or_else(|| {
        RpcError::new(
            NOT_PROVISIONED,
            "the node has no consistent credentials on disk yet",
        )
        .with_hint(Some(
            "wait for provisioning (`status`), or run `livekit-provision check`".to_owned(),
        ))
    })?;
    let now = (shared.config.clock)();
    let token = token::mint(&creds, &request, now).map_err(|e| match e {
        token::TokenError::InvalidIdentity { .. }
        | token::TokenError::InvalidRoom { .. }
        | token::TokenError::InvalidTtl { .. } => {
            RpcError::invalid_params(e.to_string()).with_hint(e.hint())
        }
        _ => RpcError::from_report(&ErrorReport::of(&e)),
    })?;
    Ok(TokenCreateResult {
        token,
        api_key: creds.key.as_str().to_owned(),
        identity: request.identity,
        expires_at: rfc3339(now + request.ttl),
    })
}
