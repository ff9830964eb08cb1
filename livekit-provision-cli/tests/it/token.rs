//! `token`: a LiveKit access token signed with the provisioned credentials.

use std::time::SystemTime;

use livekit_provision::Secret;
use livekit_provision::token::verify;

use livekit_provision_daemon::protocol::TokenCreateResult;

use crate::support::Node;

#[test]
fn token_verifies_with_the_provisioned_credentials() {
    let node = Node::converged();
    let out = node
        .run(&["token", "--identity", "alice", "--room", "r1"])
        .ok();
    let token = out.stdout.trim_end();
    assert_eq!(token.split('.').count(), 3, "{out}");
    let (key, secret) = node.triple().consistent();
    let claims = verify(
        token,
        |k| (k == key).then(|| Secret::new(secret.clone())),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(claims.iss, key);
    assert_eq!(claims.sub, "alice");
    let video = claims.video.unwrap();
    assert_eq!(video.room.as_deref(), Some("r1"));
    assert_eq!(video.room_join, Some(true));
    // The wire format uses LiveKit's camelCase names.
    let claims: serde_json::Value = serde_json::to_value(
        verify(
            token,
            |_| Some(Secret::new(secret.clone())),
            SystemTime::now(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["video"]["roomJoin"], true, "{claims}");
    // Signed with another secret, it is refused.
    assert!(
        verify(
            token,
            |_| Some(Secret::new("x".repeat(43))),
            SystemTime::now()
        )
        .is_err()
    );
}

#[test]
fn token_on_an_unprovisioned_node_says_to_run_ensure() {
    let node = Node::new();
    let out = node
        .run(&["token", "--identity", "alice", "--room", "r1"])
        .expect_code(1);
    assert!(out.stderr.starts_with("error: "), "{out}");
    assert!(
        out.stderr.contains("hint: run `livekit-provision ensure`"),
        "{out}"
    );
    assert_eq!(out.stdout, "");
    assert!(
        node.state.symlink_metadata().is_err(),
        "token created the state dir"
    );
}

#[test]
fn a_zero_ttl_is_refused() {
    let node = Node::converged();
    let out = node
        .run(&[
            "token",
            "--identity",
            "alice",
            "--room",
            "r1",
            "--ttl",
            "0s",
        ])
        .expect_code(1);
    assert!(out.stderr.contains("0s"), "{out}");
    assert!(out.stderr.contains("hint: "), "{out}");
    assert_eq!(out.stdout, "");
}

#[test]
fn a_token_needs_a_room_or_admin() {
    let node = Node::converged();
    let out = node.run(&["token", "--identity", "alice"]).expect_code(1);
    assert!(out.stderr.contains("hint: pass --room"), "{out}");
}

#[test]
fn token_json_is_the_rpc_token_create_result() {
    let node = Node::converged();
    let out = node
        .run(&["--json", "token", "--identity", "alice", "--room", "r1"])
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // The daemon's `token.create` result, key for key: read as that type and written back, the
    // same document.
    let result: TokenCreateResult = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&result).unwrap(), value, "{out}");
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["api_key", "expires_at", "identity", "token"],
        "{out}"
    );
    let (key, secret) = node.triple().consistent();
    assert_eq!(result.api_key, key);
    assert_eq!(result.identity, "alice");
    let claims = verify(
        &result.token,
        |k| (k == key).then(|| Secret::new(secret.clone())),
        SystemTime::now(),
    )
    .unwrap();
    // `expires_at` is the token's `exp`, as RFC 3339.
    let expires = humantime::parse_rfc3339(&result.expires_at).unwrap();
    assert_eq!(
        expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        claims.exp,
        "{out}"
    );
}
