//! Shared fixtures for the benchmarks: typical render inputs, and a converged state directory.
//!
//! Fixtures panic on failure: a benchmark cannot run without them.
#![expect(
    clippy::expect_used,
    reason = "fixtures are valid by construction; a failure to build one aborts the benchmark"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use livekit_provision::BinaryOptions;
use livekit_provision::inputs::RenderInputs;
use livekit_provision::store::{FileStore, MemoryStore};
use livekit_provision::{
    ApiKey, CheckOptions, Credentials, EnsureOptions, EnsureReport, ExtraOverlay, LivekitVersion,
    Secret, SecretName, SecretStore, Settings, StateDir, ensure,
};

/// A fake secret of the length livekit-server's `generate-keys` mints.
pub const FAKE_SECRET: &str = "fakeSecretForBenchmarksOnly0123456789abcde";

/// The current key and secret of the fixtures.
pub fn credentials() -> Credentials {
    Credentials {
        key: ApiKey::new("APIfakeKey12345").expect("valid key"),
        secret: Secret::api_secret(FAKE_SECRET).expect("valid secret"),
    }
}

/// A single node as most operators run it: default ports, a pinned version, no Redis, a small
/// `extra.yaml`.
pub fn typical_inputs() -> RenderInputs {
    RenderInputs {
        credentials: credentials(),
        previous: None,
        next: None,
        node_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        node_ip6: None,
        version: Some(LivekitVersion::parse("v1.7.2").expect("valid version")),
        settings: Settings::default(),
        redis: None,
        extra: ExtraOverlay::parse(
            "room:\n  empty_timeout: 600\n  enabled_codecs:\n    - mime: audio/opus\n    - mime: video/VP8\nrtc:\n  use_ice_lite: true\n",
        )
        .expect("valid overlay"),
        sqlite_path: "/var/lib/livekit-provision/backend.sqlite".into(),
        turn_certificate: None,
        prometheus_password: None,
    }
}

/// A state directory that `ensure` has already converged, with the secret store it was
/// converged from. No `LIVEKIT_VERSION` is stored, so nothing is ever downloaded.
#[derive(Debug)]
pub struct ConvergedNode {
    /// The state directory (inside [`ConvergedNode::dir`]).
    pub state: StateDir,
    /// The secret store.
    pub store: Box<dyn SecretStore>,
    /// Removes the directory when dropped.
    pub dir: tempfile::TempDir,
}

impl ConvergedNode {
    /// Create the directory with an in-memory store, run `ensure` once, and check that a second
    /// run changes nothing.
    pub fn new() -> Self {
        Self::converged(|_| Box::new(MemoryStore::new()))
    }

    /// The same with the default store: `secrets.json` in the state directory.
    pub fn with_file_store() -> Self {
        Self::converged(|state| Box::new(FileStore::new(state.secrets_file())))
    }

    /// With a `tls:` section: `wss://` from the operator's certificate files, TURN/TLS loading
    /// the same certificate (the certificate step and its TURN digest run on every `ensure`).
    pub fn with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::converged_with(
            |_| Box::new(MemoryStore::new()),
            |state| {
                let dir = state.root();
                livekit_provision::write_atomically(&dir.join("c.pem"), cert_pem.as_bytes(), 0o644)
                    .expect("cert");
                livekit_provision::write_atomically(&dir.join("k.pem"), key_pem.as_bytes(), 0o600)
                    .expect("key");
                let yaml = format!(
                    "tls:\n  domain: lk.example.com\n  turn_domain: turn.example.com\n  port: 18443\n  http_port: 18080\n  cert_file: {0}/c.pem\n  key_file: {0}/k.pem\nturn:\n  enabled: true\n  tls_port: 15349\n",
                    dir.display()
                );
                livekit_provision::write_atomically(&state.settings_file(), yaml.as_bytes(), 0o644)
                    .expect("provision.yaml");
            },
        )
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    fn converged(store: impl FnOnce(&StateDir) -> Box<dyn SecretStore>) -> Self {
        Self::converged_with(store, |_| {})
    }

    fn converged_with(
        store: impl FnOnce(&StateDir) -> Box<dyn SecretStore>,
        prepare: impl FnOnce(&StateDir),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path().join("state"));
        livekit_provision::fsio::create_private_dir(state.root(), true).expect("state dir");
        prepare(&state);
        let store = store(&state);
        let creds = credentials();
        for (name, value) in [
            (SecretName::LIVEKIT_API_KEY, Secret::new(creds.key.as_str())),
            (SecretName::LIVEKIT_API_SECRET, creds.secret.clone()),
            (SecretName::LIVEKIT_NODE_IP, Secret::new("127.0.0.1")),
        ] {
            store.set(&name, &value).expect("store");
        }
        let node = Self { state, store, dir };
        let first = node.ensure();
        assert!(!first.is_noop(), "the first run writes the files");
        let second = node.ensure();
        assert!(second.is_noop(), "not converged: {:?}", second.actions);
        node
    }

    /// One in-process `ensure` run (a no-op once converged).
    pub fn ensure(&self) -> EnsureReport {
        ensure(&self.state, self.store.as_ref(), &ensure_options()).expect("ensure")
    }

    /// One `check` run with the store (no binary to verify).
    pub fn check(&self) -> livekit_provision::CheckReport {
        livekit_provision::check(&self.state, Some(self.store.as_ref()), &check_options())
    }
}

impl Default for ConvergedNode {
    fn default() -> Self {
        Self::new()
    }
}

/// `ensure` options of the fixtures: offline (nothing is pinned anyway), no local addresses.
pub fn ensure_options() -> EnsureOptions<'static> {
    EnsureOptions {
        now: SystemTime::now(),
        binary: BinaryOptions {
            offline: true,
            ..BinaryOptions::default()
        },
        ..EnsureOptions::default()
    }
}

/// `check` options of the fixtures.
pub fn check_options() -> CheckOptions {
    CheckOptions {
        now: SystemTime::now(),
        local_addresses: Vec::new(),
        verify_binary: false,
        ..CheckOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converged_nodes_are_healthy_and_stay_converged() {
        for node in [ConvergedNode::new(), ConvergedNode::with_file_store()] {
            let report = node.check();
            assert!(report.healthy, "{:?}", report.findings);
            assert!(node.ensure().is_noop());
        }
    }

    #[test]
    fn typical_inputs_render_and_parse_back() {
        let inputs = typical_inputs();
        let rendered = livekit_provision::render::render(&inputs);
        let parsed = livekit_provision::render::ParsedFiles::parse(&rendered).unwrap();
        assert_eq!(parsed, livekit_provision::render::expected(&inputs));
    }
}
