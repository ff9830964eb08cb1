//! `--secrets SPEC`: which store to use, parsed once.

use std::fmt;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use super::{ExecStore, FileStore, RedisStore, SecretStore, StoreError};
use crate::paths::StateDir;
use crate::redact::MASK;
use crate::secret::Secret;

/// Default Redis port.
const REDIS_PORT: u16 = 6379;
/// The key prefix of a Redis store unless `?prefix=` names another.
pub const DEFAULT_REDIS_PREFIX: &str = "livekit-provision:";
/// How long one Redis connect, read or write may take unless `?timeout=` says otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed secret-store spec. `Display` gives the spec back with any password as `****`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing would only complicate matching"
)]
pub enum StoreSpec {
    /// `file:PATH` — a JSON file.
    File(PathBuf),
    /// `exec:PROGRAM` — a credential-helper program (one path or name, no arguments).
    Exec(PathBuf),
    /// `redis://…`, `rediss://…`, `redis+sentinel://…`, `redis+cluster://…` — one store for a
    /// fleet.
    Redis(RedisSpec),
}

impl StoreSpec {
    /// Parse `file:PATH`, `exec:PROGRAM`,
    /// `redis://[user:pass@]host[:port][/db][?prefix=NAME&timeout=DURATION]`, `rediss://…` (TLS,
    /// `?ca=&cert=&key=` for a private CA and a client certificate),
    /// `redis+sentinel://[user:pass@]s1[:26379],s2…/MASTER[/db][?sentinel_password=…]` or
    /// `redis+cluster://[user:pass@]h1:p1,h2:p2…` (both also as `rediss+…`).
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidSpec {
            spec: crate::redact::spec(spec),
            reason: reason.to_owned(),
        };
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err(invalid(
                    "file: needs a path, as in file:/var/lib/x/secrets.json",
                ));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(program) = spec.strip_prefix("exec:") {
            if program.is_empty() {
                return Err(invalid(
                    "exec: needs a program, as in exec:/usr/local/bin/helper",
                ));
            }
            if program.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "exec: takes one program without arguments; wrap a command line in a script",
                ));
            }
            return Ok(Self::Exec(PathBuf::from(program)));
        }
        if is_redis(spec) {
            return RedisSpec::parse(spec)
                .map(Self::Redis)
                .map_err(|r| invalid(&r));
        }
        Err(invalid("unknown kind of store"))
    }

    /// The embedded default: `file:<state>/secrets.json`.
    pub fn default_for(state: &StateDir) -> Self {
        Self::File(state.secrets_file())
    }

    /// Open the store this spec names. Nothing is read yet: errors come from use.
    pub fn open(&self) -> Result<Box<dyn SecretStore>, StoreError> {
        match self {
            Self::File(path) => Ok(Box::new(FileStore::new(path))),
            Self::Exec(program) => Ok(Box::new(ExecStore::new(program))),
            Self::Redis(redis) => Ok(Box::new(RedisStore::new(redis.clone()))),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Exec(program) => write!(f, "exec:{}", program.display()),
            Self::Redis(redis) => redis.fmt(f),
        }
    }
}

/// How the Redis store is laid out. `Debug` shows a password as `****` (as [`Secret`] does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://`, `rediss://`).
    Single,
    /// A master found through Sentinel (`redis+sentinel://`, `rediss+sentinel://`): the URL's
    /// hosts are the sentinels, its first path segment the master's name.
    Sentinel {
        /// The name the sentinels monitor the master under.
        master: String,
        /// The user name for the sentinels (`?sentinel_username=`).
        username: Option<String>,
        /// The password for the sentinels (`?sentinel_password=`); the URL's password is the
        /// master's.
        password: Option<Secret>,
    },
    /// A Redis Cluster (`redis+cluster://`, `rediss+cluster://`): the URL's hosts are seed nodes.
    Cluster,
}

/// PEM files for `rediss…://` (`?ca=`, `?cert=`, `?key=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA bundle the server's certificate is checked against, instead of the system's.
    pub ca: Option<PathBuf>,
    /// A client certificate (chain) to present; with [`key`](Self::key).
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// A `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL (the last two also
/// with `rediss+`), parsed. `Debug` and `Display` redact every password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSpec {
    url: Secret,
    /// One server, Sentinel or Cluster.
    pub topology: Topology,
    /// `rediss…://`: connect with TLS (to the sentinels too).
    pub tls: bool,
    /// The CA and client certificate for TLS.
    pub tls_files: TlsFiles,
    /// The user name, percent-decoded.
    pub username: Option<String>,
    /// The password, percent-decoded.
    pub password: Option<Secret>,
    /// The server, the sentinels or the cluster's seed nodes: `(host, port)`, IPv6 without
    /// brackets. Never empty.
    pub nodes: Vec<(String, u16)>,
    /// The database number, if given (not with Cluster, which has only database 0).
    pub db: Option<u32>,
    /// Every key is this prefix followed by the secret's name (`?prefix=`, default
    /// [`DEFAULT_REDIS_PREFIX`]), so several clusters can share one Redis.
    pub prefix: String,
    /// The bound on each connect, read and write (`?timeout=2s`, default
    /// [`DEFAULT_REDIS_TIMEOUT`]).
    pub timeout: Duration,
    /// How many replicas must acknowledge a value we insert before it is used (`?replicas=`;
    /// 1 with Sentinel, else 0): a failover then cannot lose a value a node already uses.
    pub replicas: u32,
}

/// The schemes of a Redis store, with (TLS, topology kind).
const SCHEMES: [(&str, bool, Kind); 6] = [
    ("redis://", false, Kind::Single),
    ("rediss://", true, Kind::Single),
    ("redis+sentinel://", false, Kind::Sentinel),
    ("rediss+sentinel://", true, Kind::Sentinel),
    ("redis+cluster://", false, Kind::Cluster),
    ("rediss+cluster://", true, Kind::Cluster),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Sentinel,
    Cluster,
}

/// The default port of a sentinel.
const SENTINEL_PORT: u16 = 26379;

/// True when `spec` names a Redis store (of any topology).
pub(crate) fn is_redis(spec: &str) -> bool {
    SCHEMES.iter().any(|(scheme, ..)| spec.starts_with(scheme))
}

impl RedisSpec {
    /// The URL exactly as given, password included, to hand to a Redis client.
    pub fn url(&self) -> &Secret {
        &self.url
    }

    #[expect(clippy::too_many_lines, reason = "one URL grammar, read top to bottom")]
    fn parse(spec: &str) -> Result<Self, String> {
        let (scheme, tls, kind) = SCHEMES
            .iter()
            .find(|(scheme, ..)| spec.starts_with(scheme))
            .copied()
            .ok_or("not a Redis URL")?;
        let rest = &spec[scheme.len()..];
        if rest.contains('#') {
            return Err("a fragment ('#') is not allowed; percent-encode '#' as %23".to_owned());
        }
        if let Some(at) = rest.rfind('@')
            && rest[..at].contains(['/', '?'])
        {
            return Err(
                "the user name or password holds an unencoded '/' or '?', or a query \
                 value (sentinel_password=) an unencoded '@'; percent-encode them as %2f, %3f \
                 and %40"
                    .to_owned(),
            );
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hostports) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = split_userinfo(userinfo)?;
        let default_port = if kind == Kind::Sentinel {
            SENTINEL_PORT
        } else {
            REDIS_PORT
        };
        let nodes = hostports
            .split(',')
            .map(|hp| split_host_port(hp, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == Kind::Single && nodes.len() > 1 {
            return Err(
                "redis:// names one server; for several use redis+sentinel://s1,s2/master \
                 or redis+cluster://n1,n2"
                    .to_owned(),
            );
        }
        let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
        let master = if kind == Kind::Sentinel {
            Some(segments.next().filter(|m| !m.is_empty()).ok_or(
                "redis+sentinel:// needs the master's name as the path, as in \
                         redis+sentinel://s1:26379,s2:26379/mymaster",
            )?)
            .map(|m| percent_decode(m).ok_or("the master name is not valid percent-encoding"))
            .transpose()?
        } else {
            None
        };
        let db = match segments.next() {
            None | Some("") => None,
            Some(db) if db.bytes().all(|b| b.is_ascii_digit()) => Some(
                db.parse()
                    .map_err(|_| format!("database {db} is out of range"))?,
            ),
            Some(_) => return Err("the path must be a database number, as in /0".to_owned()),
        };
        if segments.next().is_some() {
            return Err("the path has too many segments".to_owned());
        }
        if kind == Kind::Cluster && db.is_some_and(|db| db != 0) {
            return Err("a cluster has only database 0".to_owned());
        }
        let query = parse_query(query.unwrap_or(""), kind)?;
        if kind == Kind::Cluster && query.replicas.is_some_and(|r| r > 0) {
            return Err(
                "replicas= is for redis:// and redis+sentinel:// (WAIT has no key to route by \
                 in a Cluster)"
                    .to_owned(),
            );
        }
        if !tls && !query.tls_files.is_empty() {
            return Err("ca=, cert= and key= need TLS: use rediss://".to_owned());
        }
        if query.tls_files.cert.is_some() != query.tls_files.key.is_some() {
            return Err("cert= and key= go together (a client certificate and its key)".to_owned());
        }
        let topology = match (kind, master) {
            (Kind::Sentinel, Some(master)) => Topology::Sentinel {
                master,
                username: query.sentinel_username,
                password: query.sentinel_password,
            },
            (Kind::Cluster, _) => Topology::Cluster,
            _ => Topology::Single,
        };
        Ok(Self {
            url: Secret::new(spec),
            replicas: query.replicas.unwrap_or(u32::from(kind == Kind::Sentinel)),
            topology,
            tls,
            tls_files: query.tls_files,
            username,
            password,
            nodes,
            db,
            prefix: query.prefix,
            timeout: query.timeout,
        })
    }

    /// `host:port` of every node, comma-separated (IPv6 in brackets), for messages.
    pub fn address(&self) -> String {
        self.nodes
            .iter()
            .map(|(host, port)| host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn scheme(&self) -> &'static str {
        let kind = match self.topology {
            Topology::Single => Kind::Single,
            Topology::Sentinel { .. } => Kind::Sentinel,
            Topology::Cluster => Kind::Cluster,
        };
        SCHEMES
            .iter()
            .find(|(_, tls, k)| *tls == self.tls && *k == kind)
            .map_or("redis://", |(scheme, ..)| scheme)
    }
}

/// `host:port`, IPv6 in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn split_userinfo(userinfo: Option<&str>) -> Result<(Option<String>, Option<Secret>), String> {
    let Some(info) = userinfo else {
        return Ok((None, None));
    };
    let (user, pass) = match info.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (info, None),
    };
    let user = percent_decode(user).ok_or("the user name is not valid percent-encoded UTF-8")?;
    let pass = pass
        .map(|p| percent_decode(p).ok_or("the password is not valid percent-encoded UTF-8"))
        .transpose()?;
    Ok((
        Some(user).filter(|u| !u.is_empty()),
        pass.filter(|p| !p.is_empty()).map(Secret::new),
    ))
}

/// What the query of a Redis URL says.
struct Query {
    prefix: String,
    timeout: Duration,
    replicas: Option<u32>,
    tls_files: TlsFiles,
    sentinel_username: Option<String>,
    sentinel_password: Option<Secret>,
}

/// `prefix=NAME`, `timeout=DURATION` (humantime: `500ms`, `2s`), `replicas=N`, `ca=`, `cert=`,
/// `key=` (paths), and with Sentinel `sentinel_username=` and `sentinel_password=`; anything
/// else is refused.
fn parse_query(query: &str, kind: Kind) -> Result<Query, String> {
    let mut out = Query {
        prefix: DEFAULT_REDIS_PREFIX.to_owned(),
        timeout: DEFAULT_REDIS_TIMEOUT,
        replicas: None,
        tls_files: TlsFiles::default(),
        sentinel_username: None,
        sentinel_password: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            percent_decode(value).ok_or_else(|| format!("{key}= is not valid percent-encoding"))?;
        let path = |value: String| {
            if value.is_empty() {
                Err(format!("{key}= needs a file path"))
            } else {
                Ok(Some(PathBuf::from(value)))
            }
        };
        match key {
            "prefix" => {
                if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(
                        "prefix= must be non-empty, without spaces or control characters"
                            .to_owned(),
                    );
                }
                out.prefix = value;
            }
            "timeout" => {
                out.timeout = humantime::parse_duration(&value)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "timeout={} is not a duration such as 500ms or 2s",
                            quote_if_plain(&value)
                        )
                    })?;
            }
            "replicas" => {
                out.replicas = Some(value.parse().map_err(|_| {
                    format!(
                        "replicas={} is not a number of replicas",
                        quote_if_plain(&value)
                    )
                })?);
            }
            "ca" => out.tls_files.ca = path(value)?,
            "cert" => out.tls_files.cert = path(value)?,
            "key" => out.tls_files.key = path(value)?,
            "sentinel_username" if kind == Kind::Sentinel => {
                out.sentinel_username = Some(value).filter(|v| !v.is_empty());
            }
            "sentinel_password" if kind == Kind::Sentinel => {
                out.sentinel_password = Some(value).filter(|v| !v.is_empty()).map(Secret::new);
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {}; supported: prefix=, timeout=, replicas=, ca=, \
                     cert=, key= (with tls), sentinel_username=, sentinel_password= (with sentinel)",
                    quote_if_plain(key)
                ));
            }
        }
    }
    Ok(out)
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host needs a closing ']'")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("expected ':' after ']'")?),
            ),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".to_owned());
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for RedisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:{MASK}@")?,
            (None, Some(_)) => write!(f, ":{MASK}@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, None) => {}
        }
        f.write_str(&self.address())?;
        if let Topology::Sentinel { master, .. } = &self.topology {
            write!(f, "/{master}")?;
        }
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        let mut params = Vec::new();
        if self.prefix != DEFAULT_REDIS_PREFIX {
            params.push(format!("prefix={}", self.prefix));
        }
        if self.timeout != DEFAULT_REDIS_TIMEOUT {
            params.push(format!(
                "timeout={}",
                humantime::format_duration(self.timeout)
            ));
        }
        let sentinel = matches!(self.topology, Topology::Sentinel { .. });
        if self.replicas != u32::from(sentinel) {
            params.push(format!("replicas={}", self.replicas));
        }
        for (name, path) in [
            ("ca", &self.tls_files.ca),
            ("cert", &self.tls_files.cert),
            ("key", &self.tls_files.key),
        ] {
            if let Some(path) = path {
                params.push(format!("{name}={}", path.display()));
            }
        }
        if let Topology::Sentinel {
            username, password, ..
        } = &self.topology
        {
            if let Some(user) = username {
                params.push(format!("sentinel_username={user}"));
            }
            if password.is_some() {
                params.push(format!("sentinel_password={MASK}"));
            }
        }
        if !params.is_empty() {
            write!(f, "?{}", params.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisSpec({self})")
    }
}

/// `text` quoted when it is plainly not a credential (letters, digits, `._-`), else a placeholder:
/// a malformed URL may have put part of a password where a query parameter was expected.
fn quote_if_plain(text: &str) -> String {
    if text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        format!("{text:?}")
    } else {
        "(not shown)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Hint;

    #[test]
    fn parses_file_and_exec() {
        assert_eq!(
            StoreSpec::parse("file:/x/secrets.json").unwrap(),
            StoreSpec::File("/x/secrets.json".into())
        );
        assert_eq!(
            StoreSpec::parse("exec:hero-secret").unwrap(),
            StoreSpec::Exec("hero-secret".into())
        );
        for bad in [
            "file:",
            "exec:",
            "exec:helper --flag",
            "vault:x",
            "/x/secrets.json",
            "",
        ] {
            let err = StoreSpec::parse(bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidSpec { .. }), "{bad}");
            assert!(err.hint().is_some());
        }
    }

    #[test]
    fn default_is_the_state_file() {
        let spec = StoreSpec::default_for(&StateDir::new("/st"));
        assert_eq!(spec.to_string(), "file:/st/secrets.json");
        assert!(
            spec.open()
                .unwrap()
                .describe()
                .ends_with("/st/secrets.json")
        );
    }

    #[test]
    fn redis_urls_parse_and_redact() {
        let spec = StoreSpec::parse("redis://admin:p%40ss@10.0.0.5:6380/2").unwrap();
        let StoreSpec::Redis(redis) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(redis.username.as_deref(), Some("admin"));
        assert_eq!(redis.password.as_ref().unwrap().expose(), "p@ss");
        assert_eq!(
            (redis.nodes[0].0.as_str(), redis.nodes[0].1, redis.db),
            ("10.0.0.5", 6380, Some(2))
        );
        assert!(!redis.tls);
        assert_eq!(redis.url().expose(), "redis://admin:p%40ss@10.0.0.5:6380/2");
        assert_eq!(spec.to_string(), "redis://admin:****@10.0.0.5:6380/2");
        assert!(!format!("{spec:?}").contains("p%40ss"));

        let plain = StoreSpec::parse("rediss://[::1]").unwrap();
        assert_eq!(plain.to_string(), "rediss://[::1]:6379");
        assert_eq!(
            StoreSpec::parse("redis://:pw@h/").unwrap().to_string(),
            "redis://:****@h:6379"
        );

        let err = StoreSpec::parse("redis://u:hunter2@host:99999").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("65535"), "{shown}");
        assert!(StoreSpec::parse("redis://u:hunter2@").is_err());
        assert!(StoreSpec::parse("redis://h/x").is_err());
    }

    #[test]
    fn redis_query_sets_prefix_and_timeout() {
        let StoreSpec::Redis(plain) = StoreSpec::parse("redis://h").unwrap() else {
            panic!()
        };
        assert_eq!(plain.prefix, DEFAULT_REDIS_PREFIX);
        assert_eq!(plain.timeout, DEFAULT_REDIS_TIMEOUT);

        let spec = StoreSpec::parse("redis://:pw@h:1/3?prefix=eu-west%3A&timeout=500ms").unwrap();
        let StoreSpec::Redis(redis) = &spec else {
            panic!()
        };
        assert_eq!(redis.prefix, "eu-west:");
        assert_eq!(redis.timeout, Duration::from_millis(500));
        assert_eq!(redis.db, Some(3));
        assert_eq!(
            spec.to_string(),
            "redis://:****@h:1/3?prefix=eu-west:&timeout=500ms"
        );
        assert_eq!(
            StoreSpec::parse("redis://h?timeout=3s")
                .unwrap()
                .to_string(),
            "redis://h:6379?timeout=3s"
        );

        for bad in [
            "redis://:hunter2@h?prefix=",
            "redis://:hunter2@h?timeout=soon",
            "redis://:hunter2@h?timeout=0s",
            "redis://:hunter2@h?tls=1",
            "redis://:hunter2@h#frag",
            "redis://:hun?ter2@h",
            "redis://:hun/ter2@h",
        ] {
            let err = StoreSpec::parse(bad).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("ter2"),
                "{shown}"
            );
        }
    }

    #[test]
    fn sentinel_and_cluster_urls_parse_and_redact() {
        let spec = StoreSpec::parse(
            "rediss+sentinel://app:m%40ster-pw@s1,[::1]:26380/mymaster/2?sentinel_password=sent-pw&ca=/etc/ca.pem&cert=/c.pem&key=/k.pem",
        )
        .unwrap();
        let StoreSpec::Redis(redis) = &spec else {
            panic!()
        };
        let Topology::Sentinel {
            master, password, ..
        } = &redis.topology
        else {
            panic!("{redis:?}")
        };
        assert_eq!(master, "mymaster");
        assert_eq!(password.as_ref().unwrap().expose(), "sent-pw");
        assert_eq!(
            redis.nodes,
            [("s1".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!((redis.db, redis.replicas, redis.tls), (Some(2), 1, true));
        assert_eq!(
            redis.tls_files.ca.as_deref(),
            Some(Path::new("/etc/ca.pem"))
        );
        let shown = format!("{spec} {spec:?}");
        assert!(
            !shown.contains("sent-pw") && !shown.contains("m%40ster"),
            "{shown}"
        );
        assert_eq!(
            spec.to_string(),
            "rediss+sentinel://app:****@s1:26379,[::1]:26380/mymaster/2?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem&sentinel_password=****"
        );

        let cluster = StoreSpec::parse("redis+cluster://:pw@h1:7000,h2:7001").unwrap();
        assert_eq!(cluster.to_string(), "redis+cluster://:****@h1:7000,h2:7001");

        for bad in [
            "redis://:hunter2@h1,h2",
            "redis+sentinel://:hunter2@s1",
            "redis+cluster://:hunter2@h1/3",
            "redis+cluster://:hunter2@h1?replicas=1",
            "redis://:hunter2@h?ca=/ca.pem",
            "rediss://:hunter2@h?cert=/c.pem",
            "redis://:hunter2@h?sentinel_password=x",
        ] {
            let err = StoreSpec::parse(bad).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
