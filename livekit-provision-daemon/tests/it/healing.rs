//! Self-healing through the daemon (issue 22), with the livekit-server STAND-IN (not the real
//! program; e2e/tests/test_healing.py runs the same faults on the real one): a hung server
//! replaced, one left alone with healing off, a crash loop on freshly published files taken
//! back to the files that served.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::support::{Node, alive, call, free_port, livekit_standin, poll};

fn pid(p: u32) -> Pid {
    Pid::from_raw(p.cast_signed())
}

#[test]
fn a_hung_server_is_replaced_and_the_node_serves_again() {
    let mut node = Node::with_media(&livekit_standin());
    node.add_settings("healing:\n  hung_after: 3s\n");
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    // Stopped, as a deadlocked or frozen server: it still holds its port, and the kernel
    // still completes connections into its backlog, but nothing answers.
    kill(pid(first), Signal::SIGSTOP).unwrap();
    let silent = poll("livekit-server reported unresponsive", || {
        let s = node.livekit_status();
        (s["condition"] == "unresponsive").then_some(s)
    });
    assert_eq!(silent["pid"], json!(first), "{silent}");
    assert_eq!(silent["running"], json!(true), "{silent}");
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    assert!(!alive(first), "the hung server is gone");
    let status = node.livekit_status();
    assert_eq!(status["condition"], json!("serving"), "{status}");
    let action = status["healed"]["action"].as_str().unwrap_or_default();
    assert!(
        action.contains(&format!(
            "replaced a hung livekit-server (pid {first} answered nothing for"
        )),
        "{status}"
    );
    assert!(status["healed"]["at"].is_string(), "{status}");
    drop(daemon);
}

#[test]
fn a_server_that_answers_nothing_is_left_alone_with_healing_off() {
    let mut node = Node::with_media(&livekit_standin());
    node.add_settings("healing:\n  hung_after: off\n");
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    kill(pid(first), Signal::SIGSTOP).unwrap();
    poll("livekit-server reported unresponsive", || {
        (node.livekit_status()["condition"] == "unresponsive").then_some(())
    });
    // Past the default `hung_after` (5 s) and a few probes more: still the same process.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let status = node.livekit_status();
    assert_eq!(status["pid"], json!(first), "{status}");
    assert_eq!(status["condition"], json!("unresponsive"), "{status}");
    assert_eq!(status["healed"], json!(null), "{status}");
    kill(pid(first), Signal::SIGCONT).unwrap();
    poll("livekit-server serving again by itself", || {
        (node.livekit_status()["condition"] == "serving").then_some(())
    });
    drop(daemon);
}

/// `provision.yaml` with its `rtc_tcp_port` line replaced.
fn with_rtc_tcp_port(node: &Node, port: u16) {
    let path = node.state.settings_file();
    let text = std::fs::read_to_string(&path).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("rtc_tcp_port:") {
                format!("rtc_tcp_port: {port}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    node.settings(&(text.join("\n") + "\n"));
}

fn live_generation(node: &Node) -> String {
    let target = std::fs::read_link(node.state.root().join("current")).unwrap();
    target.file_name().unwrap().to_str().unwrap().to_owned()
}

fn media(node: &Node) -> Value {
    call(&node.socket(), "status", &json!({})).unwrap()["media"].clone()
}

#[test]
fn a_crash_loop_on_new_files_takes_them_back_until_an_input_changes() {
    let mut node = Node::with_media(&livekit_standin());
    node.env
        .push(("STANDIN_BIND_RTC_TCP".to_owned(), "1".to_owned()));
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    let served = live_generation(&node);
    poll("the generation served on recorded", || {
        let text = std::fs::read_to_string(node.state.run_dir().join("served.json")).ok()?;
        text.contains(&served).then_some(())
    });
    // A port another process holds: it passes every check (livekit-server's own parse too),
    // and the server exits at every start, as livekit-server 1.13.5 does.
    let foreign = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = foreign.local_addr().unwrap().port();
    with_rtc_tcp_port(&node, taken);
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let held = poll("the crash-looping set taken back", || {
        let media = media(&node);
        (!media["held"].is_null()).then_some(media)
    });
    let held = &held["held"];
    assert_eq!(held["served"], json!(served), "{held}");
    let bad = held["generation"].as_str().unwrap().to_owned();
    assert_ne!(bad, served);
    assert!(
        held["reason"].as_str().unwrap().contains(&format!(
            "listen tcp :{taken}: bind: address already in use"
        )),
        "{held}"
    );
    // Serving again, on the files that served; the bad set kept for inspection.
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    let status = node.livekit_status();
    assert_eq!(status["condition"], json!("serving"), "{status}");
    let action = status["healed"]["action"].as_str().unwrap_or_default();
    assert!(
        action.contains(&format!("crash-looped on generation {bad}")),
        "{status}"
    );
    let live = node.state.root().join("livekit.yaml");
    assert!(
        !std::fs::read_to_string(&live)
            .unwrap()
            .contains(&format!("tcp_port: {taken}"))
    );
    let kept = node.state.generations_dir().join(&bad).join("livekit.yaml");
    assert!(
        std::fs::read_to_string(kept)
            .unwrap()
            .contains(&format!("tcp_port: {taken}"))
    );
    // A rerun does not bring the loop back: it says why and publishes nothing.
    let republished = live_generation(&node);
    let report = call(&node.socket(), "ensure", &json!({})).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("held_back"), "{report}");
    assert_eq!(live_generation(&node), republished);
    assert_eq!(node.wait_media_healthy(), second);
    // The operator changes the input: published as usual, the hold ends by itself.
    let fixed = free_port();
    with_rtc_tcp_port(&node, fixed);
    call(&node.socket(), "ensure", &json!({})).unwrap();
    poll("the hold ended", || {
        media(&node)["held"].is_null().then_some(())
    });
    assert_ne!(live_generation(&node), republished);
    assert!(
        std::fs::read_to_string(&live)
            .unwrap()
            .contains(&format!("tcp_port: {fixed}"))
    );
    let third = poll("livekit-server on the fixed port", || {
        let s = node.livekit_status();
        let p = u32::try_from(s["pid"].as_u64()?).ok()?;
        (p != second && s["condition"] == "serving").then_some(p)
    });
    node.media_pids.push(third);
    drop(foreign);
    drop(daemon);
}

#[test]
fn with_the_store_away_the_media_run_on_and_all_converges_when_it_returns() {
    use crate::redis_server::{RedisConfig, RedisServer};
    let dir = tempfile::tempdir().unwrap();
    let config = RedisConfig {
        appendonly: true,
        ..RedisConfig::default()
    };
    let mut redis = RedisServer::start(&dir.path().join("redis"), &config);
    let url = redis.url("", "/0");
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&["--secrets", &url]);
    call(
        &node.socket(),
        "secrets.set",
        &json!({"name": "LIVEKIT_VERSION", "value": "1.7.2"}),
    )
    .unwrap();
    let server = node.wait_media_healthy();
    let key = |node: &Node| {
        let text = std::fs::read_to_string(node.state.root().join("livekit.yaml")).unwrap();
        text.lines()
            .skip_while(|l| !l.starts_with("keys:"))
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let before = key(&node);
    let status = call(&node.socket(), "status", &json!({})).unwrap();
    assert_eq!(
        status["store"]["reachable"],
        json!(true),
        "{}",
        status["store"]
    );

    redis.stop();
    // A provisioning run now (as any change or retry would make one) finds the store away.
    let _ = call(&node.socket(), "ensure", &json!({}));
    let away = poll("the store reported unreachable", || {
        let status = call(&node.socket(), "status", &json!({})).ok()?;
        (status["store"]["reachable"] == json!(false)).then_some(status)
    });
    assert!(
        away["store"]["unreachable_since"].is_string(),
        "{}",
        away["store"]
    );
    assert!(away["store"]["error"].is_string(), "{}", away["store"]);
    // The media run on, untouched, on the files last published; nothing minted or rotated.
    let media = node.livekit_status();
    assert_eq!(media["pid"], json!(server), "{media}");
    assert_eq!(media["condition"], json!("serving"), "{media}");
    assert_eq!(key(&node), before);

    redis.restart();
    let url_again = redis.url("", "/0");
    assert_eq!(url_again, url, "redis came back on another port");
    let back = poll("the store reachable again, provisioning converged", || {
        let status = call(&node.socket(), "status", &json!({})).ok()?;
        (status["store"]["reachable"] == json!(true)
            && status["provisioning"]["state"] == json!("ready"))
        .then_some(status)
    });
    assert!(back["store"]["last_ok"].is_string(), "{}", back["store"]);
    assert_eq!(node.livekit_status()["pid"], json!(server));
    assert_eq!(key(&node), before, "a key was minted or rotated");
    drop(daemon);
}

/// A /32 address on `lo` for the life of the guard (removed on drop, also after a failure).
struct LoopbackAlias(String);

impl LoopbackAlias {
    fn add(ip: &str) -> Self {
        ip_addr("add", ip);
        Self(ip.to_owned())
    }
}

impl Drop for LoopbackAlias {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
            .output();
    }
}

fn ip_addr(verb: &str, ip: &str) {
    let out = std::process::Command::new("ip")
        .args(["addr", verb, &format!("{ip}/32"), "dev", "lo"])
        .output()
        .unwrap_or_else(|e| panic!("`ip` (iproute2) is needed to add and remove an address: {e}"));
    assert!(
        out.status.success(),
        "ip addr {verb} {ip}/32 dev lo: {} (this test needs root with CAP_NET_ADMIN)",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_advertised_address_that_leaves_the_machine_is_reported_loudly() {
    // One address per test process, out of the way of real networks (RFC 5737 TEST-NET-3).
    let ip = format!("203.0.113.{}", 1 + std::process::id() % 250);
    let alias = LoopbackAlias::add(&ip);
    let mut node = Node::with_media(&livekit_standin());
    node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2", "LIVEKIT_NODE_IP": ip }));
    let daemon = node.start(&[]);
    let server = node.wait_media_healthy();
    // Seen on an interface first (looked for every 2 s), so that it counts as gone after.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(node.livekit_status()["alert"], json!(null));
    ip_addr("del", &ip);
    let gone = poll("the gone address alerted", || {
        let s = node.livekit_status();
        s["alert"].as_str().map(str::to_owned)
    });
    assert!(
        gone.contains(&format!("it advertises {ip} (rtc.node_ip)")),
        "{gone}"
    );
    assert!(gone.contains("LIVEKIT_NODE_IP"), "{gone}");
    assert!(
        daemon
            .stderr()
            .contains("is on no interface of this machine any more")
    );
    // No restart heals it, so none is made.
    assert_eq!(node.livekit_status()["pid"], json!(server));
    ip_addr("add", &ip);
    poll("the alert cleared once the address is back", || {
        node.livekit_status()["alert"].is_null().then_some(())
    });
    drop(daemon);
    drop(alias);
}

/// A small tmpfs over a directory for the life of the guard (lazily unmounted on drop, also
/// after a failure).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("`mount` is needed to give the state directory a small disk: {e}")
            });
        assert!(
            out.status.success(),
            "mount -t tmpfs on {}: {} (this test needs root with CAP_SYS_ADMIN)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_owned())
    }

    /// Fill it: one file written until the disk refuses (`ENOSPC`).
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // Also the last few bytes.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .output();
    }
}

#[test]
fn a_full_disk_tears_nothing_and_the_node_recovers_when_space_returns() {
    let mut node = Node::with_media(&livekit_standin());
    let root = node.state.root().to_owned();
    let keep: Vec<(std::path::PathBuf, Vec<u8>)> = ["provision.yaml", "secrets.json"]
        .iter()
        .map(|f| (root.join(f), std::fs::read(root.join(f)).unwrap()))
        .collect();
    let disk = SmallDisk::mount(&root, "4m");
    for (path, bytes) in &keep {
        std::fs::write(path, bytes).unwrap();
    }
    node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2" }));
    let daemon = node.start(&[]);
    let server = node.wait_media_healthy();
    let live = root.join("livekit.yaml");
    let before = std::fs::read_to_string(&live).unwrap();
    let generation = live_generation(&node);
    // A change to publish, then no space left for it.
    node.add_settings("log_level: debug\n");
    let filler = disk.fill();
    let refused = call(&node.socket(), "ensure", &json!({})).unwrap_err();
    assert!(
        refused.to_string().contains("No space left on device"),
        "{refused}"
    );
    // Nothing torn: the live set is the one before, whole; the media untouched; the daemon
    // answers and says why.
    assert_eq!(std::fs::read_to_string(&live).unwrap(), before);
    assert_eq!(live_generation(&node), generation);
    let status = call(&node.socket(), "status", &json!({})).unwrap();
    assert_eq!(status["provisioning"]["state"], json!("failed"), "{status}");
    assert!(
        status["provisioning"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("No space left on device"),
        "{}",
        status["provisioning"]
    );
    assert_eq!(node.livekit_status()["pid"], json!(server));
    // Space returns: the daemon retries by itself and publishes; the change applies at idle.
    std::fs::remove_file(filler).unwrap();
    poll("the change published once space returned", || {
        (live_generation(&node) != generation).then_some(())
    });
    assert!(
        std::fs::read_to_string(&live)
            .unwrap()
            .contains("level: debug")
    );
    let next = poll("livekit-server on the new files", || {
        let s = node.livekit_status();
        let p = u32::try_from(s["pid"].as_u64()?).ok()?;
        (p != server && s["condition"] == "serving").then_some(p)
    });
    node.media_pids.push(next);
    let status = call(&node.socket(), "status", &json!({})).unwrap();
    assert_eq!(status["provisioning"]["state"], json!("ready"), "{status}");
    drop(daemon);
    // The media first (they hold their log open on the small disk), then the disk.
    for pid in std::mem::take(&mut node.media_pids) {
        let _ = kill(Pid::from_raw(pid.cast_signed()), Signal::SIGKILL);
    }
    drop(disk);
}
