//! What can go wrong talking to a Redis server, and how the `redis` crate's errors map onto it.
//! Addresses are `host:port` (comma-separated for several nodes), never a URL, so no password can
//! appear here.

use std::io;
use std::time::Duration;

/// A failure talking to Redis: the store of a fleet, or the Redis LiveKit routes through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The host name did not resolve.
    #[error("cannot resolve Redis host {address}")]
    Resolve {
        /// `host:port`.
        address: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// No TCP connection could be made.
    #[error("cannot connect to Redis at {address}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The last connect error.
        #[source]
        source: io::Error,
    },
    /// The server did not answer within the bound.
    #[error(
        "Redis at {address} did not answer within {}",
        humantime::format_duration(*timeout)
    )]
    TimedOut {
        /// `host:port`.
        address: String,
        /// The bound on each connect, read and write.
        timeout: Duration,
    },
    /// The connection failed mid-way (reset, closed).
    #[error("the connection to Redis at {address} failed")]
    Io {
        /// `host:port`.
        address: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The TLS session could not be set up.
    #[error("TLS with Redis at {address} failed: {reason}")]
    Tls {
        /// `host:port`.
        address: String,
        /// What failed (certificate, handshake).
        reason: String,
    },
    /// The server refused our credentials, or wants some and we sent none.
    #[error("Redis at {address} refused authentication: {message}")]
    Auth {
        /// `host:port`.
        address: String,
        /// The server's error line (Redis never echoes the password).
        message: String,
    },
    /// `SELECT db` failed (the server has fewer databases).
    #[error("Redis at {address} refused database {db}: {message}")]
    Database {
        /// `host:port`.
        address: String,
        /// The database number.
        db: u32,
        /// The server's error line.
        message: String,
    },
    /// Our key holds another type than a string (a hash, a list…).
    #[error("Redis key {key:?} at {address} holds a {kind}, not a string")]
    WrongType {
        /// `host:port`.
        address: String,
        /// The full key.
        key: String,
        /// What `TYPE` says it holds.
        kind: String,
    },
    /// Our key holds a string we cannot use as a value (empty, several lines, too long).
    #[error("Redis key {key:?} at {address} holds an unusable value: {reason}")]
    BadValue {
        /// `host:port`.
        address: String,
        /// The full key.
        key: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// The server answered a command with an error.
    #[error("Redis at {address} refused {command}: {message}")]
    Command {
        /// `host:port`.
        address: String,
        /// The command (never its arguments).
        command: &'static str,
        /// The server's error line.
        message: String,
    },
    /// No sentinel named a reachable master.
    #[error("no sentinel at {sentinels} led to master {master:?}: {reason}")]
    Sentinel {
        /// The sentinels' `host:port`, comma-separated.
        sentinels: String,
        /// The master's name.
        master: String,
        /// What each attempt ended with (no credentials).
        reason: String,
    },
    /// Fewer replicas than required are in sync with the master (`WAIT`): what we wrote or
    /// read there is not used, since a failover could lose it.
    #[error(
        "Redis at {address} has {acknowledged} of the {wanted} replicas asked for in sync (on {key:?})"
    )]
    NotReplicated {
        /// `host:port`.
        address: String,
        /// The full key.
        key: String,
        /// `?replicas=`.
        wanted: u32,
        /// How many did.
        acknowledged: i64,
    },
    /// The server's reply is not what the protocol allows here.
    #[error("Redis at {address} sent an unexpected reply to {command}: {reason}")]
    Protocol {
        /// `host:port`.
        address: String,
        /// The command.
        command: &'static str,
        /// What was wrong with the reply (never its contents).
        reason: String,
    },
}

impl RedisError {
    /// True when the server could not be reached at all (as opposed to refusing something).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Resolve { .. }
                | Self::Connect { .. }
                | Self::TimedOut { .. }
                | Self::Io { .. }
                | Self::Sentinel { .. }
        )
    }

    /// Our error for what the client reported while talking to `address` (the node, or the
    /// nodes, of `spec`): classified by kind, with the server's message but never a value.
    pub(crate) fn from_client(
        address: &str,
        spec: &Link,
        command: &'static str,
        e: &redis::RedisError,
    ) -> Self {
        let address = address.to_owned();
        let message = || {
            let mut m = e.code().unwrap_or_default().to_owned();
            if let Some(detail) = e.detail() {
                if !m.is_empty() {
                    m.push(' ');
                }
                m.push_str(detail);
            }
            if m.is_empty() { e.to_string() } else { m }
        };
        if e.is_timeout() {
            return Self::TimedOut {
                address,
                timeout: spec.timeout,
            };
        }
        let text = e.to_string();
        let auth = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
            || text.contains("Authentication required")
            || text.contains("NOAUTH");
        if auth {
            return Self::Auth {
                address,
                message: message(),
            };
        }
        if text.contains("refused to switch database") {
            return Self::Database {
                address,
                db: spec.db.unwrap_or(0),
                message: message(),
            };
        }
        if e.is_connection_refusal()
            || matches!(e.kind(), redis::ErrorKind::ClusterConnectionNotFound)
        {
            return Self::Connect {
                address,
                source: io::Error::other(e.to_string()),
            };
        }
        if e.is_io_error() {
            if spec.tls && !e.is_connection_dropped() {
                return Self::Tls {
                    address,
                    reason: text,
                };
            }
            return Self::Io {
                address,
                source: io::Error::other(text),
            };
        }
        match e.kind() {
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => Self::Protocol {
                address,
                command,
                reason: "not a reply the command allows (is this a Redis server?)".to_owned(),
            },
            redis::ErrorKind::InvalidClientConfig if spec.tls => Self::Tls {
                address,
                reason: text,
            },
            _ => Self::Command {
                address,
                command,
                message: message(),
            },
        }
    }
}

impl crate::error_chain::Hint for RedisError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Resolve { .. } | Self::Connect { .. } => Some(
                "start Redis or fix the host and port; nothing was minted or changed".to_owned(),
            ),
            Self::TimedOut { .. } => Some(
                "check the network path to Redis, or allow more time with ?timeout=5s in the \
                 redis:// URL; nothing was minted or changed"
                    .to_owned(),
            ),
            Self::Io { .. } | Self::Protocol { .. } => {
                Some("check that the address is a Redis server and run again".to_owned())
            }
            Self::Tls { .. } => Some(
                "rediss:// checks the server certificate against the system's trust store, or \
                 the CA bundle named by ?ca=PATH; a server that wants a client certificate needs \
                 ?cert=PATH&key=PATH; use redis:// for a server without TLS"
                    .to_owned(),
            ),
            Self::Sentinel { .. } => Some(
                "check the sentinel addresses, the master name (`SENTINEL MASTERS` on a \
                 sentinel) and ?sentinel_password=; nothing was minted or changed"
                    .to_owned(),
            ),
            Self::NotReplicated { .. } => Some(
                "start the replicas (or lower ?replicas=) and run again: the value is used only \
                 once a failover cannot lose it"
                    .to_owned(),
            ),
            Self::Auth { .. } => Some(
                "check the user name and password in the URL (redis://user:password@host:port); \
                 percent-encode special characters"
                    .to_owned(),
            ),
            Self::Database { .. } => Some(
                "use a database number the server has (see `databases` in redis.conf)".to_owned(),
            ),
            Self::WrongType { key, .. } | Self::BadValue { key, .. } => Some(format!(
                "something else wrote {key:?}: inspect it with `redis-cli TYPE {key}`; delete it or \
                 use another ?prefix= (deleting the API key or secret mints new credentials that \
                 every client must be given)"
            )),
            Self::Command { .. } => None,
        }
    }
}

/// What [`RedisError::from_client`] needs to know about the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    /// Connected with TLS.
    pub tls: bool,
    /// The database asked for.
    pub db: Option<u32>,
    /// The bound on each step.
    pub timeout: Duration,
}
