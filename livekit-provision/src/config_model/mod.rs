//! What livekit-server's `livekit.yaml` may hold: a static tree of its keys, at every level, for
//! each supported release line 1.7 to 1.13, and a checker that walks a YAML tree against it.
//!
//! livekit-server decodes its config strictly (an unknown key at any depth makes it exit), and a
//! key a newer release added makes an older binary refuse the file. The tree (`keys.rs`) was read
//! from the Go structs' yaml tags of the latest patch of each minor release; a pinned earlier
//! patch is checked against its minor's model.
//!
//! Also the names of YAML values in messages (`kind_of`: "a list", `scalar_name`: a key), which
//! the checker and the parsers in `render/` share.

mod keys;

use std::fmt;

use serde_yaml::{Mapping, Value};

use crate::version::LivekitVersion;

/// The tags the model was read from, one per release line 1.7 to 1.13.
const MODELLED_TAGS: [&str; 7] = [
    "v1.7.2", "v1.8.4", "v1.9.12", "v1.10.1", "v1.11.0", "v1.12.0", "v1.13.5",
];

/// A modelled release line of livekit-server: `1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release(u8);

impl Release {
    /// The oldest supported release line, 1.7.
    pub const OLDEST: Self = Self(7);
    /// The newest modelled release line, 1.13.
    pub const LATEST: Self = Self(13);

    /// Every modelled release line, oldest first.
    pub fn all() -> impl Iterator<Item = Self> {
        (Self::OLDEST.0..=Self::LATEST.0).map(Self)
    }

    /// The model to check a pinned version against: its own release line; the oldest one when
    /// no version is pinned or it is older than 1.7; the newest one for a release after 1.13.
    pub fn for_version(version: Option<&LivekitVersion>) -> Self {
        let Some(version) = version else {
            return Self::OLDEST;
        };
        let semver = version.semver();
        if semver.major != 1 || semver.minor < u64::from(Self::OLDEST.0) {
            return if semver.major > 1 {
                Self::LATEST
            } else {
                Self::OLDEST
            };
        }
        u8::try_from(semver.minor).map_or(Self::LATEST, |minor| Self(minor.min(Self::LATEST.0)))
    }

    /// The minor version (7 for 1.7).
    pub fn minor(self) -> u8 {
        self.0
    }

    /// The release tag the model of this line was read from (the latest patch: `v1.10.1`).
    pub fn modelled_tag(self) -> &'static str {
        MODELLED_TAGS[usize::from(self.0 - Self::OLDEST.0)]
    }
}

/// `1.7`.
impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string, number or boolean.
    Scalar,
    /// A list (its items are not modelled).
    List,
    /// A mapping with free keys (`keys:`, `room.room_configurations`; values not modelled).
    Map,
    /// Anything: a type with its own YAML decoding (`rtc.udp_port` takes `7882` or
    /// `"7882-7892"`), or a key whose type changed between releases.
    Any,
    /// A mapping with these keys.
    Section(&'static [Key]),
}

impl Kind {
    /// "a list", "a mapping of settings", … for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Scalar => "a single value",
            Self::List => "a list",
            Self::Map => "a mapping",
            Self::Any => "any value",
            Self::Section(_) => "a mapping of settings",
        }
    }

    /// Can a value of this YAML shape be decoded into this kind? `null` always can (the zero
    /// value).
    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (_, Value::Null)
                | (Self::Any, _)
                | (
                    Self::Scalar,
                    Value::Bool(_) | Value::Number(_) | Value::String(_)
                )
                | (Self::List, Value::Sequence(_))
                | (Self::Map | Self::Section(_), Value::Mapping(_))
        )
    }
}

/// One key of livekit-server's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The YAML key.
    pub name: &'static str,
    /// The minor version of the first modelled release line that knows it.
    pub first: u8,
    /// The minor version of the last modelled release line that knows it (13 while it exists).
    pub last: u8,
    /// What it holds.
    pub kind: Kind,
}

impl Key {
    /// Does `release` know this key?
    pub fn in_release(&self, release: Release) -> bool {
        (self.first..=self.last).contains(&release.0)
    }

    /// The first release line that knows it.
    pub fn first_release(&self) -> Release {
        Release(self.first)
    }

    /// The last release line that knows it.
    pub fn last_release(&self) -> Release {
        Release(self.last)
    }
}

/// The top-level keys of `livekit.yaml`, across all modelled releases.
pub fn root() -> &'static [Key] {
    keys::ROOT
}

/// How many keys (at every level) `release` knows.
#[cfg(test)]
fn key_count(release: Release) -> usize {
    fn count(keys: &[Key], release: Release) -> usize {
        keys.iter()
            .filter(|k| k.in_release(release))
            .map(|k| {
                1 + match k.kind {
                    Kind::Section(children) => count(children, release),
                    _ => 0,
                }
            })
            .sum()
    }
    count(root(), release)
}

/// The model entry at a dotted path (`room.empty_timeout`), whatever the release.
#[cfg(any(test, feature = "testing"))]
pub fn lookup(path: &str) -> Option<&'static Key> {
    let mut keys = root();
    let mut found = None;
    for part in path.split('.') {
        let key = keys.iter().find(|k| k.name == part)?;
        keys = match key.kind {
            Kind::Section(children) => children,
            _ => &[],
        };
        found = Some(key);
    }
    found
}

/// The flags of livekit-server's own command line that read a `LIVEKIT_*` variable (cmd/server,
/// 1.7 to 1.13), without the prefix.
const FLAG_VARIABLES: &[&str] = &["CONFIG", "KEYS", "REGION", "TURN_CERT", "TURN_KEY"];

/// Does livekit-server read environment variable `name` as a setting that overrides its config
/// file? That is `LIVEKIT_CONFIG`, `LIVEKIT_KEYS`, `LIVEKIT_REGION`, `LIVEKIT_TURN_CERT`,
/// `LIVEKIT_TURN_KEY`, and `LIVEKIT_<PATH>` for every config path of any modelled release
/// (livekit-server generates a flag per path: `rtc.port_range_start` is
/// `LIVEKIT_RTC_PORT_RANGE_START`). Other `LIVEKIT_*` variables (`LIVEKIT_CPU_REQUEST`, read by
/// its CPU accounting) are not settings.
///
/// ```
/// use livekit_provision::config_model::overrides_config;
///
/// assert!(overrides_config("LIVEKIT_RTC_PORT_RANGE_START"));
/// assert!(!overrides_config("LIVEKIT_CPU_REQUEST"));
/// ```
pub fn overrides_config(name: &str) -> bool {
    fn matches_path(keys: &[Key], rest: &str) -> bool {
        keys.iter().any(|key| {
            let segment = key.name.to_ascii_uppercase();
            match rest.strip_prefix(segment.as_str()) {
                Some("") => true,
                Some(tail) => match (tail.strip_prefix('_'), key.kind) {
                    (Some(tail), Kind::Section(children)) => matches_path(children, tail),
                    _ => false,
                },
                None => false,
            }
        })
    }
    name.strip_prefix("LIVEKIT_")
        .is_some_and(|rest| FLAG_VARIABLES.contains(&rest) || matches_path(root(), rest))
}

/// Why a YAML tree does not fit livekit-server's config. Each variant names the dotted path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No modelled release knows the key.
    #[error("`{path}` is not a livekit-server setting (no release from 1.7 to 1.13 knows it){}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Unknown {
        /// The dotted path as written.
        path: String,
        /// The closest known key at that level (dotted path), when one is close.
        suggestion: Option<String>,
    },
    /// The pinned release does not know the key.
    #[error("`{path}` is not known to livekit-server {release}: {}", availability(*first, *last))]
    NotInRelease {
        /// The dotted path.
        path: String,
        /// The release checked against.
        release: Release,
        /// The first release line that knows it.
        first: Release,
        /// The last release line that knows it.
        last: Release,
    },
    /// The value has the wrong shape (a scalar where a mapping belongs, …).
    #[error("`{path}` is {found}, but livekit-server expects {expected} there")]
    WrongKind {
        /// The dotted path.
        path: String,
        /// What livekit-server expects.
        expected: &'static str,
        /// What was written.
        found: &'static str,
    },
}

fn availability(first: Release, last: Release) -> String {
    if last == Release::LATEST {
        format!("it first appears in {first}")
    } else if first == last {
        format!("only {first} knows it")
    } else {
        format!("only {first} to {last} know it")
    }
}

impl ModelError {
    /// The dotted path of the offending key.
    pub fn path(&self) -> &str {
        match self {
            Self::Unknown { path, .. }
            | Self::NotInRelease { path, .. }
            | Self::WrongKind { path, .. } => path,
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Unknown {
                suggestion: Some(s),
                ..
            } => format!("rename it to `{s}`, or remove it"),
            Self::Unknown { .. } => {
                "remove it; livekit-server refuses unknown keys at every level and exits".to_owned()
            }
            Self::NotInRelease { release, last, .. } if release > last => format!(
                "remove it: livekit-server {} removed it (the last release line with it is {last})",
                Release(last.0 + 1)
            ),
            Self::NotInRelease { first, .. } => format!(
                "remove it, or pin a release that has it: `livekit-provision secrets set LIVEKIT_VERSION {}` or later",
                first.modelled_tag()
            ),
            Self::WrongKind { expected, .. } => format!("write {expected} there"),
        }
    }
}

/// Check every key of `mapping` (a `livekit.yaml` document, or the overlay merged into one)
/// against the model, depth first in file order. With `release`, a key that release lacks is
/// refused too; without, any modelled release will do.
pub fn check(mapping: &Mapping, release: Option<Release>) -> Result<(), ModelError> {
    walk(root(), mapping, "", release)
}

fn walk(
    keys: &'static [Key],
    mapping: &Mapping,
    prefix: &str,
    release: Option<Release>,
) -> Result<(), ModelError> {
    for (name, value) in mapping {
        let name = match name {
            Value::String(s) => s.clone(),
            other => scalar_name(other),
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(key) = keys.iter().find(|k| k.name == name) else {
            let suggestion = closest(&name, keys).map(|close| match prefix {
                "" => close.to_owned(),
                _ => format!("{prefix}.{close}"),
            });
            return Err(ModelError::Unknown { path, suggestion });
        };
        if let Some(release) = release
            && !key.in_release(release)
        {
            return Err(ModelError::NotInRelease {
                path,
                release,
                first: key.first_release(),
                last: key.last_release(),
            });
        }
        if !key.kind.accepts(value) {
            return Err(ModelError::WrongKind {
                path,
                expected: key.kind.describe(),
                found: kind_of(value),
            });
        }
        if let (Kind::Section(children), Value::Mapping(inner)) = (key.kind, value) {
            walk(children, inner, &path, release)?;
        }
    }
    Ok(())
}

/// A short name for a key in an error message.
pub(crate) fn scalar_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "<complex key>".to_owned(),
    }
}

/// "a list", "a string", … for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The known key closest to `name` by edit distance, when it is close enough to be a typo: at
/// most a third of the longer name's length, and at least 2.
fn closest(name: &str, keys: &[Key]) -> Option<&'static str> {
    keys.iter()
        .map(|k| (edit_distance(name, k.name), k.name))
        .filter(|(d, candidate)| *d <= (name.len().max(candidate.len()) / 3).max(2))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    fn version(text: &str) -> LivekitVersion {
        LivekitVersion::parse(text).unwrap()
    }

    #[test]
    fn releases_map_pinned_versions_to_their_line() {
        assert_eq!(Release::for_version(None), Release::OLDEST);
        assert_eq!(Release::for_version(Some(&version("v1.9.3"))).minor(), 9);
        assert_eq!(Release::for_version(Some(&version("v1.13.0"))).minor(), 13);
        assert_eq!(
            Release::for_version(Some(&version("v1.6.2"))),
            Release::OLDEST
        );
        assert_eq!(
            Release::for_version(Some(&version("v1.20.0"))),
            Release::LATEST
        );
        assert_eq!(
            Release::for_version(Some(&version("v2.0.0"))),
            Release::LATEST
        );
        assert_eq!(Release::all().count(), 7);
        assert_eq!(Release::OLDEST.to_string(), "1.7");
        assert_eq!(Release::OLDEST.modelled_tag(), "v1.7.2");
        assert_eq!(Release::LATEST.modelled_tag(), "v1.13.5");
    }

    #[test]
    fn known_facts_of_the_releases_are_modelled() {
        // Facts from the tags' structs, checked by hand against the sources.
        let prometheus = lookup("prometheus").unwrap();
        assert_eq!((prometheus.first, prometheus.last), (7, 13));
        assert_eq!(lookup("metric").unwrap().first, 8);
        assert_eq!(lookup("api").unwrap().first, 10);
        assert_eq!(lookup("room.empty_timeout").unwrap().kind, Kind::Scalar);
        assert_eq!(lookup("room.enabled_codecs").unwrap().kind, Kind::List);
        assert_eq!(lookup("keys").unwrap().kind, Kind::Map);
        assert_eq!(lookup("rtc.udp_port").unwrap().kind, Kind::Any);
        assert!(matches!(lookup("redis").unwrap().kind, Kind::Section(_)));
        assert!(
            lookup("rtc.tcp_port").is_some(),
            "rtcconfig is inlined into rtc"
        );
        assert!(
            lookup("logging.json").is_some(),
            "the logger config is inlined"
        );
        assert!(lookup("room.empty_timeout_typo").is_none());
        assert!(lookup("environment").is_none(), "dropped before 1.7");
    }

    #[test]
    fn every_release_knows_more_than_its_top_level() {
        let counts: Vec<usize> = Release::all().map(key_count).collect();
        assert!(counts.iter().all(|&n| n > 150), "{counts:?}");
        assert!(counts.first() < counts.last(), "{counts:?}");
    }

    #[test]
    fn unknown_keys_are_named_by_path_with_a_suggestion_when_close() {
        let err = check(&yaml("room:\n  empty_timeout_typo: 1\n"), None).unwrap_err();
        assert_eq!(err.path(), "room.empty_timeout_typo");
        assert!(
            matches!(&err, ModelError::Unknown { suggestion: Some(s), .. } if s == "room.empty_timeout"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("did you mean `room.empty_timeout`"),
            "{err}"
        );
        let err = check(&yaml("turn:\n  tls_prot: 5349\n"), None).unwrap_err();
        assert!(err.to_string().contains("`turn.tls_port`"), "{err}");
        let err = check(&yaml("room:\n  zzzzzzzz: 1\n"), None).unwrap_err();
        assert!(
            matches!(&err, ModelError::Unknown { suggestion: None, path, .. } if path == "room.zzzzzzzz"),
            "{err:?}"
        );
        let err = check(&yaml("romo: {}\n"), None).unwrap_err();
        assert!(err.to_string().contains("did you mean `room`"), "{err}");
    }

    #[test]
    fn keys_the_pinned_release_lacks_name_both_versions() {
        let overlay = yaml("api:\n  execution_timeout: 2s\n");
        assert!(check(&overlay, None).is_ok());
        assert!(check(&overlay, Some(Release::LATEST)).is_ok());
        let err = check(&overlay, Some(Release::OLDEST)).unwrap_err();
        assert_eq!(
            err,
            ModelError::NotInRelease {
                path: "api".to_owned(),
                release: Release::OLDEST,
                first: Release(10),
                last: Release::LATEST,
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("livekit-server 1.7") && message.contains("first appears in 1.10"),
            "{message}"
        );
        assert!(err.hint().contains("v1.10.1"), "{}", err.hint());
        // A key a later release removed says so.
        let removed = yaml("video:\n  stream_tracker: {}\n");
        assert!(check(&removed, Some(Release::OLDEST)).is_ok());
        let err = check(&removed, Some(Release(9))).unwrap_err();
        assert_eq!(err.path(), "video.stream_tracker");
        assert!(err.to_string().contains("only 1.7 knows it"), "{err}");
        assert!(err.hint().contains("1.8 removed it"), "{}", err.hint());
        // A nested key added later is refused at its own path.
        let nested = yaml("agents:\n  target_load: 0.5\n");
        let err = check(&nested, Some(Release(10))).unwrap_err();
        assert_eq!(err.path(), "agents.target_load");
    }

    #[test]
    fn shapes_are_checked_where_the_model_knows_them() {
        for (text, path, expected) in [
            ("room: 5\n", "room", "a mapping of settings"),
            ("keys: abc\n", "keys", "a mapping"),
            (
                "room:\n  empty_timeout: [1]\n",
                "room.empty_timeout",
                "a single value",
            ),
            ("bind_addresses: 0.0.0.0\n", "bind_addresses", "a list"),
            (
                "turn:\n  enabled: {a: 1}\n",
                "turn.enabled",
                "a single value",
            ),
        ] {
            let err = check(&yaml(text), None).unwrap_err();
            assert!(
                matches!(&err, ModelError::WrongKind { path: p, expected: e, .. } if p == path && *e == expected),
                "{text}: {err:?}"
            );
        }
        for text in [
            "rtc:\n  udp_port: \"7882-7892\"\n",
            "rtc:\n  udp_port: 7882\n",
            "room:\n  enabled_codecs:\n    - mime: audio/opus\n",
            "room: ~\n",
            "keys:\n  a: b\n",
        ] {
            assert!(check(&yaml(text), Some(Release::OLDEST)).is_ok(), "{text}");
        }
    }

    #[test]
    fn config_paths_and_flags_are_the_overriding_variables() {
        for name in [
            "LIVEKIT_CONFIG",
            "LIVEKIT_KEYS",
            "LIVEKIT_TURN_CERT",
            "LIVEKIT_PORT",
            "LIVEKIT_RTC_PORT_RANGE_START",
            "LIVEKIT_RTC_UDP_PORT",
            "LIVEKIT_RTC_USE_EXTERNAL_IP",
            "LIVEKIT_REDIS_ADDRESS",
            "LIVEKIT_REDIS_PASSWORD",
            "LIVEKIT_LOGGING_LEVEL",
            "LIVEKIT_ROOM_PLAYOUT_DELAY_ENABLED",
            "LIVEKIT_TURN_ENABLED",
            "LIVEKIT_API_EXECUTION_TIMEOUT",
        ] {
            assert!(overrides_config(name), "{name}");
        }
        for name in [
            "LIVEKIT_CPU_REQUEST",
            "LIVEKIT_",
            "LIVEKIT_RTC_",
            "LIVEKIT_PORTX",
            "LIVEKIT_ROOM_NOPE",
            "LIVEKIT_rtc_tcp_port",
            "PORT",
            "MY_LIVEKIT_PORT",
        ] {
            assert!(!overrides_config(name), "{name}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("room", "room"), 0);
        assert_eq!(edit_distance("romo", "room"), 2);
    }
}
