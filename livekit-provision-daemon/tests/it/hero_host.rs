//! The Hero host example (`livekit-provision-daemon/examples/hero_host.rs`), run in-process: a
//! host with its own socket, its own JSON-RPC and its own store, serving our methods under
//! `livekit.` through `ControlPlane` — no `run/rpc.sock`. The media are the livekit-server
//! STAND-IN (not the real program).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use livekit_provision::Secret;
use livekit_provision::store::{SecretName, SecretStore};
use livekit_provision_daemon::ClientError;
use livekit_provision_daemon::protocol::{METHOD_NOT_FOUND, METHODS, NOT_PROVISIONED};
use serde_json::{Value, json};

use crate::support::{Node, alive, call, cli, livekit_standin, poll};

#[path = "../../examples/hero_host.rs"]
#[expect(dead_code, reason = "the example's `main` is not called here")]
mod example;

/// The example host serving `node`'s state directory from `store`, on its own runtime.
struct Host {
    runtime: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<Result<(), example::HostError>>,
    stop: tokio::sync::oneshot::Sender<()>,
    socket: PathBuf,
}

impl Host {
    fn start(node: &Node, store: &Arc<example::HashMapStore>, media_env: &[(&str, &str)]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let socket = node.dir.path().join("hero_livekit.sock");
        let shared: Arc<dyn SecretStore> = store.clone();
        let config = example::HostConfig {
            socket: socket.clone(),
            state: node.state.clone(),
            store: shared,
            media_env: media_env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(example::serve(config, async {
            let _ = stopped.await;
        }));
        let answered = || call(&socket, "host.ping", &json!({})).ok();
        poll("the host's socket", answered);
        Self {
            runtime,
            task,
            stop,
            socket,
        }
    }

    /// Shut the host down with its own signal and wait for it.
    fn stop(self) {
        let _ = self.stop.send(());
        self.runtime.block_on(self.task).unwrap().unwrap();
    }

    fn call(&self, method: &str, params: &Value) -> Result<Value, ClientError> {
        call(&self.socket, method, params)
    }

    fn status(&self) -> Value {
        self.call("livekit.status", &json!({})).unwrap()
    }

    /// livekit-server's entry of `livekit.status`, once listed.
    fn livekit(&self) -> Value {
        poll("livekit-server listed", || {
            self.status()["media"]["processes"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "livekit-server")
                .cloned()
        })
    }

    /// Wait until provisioning is ready and livekit-server healthy; its pid.
    fn wait_healthy(&self) -> u32 {
        poll("ready, livekit-server healthy", || {
            let status = self.status();
            let p = self.livekit();
            (status["provisioning"]["state"] == "ready" && p["healthy"] == true)
                .then(|| u32::try_from(p["pid"].as_u64()?).ok())
                .flatten()
        })
    }
}

/// The names in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The code and hint of an error answer.
fn rpc_error(result: Result<Value, ClientError>) -> (i64, String, Option<String>) {
    match result {
        Err(ClientError::Rpc {
            code,
            message,
            hint,
            ..
        }) => (code, message, hint),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// A livekit_bin that writes its environment to `dump`, then becomes the stand-in.
fn env_dumping_server(dir: &Path, dump: &Path) -> PathBuf {
    let wrapper = dir.join("livekit-server");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nenv > '{}'\nexec '{}' \"$@\"\n",
            dump.display(),
            livekit_standin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

#[test]
fn a_host_serves_our_methods_under_its_prefix_and_provisions_only_once_a_version_is_set() {
    let scratch = tempfile::tempdir().unwrap();
    let dump = scratch.path().join("media.env");
    let mut node = Node::with_media(&env_dumping_server(scratch.path(), &dump));
    // The host's store holds everything: no file store, and no version yet.
    std::fs::remove_file(node.state.secrets_file()).unwrap();
    let store = Arc::new(example::HashMapStore::default());
    let host = Host::start(
        &node,
        &store,
        &[
            ("PATH", "/usr/bin:/bin"),
            ("HERO_MARKER", "from-the-host"),
            ("LIVEKIT_KEYS", "stray: variable"),
        ],
    );

    // The seed's gate: no LIVEKIT_VERSION, so nothing at all is provisioned, and status says so.
    let status = poll("the first run to finish", || {
        let s = host.status();
        (s["provisioning"]["state"] == "disabled").then_some(s)
    });
    let reason = status["provisioning"]["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("LIVEKIT_VERSION"), "{reason}");
    assert!(reason.contains("nothing is minted"), "{reason}");
    let hint = status["provisioning"]["hint"].as_str().unwrap();
    assert!(hint.contains("secrets.set"), "{hint}");
    assert!(
        store.get(&SecretName::LIVEKIT_API_KEY).unwrap().is_none(),
        "nothing minted"
    );
    assert_eq!(
        names(node.state.root()),
        BTreeSet::from(["provision.yaml".to_owned(), "run".to_owned()]),
        "nothing written but the instance lock (provision.yaml is the test's)"
    );
    assert_eq!(
        names(&node.state.run_dir()),
        BTreeSet::from(["daemon.lock".to_owned()])
    );
    let (code, _, hint) = rpc_error(host.call("livekit.ensure", &json!({})));
    assert_eq!(code, NOT_PROVISIONED);
    assert!(hint.unwrap_or_default().contains("LIVEKIT_VERSION"));

    // Our methods, under the host's prefix, beside the host's own; discovery names them so.
    assert_eq!(host.call("host.ping", &json!({})).unwrap(), json!("pong"));
    let doc = host.call("livekit.rpc.discover", &json!({})).unwrap();
    let served: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    let expected: Vec<String> = METHODS.iter().map(|m| format!("livekit.{m}")).collect();
    assert_eq!(served, expected);
    let (code, message, _) = rpc_error(host.call("livekit.no.such", &json!({})));
    assert_eq!(code, METHOD_NOT_FOUND);
    assert!(message.contains("\"no.such\""), "our name: {message}");

    // The host opts in through our method; the next run provisions into the host's store.
    let set = host
        .call(
            "livekit.secrets.set",
            &json!({"name": "LIVEKIT_VERSION", "value": "1.7.2"}),
        )
        .unwrap();
    assert_eq!(set["provisioning_scheduled"], true, "{set}");
    let pid = host.wait_healthy();
    node.media_pids.push(pid);
    let key = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    let token = host
        .call(
            "livekit.token.create",
            &json!({"identity": "alice", "room": "standup"}),
        )
        .unwrap();
    assert_eq!(token["api_key"], key.expose());

    // The media saw the environment the host chose, cleaned of what overrides livekit.yaml.
    let env = std::fs::read_to_string(&dump).unwrap();
    let vars: BTreeSet<&str> = env.lines().collect();
    assert!(vars.contains("HERO_MARKER=from-the-host"), "{env}");
    assert!(vars.contains("PATH=/usr/bin:/bin"), "{env}");
    assert!(!env.contains("LIVEKIT_KEYS"), "{env}");

    // No second socket, ever; the host's own is removed at its shutdown; the media live on.
    assert!(!node.state.rpc_socket().exists());
    let socket = host.socket.clone();
    host.stop();
    assert!(!socket.exists());
    assert!(alive(pid), "the media outlive the host");
}

#[test]
fn media_stopped_through_the_host_stay_down_when_the_host_restarts() {
    let mut node = Node::with_media(&livekit_standin());
    std::fs::remove_file(node.state.secrets_file()).unwrap();
    let store = Arc::new(example::HashMapStore::default());
    store
        .set(&SecretName::LIVEKIT_VERSION, &Secret::new("1.7.2"))
        .unwrap();
    let env = [("PATH", "/usr/bin:/bin")];
    let host = Host::start(&node, &store, &env);
    let first = host.wait_healthy();
    node.media_pids.push(first);
    let stopped = host
        .call("livekit.stop", &json!({"grace_secs": 1}))
        .unwrap();
    let outcome = &stopped["stopped"]["livekit-server"];
    assert!(outcome.is_string() && outcome != "NotRunning", "{stopped}");
    assert!(!alive(first));
    host.stop();

    // A new host: its first run finishes without starting them, and says why.
    let host = Host::start(&node, &store, &env);
    let status = poll("the first run after the restart", || {
        let s = host.status();
        (s["provisioning"]["state"] == "ready").then_some(s)
    });
    assert_eq!(status["media"]["stopped_on_purpose"], true, "{status}");
    assert!(status["media"]["stopped_since"].is_string(), "{status}");
    assert_eq!(host.livekit()["running"], false);

    // The CLI does not act beside a control plane a host embeds: it names the host.
    let out = std::process::Command::new(cli())
        .arg("--state-dir")
        .arg(node.state.root())
        .arg("start")
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("embedded in a host service"), "{stderr}");
    assert!(stderr.contains("livekit.start"), "{stderr}");
    assert_eq!(host.livekit()["running"], false);

    // `start` ends the hold.
    host.call("livekit.start", &json!({})).unwrap();
    let second = host.wait_healthy();
    node.media_pids.push(second);
    assert_ne!(second, first);
    assert_eq!(host.status()["media"]["stopped_on_purpose"], false);
    host.stop();
}
