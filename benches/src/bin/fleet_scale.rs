//! Fleet at scale: N simulated nodes (the library's `ensure`, one process, a pool of threads,
//! each node with its own state directory and its own Redis connection) against one real
//! `redis-server` on a loopback port, started and stopped here.
//!
//! For each size it runs every node's first `ensure` (the mint race), then every node's no-op
//! `ensure`, and reports per phase: wall time, this process's CPU time (user + system), Redis
//! commands and round trips per node, and Redis's own busy time (`INFO commandstats` usec) —
//! so the coordination cost (what the nodes share: Redis) is separated from the CPU cost (what
//! each node does alone: rendering, hashing, writing files).
//!
//! Usage: `cargo run --release -p livekit-provision-benches --bin fleet_scale -- [SIZES…]`
//! (default `1 32 1000`); `THREADS=N` (default 32) threads drive the nodes; `STATE_ROOT=DIR`
//! (default `/dev/shm` when present) holds the state directories.

#![expect(
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a benchmark run by hand: it fails loudly, and its counts are far below 2^52"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use livekit_provision::store::{RedisStore, RedisTraffic, SecretName, StoreSpec};
use livekit_provision::{StateDir, ensure};
use livekit_provision_benches::ensure_options;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a size is a number of nodes"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 32, 1000]
    } else {
        sizes
    };
    let threads: usize = std::env::var("THREADS").map_or(32, |t| t.parse().expect("THREADS"));
    let root = std::env::var_os("STATE_ROOT").map_or_else(
        || {
            if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            }
        },
        PathBuf::from,
    );
    let work = tempfile::tempdir_in(&root).expect("state root");
    let redis = Redis::start(&work.path().join("redis"));

    println!(
        "| nodes | phase | wall (ms) | process CPU (ms) | CPU per node (ms) | Redis commands per node | round trips per node | Redis busy (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (run, nodes) in sizes.iter().enumerate() {
        let prefix = format!("bench{run}:");
        let url = format!("redis://127.0.0.1:{}?prefix={prefix}", redis.port);
        let states: Vec<PathBuf> = (0..*nodes)
            .map(|i| work.path().join(format!("run{run}/node{i}")))
            .collect();
        for phase in ["first ensure", "no-op ensure"] {
            let row = drive(&redis, &url, &states, threads);
            println!(
                "| {nodes} | {phase} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                ms(row.wall),
                ms(row.cpu),
                ms(row.cpu) / *nodes as f64,
                row.commands as f64 / *nodes as f64,
                (row.traffic.connects + row.traffic.requests) as f64 / *nodes as f64,
                row.redis_usec as f64 / 1000.0,
            );
        }
        // Every node serves the one pair in Redis.
        let store = StoreSpec::parse(&url).expect("url").open().expect("store");
        let key = store
            .get(&SecretName::LIVEKIT_API_KEY)
            .expect("read")
            .expect("a key");
        for state in &states {
            let creds = livekit_provision::triple::DiskTriple::read(&StateDir::new(state))
                .consistent_credentials()
                .expect("consistent files");
            assert_eq!(creds.key.as_str(), key.expose(), "{}", state.display());
        }
    }
}

struct Row {
    wall: Duration,
    cpu: Duration,
    commands: u64,
    redis_usec: u64,
    traffic: RedisTraffic,
}

/// Run every node's `ensure` once, on `threads` threads, each node with its own store.
fn drive(redis: &Redis, url: &str, states: &[PathBuf], threads: usize) -> Row {
    let StoreSpec::Redis(spec) = StoreSpec::parse(url).expect("url") else {
        unreachable!("a redis:// URL")
    };
    let stores: Vec<RedisStore> = states
        .iter()
        .map(|_| RedisStore::new(spec.clone()))
        .collect();
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let next = AtomicUsize::new(0);
    let cpu_before = process_cpu();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(states.len()) {
            scope.spawn(|| {
                let opts = ensure_options();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(state) = states.get(i) else { break };
                    ensure(&StateDir::new(state), &stores[i], &opts).expect("ensure");
                }
            });
        }
    });
    let wall = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let (commands, redis_usec) = redis.command_stats();
    let traffic = stores
        .iter()
        .map(RedisStore::traffic)
        .fold(RedisTraffic::default(), |a, t| RedisTraffic {
            connects: a.connects + t.connects,
            requests: a.requests + t.requests,
        });
    Row {
        wall,
        cpu,
        commands,
        redis_usec,
        traffic,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User + system CPU time of this process so far (`/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from field 3 here.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// A `redis-server` on a free loopback port, killed by pid on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("redis dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = dir.join("redis.conf");
        let mut text = String::new();
        let _ = write!(
            text,
            "bind 127.0.0.1\nport {port}\ndir {}\nsave \"\"\nappendonly no\nmaxclients 10000\n",
            dir.display()
        );
        std::fs::write(&conf, text).expect("redis.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while redis.try_cli(&["PING"]).is_none_or(|p| p.trim() != "PONG") {
            assert!(Instant::now() < deadline, "redis-server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).expect("redis-cli")
    }

    /// Commands served and their total time (µs) since the last `CONFIG RESETSTAT`, without
    /// the `INFO` asking.
    fn command_stats(&self) -> (u64, u64) {
        let stats = self.cli(&["INFO", "commandstats"]);
        let mut calls = 0;
        let mut usec = 0;
        for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
            if line.starts_with("cmdstat_info:") || line.starts_with("cmdstat_config|") {
                continue;
            }
            let field = |name: &str| {
                line.split([':', ','])
                    .find_map(|kv| kv.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            calls += field("calls=");
            usec += field("usec=");
        }
        (calls, usec)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
