//! Secret stores other than the default file: an `exec:` helper (git-credential style).

use std::os::unix::fs::PermissionsExt;

use crate::support::Node;

/// A helper keeping one file per name under `<dir>/store`, logging its arguments.
const HELPER: &str = r#"#!/bin/sh
dir="$(dirname "$0")/store"; mkdir -p "$dir"
echo "$@" >> "$(dirname "$0")/argv.log"
case "$1" in
get) [ -f "$dir/$2" ] || exit 3; cat "$dir/$2";;
add) [ -f "$dir/$2" ] && exit 4; cat > "$dir/$2";;
set) cat > "$dir/$2";;
*) exit 2;;
esac
"#;

#[test]
fn an_exec_helper_store_holds_the_minted_credentials() {
    let node = Node::new();
    let dir = node.tmp.path().join("helper");
    std::fs::create_dir(&dir).unwrap();
    let helper = dir.join("helper");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = format!("exec:{}", helper.display());

    let out = node.run(&["--secrets", &spec, "ensure"]).ok();
    assert!(
        out.stdout.contains(&format!("and its secret in {spec}")),
        "{out}"
    );
    assert!(node.path("secrets.json").symlink_metadata().is_err());
    let stored = |name: &str| {
        std::fs::read_to_string(dir.join("store").join(name))
            .unwrap()
            .trim_end()
            .to_owned()
    };
    let (key, secret) = node.triple().consistent();
    assert_eq!(
        (stored("LIVEKIT_API_KEY"), stored("LIVEKIT_API_SECRET")),
        (key, secret.clone())
    );
    // The secret travels on stdin, never in the helper's arguments.
    let argv = std::fs::read_to_string(dir.join("argv.log")).unwrap();
    assert!(argv.contains("add LIVEKIT_API_SECRET"), "{argv}");
    assert!(!argv.contains(&secret), "{argv}");

    let before = node.listing();
    let out = node.run(&["--secrets", &spec, "ensure"]).ok();
    assert!(out.stdout.starts_with("nothing to do:"), "{out}");
    assert_eq!(node.listing(), before);
    let out = node
        .run(&["--secrets", &spec, "secrets", "get", "LIVEKIT_API_SECRET"])
        .ok();
    assert_eq!(out.stdout.trim_end(), secret);
    // The spec also comes from the environment.
    let mut cmd = node.cmd(&["check"]);
    cmd.env("LIVEKIT_PROVISION_SECRETS", &spec);
    crate::support::finish(cmd.spawn().unwrap()).ok();
}
