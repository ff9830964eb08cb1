//! `redis://` and `rediss://`: one secret store for a fleet (see [`RedisStore`]), and the probe
//! of the Redis LiveKit routes through ([`probe_routing`]).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{
    Added, RedisSpec, SecretName, SecretStore, StoreError, StoreOp, check_storable, value_problem,
};
use crate::inputs::RedisRouting;
use crate::secret::Secret;

mod conn;
mod error;

use conn::{Connection, Reply, Target};
pub use error::RedisError;

/// A secret store in Redis, shared by every node of a fleet.
///
/// Each secret is a string under `<prefix><NAME>` (prefix `livekit-provision:` unless the URL's
/// `?prefix=` names another, so several clusters can share one Redis):
/// - [`get`](SecretStore::get) is `GET`; a nil reply is "absent", and only that. A server that is
///   down, refuses our credentials or database, or does not answer within the timeout is an
///   error, as is a key holding a non-string (`WRONGTYPE`) or an unusable string (empty, several
///   lines): minting then would split the fleet.
/// - [`add_if_absent`](SecretStore::add_if_absent) is `SET key value NX` followed by a `GET` of
///   the winner, so N nodes starting at once agree on one value.
/// - [`set`](SecretStore::set) is a plain `SET`.
///
/// Every connect, read and write is bounded by the URL's `?timeout=` (2 s by default). One
/// connection is kept open between calls and dropped after any failure. `rediss://` connects with
/// TLS and checks the certificate against the platform's trust store.
pub struct RedisStore {
    spec: RedisSpec,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({})", self.spec)
    }
}

impl RedisStore {
    /// A store at `spec`. Nothing is connected yet: errors come from use.
    pub fn new(spec: RedisSpec) -> Self {
        Self {
            spec,
            conn: Mutex::new(None),
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

    /// Connect (if not connected) and `PING`.
    pub fn ping(&self) -> Result<(), RedisError> {
        self.with_connection(Connection::ping)
    }

    fn target(&self) -> Target<'_> {
        Target {
            host: &self.spec.host,
            port: self.spec.port,
            tls: self.spec.tls,
            username: self.spec.username.as_deref(),
            password: self.spec.password.as_ref(),
            db: self.spec.db,
            timeout: self.spec.timeout,
        }
    }

    /// Run `f` on the open connection (opening one first if needed); drop it after a failure.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => Connection::open(&self.target())?,
        };
        let result = f(&mut conn);
        if result.is_ok() {
            *slot = Some(conn);
        }
        result
    }

    fn error(&self, name: &SecretName, op: StoreOp, source: RedisError) -> StoreError {
        StoreError::Redis {
            store: self.describe(),
            name: name.clone(),
            op,
            source: Box::new(source),
        }
    }
}

/// `GET key`: `None` only for the nil reply.
fn get(conn: &mut Connection, key: &str) -> Result<Option<Secret>, RedisError> {
    match conn.call("GET", &[b"GET", key.as_bytes()])? {
        Reply::Bulk(None) => Ok(None),
        Reply::Bulk(Some(bytes)) => {
            if let Some(reason) = value_problem(&bytes) {
                return Err(RedisError::BadValue {
                    address: conn.address().to_owned(),
                    key: key.to_owned(),
                    reason,
                });
            }
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| RedisError::BadValue {
                address: conn.address().to_owned(),
                key: key.to_owned(),
                reason: "the value is not UTF-8".to_owned(),
            })?;
            Ok(Some(Secret::new(text)))
        }
        Reply::Error(message) if message.starts_with("WRONGTYPE") => {
            let kind = match conn.call("TYPE", &[b"TYPE", key.as_bytes()])? {
                Reply::Status(kind) => kind,
                _ => "value of another type".to_owned(),
            };
            Err(RedisError::WrongType {
                address: conn.address().to_owned(),
                key: key.to_owned(),
                kind,
            })
        }
        Reply::Error(message) => Err(conn.refused("GET", message)),
        other => Err(conn.unexpected("GET", &other)),
    }
}

/// `SET key value NX`: true when ours was stored, false when a value was already there.
fn set_nx(conn: &mut Connection, key: &str, value: &Secret) -> Result<bool, RedisError> {
    let args: [&[u8]; 4] = [b"SET", key.as_bytes(), value.expose().as_bytes(), b"NX"];
    match conn.call("SET", &args)? {
        Reply::Status(_) => Ok(true),
        Reply::Bulk(None) => Ok(false),
        Reply::Error(message) => Err(conn.refused("SET", message)),
        other => Err(conn.unexpected("SET", &other)),
    }
}

impl SecretStore for RedisStore {
    fn describe(&self) -> String {
        self.spec.to_string()
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        let key = self.key(name);
        self.with_connection(|conn| get(conn, &key))
            .map_err(|e| self.error(name, StoreOp::Get, e))
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        check_storable(&self.describe(), name, StoreOp::Add, value)?;
        let key = self.key(name);
        self.with_connection(|conn| {
            let inserted = set_nx(conn, &key, value)?;
            // Read the winner back: ours, or the one another node stored first.
            match get(conn, &key)? {
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
        self.with_connection(|conn| {
            conn.expect_ok("SET", &[b"SET", key.as_bytes(), value.expose().as_bytes()])
        })
        .map_err(|e| self.error(name, StoreOp::Set, e))
    }
}

/// Check that the Redis LiveKit routes through (`redis:` in `livekit.yaml`) answers: connect,
/// authenticate when a password or user name is set, select the database, `PING` — each step
/// bounded by `timeout`. livekit-server refuses to start when it cannot reach this Redis.
pub fn probe_routing(routing: &RedisRouting, timeout: Duration) -> Result<(), RedisError> {
    let address = routing.address.as_str();
    let (host, port) = split_address(address).ok_or_else(|| RedisError::Connect {
        address: address.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not host:port"),
    })?;
    let target = Target {
        host,
        port,
        tls: routing.tls,
        username: routing.username.as_deref(),
        password: routing.password.as_ref(),
        db: routing.db,
        timeout,
    };
    Connection::open(&target)?.ping()
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
