//! One result per operation: what the CLI prints with `--json` for an operation the RPC has too
//! is that method's result type, key for key, whichever door it came through — `token` and
//! `token.create`, `install` and `rollback`, `secrets rotate`, `render`, `secrets list`. (The
//! CLI acts here without the daemon: only `secrets rotate` asks it for a run.)

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use livekit_provision_daemon::protocol::{
    InstallResult, InstallVerdict, RenderResult, RollbackResult, RotateResult, SecretsListResult,
    TokenCreateResult,
};

use crate::status_shape::{cli_json, shape_differences};
use crate::support::{Node, call, poll, provisioning};
use crate::upgrade::{NEW, mirrored_node};

/// `value` read as `T` and written back is `value` again: it has exactly `T`'s keys, with
/// `T`'s value types (no key added or dropped by hand). The typed value.
#[track_caller]
fn exactly<T: Serialize + DeserializeOwned>(door: &str, value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!(
            "{door}: not a {}: {e}\n{value:#}",
            std::any::type_name::<T>()
        )
    });
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        value,
        "{door}: more or other keys than {}",
        std::any::type_name::<T>()
    );
    typed
}

/// `cli` and `rpc` have one shape (see [`shape_differences`]).
#[track_caller]
fn same_shape(what: &str, cli: &Value, rpc: &Value) {
    let mut differences = Vec::new();
    shape_differences("$", cli, rpc, &mut differences);
    assert!(
        differences.is_empty(),
        "{what}: {differences:#?}\nCLI: {cli:#}\nRPC: {rpc:#}"
    );
}

/// The daemon's first run has published the files.
fn provisioned(node: &Node) {
    poll("the first run to finish", || {
        let state = provisioning(&node.socket())["state"].clone();
        (state == json!("ready") || state == json!("disabled")).then_some(())
    });
}

#[test]
fn token_json_is_the_token_create_result() {
    let node = Node::new();
    let daemon = node.start(&[]);
    provisioned(&node);
    let rpc = call(
        &node.socket(),
        "token.create",
        &json!({"identity": "alice", "room": "r1"}),
    )
    .unwrap();
    let cli = cli_json(&node, &["token", "--identity", "alice", "--room", "r1"]);
    let rpc: TokenCreateResult = exactly("token.create", &rpc);
    let cli_result: TokenCreateResult = exactly("token --json", &cli);
    same_shape("token", &cli, &serde_json::to_value(&rpc).unwrap());
    assert_eq!(cli_result.api_key, rpc.api_key);
    assert_eq!(cli_result.identity, "alice");
    // Both times are RFC 3339.
    for expires_at in [&cli_result.expires_at, &rpc.expires_at] {
        assert!(humantime::parse_rfc3339(expires_at).is_ok(), "{expires_at}");
    }
    drop(daemon);
}

#[test]
fn install_and_rollback_json_are_the_rpc_results() {
    let (_mirror, url, node, daemon) = mirrored_node();
    poll("the pinned version installed", || {
        (provisioning(&node.socket())["state"] == "ready").then_some(())
    });
    // RPC: a download of NEW.
    let rpc = call(&node.socket(), "install", &json!({ "version": NEW })).unwrap();
    let rpc_result: InstallResult = exactly("install (RPC)", &rpc);
    assert_eq!(rpc_result.outcome, InstallVerdict::Installed, "{rpc}");
    // CLI: back to the version kept on disk, then the same again. The words are the RPC's.
    let back = cli_json(
        &node,
        &["--release-url", &url, "install", "--version", "1.7.2"],
    );
    let back_result: InstallResult = exactly("install --json", &back);
    assert_eq!(back_result.outcome, InstallVerdict::Reactivated, "{back}");
    assert_eq!(back["outcome"], json!("reactivated"), "{back}");
    let again = cli_json(
        &node,
        &["--release-url", &url, "install", "--version", "1.7.2"],
    );
    assert_eq!(again["outcome"], json!("already_installed"), "{again}");
    exactly::<InstallResult>("install --json", &again);
    same_shape("install", &back, &rpc);
    same_shape("install", &again, &rpc);

    // rollback: the CLI's (1.7.2 -> NEW) and the RPC's (NEW -> 1.7.2).
    let cli = cli_json(&node, &["rollback"]);
    let cli_result: RollbackResult = exactly("rollback --json", &cli);
    assert_eq!(
        (cli_result.from.as_str(), cli_result.to.as_str()),
        ("1.7.2", NEW)
    );
    let rpc = call(&node.socket(), "rollback", &json!({})).unwrap();
    exactly::<RollbackResult>("rollback (RPC)", &rpc);
    same_shape("rollback", &cli, &rpc);
    drop(daemon);
}

#[test]
fn rotate_render_and_secrets_list_json_are_the_rpc_results() {
    let node = Node::new();
    let daemon = node.start(&[]);
    provisioned(&node);

    let rpc = call(&node.socket(), "secrets.rotate", &json!({"grace": "1h"})).unwrap();
    let cli = cli_json(&node, &["secrets", "rotate", "--grace", "1h", "--yes"]);
    let rpc_result: RotateResult = exactly("secrets.rotate", &rpc);
    let cli_result: RotateResult = exactly("secrets rotate --json", &cli);
    // The daemon schedules its run; the CLI ran one and reports it (and the daemon ran too).
    assert!(rpc_result.ensure.is_none(), "{rpc}");
    assert!(cli_result.ensure.is_some(), "{cli}");
    assert!(cli_result.provisioning_scheduled, "{cli}");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&cli), keys(&rpc));
    // The RPC staged a key; the CLI's rerun found it staged and minted nothing.
    assert_eq!(rpc["action"], json!("staged"), "{rpc}");
    assert_eq!(cli["action"], json!("already_staged"), "{cli}");
    assert!(rpc_result.staged_key.is_some(), "{rpc}");
    assert_eq!(cli_result.staged_key, rpc_result.staged_key);
    assert_eq!(cli_result.current_key, rpc_result.current_key);
    for epoch in [&cli["epoch"], &rpc["epoch"]] {
        assert_eq!(epoch["phase"], json!("staged"), "{epoch}");
        assert_eq!(epoch["grace_secs"], json!(3600), "{epoch}");
    }

    let rpc = call(&node.socket(), "render", &json!({})).unwrap();
    let cli = cli_json(&node, &["render"]);
    exactly::<RenderResult>("render --json", &cli);
    same_shape("render", &cli, &rpc);

    let rpc = call(&node.socket(), "secrets.list", &json!({})).unwrap();
    let cli = cli_json(&node, &["secrets", "list"]);
    exactly::<SecretsListResult>("secrets list --json", &cli);
    same_shape("secrets list", &cli, &rpc);
    drop(daemon);
}
