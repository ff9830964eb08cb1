//! One client connection: read request lines (at most [`MAX_LINE`] bytes each), answer each in
//! order, and the methods themselves.

use std::sync::Arc;
use std::sync::TryLockError;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::controller::{Event, Shared, chain, livekit_yaml_digest, lock};
use super::media::{self, MediaFailure};
use super::rpc::{
    self, INVALID_REQUEST, MAX_LINE, METHOD_NOT_FOUND, NOT_PROVISIONED, Request, RpcError,
};
use super::status::rfc3339;
use crate::check::{CheckOptions, check};
use crate::config::OperatorConfig;
use crate::paths::ManagedFile;
use crate::token::{self, TokenRequest, VideoGrants};
use crate::triple::DiskTriple;
use crate::validate::TokenLimits;

/// Serve one connection until the client closes it, sends an oversized line, or fails.
pub(super) async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.len() > MAX_LINE {
            let error = RpcError::new(
                INVALID_REQUEST,
                format!("request line longer than {MAX_LINE} bytes; closing the connection"),
            );
            let _ = write
                .write_all(&rpc::response_line(&Value::Null, Err(error)))
                .await;
            let _ = write.shutdown().await;
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            if complete {
                continue;
            }
            return;
        }
        let answer = match rpc::parse_request(&line) {
            Ok(request) => {
                let id = request.id.clone();
                let result = dispatch(&shared, request).await;
                id.map(|id| rpc::response_line(&id, result))
            }
            Err((id, error)) => Some(rpc::response_line(&id, Err(error))),
        };
        if let Some(answer) = answer
            && write.write_all(&answer).await.is_err()
        {
            return;
        }
        if !complete {
            return;
        }
    }
}

async fn dispatch(shared: &Arc<Shared>, request: Request) -> Result<Value, RpcError> {
    let Request { method, params, .. } = request;
    match method.as_str() {
        "status" => {
            no_params(&params)?;
            blocking(shared, |s| Ok(status(s))).await
        }
        "ensure" => {
            no_params(&params)?;
            let (tx, rx) = oneshot::channel();
            shared
                .events
                .send(Event::Ensure(Some(tx)))
                .map_err(|_| shutting_down())?;
            let report = rx.await.map_err(|_| shutting_down())??;
            serde_json::to_value(&report).map_err(internal)
        }
        "check" => {
            no_params(&params)?;
            blocking(shared, check_now).await
        }
        "health" => {
            no_params(&params)?;
            blocking(shared, |s| Ok(health(s))).await
        }
        "start" => {
            no_params(&params)?;
            blocking(shared, start).await
        }
        "stop" | "restart" => {
            let grace = grace(&params)?.unwrap_or(shared.config.stop_grace);
            let restart = method == "restart";
            blocking(shared, move |s| stop(s, grace, restart)).await
        }
        "token.create" => {
            let request = token_request(params)?;
            blocking(shared, move |s| create_token(s, &request)).await
        }
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "no method {method:?}; methods: status, ensure, check, health, start, stop, restart, token.create"
            ),
        )),
    }
}

async fn blocking<F>(shared: &Arc<Shared>, f: F) -> Result<Value, RpcError>
where
    F: FnOnce(&Shared) -> Result<Value, RpcError> + Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || f(&shared))
        .await
        .map_err(internal)?
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::server(format!("internal error: {e}"), None)
}

fn shutting_down() -> RpcError {
    RpcError::server("the daemon is shutting down", None)
}

fn no_params(params: &Map<String, Value>) -> Result<(), RpcError> {
    match params.keys().next() {
        Some(key) => Err(RpcError::invalid_params(format!(
            "unknown parameter {key:?}: this method takes none"
        ))),
        None => Ok(()),
    }
}

fn unknown_params(params: &Map<String, Value>, known: &[&str]) -> Result<(), RpcError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(RpcError::invalid_params(format!(
            "unknown parameter {key:?}; known: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn grace(params: &Map<String, Value>) -> Result<Option<Duration>, RpcError> {
    unknown_params(params, &["grace_secs"])?;
    match params.get("grace_secs") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| {
                RpcError::invalid_params("grace_secs must be a number of seconds from 0 to 3600")
            }),
    }
}

fn status(shared: &Shared) -> Value {
    let now = (shared.config.clock)();
    let provisioning = lock(&shared.status).clone();
    let media = match shared.media.try_lock() {
        Ok(mut media) => {
            let list = media.statuses();
            drop(media);
            lock(&shared.media_cache).clone_from(&list);
            json!({ "busy": false, "processes": list })
        }
        Err(TryLockError::Poisoned(p)) => {
            let list = p.into_inner().statuses();
            json!({ "busy": false, "processes": list })
        }
        Err(TryLockError::WouldBlock) => {
            json!({ "busy": true, "processes": lock(&shared.media_cache).clone() })
        }
    };
    let installed = crate::fetch::installed(&shared.config.state)
        .ok()
        .flatten()
        .map(|b| b.version.to_string());
    json!({
        "state_dir": shared.config.state.root(),
        "pid": std::process::id(),
        "now": rfc3339(now),
        "provisioning": provisioning.to_json(now),
        "version": { "pinned": provisioning.pinned_version, "installed": installed },
        "media": media,
    })
}

fn check_now(shared: &Shared) -> Result<Value, RpcError> {
    let config = &shared.config;
    let store = config.store_spec.open();
    if let Err(e) = &store {
        tracing::warn!(error = %e, "check without the secret store");
    }
    let report = check(
        &config.state,
        store.as_ref().ok().map(AsRef::as_ref),
        &CheckOptions {
            now: (config.clock)(),
            local_addresses: (config.local_addresses)(),
            verify_binary: true,
        },
    );
    serde_json::to_value(&report).map_err(internal)
}

fn health(shared: &Shared) -> Value {
    let in_memory = lock(&shared.published).clone();
    let on_disk = livekit_yaml_digest(shared);
    json!({
        "config": shared.config.state.managed(ManagedFile::LivekitYaml),
        "in_memory": in_memory,
        "on_disk": on_disk,
        "in_sync": in_memory.is_some() && in_memory == on_disk,
    })
}

fn media_error(f: MediaFailure) -> RpcError {
    RpcError::server(f.message, f.hint)
}

fn start(shared: &Shared) -> Result<Value, RpcError> {
    let config = &shared.config;
    let settings = OperatorConfig::load(&config.state)
        .map_err(|e| RpcError::server(chain(&e), e.hint()))?
        .settings;
    let program = media::livekit_program(&config.state, &settings, &config.binary, None)
        .ok_or_else(|| {
            RpcError::new(NOT_PROVISIONED, "livekit-server is not installed").with_hint(Some(
                "set LIVEKIT_VERSION (or livekit_bin in provision.yaml) and wait for `status` to say ready"
                    .to_owned(),
            ))
        })?;
    let specs = media::specs(&config.state, &settings, program);
    let mut media = lock(&shared.media);
    let pass = media.start(&specs);
    if let Some(first) = pass.failures.into_iter().next() {
        return Err(media_error(first));
    }
    let list = media.statuses();
    drop(media);
    *lock(&shared.published) = livekit_yaml_digest(shared);
    Ok(json!({ "processes": list }))
}

fn stop(shared: &Shared, grace: Duration, restart: bool) -> Result<Value, RpcError> {
    let stopped = lock(&shared.media).stop(grace).map_err(media_error)?;
    if restart {
        let mut started = start(shared)?;
        if let Value::Object(map) = &mut started {
            map.insert("stopped".to_owned(), stopped);
        }
        return Ok(started);
    }
    let list = lock(&shared.media).statuses();
    Ok(json!({ "stopped": stopped, "processes": list }))
}

/// A parsed `token.create` call.
#[derive(Debug)]
struct TokenCall {
    request: TokenRequest,
}

fn token_request(mut params: Map<String, Value>) -> Result<TokenCall, RpcError> {
    unknown_params(
        &params,
        &[
            "identity", "room", "ttl", "name", "metadata", "grants", "admin",
        ],
    )?;
    let mut string = |key: &str| -> Result<Option<String>, RpcError> {
        match params.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::invalid_params(format!("{key} must be a string"))),
        }
    };
    let identity =
        string("identity")?.ok_or_else(|| RpcError::invalid_params("identity is required"))?;
    let room = string("room")?;
    let name = string("name")?;
    let metadata = string("metadata")?;
    let ttl = match params.remove("ttl") {
        None | Some(Value::Null) => token::DEFAULT_TTL,
        Some(Value::String(text)) => humantime::parse_duration(&text).map_err(|e| {
            RpcError::invalid_params(format!("ttl {text:?} is not a duration: {e}"))
        })?,
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| RpcError::invalid_params("ttl must be whole seconds or a duration"))?,
        Some(_) => {
            return Err(RpcError::invalid_params(
                "ttl must be a duration such as \"6h\" or seconds",
            ));
        }
    };
    let admin = match params.remove("admin") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(RpcError::invalid_params("admin must be true or false")),
    };
    let grants = match params.remove("grants") {
        None | Some(Value::Null) if admin => VideoGrants::admin(),
        None | Some(Value::Null) => match &room {
            Some(room) => VideoGrants::join(room.clone()),
            None => {
                return Err(RpcError::invalid_params(
                    "give a room to join, grants, or admin: true",
                ));
            }
        },
        Some(value) => serde_json::from_value(value)
            .map_err(|e| RpcError::invalid_params(format!("invalid grants: {e}")))?,
    };
    let mut request = TokenRequest::new(identity, grants);
    request.room = room;
    request.name = name;
    request.metadata = metadata;
    request.ttl = ttl;
    Ok(TokenCall { request })
}

fn create_token(shared: &Shared, call: &TokenCall) -> Result<Value, RpcError> {
    let disk = DiskTriple::read(&shared.config.state);
    let mut request = call.request.clone();
    request.limits = disk
        .livekit_yaml
        .valid()
        .map(TokenLimits::of_livekit_yaml)
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
        _ => RpcError::server(chain(&e), e.hint()),
    })?;
    Ok(json!({
        "token": token,
        "api_key": creds.key.as_str(),
        "identity": call.request.identity,
        "expires_at": rfc3339(now + call.request.ttl),
    }))
}
