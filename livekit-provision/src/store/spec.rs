//! `--secrets SPEC`: which store to use, parsed once.

use std::fmt;
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
pub enum StoreSpec {
    /// `file:PATH` — a JSON file.
    File(PathBuf),
    /// `exec:PROGRAM` — a credential-helper program (one path or name, no arguments).
    Exec(PathBuf),
    /// `redis://…` or `rediss://…` — one store for a fleet.
    Redis(RedisSpec),
}

impl StoreSpec {
    /// Parse `file:PATH`, `exec:PROGRAM`,
    /// `redis://[user:pass@]host[:port][/db][?prefix=NAME&timeout=DURATION]` or `rediss://…`
    /// (TLS).
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidSpec {
            spec: crate::redact::text(spec),
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
        if spec.starts_with("redis://") || spec.starts_with("rediss://") {
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

/// A `redis://` or `rediss://` URL, parsed. `Debug` and `Display` redact the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSpec {
    url: Secret,
    /// `rediss://`: connect with TLS.
    pub tls: bool,
    /// The user name, percent-decoded.
    pub username: Option<String>,
    /// The password, percent-decoded.
    pub password: Option<Secret>,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (6379 unless given).
    pub port: u16,
    /// The database number, if given.
    pub db: Option<u32>,
    /// Every key is this prefix followed by the secret's name (`?prefix=`, default
    /// [`DEFAULT_REDIS_PREFIX`]), so several clusters can share one Redis.
    pub prefix: String,
    /// The bound on each connect, read and write (`?timeout=2s`, default
    /// [`DEFAULT_REDIS_TIMEOUT`]).
    pub timeout: Duration,
}

impl RedisSpec {
    /// The URL exactly as given, password included, to hand to a Redis client.
    pub fn url(&self) -> &Secret {
        &self.url
    }

    fn parse(spec: &str) -> Result<Self, String> {
        let (tls, rest) = match spec.strip_prefix("rediss://") {
            Some(rest) => (true, rest),
            None => (false, spec.strip_prefix("redis://").unwrap_or(spec)),
        };
        if rest.contains('#') {
            return Err("a fragment ('#') is not allowed; percent-encode '#' as %23".to_owned());
        }
        if let Some(at) = rest.rfind('@')
            && rest[..at].contains(['/', '?'])
        {
            return Err("the user name or password holds an unencoded '/' or '?'; \
                 percent-encode them as %2f and %3f (and '@' as %40)"
                .to_owned());
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = percent_decode(user)
                    .ok_or("the user name is not valid percent-encoded UTF-8")?;
                let pass = pass
                    .map(|p| {
                        percent_decode(p).ok_or("the password is not valid percent-encoded UTF-8")
                    })
                    .transpose()?;
                (
                    Some(user).filter(|u| !u.is_empty()),
                    pass.filter(|p| !p.is_empty()).map(Secret::new),
                )
            }
        };
        let (host, port) = split_host_port(hostport)?;
        let db = match path.strip_prefix('/') {
            None if path.is_empty() => None,
            Some("") => None,
            Some(db) if db.bytes().all(|b| b.is_ascii_digit()) => Some(
                db.parse()
                    .map_err(|_| format!("database {db} is out of range"))?,
            ),
            _ => return Err("the path must be a database number, as in /0".to_owned()),
        };
        let (prefix, timeout) = parse_query(query.unwrap_or(""))?;
        Ok(Self {
            url: Secret::new(spec),
            tls,
            username,
            password,
            host,
            port,
            db,
            prefix,
            timeout,
        })
    }

    /// `host:port` (IPv6 in brackets), for messages and connecting.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `prefix=NAME` and `timeout=DURATION` (humantime: `500ms`, `2s`); anything else is refused.
fn parse_query(query: &str) -> Result<(String, Duration), String> {
    let mut prefix = DEFAULT_REDIS_PREFIX.to_owned();
    let mut timeout = DEFAULT_REDIS_TIMEOUT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            percent_decode(value).ok_or_else(|| format!("{key}= is not valid percent-encoding"))?;
        match key {
            "prefix" => {
                if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(
                        "prefix= must be non-empty, without spaces or control characters"
                            .to_owned(),
                    );
                }
                prefix = value;
            }
            "timeout" => {
                timeout = humantime::parse_duration(&value)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "timeout={} is not a duration such as 500ms or 2s",
                            quote_if_plain(&value)
                        )
                    })?;
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {}; only prefix= and timeout= are supported",
                    quote_if_plain(key)
                ));
            }
        }
    }
    Ok((prefix, timeout))
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
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
        None => REDIS_PORT,
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
        f.write_str(if self.tls { "rediss://" } else { "redis://" })?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:{MASK}@")?,
            (None, Some(_)) => write!(f, ":{MASK}@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, None) => {}
        }
        f.write_str(&self.address())?;
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        let mut sep = '?';
        if self.prefix != DEFAULT_REDIS_PREFIX {
            write!(f, "{sep}prefix={}", self.prefix)?;
            sep = '&';
        }
        if self.timeout != DEFAULT_REDIS_TIMEOUT {
            write!(
                f,
                "{sep}timeout={}",
                humantime::format_duration(self.timeout)
            )?;
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
            (redis.host.as_str(), redis.port, redis.db),
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
}
