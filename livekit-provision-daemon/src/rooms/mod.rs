//! Who is in a call on this node: its live rooms and their participants, asked of the running
//! livekit-server itself through its RoomService (Twirp with JSON bodies) on loopback, with an
//! admin token signed by a key the server accepts. What a status page shows and what an
//! apply-at-idle decision needs ([`Occupancy::is_idle`]); and "does the running server accept
//! this key?" ([`key_accepted`]), which a key rotation asks before any signer uses a new key.
//!
//! Why not LiveKit's `livekit-api` crate, and what the server answers (measured on 1.13.5):
//! docs/DESIGN.md §5, "The RoomService".
//!
//! - `ListRooms` needs a token with `roomList`; `ListParticipants` needs `roomAdmin` **and**
//!   `room` naming the room asked about. Each call gets its own short-lived token.
//! - The participants are **counted from `ListParticipants`**, never from a room's
//!   `num_participants`: that figure leaves hidden participants (recorders, `hidden: true`
//!   grants) out and lags — a room its three participants had just left still said 2.
//! - An answer is proto3 JSON: livekit-server 1.13.5 writes every field (`{"rooms":[]}` on an
//!   empty node), 64-bit integers as strings (`"creation_time":"1796662035"`), rooms in no
//!   particular order; other writers omit empty fields. Every field read here may be missing or
//!   `null`; the rooms and identities are sorted.
//! - A refusal is HTTP 401: livekit's auth middleware answers in plain text, naming the unknown
//!   key (`invalid API key: <key>`) or echoing **the whole token** before its reason
//!   (`invalid token: <jwt>, error: token signature is invalid: …`); a token without the grant
//!   gets Twirp's `{"code":"unauthenticated","msg":"permissions denied"}`. The server's words
//!   are reduced to a [`Refusal`]; a token never reaches an error, a log or `Debug`.
//!
//! Blocking, with a [`TIMEOUT`] for each call and answers of at most [`MAX_ANSWER`] bytes: the
//! daemon calls it from its blocking pool.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use livekit_provision::token::{self, TokenError, TokenRequest, VideoGrants};
use livekit_provision::validate::TokenLimits;
use livekit_provision::{ApiKey, Credentials};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use crate::supervise::health;

/// How long one RoomService call may take, connect to last byte (livekit's own API execution
/// timeout is 2 s).
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read (a participant with tracks is 1–2 KiB of JSON).
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// At most this many identities are listed per room ([`RoomOccupancy::participants`] counts
/// them all).
pub const MAX_IDENTITIES: usize = 100;

/// The identity (`sub`) of the tokens this module signs.
const IDENTITY: &str = "livekit-provision";

/// Their lifetime: one call's worth, with room for the server's minute of leeway.
const TOKEN_TTL: Duration = Duration::from_secs(120);

/// The Twirp paths of the two calls.
const LIST_ROOMS: &str = "/twirp/livekit.RoomService/ListRooms";
const LIST_PARTICIPANTS: &str = "/twirp/livekit.RoomService/ListParticipants";

/// Who is in a call on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Occupancy {
    /// The live rooms, by name. A room its last participant left stays listed, empty, until its
    /// `departure_timeout` (20 s by default) has passed.
    pub rooms: Vec<RoomOccupancy>,
    /// Participants in all rooms, hidden ones included.
    pub participants: u32,
}

impl Occupancy {
    /// No participant in any room: a restart of livekit-server now cuts nobody's call.
    pub fn is_idle(&self) -> bool {
        self.participants == 0
    }
}

/// One live room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoomOccupancy {
    /// The room's name.
    pub name: String,
    /// Its id (`RM_…`).
    pub sid: String,
    /// Its participants, hidden ones included (counted from `ListParticipants`).
    pub participants: u32,
    /// Their identities, sorted; at most [`MAX_IDENTITIES`].
    pub identities: Vec<String>,
    /// When the room was created (seconds since the epoch), when the server says.
    pub created_at: Option<u64>,
}

/// Why livekit-server's answer about who is in a call could not be had. Never holds a token or a
/// secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomsError {
    /// No credentials to sign a token with.
    #[error("no API key to ask livekit-server at {addr} who is in a call")]
    NoKeys {
        /// The RoomService's address.
        addr: SocketAddr,
    },
    /// Nothing answered, or not in time: refused connection, timeout, closed early.
    #[error("livekit-server's RoomService at {addr} did not answer")]
    Unreachable {
        /// The RoomService's address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// HTTP 401 for each key tried, in order.
    #[error("livekit-server at {addr} refused {}", Refusals(refused))]
    Refused {
        /// The RoomService's address.
        addr: SocketAddr,
        /// Each key tried and why it was refused.
        refused: Vec<KeyRefusal>,
    },
    /// Something answered, but not as livekit-server's RoomService does (another program on
    /// the port, a status other than 200 or 401, JSON of another shape).
    #[error("livekit-server at {addr} gave a bad answer to {method}: {detail}")]
    BadAnswer {
        /// The RoomService's address.
        addr: SocketAddr,
        /// `ListRooms` or `ListParticipants`.
        method: &'static str,
        /// What was wrong (the server's words redacted, at most a line).
        detail: String,
    },
    /// A token could not be signed.
    #[error("could not sign a RoomService token with API key {key}")]
    Token {
        /// The API key.
        key: String,
        /// The cause.
        #[source]
        source: TokenError,
    },
}

impl RoomsError {
    /// A refusal of every key tried as unknown to the server or held with another secret:
    /// another key may work.
    pub fn keys_refused(&self) -> bool {
        matches!(self, Self::Refused { refused, .. } if refused.iter().all(|r| r.reason.is_key()))
    }
}

impl livekit_provision::Hint for RoomsError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NoKeys { .. } => {
                "provision the node first (`livekit-provision ensure`): livekit.yaml has no key"
                    .to_owned()
            }
            Self::Unreachable { addr, .. } => format!(
                "check that livekit-server is running and listens on {addr} (`livekit-provision status`)"
            ),
            Self::Refused { refused, .. } => {
                match refused.last().map(|r| &r.reason) {
                    Some(Refusal::UnknownKey) => "livekit-server loads its keys only when it starts: it holds the keys of the livekit.yaml it started with; a new key is loaded at its next restart".to_owned(),
                    Some(Refusal::WrongSecret) => "livekit-server holds this key with another secret: livekit.yaml changed after it started, or the secret store disagrees with it (run `livekit-provision check`)".to_owned(),
                    Some(Refusal::Clock) => "the token's times were refused: check that the system clock is right".to_owned(),
                    _ => "this livekit-server refused a token with the RoomService grants; report it with its version".to_owned(),
                }
            }
            Self::BadAnswer { addr, .. } => format!(
                "check that the program listening on {addr} is livekit-server (livekit.yaml's `port`)"
            ),
            Self::Token { source, .. } => return livekit_provision::Hint::hint(source),
        })
    }
}

/// One key livekit-server refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRefusal {
    /// The key the token was signed with.
    pub key: ApiKey,
    /// Why, from the server's words.
    pub reason: Refusal,
}

impl fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API key {} ({})", self.key.as_str(), self.reason)
    }
}

/// Why livekit-server refused a token (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// It has no such key loaded (`invalid API key: <key>`).
    UnknownKey,
    /// It has the key with another secret (`… token signature is invalid …`).
    WrongSecret,
    /// It refused the token's times (`token is expired`, `token is not valid yet`): the clocks
    /// disagree by more than its minute of leeway.
    Clock,
    /// It accepted the token but not its grants (`permissions denied`).
    Denied,
    /// Another refusal, in the server's words (a token in them masked).
    Other(String),
}

impl Refusal {
    /// A refusal of the key itself (unknown, or another secret): another key may be accepted.
    pub fn is_key(&self) -> bool {
        matches!(self, Self::UnknownKey | Self::WrongSecret)
    }

    /// Read the body of a 401: livekit's middleware in plain text, or a Twirp error in JSON.
    fn from_body(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if let Ok(twirp) = serde_json::from_str::<TwirpError>(text) {
            return if twirp.msg == "permissions denied" {
                Self::Denied
            } else {
                Self::Other(mask_tokens(&format!("{}: {}", twirp.code, twirp.msg)))
            };
        }
        if text.starts_with("invalid API key") {
            Self::UnknownKey
        } else if text.contains("signature is invalid")
            || text.contains("error in cryptographic primitive")
        {
            Self::WrongSecret
        } else if text.contains("token is expired") || text.contains("not valid yet") {
            Self::Clock
        } else {
            Self::Other(mask_tokens(text.lines().next().unwrap_or_default()))
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey => f.write_str("it has not loaded this key"),
            Self::WrongSecret => f.write_str("it holds this key with another secret"),
            Self::Clock => f.write_str("the token's times were refused: clocks disagree"),
            Self::Denied => f.write_str("permissions denied for the token's grants"),
            Self::Other(words) => write!(f, "{words:?}"),
        }
    }
}

struct Refusals<'a>(&'a [KeyRefusal]);

impl fmt::Display for Refusals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, refusal) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{refusal}")?;
        }
        Ok(())
    }
}

/// Who is in a call on the livekit-server whose RoomService is at `addr` (see
/// `supervise::health::probe_address`: loopback on livekit.yaml's `port`), asked with the
/// first of `candidates` the server accepts: the current key first, then the others its
/// livekit.yaml holds. A key refused as unknown or held with another secret passes to the next;
/// anything else ends the attempt. Returns the occupancy and the credentials that worked.
pub fn occupancy(
    addr: SocketAddr,
    candidates: &[Credentials],
    now: SystemTime,
) -> Result<(Occupancy, &Credentials), RoomsError> {
    let mut refused = Vec::new();
    for creds in candidates {
        match list_rooms(addr, creds, now) {
            Ok(rooms) => return Ok((participants_of(addr, creds, rooms, now)?, creds)),
            Err(RoomsError::Refused {
                refused: mut this, ..
            }) => {
                let go_on = this.iter().all(|r| r.reason.is_key());
                refused.append(&mut this);
                if !go_on {
                    return Err(RoomsError::Refused { addr, refused });
                }
            }
            Err(e) => return Err(e),
        }
    }
    if refused.is_empty() {
        Err(RoomsError::NoKeys { addr })
    } else {
        Err(RoomsError::Refused { addr, refused })
    }
}

/// Does the livekit-server at `addr` accept `creds`? `Ok(false)` when it refuses the key as
/// unknown or held with another secret; any other failure (no answer, a clock refusal, a bad
/// answer) is an error: it says nothing about the key.
pub fn key_accepted(
    addr: SocketAddr,
    creds: &Credentials,
    now: SystemTime,
) -> Result<bool, RoomsError> {
    match list_rooms(addr, creds, now) {
        Ok(_) => Ok(true),
        Err(e) if e.keys_refused() => Ok(false),
        Err(e) => Err(e),
    }
}

/// `ListRooms`, every room.
fn list_rooms(
    addr: SocketAddr,
    creds: &Credentials,
    now: SystemTime,
) -> Result<Vec<ListedRoom>, RoomsError> {
    let grants = VideoGrants {
        room_list: Some(true),
        ..VideoGrants::default()
    };
    let body = call(addr, creds, LIST_ROOMS, grants, b"{}", now)?;
    parse_rooms(&body).map_err(|e| bad_answer(addr, LIST_ROOMS, e.to_string()))
}

/// `ListParticipants` of each room, into the occupancy.
fn participants_of(
    addr: SocketAddr,
    creds: &Credentials,
    mut rooms: Vec<ListedRoom>,
    now: SystemTime,
) -> Result<Occupancy, RoomsError> {
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let mut occupancy = Occupancy::default();
    for room in rooms {
        if room.name.is_empty() {
            return Err(bad_answer(addr, LIST_ROOMS, "a room without a name".into()));
        }
        let grants = VideoGrants {
            room_admin: Some(true),
            room: Some(room.name.clone()),
            ..VideoGrants::default()
        };
        let request = serde_json::json!({ "room": room.name }).to_string();
        let body = call(
            addr,
            creds,
            LIST_PARTICIPANTS,
            grants,
            request.as_bytes(),
            now,
        )?;
        let mut identities = parse_identities(&body)
            .map_err(|e| bad_answer(addr, LIST_PARTICIPANTS, e.to_string()))?;
        identities.sort();
        let participants = u32::try_from(identities.len()).unwrap_or(u32::MAX);
        identities.truncate(MAX_IDENTITIES);
        occupancy.participants = occupancy.participants.saturating_add(participants);
        occupancy.rooms.push(RoomOccupancy {
            name: room.name,
            sid: room.sid,
            participants,
            identities,
            created_at: room.creation_time.filter(|t| *t > 0),
        });
    }
    Ok(occupancy)
}

/// One Twirp call: a token for `grants` signed with `creds`, `body` posted to `path`; the body
/// of a 200, a [`RoomsError::Refused`] for a 401.
fn call(
    addr: SocketAddr,
    creds: &Credentials,
    path: &'static str,
    grants: VideoGrants,
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<u8>, RoomsError> {
    let method = path.rsplit('/').next().unwrap_or(path);
    let mut request = TokenRequest::new(IDENTITY, grants);
    request.ttl = TOKEN_TTL;
    // The rooms asked about are the server's own: they fit its limits, whatever they are.
    request.limits = TokenLimits {
        max_room_name_length: usize::MAX,
        ..TokenLimits::default()
    };
    let jwt = token::mint(creds, &request, now).map_err(|source| RoomsError::Token {
        key: creds.key.as_str().to_owned(),
        source,
    })?;
    let authorization = Zeroizing::new(format!("Bearer {}", Zeroizing::new(jwt).as_str()));
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", authorization.as_str()),
    ];
    let answer = health::post(addr, path, &headers, body, TIMEOUT, MAX_ANSWER).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            bad_answer(addr, method, e.to_string())
        } else {
            RoomsError::Unreachable { addr, source: e }
        }
    })?;
    match answer.status {
        200 => Ok(answer.body),
        401 => Err(RoomsError::Refused {
            addr,
            refused: vec![KeyRefusal {
                key: creds.key.clone(),
                reason: Refusal::from_body(&answer.body),
            }],
        }),
        status => Err(bad_answer(
            addr,
            method,
            format!("HTTP {status}: {}", excerpt(&answer.body)),
        )),
    }
}

fn bad_answer(addr: SocketAddr, method: &'static str, detail: String) -> RoomsError {
    let method = method.rsplit('/').next().unwrap_or(method);
    RoomsError::BadAnswer {
        addr,
        method,
        detail,
    }
}

/// The first line of an answer, tokens masked, at most 200 characters.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.trim().lines().next().unwrap_or_default();
    let masked = mask_tokens(line);
    let mut shown: String = masked.chars().take(200).collect();
    if shown.len() < masked.len() {
        shown.push('…');
    }
    shown
}

/// `text` with every JWT in it (a word starting `eyJ`, the base64 of `{"`) shown as `****`.
fn mask_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        out.push_str(livekit_provision::redact::MASK);
        let after = &rest[start..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A Twirp error body.
#[derive(Deserialize)]
struct TwirpError {
    code: String,
    #[serde(default)]
    msg: String,
}

/// `ListRoomsResponse`: what is read of it.
#[derive(Deserialize)]
struct ListRoomsAnswer {
    #[serde(default, deserialize_with = "null_as_default")]
    rooms: Vec<ListedRoom>,
}

/// `livekit.Room`: what is read of it (not `num_participants`, see the module's docs; never
/// `turn_password`).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
struct ListedRoom {
    #[serde(default, deserialize_with = "null_as_default")]
    sid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "int64")]
    creation_time: Option<u64>,
}

/// `ListParticipantsResponse`: what is read of it.
#[derive(Deserialize)]
struct ListParticipantsAnswer {
    #[serde(default, deserialize_with = "null_as_default")]
    participants: Vec<ListedParticipant>,
}

/// `livekit.ParticipantInfo`: what is read of it.
#[derive(Deserialize)]
struct ListedParticipant {
    #[serde(default, deserialize_with = "null_as_default")]
    identity: String,
}

fn parse_rooms(body: &[u8]) -> Result<Vec<ListedRoom>, serde_json::Error> {
    serde_json::from_slice::<ListRoomsAnswer>(body).map(|a| a.rooms)
}

fn parse_identities(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    serde_json::from_slice::<ListParticipantsAnswer>(body)
        .map(|a| a.participants.into_iter().map(|p| p.identity).collect())
}

/// proto3 JSON may write `null` for an empty field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A proto3 JSON 64-bit integer: a string (as protojson writes it) or a number; `null` is none.
fn int64<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Option::<Int64>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Int64::Number(n)) => Ok(u64::try_from(n).ok()),
        Some(Int64::Text(t)) => t
            .parse::<i64>()
            .map(|n| u64::try_from(n).ok())
            .map_err(|_| serde::de::Error::custom(format!("not a 64-bit integer: {t:?}"))),
    }
}

#[cfg(test)]
mod tests;
