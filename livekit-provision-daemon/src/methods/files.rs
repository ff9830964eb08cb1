//! `render` and `logs.tail`: the files `ensure` would write, and the media logs.

use crate::supervise::MEDIA;

/// How many lines `logs.tail` returns when the call does not say.
const DEFAULT_LOG_LINES: usize = 100;

use super::{admin_failed, store};
use crate::protocol::{LogsTailParams, LogsTailResult, MAX_LOG_LINES, RenderResult, RpcError};
use crate::shared::Shared;

pub(super) fn render(shared: &Shared) -> Result<RenderResult, RpcError> {
    let config = &shared.config;
    let store = store(shared)?;
    livekit_provision::admin::preview(
        &config.state,
        store.as_ref(),
        &(config.local_addresses)(),
        (config.clock)(),
        false,
    )
    .map(RenderResult::from)
    .map_err(|e| admin_failed(&e))
}

pub(super) fn logs_tail(
    shared: &Shared,
    params: &LogsTailParams,
) -> Result<LogsTailResult, RpcError> {
    if !MEDIA.contains(&params.name.as_str()) {
        return Err(RpcError::invalid_params(format!(
            "name {:?} is not a media process ({})",
            params.name,
            MEDIA.join(", ")
        )));
    }
    let lines = params.lines.unwrap_or(DEFAULT_LOG_LINES);
    if !(1..=MAX_LOG_LINES).contains(&lines) {
        return Err(RpcError::invalid_params(format!(
            "lines must be from 1 to {MAX_LOG_LINES}"
        )));
    }
    let path = shared.config.state.log_file(&params.name);
    let lines = match crate::supervise::log_tail(&path, lines) {
        Ok(lines) => lines,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(RpcError::server(
                format!("cannot read {}: {e}", path.display()),
                None,
            ));
        }
    };
    Ok(LogsTailResult {
        name: params.name.clone(),
        path,
        lines,
    })
}
