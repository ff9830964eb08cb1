//! Helpers: run the `livekit-provision` binary against a temporary state directory, read what it
//! wrote, list the state directory, and build `file://` release mirrors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_livekit-provision");

/// What a finished run printed, and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panic with everything printed unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// `expect_code(0)`.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary node: HOME and the state directory live in one temp dir.
#[derive(Debug)]
pub struct Node {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
}

impl Node {
    /// A node whose state directory does not exist yet.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("home")).unwrap();
        let state = tmp.path().join("state");
        Self { tmp, state }
    }

    /// A node on which `ensure` has run once (converged, control plane only).
    pub fn converged() -> Self {
        let node = Self::new();
        node.run(&["ensure"]).ok();
        node
    }

    /// The command line `livekit-provision --state-dir <state> ARGS`, with a clean environment
    /// (only PATH kept; HOME inside the temp dir): no `LIVEKIT_*`, `XDG_STATE_HOME`, `RUST_LOG`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path().join("home"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Run to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        output(self.cmd(args))
    }

    /// Run with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Out {
        let mut cmd = self.cmd(args);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        finish(child)
    }

    /// A path inside the state directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.state.join(rel)
    }

    /// A file of the state directory as text.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// The file store's contents.
    pub fn store(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.read("secrets.json")).unwrap()
    }

    /// The stored API secret.
    pub fn secret(&self) -> String {
        self.store()["LIVEKIT_API_SECRET"].clone()
    }

    /// The stored API key.
    pub fn key(&self) -> String {
        self.store()["LIVEKIT_API_KEY"].clone()
    }

    /// The credentials each of the three files names (panics when a file is malformed).
    pub fn triple(&self) -> Triple {
        let runtime: serde_json::Value = serde_json::from_str(&self.read("runtime.json")).unwrap();
        let env = self.read("backend.env");
        let env_var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("backend.env lacks {name}"))
                .to_owned()
        };
        Triple {
            runtime: (
                runtime["api_key"].as_str().unwrap().to_owned(),
                runtime["api_secret"].as_str().unwrap().to_owned(),
            ),
            backend: (env_var("LIVEKIT_API_KEY"), env_var("LIVEKIT_API_SECRET")),
            yaml_keys: self.yaml_keys(),
        }
    }

    /// `livekit.yaml`'s `keys:` map.
    pub fn yaml_keys(&self) -> BTreeMap<String, String> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&self.read("livekit.yaml")).unwrap();
        serde_yaml::from_value(yaml["keys"].clone()).unwrap()
    }

    /// A recursive listing of the state directory: path, type, mode, inode, size, mtime and
    /// ctime in nanoseconds, symlink target. `run/lock` is included: taking the lock writes
    /// nothing to it, so a no-op run leaves the whole listing as it was.
    pub fn listing(&self) -> Vec<String> {
        let mut rows = Vec::new();
        if self.state.symlink_metadata().is_ok() {
            list_into(&self.state, &self.state, &mut rows);
        }
        rows.sort();
        rows
    }

    /// insta settings redacting this node's temp path, API keys, the stored secret and
    /// generation numbers.
    pub fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.add_filter(
            &regex_escape(&self.tmp.path().display().to_string()),
            "[TMP]",
        );
        if let Ok(secret) = std::fs::read_to_string(self.path("secrets.json"))
            .map_err(drop)
            .and_then(|t| serde_json::from_str::<BTreeMap<String, String>>(&t).map_err(drop))
            .and_then(|m| m.get("LIVEKIT_API_SECRET").cloned().ok_or(()))
        {
            s.add_filter(&regex_escape(&secret), "[SECRET]");
        }
        s.add_filter("API[0-9A-Za-z]{12}", "[KEY]");
        s.add_filter(r"\b\d{10}\b", "[GEN]");
        s
    }
}

/// The credentials of the three managed files.
#[derive(Debug)]
pub struct Triple {
    pub runtime: (String, String),
    pub backend: (String, String),
    pub yaml_keys: BTreeMap<String, String>,
}

impl Triple {
    /// Assert the three agree on one pair and return it.
    #[track_caller]
    pub fn consistent(&self) -> (String, String) {
        assert_eq!(self.runtime, self.backend, "{self:?}");
        assert_eq!(self.yaml_keys.len(), 1, "{self:?}");
        let (k, s) = self.yaml_keys.iter().next().unwrap();
        assert_eq!((k, s), (&self.runtime.0, &self.runtime.1), "{self:?}");
        self.runtime.clone()
    }
}

fn list_into(root: &Path, dir: &Path, rows: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = path.symlink_metadata().unwrap();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let kind = if meta.is_symlink() {
            format!("-> {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            "dir".to_owned()
        } else {
            "file".to_owned()
        };
        let mut row = format!(
            "{rel} {kind} mode={:o} ino={} size={} mtime={}.{} ctime={}.{}",
            meta.mode(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        if meta.is_file() {
            let _ = write!(
                row,
                " sha256={}",
                hex(&Sha256::digest(std::fs::read(&path).unwrap()))
            );
        }
        rows.push(row);
        if meta.is_dir() {
            list_into(root, &path, rows);
        }
    }
}

/// Wait for a spawned command and collect its output.
pub fn finish(mut child: Child) -> Out {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut err_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        err_pipe.read_to_string(&mut s).unwrap();
        s
    });
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    stderr.push_str(&reader.join().unwrap());
    let status = child.wait().unwrap();
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

fn output(mut cmd: Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Run `cmd`, whose program was just written. Such a file can be "busy" (ETXTBSY) for a moment:
/// a process forked meanwhile by another test of this binary holds it open until its exec.
/// That is retried (up to a minute); any other error fails.
pub fn output_of_fresh_binary(cmd: &mut Command) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cmd.output() {
            Ok(out) => return out,
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("running {cmd:?}: {e}"),
        }
    }
}

/// Poll `cond` until it holds, or panic after `timeout` naming `what`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process killed (by pid) and reaped when dropped.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut acc, c| {
        if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
            acc.push(c);
        } else {
            acc.push('\\');
            acc.push(c);
        }
        acc
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut acc, b| {
        let _ = write!(acc, "{b:02x}");
        acc
    })
}

/// The release asset arch of this machine, as livekit names it.
pub fn asset_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "armv7",
        _ => "amd64",
    }
}

/// A stand-in `livekit-server` (a shell script that answers `--version`, and accepts any config
/// in ensure's pre-check `--config FILE ports`; tests only).
pub fn stand_in_script(version: &str) -> String {
    format!(
        "#!/bin/sh\n# stand-in for livekit-server (tests only)\nif [ \"$1\" = \"--version\" ]; then echo \"livekit-server version {version}\"; fi\n# `ports` (the config pre-check) answers as livekit-server does for a config it accepts.\nif [ \"$1\" = \"ports\" ]; then echo \"TCP Ports\"; fi\n"
    )
}

/// A gzip tarball holding `livekit-server` (the stand-in) and `LICENSE` at top level.
pub fn release_tarball(version: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data, mode) in [
        (
            "livekit-server",
            stand_in_script(version).into_bytes(),
            0o755,
        ),
        (
            "LICENSE",
            b"Apache License 2.0 (test copy)\n".to_vec(),
            0o644,
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A `file://` mirror of livekit releases: `<root>/v<ver>/{tarball, checksums.txt}`.
#[derive(Debug)]
pub struct Mirror {
    pub root: PathBuf,
}

impl Mirror {
    /// An empty mirror at `root`.
    pub fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// Its base URL, for `--release-url`.
    pub fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// Publish `version` correctly listed in its `checksums.txt`.
    pub fn publish(&self, version: &str) -> &Self {
        let tarball = release_tarball(version);
        let digest = hex(&Sha256::digest(&tarball));
        self.write(version, &tarball, &digest)
    }

    /// Publish `version` with a `checksums.txt` that lists a wrong digest for the tarball.
    pub fn publish_bad_checksum(&self, version: &str) -> &Self {
        self.write(version, &release_tarball(version), &"ab".repeat(32))
    }

    fn write(&self, version: &str, tarball: &[u8], digest: &str) -> &Self {
        let dir = self.root.join(format!("v{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("livekit_{version}_linux_{}.tar.gz", asset_arch());
        std::fs::write(dir.join(&name), tarball).unwrap();
        std::fs::write(
            dir.join("checksums.txt"),
            format!(
                "{digest}  {name}\n{}  livekit_{version}_darwin_all.tar.gz\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        self
    }
}
