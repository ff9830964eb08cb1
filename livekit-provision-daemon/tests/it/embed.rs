//! The embedding example (`livekit-provision-daemon/examples/embed.rs`), driven in-process: the daemon's
//! loop inside the test's own runtime, with the example's in-process store and its own shutdown
//! signal, over stand-in media.

use std::sync::Arc;
use std::time::SystemTime;

use livekit_provision::store::{SecretName, SecretStore};
use livekit_provision::{Secret, token};
use livekit_provision_daemon::ProvisionState;

use crate::support::{Node, alive, livekit_standin};

#[path = "../../examples/embed.rs"]
#[expect(dead_code, reason = "the example's `main` is not called here")]
mod example;

#[test]
fn the_embedding_example_serves_from_its_own_store_and_leaves_the_media_running() {
    let mut node = Node::with_media(&livekit_standin());
    // The node's file store is not used: the host's store holds everything.
    std::fs::remove_file(node.state.secrets_file()).unwrap();
    let store = Arc::new(example::HashMapStore::default());
    store
        .set(&SecretName::LIVEKIT_VERSION, &Secret::new("1.7.2"))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared: Arc<dyn SecretStore> = store.clone();
    let seen = runtime
        .block_on(example::demo(node.state.clone(), shared))
        .unwrap();
    drop(runtime);

    let media = seen
        .status
        .media
        .processes
        .iter()
        .find(|p| p.status.name == "livekit-server")
        .unwrap();
    let pid = media.status.pid.unwrap();
    node.media_pids.push(pid);
    assert_eq!(
        seen.status.provisioning.state,
        ProvisionState::Ready,
        "{:?}",
        seen.status.provisioning
    );
    assert!(media.status.running && media.status.healthy, "{media:?}");

    // The credentials were minted into the host's store, and the token is signed with them.
    let key = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    let secret = store.get(&SecretName::LIVEKIT_API_SECRET).unwrap().unwrap();
    assert_eq!(seen.token.api_key, key.expose());
    let claims = token::verify(
        &seen.token.token,
        |k| (k == key.expose()).then(|| secret.clone()),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(claims.sub, "demo-user");
    assert!(
        !node.state.secrets_file().exists(),
        "the file store was never touched"
    );

    // The loop returned on the host's signal: the socket is gone, the media are untouched.
    assert!(!node.socket().exists());
    assert!(alive(pid), "the media outlive the embedded daemon");
}
