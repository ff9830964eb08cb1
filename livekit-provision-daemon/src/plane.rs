//! The control plane as a host mounts it: the loop without our socket ([`ControlLoop`]) and a
//! cloneable handle that answers our methods ([`ControlPlane`]), so a host serves them on its
//! own RPC server, under its own prefix, with no second socket.
//!
//! The handle answers through the dispatcher the socket uses (`methods::dispatch`): the same
//! method names, parameters, results and errors, byte for byte once serialized.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::protocol::{Method, OpenRpcDocument, RpcError};
use crate::shared::{Event, Shared};
use crate::{DaemonConfig, DaemonError, InstanceLock, controller, lock_instance, methods, rpc};
use livekit_provision::StateDir;

/// A handle on a running control plane, for a host that serves its methods itself.
///
/// Built with its loop by [`ControlPlane::new`]; clone it into every request handler. The
/// **prefixing contract**: the host mounts our methods under a prefix of its own (say
/// `livekit.`), strips it from an incoming method name and passes the rest to [`call`]
/// (`livekit.token.create` → `call("token.create", params)`); the answer, result or error, is
/// exactly what our socket would answer, and error messages name our methods unprefixed. For
/// discovery, answer `<prefix>rpc.discover` with [`discover`]`(prefix)`, the document with every
/// method named as the host serves it (`call("rpc.discover", …)` gives our socket's document).
///
/// [`call`]: ControlPlane::call
/// [`discover`]: ControlPlane::discover
#[derive(Clone)]
pub struct ControlPlane {
    shared: Arc<Shared>,
}

/// The control loop of a [`ControlPlane`]: it provisions in the background, starts the media
/// that are down and watches them. Nothing happens until [`run`](ControlLoop::run) is polled
/// (spawn it on the host's runtime). It holds the state directory's instance lock until it
/// returns.
#[must_use = "the control plane provisions nothing until its loop runs"]
pub struct ControlLoop {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    instance: InstanceLock,
}

impl ControlPlane {
    /// A control plane for `config.state`, without a socket: the handle, and the loop to run.
    ///
    /// Takes the state directory's instance lock (`run/daemon.lock`: one control plane per
    /// state directory, daemon or host), held by the [`ControlLoop`] until its `run` returns;
    /// a daemon already serving the directory is [`DaemonError::AlreadyRunning`]. Nothing else
    /// is written here. Must be called within a tokio runtime (it panics otherwise, as
    /// `tokio::spawn` does): the media's exit watches run on it.
    pub fn new(config: DaemonConfig) -> Result<(Self, ControlLoop), DaemonError> {
        let instance = lock_instance(&config.state)?;
        let (shared, events) = controller::prepare(config);
        let plane = Self {
            shared: Arc::clone(&shared),
        };
        Ok((
            plane,
            ControlLoop {
                shared,
                events,
                instance,
            },
        ))
    }

    /// Answer `method` (our name: `status`, `token.create`, `rpc.discover`…) with `params` (an
    /// object; `null` for none), as the socket would: its result, or its [`RpcError`]
    /// (`-32601` for an unknown method, `-32602` for bad parameters, …). Blocking work runs on
    /// the runtime's blocking pool. Once the loop has returned (or if it was dropped without
    /// running), every call is a `-32000` error saying so.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        if self.shared.events.is_closed() {
            return Err(not_running());
        }
        let params = rpc::params_object(Some(params))?;
        methods::dispatch(&self.shared, method, params).await
    }

    /// [`call`](ControlPlane::call) typed: method `M` (e.g.
    /// [`Status`](crate::protocol::Status)) with its parameters, its result type.
    pub async fn request<M: Method>(&self, params: &M::Params) -> Result<M::Result, RpcError> {
        let params = serde_json::to_value(params).map_err(|e| {
            RpcError::invalid_params(format!("the params of {} do not serialize: {e}", M::NAME))
        })?;
        let result = self.call(M::NAME, params).await?;
        serde_json::from_value(result).map_err(|e| {
            RpcError::server(
                format!(
                    "internal error: the result of {} does not fit its type: {e}",
                    M::NAME
                ),
                None,
            )
        })
    }

    /// Provision now (after the run in flight, if any), as SIGHUP does for the daemon; `false`
    /// when the loop is not running.
    pub fn reload(&self) -> bool {
        self.shared.events.send(Event::Ensure(None)).is_ok()
    }

    /// The OpenRPC document of our methods, each named `prefix` + its name as the host serves
    /// it (`livekit.status` for `"livekit."`); `""` gives the socket's document.
    pub fn discover(&self, prefix: &str) -> OpenRpcDocument {
        crate::openrpc::document_with_prefix(prefix)
    }

    /// The state directory this control plane supervises.
    pub fn state(&self) -> &StateDir {
        &self.shared.config.state
    }
}

impl ControlLoop {
    /// Run the loop until `shutdown` completes: provisioning runs, media starts and restarts.
    /// Returns `Ok(())` on shutdown, releasing the instance lock; the media keep running (a
    /// new control plane adopts them). Handles answer every call with an error afterwards.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let Self {
            shared,
            events,
            instance,
        } = self;
        let result = controller::run(shared, events, None, None, shutdown).await;
        drop(instance);
        result
    }
}

/// The answer of a handle whose loop is not running.
fn not_running() -> RpcError {
    RpcError::server(
        "the control plane is not running (its loop returned, or was never run)",
        Some("run the ControlLoop that ControlPlane::new returned".to_owned()),
    )
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("state", &self.shared.config.state)
            .field("store", &self.shared.config.store.describe())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ControlLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlLoop")
            .field("state", &self.shared.config.state)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}
