//! `--secrets SPEC`: which store to use, parsed once.

use std::fmt;
use std::path::PathBuf;

use super::{ExecStore, FileStore, SecretStore, StoreError};
use crate::paths::StateDir;
use crate::secret::Secret;

/// Default Redis port.
const REDIS_PORT: u16 = 6379;

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
    /// Parse `file:PATH`, `exec:PROGRAM`, `redis://[user:pass@]host[:port][/db]` or
    /// `rediss://…` (TLS).
    pub fn parse(spec: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidSpec {
            spec: redact_unparsed(spec),
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
            Self::Redis(_) => Err(StoreError::NotSupported {
                store: self.to_string(),
                reason: "Redis secret stores are not implemented in this version yet".to_owned(),
            }),
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
        let (authority, path) = match rest.find(['/', '?', '#']) {
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
        let db =
            match path.strip_prefix('/') {
                None if path.is_empty() => None,
                Some("") => None,
                Some(db) if db.bytes().all(|b| b.is_ascii_digit()) => Some(
                    db.parse()
                        .map_err(|_| format!("database {db} is out of range"))?,
                ),
                _ => return Err(
                    "the path must be a database number, as in /0; query strings are not supported"
                        .to_owned(),
                ),
            };
        Ok(Self {
            url: Secret::new(spec),
            tls,
            username,
            password,
            host,
            port,
            db,
        })
    }
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
            (Some(user), Some(_)) => write!(f, "{user}:****@")?,
            (None, Some(_)) => f.write_str(":****@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, None) => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisSpec({self})")
    }
}

/// A spec we could not parse, shown with anything that may be a password masked: everything
/// between `scheme://` and the last `@` of the authority.
fn redact_unparsed(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://****@{}", &rest[at + 1..]),
        None => spec.to_owned(),
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
    fn redis_is_not_supported_yet_and_says_so_without_the_password() {
        let err = StoreSpec::parse("redis://u:hunter2@h:1")
            .unwrap()
            .open()
            .unwrap_err();
        assert!(matches!(err, StoreError::NotSupported { .. }));
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}
