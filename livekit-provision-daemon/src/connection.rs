//! One client connection: read request lines (at most [`MAX_LINE`] bytes each), answer each in
//! order, and the methods themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::admin;
use super::keeper::{self, MediaFailure};
use super::protocol::{
    self, Check, Discover, Ensure, Health, HealthResult, INVALID_REQUEST, Install, LogsTail,
    METHOD_NOT_FOUND, Method, NOT_PROVISIONED, NoParams, Render, Restart, Rollback, RpcError,
    SecretsList, SecretsRotate, SecretsSet, Start, StartResult, Status, StatusResult, Stop,
    StopParams, StopResult, TokenCreate, TokenCreateParams, TokenCreateResult, VersionReport,
};
use super::rpc::{self, MAX_LINE, Request};
use super::shared::{Event, Shared, livekit_yaml_digest, lock, media_report};
use super::status::{installed_version, rfc3339};
use livekit_provision::DiskTriple;
use livekit_provision::ErrorReport;
use livekit_provision::Hint;
use livekit_provision::LivekitYaml;
use livekit_provision::ManagedFile;
use livekit_provision::OperatorConfig;
use livekit_provision::check::{CheckOptions, CheckReport, check};
use livekit_provision::token;

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
        Status::NAME => answer::<Status>(shared, params, |s, NoParams {}| Ok(status(s))).await,
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
        Check::NAME => answer::<Check>(shared, params, |s, NoParams {}| Ok(check_now(s))).await,
        Health::NAME => answer::<Health>(shared, params, |s, NoParams {}| Ok(health(s))).await,
        Start::NAME => answer::<Start>(shared, params, |s, NoParams {}| start(s)).await,
        Stop::NAME => answer::<Stop>(shared, params, |s, p| stop(s, &p, false)).await,
        Restart::NAME => answer::<Restart>(shared, params, |s, p| stop(s, &p, true)).await,
        TokenCreate::NAME => {
            answer::<TokenCreate>(shared, params, |s, p| create_token(s, &p)).await
        }
        SecretsList::NAME => {
            answer::<SecretsList>(shared, params, |s, NoParams {}| admin::secrets_list(s)).await
        }
        SecretsSet::NAME => {
            answer::<SecretsSet>(shared, params, |s, p| admin::secrets_set(s, &p)).await
        }
        SecretsRotate::NAME => {
            answer::<SecretsRotate>(shared, params, |s, p| admin::secrets_rotate(s, &p)).await
        }
        Install::NAME => answer::<Install>(shared, params, |s, p| admin::install(s, &p)).await,
        Rollback::NAME => {
            answer::<Rollback>(shared, params, |s, NoParams {}| admin::rollback(s)).await
        }
        Render::NAME => answer::<Render>(shared, params, |s, NoParams {}| admin::render(s)).await,
        LogsTail::NAME => answer::<LogsTail>(shared, params, |s, p| admin::logs_tail(s, &p)).await,
        Discover::NAME => {
            let NoParams {} = parse_params::<<Discover as Method>::Params>(params)?;
            to_result(super::openrpc::document())
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
async fn answer<M: Method>(
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
fn parse_params<P: DeserializeOwned>(params: Map<String, Value>) -> Result<P, RpcError> {
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

fn to_result(result: &impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::server(format!("internal error: {e}"), None)
}

fn shutting_down() -> RpcError {
    RpcError::server("the daemon is shutting down", None)
}

fn status(shared: &Shared) -> StatusResult {
    let now = (shared.config.clock)();
    let provisioning = lock(&shared.status).clone();
    let media = media_report(shared);
    let mut report = provisioning.report(now);
    report.progress = shared.progress.get();
    StatusResult {
        daemon: true,
        state_dir: shared.config.state.root().to_owned(),
        pid: Some(std::process::id()),
        now: rfc3339(now),
        provisioning: report,
        version: VersionReport {
            pinned: provisioning.pinned_version,
            installed: installed_version(&shared.config.state),
        },
        media,
    }
}

fn check_now(shared: &Shared) -> CheckReport {
    let config = &shared.config;
    let store = config.store.open();
    if let Err(e) = &store {
        tracing::warn!(error = %livekit_provision::one_line(e), "check without the secret store");
    }
    check(
        &config.state,
        store.as_ref().ok().map(AsRef::as_ref),
        &CheckOptions {
            now: (config.clock)(),
            local_addresses: (config.local_addresses)(),
            verify_binary: true,
            livekit_bin: config.binary.livekit_bin.clone(),
        },
    )
}

fn health(shared: &Shared) -> HealthResult {
    let in_memory = lock(&shared.published).clone();
    let on_disk = livekit_yaml_digest(shared);
    let restart_reasons: BTreeMap<String, Vec<String>> = media_report(shared)
        .processes
        .into_iter()
        .filter(|p| !p.restart_reasons.is_empty())
        .map(|p| (p.status.name, p.restart_reasons))
        .collect();
    HealthResult {
        config: shared.config.state.managed(ManagedFile::LivekitYaml),
        in_sync: in_memory.is_some() && in_memory == on_disk,
        in_memory,
        on_disk,
        restart_pending: !restart_reasons.is_empty(),
        restart_reasons,
    }
}

fn media_error(f: MediaFailure) -> RpcError {
    RpcError::server(f.message, f.hint)
}

fn start(shared: &Shared) -> Result<StartResult, RpcError> {
    let config = &shared.config;
    let settings = OperatorConfig::load(&config.state)
        .map_err(|e| RpcError::from_error(&e))?
        .settings;
    let program = keeper::livekit_program(&config.state, &settings, &config.binary, None)
        .ok_or_else(|| {
            RpcError::new(NOT_PROVISIONED, "livekit-server is not installed").with_hint(Some(
                "set LIVEKIT_VERSION (or livekit_bin in provision.yaml) and wait for `status` to say ready"
                    .to_owned(),
            ))
        })?;
    let specs = keeper::specs(&config.state, &settings, program);
    let mut media = lock(&shared.media);
    let pass = media.start(&specs);
    if let Some(first) = pass.failures.into_iter().next() {
        return Err(media_error(first));
    }
    let processes = media.statuses();
    drop(media);
    *lock(&shared.published) = livekit_yaml_digest(shared);
    Ok(StartResult { processes })
}

fn stop(shared: &Shared, params: &StopParams, restart: bool) -> Result<StopResult, RpcError> {
    let grace = params.grace()?.unwrap_or(shared.config.stop_grace);
    let stopped = lock(&shared.media).stop(grace).map_err(media_error)?;
    let processes = if restart {
        start(shared)?.processes
    } else {
        lock(&shared.media).statuses()
    };
    Ok(StopResult { stopped, processes })
}

fn create_token(
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
        .map(LivekitYaml::token_limits)
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
