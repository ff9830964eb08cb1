//! Opening a connection through the `redis` crate, whatever the topology: one server, a master
//! found through Sentinel, or a Cluster. Every connect, handshake, read and write is bounded by
//! the target's timeout.

use std::time::Duration;

use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisConnectionInfo, Value,
};

use super::error::{Link, RedisError};
use crate::secret::Secret;
use crate::store::spec::{TlsFiles, Topology, host_port};

/// Where and how to connect: a store's [`RedisSpec`](crate::store::RedisSpec), or the Redis
/// LiveKit routes through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub topology: &'a Topology,
    /// The server, the sentinels, or the cluster's seed nodes.
    pub nodes: &'a [(String, u16)],
    pub tls: bool,
    pub tls_files: &'a TlsFiles,
    pub username: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub db: Option<u32>,
    pub timeout: Duration,
}

/// Who we are on a node, and which database.
#[derive(Debug, Clone, Copy, Default)]
struct Login<'a> {
    username: Option<&'a str>,
    password: Option<&'a Secret>,
    db: Option<u32>,
}

impl Target<'_> {
    fn login(&self) -> Login<'_> {
        Login {
            username: self.username,
            password: self.password,
            db: self.db,
        }
    }

    pub(crate) fn link(&self) -> Link {
        Link {
            tls: self.tls,
            db: self.db,
            timeout: self.timeout,
        }
    }

    fn addresses(&self) -> String {
        self.nodes
            .iter()
            .map(|(host, port)| host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn error(&self, address: &str, command: &'static str, e: &redis::RedisError) -> RedisError {
        RedisError::from_client(address, &self.link(), command, e)
    }

    /// The PEM files, read (a missing or unreadable file is a TLS error naming it).
    fn certificates(&self, address: &str) -> Result<Option<redis::TlsCertificates>, RedisError> {
        let files = self.tls_files;
        if !self.tls || (files.ca.is_none() && files.cert.is_none()) {
            return Ok(None);
        }
        let read = |path: &std::path::Path| {
            crate::fsio::read_regular(path)
                .map(|bytes| bytes.to_vec())
                .map_err(|e| RedisError::Tls {
                    address: address.to_owned(),
                    reason: format!("cannot read {}: {e}", path.display()),
                })
        };
        let client_tls = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            _ => None,
        };
        let root_cert = files.ca.as_deref().map(read).transpose()?;
        Ok(Some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }))
    }

    /// The connection info of one node, with our credentials and database.
    fn node_info(
        &self,
        host: &str,
        port: u16,
        login: Login<'_>,
    ) -> Result<ConnectionInfo, RedisError> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        };
        let mut redis = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(user) = login.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = login.password {
            redis = redis.set_password(password.expose());
        }
        if let Some(db) = login.db {
            redis = redis.set_db(i64::from(db));
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| self.error(&host_port(host, port), "connect", &e))?;
        Ok(info.set_redis_settings(redis))
    }

    /// Connect to one node: TCP (and TLS) and the handshake (AUTH, SELECT) within the timeout,
    /// then every read and write bounded by it.
    fn connect_node(
        &self,
        host: &str,
        port: u16,
        login: Login<'_>,
    ) -> Result<redis::Connection, RedisError> {
        let address = host_port(host, port);
        let info = self.node_info(host, port, login)?;
        let client = match self.certificates(&address)? {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
        .map_err(|e| self.error(&address, "connect", &e))?;
        install_crypto_provider();
        let conn = client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.error(&address, "connect", &e))?;
        conn.set_read_timeout(Some(self.timeout))
            .and_then(|()| conn.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.error(&address, "connect", &e))?;
        Ok(conn)
    }

    /// Open a connection as the topology says.
    pub(crate) fn open(&self) -> Result<Conn, RedisError> {
        match self.topology {
            Topology::Single => {
                let (host, port) = &self.nodes[0];
                let conn = self.connect_node(host, *port, self.login())?;
                Ok(Conn::Node {
                    conn,
                    address: host_port(host, *port),
                })
            }
            Topology::Sentinel {
                master,
                username,
                password,
            } => self.open_master(master, username.as_deref(), password.as_ref()),
            Topology::Cluster => self.open_cluster(),
        }
    }

    /// Ask each sentinel in turn where `master` is, connect there and check that it is a master
    /// (a sentinel may lag behind a failover).
    fn open_master(
        &self,
        master: &str,
        username: Option<&str>,
        password: Option<&Secret>,
    ) -> Result<Conn, RedisError> {
        let mut reasons = Vec::new();
        for (host, port) in self.nodes {
            let sentinel = host_port(host, *port);
            let found = self
                .connect_node(
                    host,
                    *port,
                    Login {
                        username,
                        password,
                        db: None,
                    },
                )
                .and_then(|mut conn| {
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(master)
                        .query::<Option<(String, u16)>>(&mut conn)
                        .map_err(|e| self.error(&sentinel, "SENTINEL", &e))
                });
            let (master_host, master_port) = match found {
                Ok(Some(found)) => found,
                Ok(None) => {
                    reasons.push(format!("{sentinel} does not know it"));
                    continue;
                }
                Err(e) => {
                    reasons.push(format!("{sentinel}: {e}"));
                    continue;
                }
            };
            let address = host_port(&master_host, master_port);
            let mut conn = self.connect_node(&master_host, master_port, self.login())?;
            let role: Vec<Value> = redis::cmd("ROLE")
                .query(&mut conn)
                .map_err(|e| self.error(&address, "ROLE", &e))?;
            if matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
                return Ok(Conn::Node { conn, address });
            }
            reasons.push(format!("{sentinel} named {address}, which is not a master"));
        }
        Err(RedisError::Sentinel {
            sentinels: self.addresses(),
            master: master.to_owned(),
            reason: reasons.join("; "),
        })
    }

    fn open_cluster(&self) -> Result<Conn, RedisError> {
        let address = self.addresses();
        let seeds = self
            .nodes
            .iter()
            .map(|(host, port)| self.node_info(host, *port, Login::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(2);
        if let Some(user) = self.username {
            builder = builder.username(user);
        }
        if let Some(password) = self.password {
            builder = builder.password(password.expose());
        }
        if self.tls {
            builder = builder.tls(redis::TlsMode::Secure);
            if let Some(certs) = self.certificates(&address)? {
                builder = builder.certs(certs);
            }
        }
        install_crypto_provider();
        let conn = builder
            .build()
            .and_then(|client| client.get_connection())
            .map_err(|e| self.error(&address, "connect", &e))?;
        Ok(Conn::Cluster {
            conn: Box::new(conn),
            address,
        })
    }
}

/// A refusal as the reply value a pipeline would have held (the crate builds those only when
/// parsing a reply).
fn server_error(code: &str, detail: Option<&str>) -> Option<Value> {
    let line = match detail {
        Some(detail) => format!("-{code} {}\r\n", detail.replace(['\r', '\n'], " ")),
        None => format!("-{code}\r\n"),
    };
    redis::parse_redis_value(line.as_bytes())
        .ok()
        .filter(|v| matches!(v, Value::ServerError(_)))
}

/// The process-wide rustls provider the `redis` crate's TLS uses: aws-lc-rs, the one already in
/// the tree. Installing it is idempotent; a provider installed earlier stays.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An open connection.
pub(crate) enum Conn {
    /// One server (or the master Sentinel named).
    Node {
        conn: redis::Connection,
        address: String,
    },
    /// A cluster: the crate follows `MOVED`/`ASK` and keeps a connection per node.
    Cluster {
        conn: Box<ClusterConnection>,
        address: String,
    },
}

impl Conn {
    /// Where this connection goes, for messages.
    pub(crate) fn address(&self) -> &str {
        match self {
            Self::Node { address, .. } | Self::Cluster { address, .. } => address,
        }
    }

    /// Send `commands` as one pipeline (one round trip to each node involved) and return one
    /// reply per command; a command the server refused comes back as [`Value::ServerError`].
    pub(crate) fn pipeline(
        &mut self,
        commands: Vec<redis::Cmd>,
        link: &Link,
    ) -> Result<Vec<Value>, RedisError> {
        let name = "pipeline";
        match self {
            Self::Node { conn, address } => {
                let mut pipe = redis::pipe();
                for command in commands {
                    pipe.add_command(command);
                }
                pipe.ignore_errors()
                    .query(conn)
                    .map_err(|e| RedisError::from_client(address, link, name, &e))
            }
            Self::Cluster { conn, address } => {
                let map = |e: &redis::RedisError| RedisError::from_client(address, link, name, e);
                let mut pipe = redis::cluster::cluster_pipe();
                for command in &commands {
                    pipe.add_command(command.clone());
                }
                let e = match pipe.query::<Vec<Value>>(conn) {
                    Ok(values) => return Ok(values),
                    Err(e) => e,
                };
                if e.clone().into_server_errors().is_none() {
                    return Err(map(&e));
                }
                // The crate's sync cluster pipeline hands MOVED and ASK back as replies instead
                // of following them, and fails whole when any command is refused. Send the
                // commands one by one (each follows redirections; all of ours are repeatable:
                // reads, `SET NX` and `SET`), keeping refusals as replies.
                commands
                    .iter()
                    .map(|command| match conn.req_command(command) {
                        Ok(value) => Ok(value),
                        Err(e) => e
                            .code()
                            .filter(|_| !e.is_io_error())
                            .and_then(|code| server_error(code, e.detail()))
                            .ok_or_else(|| map(&e)),
                    })
                    .collect()
            }
        }
    }
}
