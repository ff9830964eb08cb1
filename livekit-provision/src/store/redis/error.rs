//! What can go wrong talking to a Redis server. Addresses are `host:port`, never a URL, so no
//! password can appear here.

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
    /// A line telling the operator how to fix this, when we know one.
    pub fn hint(&self) -> Option<String> {
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
                "rediss:// checks the server certificate against the system's trust store \
                 (SSL_CERT_FILE can name a CA bundle); use redis:// for a server without TLS"
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

    /// True when the server could not be reached at all (as opposed to refusing something).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Resolve { .. } | Self::Connect { .. } | Self::TimedOut { .. } | Self::Io { .. }
        )
    }
}
