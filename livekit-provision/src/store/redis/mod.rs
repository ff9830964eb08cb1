//! Redis stores (`redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://`): one secret
//! store for a fleet (see [`RedisStore`]), and the probe of the Redis LiveKit routes through
//! ([`probe_routing`]). The protocol, TLS, Sentinel and Cluster are the `redis` crate's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::Value;

use super::{
    Added, Coordinator, RedisSpec, SecretName, SecretStore, StoreError, StoreOp, check_storable,
    value_problem,
};
use crate::inputs::{RedisRouting, RoutingNodes};
use crate::secret::Secret;
use crate::store::spec::Topology;

mod connect;
mod error;

use connect::{Conn, Target};
use error::Link;
pub use error::RedisError;

/// A secret store in Redis, shared by every node of a fleet: one server, a master found through
/// Sentinel, or a Cluster.
///
/// Each secret is a string under `<prefix><NAME>` (prefix `livekit-provision:` unless the URL's
/// `?prefix=` names another, so several clusters can share one Redis):
/// - [`get`](SecretStore::get) is `GET`; a nil reply is "absent", and only that. A server that is
///   down, refuses our credentials or database, or does not answer within the timeout is an
///   error, as is a key holding a non-string (`WRONGTYPE`) or an unusable string (empty, several
///   lines): minting then would split the fleet.
/// - [`get_many`](SecretStore::get_many) sends its `GET`s as one pipeline: one round trip (one
///   per node involved in a Cluster). Not `MGET`, which answers nil for a key of another type.
/// - [`add_if_absent`](SecretStore::add_if_absent) is `SET key value NX`, then `WAIT` for
///   `?replicas=` replicas when asked (Sentinel: 1), then `GET` of the winner, pipelined, so N
///   nodes starting at once agree on one value, and a value not yet on a replica is not used.
/// - [`set`](SecretStore::set) is a plain `SET` (and the same `WAIT`).
///
/// Every connect, read and write is bounded by the URL's `?timeout=` (2 s by default). One
/// connection is kept open between calls and dropped after any failure; the next call connects
/// again (and asks the sentinels again: after a failover, it finds the new master).
pub struct RedisStore {
    spec: RedisSpec,
    conn: Mutex<Option<Conn>>,
    connects: AtomicU64,
    requests: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({})", self.spec)
    }
}

/// How many times a [`RedisStore`] connected and sent requests (each request is one round
/// trip: a pipeline counts once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedisTraffic {
    /// Connections opened (each with its handshake: at most one round trip for `AUTH` and
    /// `SELECT`, none without a password or database; TLS adds its own).
    pub connects: u64,
    /// Requests sent on open connections.
    pub requests: u64,
}

impl RedisStore {
    /// A store at `spec`. Nothing is connected yet: errors come from use.
    pub fn new(spec: RedisSpec) -> Self {
        Self {
            spec,
            conn: Mutex::new(None),
            connects: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// The parsed URL.
    pub fn spec(&self) -> &RedisSpec {
        &self.spec
    }

    /// The Redis key that holds `name`.
    pub fn key(&self, name: &SecretName) -> String {
        format!("{}{}", self.spec.prefix, name)
    }

    /// How much this store has talked to Redis so far.
    pub fn traffic(&self) -> RedisTraffic {
        RedisTraffic {
            connects: self.connects.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    /// Connect (if not connected) and `PING`.
    pub fn ping(&self) -> Result<(), RedisError> {
        self.with_connection(ping)
    }

    fn target(&self) -> Target<'_> {
        Target {
            topology: &self.spec.topology,
            nodes: &self.spec.nodes,
            tls: self.spec.tls,
            tls_files: &self.spec.tls_files,
            username: self.spec.username.as_deref(),
            password: self.spec.password.as_ref(),
            db: self.spec.db,
            timeout: self.spec.timeout,
        }
    }

    fn link(&self) -> Link {
        self.target().link()
    }

    /// Run `f` on the open connection (opening one first if needed); drop it after a failure.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Conn, &Link) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut conn = if let Some(conn) = slot.take() {
            conn
        } else {
            self.connects.fetch_add(1, Ordering::Relaxed);
            self.target().open()?
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = f(&mut conn, &self.link());
        if result.is_ok() {
            *slot = Some(conn);
        }
        result
    }

    fn coordination(&self, what: &str, source: RedisError) -> StoreError {
        StoreError::Coordination {
            store: self.describe(),
            what: what.to_owned(),
            source: Box::new(source),
        }
    }

    fn error(&self, name: &SecretName, op: StoreOp, source: RedisError) -> StoreError {
        StoreError::Redis {
            store: self.describe(),
            name: name.clone(),
            op,
            source: Box::new(source),
        }
    }

    /// `WAIT replicas timeout`, when replicas are asked for. The server waits at most half our
    /// read timeout, so its answer ("only n") arrives before we give up on it.
    fn wait_command(&self) -> Option<redis::Cmd> {
        (self.spec.replicas > 0).then(|| {
            let half = self.spec.timeout.as_millis() / 2;
            let millis = u64::try_from(half).unwrap_or(u64::MAX).max(1);
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.spec.replicas).arg(millis);
            cmd
        })
    }

    /// Check `WAIT`'s reply: enough replicas have the value.
    fn check_replicated(&self, conn: &Conn, key: &str, reply: &Value) -> Result<(), RedisError> {
        match reply {
            Value::Int(n) if *n >= i64::from(self.spec.replicas) => Ok(()),
            Value::Int(n) => Err(RedisError::NotReplicated {
                address: conn.address().to_owned(),
                key: key.to_owned(),
                wanted: self.spec.replicas,
                acknowledged: *n,
            }),
            Value::ServerError(e) => Err(refused(conn, "WAIT", e)),
            other => Err(unexpected(conn, "WAIT", other)),
        }
    }
}

/// The error for a command the server refused.
fn refused(conn: &Conn, command: &'static str, e: &redis::ServerError) -> RedisError {
    let message = match e.details() {
        Some(details) => format!("{} {details}", e.code()),
        None => e.code().to_owned(),
    };
    if matches!(e.code(), "NOAUTH" | "WRONGPASS" | "NOPERM") {
        return RedisError::Auth {
            address: conn.address().to_owned(),
            message,
        };
    }
    RedisError::Command {
        address: conn.address().to_owned(),
        command,
        message,
    }
}

/// The error for a reply of the wrong kind (naming the kind, not the contents).
fn unexpected(conn: &Conn, command: &'static str, reply: &Value) -> RedisError {
    let kind = match reply {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) | Value::Okay => "a status line",
        _ => "a reply of another kind",
    };
    RedisError::Protocol {
        address: conn.address().to_owned(),
        command,
        reason: format!("got {kind}"),
    }
}

/// The reply to `GET key`: `None` only for nil. A key of another type (`WRONGTYPE`) is asked its
/// `TYPE`, for the message.
fn value_of(
    conn: &mut Conn,
    link: &Link,
    key: &str,
    reply: &Value,
) -> Result<Option<Secret>, RedisError> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => {
            let bad = |reason: String| RedisError::BadValue {
                address: conn.address().to_owned(),
                key: key.to_owned(),
                reason,
            };
            if let Some(reason) = value_problem(bytes) {
                return Err(bad(reason));
            }
            let text =
                std::str::from_utf8(bytes).map_err(|_| bad("the value is not UTF-8".to_owned()))?;
            Ok(Some(Secret::new(text)))
        }
        Value::ServerError(e) if e.code() == "WRONGTYPE" => {
            let mut cmd = redis::cmd("TYPE");
            cmd.arg(key);
            let kind = match conn.pipeline(vec![cmd], link)?.first() {
                Some(Value::SimpleString(kind)) => kind.clone(),
                _ => "value of another type".to_owned(),
            };
            Err(RedisError::WrongType {
                address: conn.address().to_owned(),
                key: key.to_owned(),
                kind,
            })
        }
        Value::ServerError(e) => Err(refused(conn, "GET", e)),
        other => Err(unexpected(conn, "GET", other)),
    }
}

fn get_command(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

impl SecretStore for RedisStore {
    fn describe(&self) -> String {
        self.spec.to_string()
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        self.get_many(std::slice::from_ref(name))?
            .pop()
            .ok_or_else(|| {
                self.error(
                    name,
                    StoreOp::Get,
                    RedisError::Protocol {
                        address: self.spec.address(),
                        command: "GET",
                        reason: "no reply".to_owned(),
                    },
                )
            })
    }

    fn get_many(&self, names: &[SecretName]) -> Result<Vec<Option<Secret>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.key(n)).collect();
        let mut failed = None;
        let values = self.with_connection(|conn, link| {
            let mut commands: Vec<redis::Cmd> = keys.iter().map(|k| get_command(k)).collect();
            commands.extend(self.wait_command());
            let mut replies = conn.pipeline(commands, link)?;
            if self.spec.replicas > 0 {
                // A master that has lost its replicas (cut off by a failover) may hand out
                // values the new master never had: refuse to read from it.
                let wait = replies.pop().unwrap_or(Value::Nil);
                self.check_replicated(conn, &keys[0], &wait)?;
            }
            if replies.len() != keys.len() {
                return Err(unexpected(conn, "GET", &Value::Array(replies)));
            }
            let mut values = Vec::with_capacity(keys.len());
            for (i, (key, reply)) in keys.iter().zip(&replies).enumerate() {
                match value_of(conn, link, key, reply) {
                    Ok(value) => values.push(value),
                    Err(e) => {
                        failed = Some(i);
                        return Err(e);
                    }
                }
            }
            Ok(values)
        });
        values.map_err(|e| self.error(&names[failed.unwrap_or(0)], StoreOp::Get, e))
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        check_storable(&self.describe(), name, StoreOp::Add, value)?;
        let key = self.key(name);
        self.with_connection(|conn, link| {
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(value.expose()).arg("NX");
            let mut commands = vec![set];
            commands.extend(self.wait_command());
            commands.push(get_command(&key));
            let replies = conn.pipeline(commands, link)?;
            let (set_reply, rest) = replies
                .split_first()
                .ok_or_else(|| unexpected(conn, "SET", &Value::Nil))?;
            let inserted = match set_reply {
                Value::Okay | Value::SimpleString(_) => true,
                Value::Nil => false,
                Value::ServerError(e) => return Err(refused(conn, "SET", e)),
                other => return Err(unexpected(conn, "SET", other)),
            };
            let get_reply = match rest {
                [wait, get] => {
                    if inserted {
                        self.check_replicated(conn, &key, wait)?;
                    }
                    get
                }
                [get] => get,
                _ => return Err(unexpected(conn, "GET", &Value::Nil)),
            };
            // The winner: ours, or the one another node stored first.
            match value_of(conn, link, &key, get_reply)? {
                Some(stored) => Ok(Added {
                    value: stored,
                    inserted,
                }),
                None => Err(RedisError::Protocol {
                    address: conn.address().to_owned(),
                    command: "GET",
                    reason: "the key vanished right after SET NX (deleted by someone else?)"
                        .to_owned(),
                }),
            }
        })
        .map_err(|e| self.error(name, StoreOp::Add, e))
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        check_storable(&self.describe(), name, StoreOp::Set, value)?;
        let key = self.key(name);
        self.with_connection(|conn, link| {
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(value.expose());
            let mut commands = vec![set];
            commands.extend(self.wait_command());
            let replies = conn.pipeline(commands, link)?;
            match replies.first() {
                Some(Value::Okay | Value::SimpleString(_)) => {}
                Some(Value::ServerError(e)) => return Err(refused(conn, "SET", e)),
                other => return Err(unexpected(conn, "SET", other.unwrap_or(&Value::Nil))),
            }
            match replies.get(1) {
                Some(wait) => self.check_replicated(conn, &key, wait),
                None => Ok(()),
            }
        })
        .map_err(|e| self.error(name, StoreOp::Set, e))
    }

    fn coordinator(&self) -> Option<&dyn Coordinator> {
        Some(self)
    }
}

/// The fleet's keys: `<prefix>fleet:nodes` (a set of node names) and `<prefix>fleet:node:<name>`
/// (its report, with a TTL); `<prefix>fleet:lease:<name>` (the holder, with a TTL). Renewing and
/// releasing a lease read its holder first and then write: a holder that let its lease expire
/// in between could overwrite the next one's, so leases are renewed well within their TTL.
impl Coordinator for RedisStore {
    fn report(&self, node: &str, report: &str, ttl: Duration) -> Result<(), StoreError> {
        let prefix = &self.spec.prefix;
        let ttl_ms = millis(ttl);
        self.with_connection(|conn, link| {
            let mut set = redis::cmd("SET");
            set.arg(format!("{prefix}fleet:node:{node}"))
                .arg(report)
                .arg("PX")
                .arg(ttl_ms);
            let mut add = redis::cmd("SADD");
            add.arg(format!("{prefix}fleet:nodes")).arg(node);
            for reply in conn.pipeline(vec![set, add], link)? {
                if let Value::ServerError(e) = &reply {
                    return Err(refused(conn, "SET", e));
                }
            }
            Ok(())
        })
        .map_err(|e| self.coordination("publish this node's report", e))
    }

    fn reports(&self) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = &self.spec.prefix;
        self.with_connection(|conn, link| {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(format!("{prefix}fleet:nodes"));
            let names: Vec<String> = match conn.pipeline(vec![members], link)?.pop() {
                Some(Value::Array(items) | Value::Set(items)) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => String::from_utf8(b).ok(),
                        _ => None,
                    })
                    .collect(),
                Some(Value::ServerError(e)) => return Err(refused(conn, "SMEMBERS", &e)),
                Some(other) => return Err(unexpected(conn, "SMEMBERS", &other)),
                None => Vec::new(),
            };
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let gets = names
                .iter()
                .map(|n| get_command(&format!("{prefix}fleet:node:{n}")))
                .collect();
            let replies = conn.pipeline(gets, link)?;
            let mut live = Vec::new();
            let mut gone = Vec::new();
            for (name, reply) in names.into_iter().zip(replies) {
                match reply {
                    Value::BulkString(b) => {
                        live.push((name, String::from_utf8_lossy(&b).into_owned()));
                    }
                    Value::Nil => gone.push(name),
                    Value::ServerError(e) => return Err(refused(conn, "GET", &e)),
                    other => return Err(unexpected(conn, "GET", &other)),
                }
            }
            if !gone.is_empty() {
                // Reports that expired: their nodes left the fleet (or stopped reporting).
                let mut remove = redis::cmd("SREM");
                remove.arg(format!("{prefix}fleet:nodes")).arg(&gone);
                let _ = conn.pipeline(vec![remove], link)?;
            }
            Ok(live)
        })
        .map_err(|e| self.coordination("read the fleet's reports", e))
    }

    fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("{}fleet:lease:{name}", self.spec.prefix);
        let ttl_ms = millis(ttl);
        self.with_connection(|conn, link| {
            let mut take = redis::cmd("SET");
            take.arg(&key).arg(holder).arg("NX").arg("PX").arg(ttl_ms);
            let replies = conn.pipeline(vec![take, get_command(&key)], link)?;
            match replies.first() {
                Some(Value::Okay | Value::SimpleString(_)) => return Ok(true),
                Some(Value::Nil) => {}
                Some(Value::ServerError(e)) => return Err(refused(conn, "SET", e)),
                Some(other) => return Err(unexpected(conn, "SET", other)),
                None => return Err(unexpected(conn, "SET", &Value::Nil)),
            }
            let held_by_us =
                matches!(replies.get(1), Some(Value::BulkString(b)) if b == holder.as_bytes());
            if !held_by_us {
                return Ok(false);
            }
            let mut renew = redis::cmd("SET");
            renew.arg(&key).arg(holder).arg("XX").arg("PX").arg(ttl_ms);
            match conn.pipeline(vec![renew], link)?.pop() {
                Some(Value::Okay | Value::SimpleString(_)) => Ok(true),
                Some(Value::Nil) => Ok(false),
                Some(Value::ServerError(e)) => Err(refused(conn, "SET", &e)),
                Some(other) => Err(unexpected(conn, "SET", &other)),
                None => Err(unexpected(conn, "SET", &Value::Nil)),
            }
        })
        .map_err(|e| self.coordination(&format!("take the lease {name}"), e))
    }

    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let key = format!("{}fleet:lease:{name}", self.spec.prefix);
        self.with_connection(|conn, link| {
            let held = conn.pipeline(vec![get_command(&key)], link)?;
            if matches!(held.first(), Some(Value::BulkString(b)) if b == holder.as_bytes()) {
                let mut del = redis::cmd("DEL");
                del.arg(&key);
                let _ = conn.pipeline(vec![del], link)?;
            }
            Ok(())
        })
        .map_err(|e| self.coordination(&format!("release the lease {name}"), e))
    }

    fn holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}fleet:lease:{name}", self.spec.prefix);
        self.with_connection(|conn, link| {
            match conn.pipeline(vec![get_command(&key)], link)?.pop() {
                Some(Value::BulkString(b)) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Some(Value::Nil) | None => Ok(None),
                Some(Value::ServerError(e)) => Err(refused(conn, "GET", &e)),
                Some(other) => Err(unexpected(conn, "GET", &other)),
            }
        })
        .map_err(|e| self.coordination(&format!("read the lease {name}"), e))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Check that the Redis LiveKit routes through (`redis:` in `livekit.yaml`) answers: connect
/// (to the master the sentinels name, or to the cluster), authenticate when a password or user
/// name is set, select the database, `PING` — each step bounded by `timeout`. livekit-server
/// refuses to start when it cannot reach this Redis.
pub fn probe_routing(routing: &RedisRouting, timeout: Duration) -> Result<(), RedisError> {
    let split = |address: &String| {
        split_address(address)
            .map(|(host, port)| (host.to_owned(), port))
            .ok_or_else(|| RedisError::Connect {
                address: address.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not host:port"),
            })
    };
    let (topology, addresses) = match &routing.nodes {
        RoutingNodes::Address(address) => (Topology::Single, std::slice::from_ref(address)),
        RoutingNodes::Sentinel {
            master_name,
            addresses,
            username,
            password,
        } => (
            Topology::Sentinel {
                master: master_name.clone(),
                username: username.clone(),
                password: password.clone(),
            },
            addresses.as_slice(),
        ),
        RoutingNodes::Cluster(addresses) => (Topology::Cluster, addresses.as_slice()),
    };
    let nodes = addresses.iter().map(split).collect::<Result<Vec<_>, _>>()?;
    let target = Target {
        topology: &topology,
        nodes: &nodes,
        tls: routing.tls,
        tls_files: &routing.tls_files,
        username: routing.username.as_deref(),
        password: routing.password.as_ref(),
        db: routing.db,
        timeout,
    };
    ping(&mut target.open()?, &target.link())
}

/// `PING`.
fn ping(conn: &mut Conn, link: &Link) -> Result<(), RedisError> {
    match conn.pipeline(vec![redis::cmd("PING")], link)?.first() {
        Some(Value::ServerError(e)) => Err(refused(conn, "PING", e)),
        _ => Ok(()),
    }
}

fn split_address(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Hint;
    use crate::store::StoreSpec;

    #[test]
    fn addresses_split_with_and_without_brackets() {
        assert_eq!(split_address("r:6379"), Some(("r", 6379)));
        assert_eq!(split_address("[::1]:7000"), Some(("::1", 7000)));
        assert_eq!(split_address("r"), None);
        assert_eq!(split_address("r:x"), None);
    }

    #[test]
    fn keys_are_prefixed_and_debug_is_redacted() {
        let StoreSpec::Redis(spec) = StoreSpec::parse("redis://u:hunter2@h:1?prefix=eu:").unwrap()
        else {
            panic!()
        };
        let store = RedisStore::new(spec);
        assert_eq!(
            store.key(&SecretName::LIVEKIT_API_KEY),
            "eu:LIVEKIT_API_KEY"
        );
        let shown = format!("{store:?} {}", store.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_down_server_is_an_error_naming_the_host_not_the_password() {
        // Bound and never listening, held: a dropped listener could live on for a moment in a
        // process another test forks, and accept.
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap();
        let port = closed.local_addr().unwrap().port();
        let store = StoreSpec::parse(&format!("redis://:hunter2@127.0.0.1:{port}"))
            .unwrap()
            .open()
            .unwrap();
        let err = store.get(&SecretName::LIVEKIT_API_KEY).unwrap_err();
        let chain = format!(
            "{err} {:?} {}",
            err,
            std::error::Error::source(&err).unwrap()
        );
        assert!(chain.contains(&format!("127.0.0.1:{port}")), "{chain}");
        assert!(!chain.contains("hunter2"), "{chain}");
        assert!(err.hint().is_some());
    }
}
