//! `token.create`: an access token signed with the credentials the three files agree on.

use crate::protocol::{RpcError, TokenCreateParams, TokenCreateResult};
use crate::shared::Shared;

pub(super) fn create(
    shared: &Shared,
    params: &TokenCreateParams,
) -> Result<TokenCreateResult, RpcError> {
    let request = params.request()?;
    TokenCreateResult::mint(&shared.config.state, request, (shared.config.clock)())
        .map_err(|e| RpcError::from(&e))
}
