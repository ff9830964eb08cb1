//! The daemon's JSON-RPC methods, one file per family: `status.rs` (`status`, `health`,
//! `check`), `media.rs` (`start`, `stop`, `restart`), `token.rs` (`token.create`), `secrets.rs`
//! (`secrets.list`, `secrets.set`, `secrets.rotate`), `release.rs` (`install`, `rollback`) and
//! `files.rs` (`render`, `logs.tail`); `ensure` and `rpc.discover` are answered here. Each
//! method's parameters and result are the types of [`protocol`](super::protocol); blocking work
//! runs on tokio's blocking pool, so a slow method never stalls the socket.

mod files;
mod media;
mod release;
mod secrets;
mod status;
mod token;

use std::sync::Arc;

use livekit_provision::Hint;
use livekit_provision::admin::AdminError;
use livekit_provision::store::SecretStore;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::keeper::MediaFailure;
use super::protocol::{
    self, Check, Discover, Ensure, Health, Install, LogsTail, METHOD_NOT_FOUND, Method, NoParams,
    Render, Restart, Rollback, RpcError, SecretsList, SecretsRotate, SecretsSet, Start, Status,
    Stop, TokenCreate,
};
use super::shared::{Event, Shared};

/// Answer `method` with `params`: the one dispatcher behind the socket
/// ([`connection`](super::connection)) and a host's [`ControlPlane`](crate::ControlPlane).
pub(super) async fn dispatch(
    shared: &Arc<Shared>,
    method: &str,
    params: Map<String, Value>,
) -> Result<Value, RpcError> {
    match method {
        Status::NAME => {
            answer::<Status>(shared, params, |s, NoParams {}| Ok(status::status(s))).await
        }
        Ensure::NAME => {
            // Not on the blocking pool: the loop runs it, after the run in flight.
            let NoParams {} = parse_params::<<Ensure as Method>::Params>(params)?;
            let (tx, rx) = oneshot::channel();
            shared
                .events
                .send(Event::Ensure(Some(tx)))
                .map_err(|_| shutting_down())?;
            let report: <Ensure as Method>::Result = rx.await.map_err(|_| shutting_down())??;
            to_result(&report)
        }
        Check::NAME => {
            answer::<Check>(shared, params, |s, NoParams {}| Ok(status::check_now(s))).await
        }
        Health::NAME => {
            answer::<Health>(shared, params, |s, NoParams {}| Ok(status::health(s))).await
        }
        Start::NAME => answer::<Start>(shared, params, |s, NoParams {}| media::start(s)).await,
        Stop::NAME => answer::<Stop>(shared, params, |s, p| media::stop(s, &p, false)).await,
        Restart::NAME => answer::<Restart>(shared, params, |s, p| media::stop(s, &p, true)).await,
        TokenCreate::NAME => {
            answer::<TokenCreate>(shared, params, |s, p| token::create(s, &p)).await
        }
        SecretsList::NAME => {
            answer::<SecretsList>(shared, params, |s, NoParams {}| secrets::list(s)).await
        }
        SecretsSet::NAME => answer::<SecretsSet>(shared, params, |s, p| secrets::set(s, &p)).await,
        SecretsRotate::NAME => {
            answer::<SecretsRotate>(shared, params, |s, p| secrets::rotate(s, &p)).await
        }
        Install::NAME => answer::<Install>(shared, params, |s, p| release::install(s, &p)).await,
        Rollback::NAME => {
            answer::<Rollback>(shared, params, |s, NoParams {}| release::rollback(s)).await
        }
        Render::NAME => answer::<Render>(shared, params, |s, NoParams {}| files::render(s)).await,
        LogsTail::NAME => answer::<LogsTail>(shared, params, |s, p| files::logs_tail(s, &p)).await,
        Discover::NAME => {
            let NoParams {} = parse_params::<<Discover as Method>::Params>(params)?;
            to_result(crate::openrpc::document())
        }
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "no method {method:?}; methods: {}",
                protocol::METHODS.join(", ")
            ),
        )),
    }
}

/// Parse `M`'s parameters, run `f` on the blocking pool, serialize its result.
pub(super) async fn answer<M: Method>(
    shared: &Arc<Shared>,
    params: Map<String, Value>,
    f: impl FnOnce(&Shared, M::Params) -> Result<M::Result, RpcError> + Send + 'static,
) -> Result<Value, RpcError>
where
    M::Params: Send + 'static,
    M::Result: Send + 'static,
{
    let params = parse_params::<M::Params>(params)?;
    let shared = Arc::clone(shared);
    let result = tokio::task::spawn_blocking(move || f(&shared, params))
        .await
        .map_err(internal)??;
    to_result(&result)
}

/// Typed parameters, or `-32602` naming the parameter that is wrong (`identity: invalid type:
/// integer `5`, expected a string`): serde alone names the expected type, not the field.
pub(super) fn parse_params<P: DeserializeOwned>(params: Map<String, Value>) -> Result<P, RpcError> {
    serde_path_to_error::deserialize(Value::Object(params)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." {
            format!("invalid params: {inner}")
        } else {
            format!("invalid params: {path}: {inner}")
        };
        RpcError::invalid_params(message)
    })
}

pub(super) fn to_result(result: &impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(internal)
}

pub(super) fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::server(format!("internal error: {e}"), None)
}

pub(super) fn shutting_down() -> RpcError {
    RpcError::server("the daemon is shutting down", None)
}

pub(super) fn media_error(f: MediaFailure) -> RpcError {
    RpcError::server(f.message, f.hint)
}

pub(super) fn store(shared: &Shared) -> Result<std::sync::Arc<dyn SecretStore>, RpcError> {
    shared
        .config
        .store
        .open()
        .map_err(|e| RpcError::from_error(&e))
}

pub(super) fn failed(e: &impl livekit_provision::Hint) -> RpcError {
    RpcError::from_error(e)
}

/// The daemon waits for another writer of the state directory; it says so in its log.
pub(super) fn lock_wait(pid: Option<u32>) {
    tracing::info!(?pid, "waiting for another writer of the state directory");
}

/// Bad input is "invalid params"; a failure of the node or its store is a server error.
pub(super) fn admin_failed(e: &AdminError) -> RpcError {
    if e.is_bad_input() {
        RpcError::invalid_params(e.to_string()).with_hint(e.hint())
    } else {
        RpcError::from_error(e)
    }
}

/// Ask the loop for a provisioning run (it applies what was just stored).
pub(super) fn schedule_run(shared: &Shared) -> bool {
    shared.events.send(Event::Ensure(None)).is_ok()
}
