//! LiveKit access tokens (docs/DESIGN.md "Facts about livekit-server"): HS256 JWTs signed with the API secret, carrying a
//! `video` grant.
//!
//! [`mint`] makes the tokens livekit-server accepts: `iss` = API key, `sub` = identity, `nbf` and
//! `iat` = now, `exp` = now + ttl, plus the camelCase custom claims `video`, `name`, `metadata`.
//! `verify` (the `testing` feature) checks a token as livekit's verifier does: HS256 only, `iss` selects the key, `exp`
//! required, one minute of leeway on `exp` and `nbf`. Both take the clock as a parameter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
#[cfg(any(test, feature = "testing"))]
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::inputs::Credentials;
#[cfg(any(test, feature = "testing"))]
use crate::secret::Secret;
use crate::validate::TokenLimits;

/// Lifetime of a token when none is asked for: livekit's own default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 60 * 60);
/// Longest lifetime we sign.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Clock skew tolerated on `exp` and `nbf`, as livekit's verifier does.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The `video` grant. Fields left `None` are omitted from the token.
///
/// An unknown field is refused, not dropped: a misspelt grant (`roomjoin`) must not yield a
/// token without it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VideoGrants {
    /// May create and delete rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_create: Option<bool>,
    /// May list rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_list: Option<bool>,
    /// May start recordings (egress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_record: Option<bool>,
    /// May administer the room named in `room`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_admin: Option<bool>,
    /// May join the room named in `room`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_join: Option<bool>,
    /// The room this grant is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// May publish tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// May subscribe to tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// May publish data messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// The track sources it may publish (`camera`, `microphone`, …); all when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_sources: Option<Vec<String>>,
    /// May update its own name and metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    /// May administer ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_admin: Option<bool>,
    /// Hidden from other participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// Marked as a recorder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<bool>,
    /// Marked as an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<bool>,
    /// May subscribe to metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe_metrics: Option<bool>,
    /// May manage agent sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_manage_agent_session: Option<bool>,
    /// The room participants may be moved or forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_room: Option<String>,
}

impl VideoGrants {
    /// Join `room`, publish, subscribe and send data: what a meeting participant needs.
    pub fn join(room: impl Into<String>) -> Self {
        Self {
            room_join: Some(true),
            room: Some(room.into()),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            ..Self::default()
        }
    }

    /// Server-side administration: create, list, record and administer rooms. Per-room
    /// RoomService calls also need `room` set to the room acted on.
    pub fn admin() -> Self {
        Self {
            room_create: Some(true),
            room_list: Some(true),
            room_record: Some(true),
            room_admin: Some(true),
            ..Self::default()
        }
    }
}

/// What to put in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The participant identity (`sub`): 1 byte up to `limits.max_participant_identity_length`.
    pub identity: String,
    /// The display name (`name`).
    pub name: Option<String>,
    /// When set, the room of the video grant (overrides `grants.room`).
    pub room: Option<String>,
    /// How long the token is valid: more than zero, at most [`MAX_TTL`]; whole seconds count.
    pub ttl: Duration,
    /// The video grant.
    pub grants: VideoGrants,
    /// Participant metadata (`metadata`).
    pub metadata: Option<String>,
    /// The limits of the server the token is for (`limit:` in its livekit.yaml): the identity
    /// and the room name must fit them, or the server refuses the join.
    pub limits: TokenLimits,
}

impl TokenRequest {
    /// A request for `identity` with `grants`, valid for [`DEFAULT_TTL`].
    pub fn new(identity: impl Into<String>, grants: VideoGrants) -> Self {
        Self {
            identity: identity.into(),
            name: None,
            room: None,
            ttl: DEFAULT_TTL,
            grants,
            metadata: None,
            limits: TokenLimits::default(),
        }
    }
}

/// The claims of a LiveKit token, as [`mint`] writes them (and `verify` returns them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant identity (empty in some server-to-server tokens).
    #[serde(default)]
    pub sub: String,
    /// Not valid before (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// The video grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrants>,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Participant metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// Why a token could not be minted or was refused. Never holds the token or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The identity is empty or too long.
    #[error("invalid token identity: {reason}")]
    InvalidIdentity {
        /// What is wrong.
        reason: String,
    },
    /// The room name is empty or longer than the server's limit.
    #[error("invalid token room: {reason}")]
    InvalidRoom {
        /// What is wrong.
        reason: String,
    },
    /// The lifetime is zero or too long.
    #[error(
        "invalid token lifetime {}: must be at least 1s and at most {}",
        humantime::format_duration(*ttl),
        humantime::format_duration(MAX_TTL)
    )]
    InvalidTtl {
        /// The lifetime asked for.
        ttl: Duration,
    },
    /// The clock reads before 1970.
    #[error("the system clock is set before 1970")]
    ClockBeforeEpoch,
    /// Signing failed.
    #[error("could not sign a token with API key {key}")]
    Sign {
        /// The API key.
        key: String,
        /// The underlying failure.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Not a JWT we can read (bad syntax, unknown or `none` algorithm, bad claims).
    #[error("malformed token")]
    Malformed {
        /// The underlying failure.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Signed with an algorithm other than HS256.
    #[error("token is signed with {alg}; only HS256 is accepted")]
    UnsupportedAlgorithm {
        /// The algorithm in the token header.
        alg: String,
    },
    /// No `iss` claim, so no key to check it with.
    #[error("token has no issuer (iss), so no API key to check it with")]
    MissingIssuer,
    /// No `exp` claim.
    #[error("token has no expiry (exp)")]
    MissingExpiry,
    /// `iss` names a key we do not have.
    #[error("token is signed with unknown API key {key}")]
    UnknownKey {
        /// The API key the token names.
        key: String,
    },
    /// The signature does not match the key's secret.
    #[error("token signature does not match the secret of API key {key}")]
    BadSignature {
        /// The API key the token names.
        key: String,
    },
    /// The claims failed validation.
    #[error("token signed with API key {key} was refused")]
    Rejected {
        /// The API key the token names.
        key: String,
        /// The underlying failure.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Past `exp` (plus leeway).
    #[error("token expired at {exp} (now {now}, seconds since the epoch)")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// Before `nbf` (minus leeway).
    #[error("token is not valid before {nbf} (now {now}, seconds since the epoch)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The time of the check.
        now: u64,
    },
}

impl crate::error_chain::Hint for TokenError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::InvalidIdentity { .. } => Some(
                "give a non-empty identity that fits limit.max_participant_identity_length \
                 (256 bytes unless extra.yaml raises it)"
                    .to_owned(),
            ),
            Self::InvalidRoom { .. } => Some(
                "give a non-empty room name that fits limit.max_room_name_length \
                 (256 bytes unless extra.yaml raises it)"
                    .to_owned(),
            ),
            Self::InvalidTtl { .. } => Some("use a --ttl such as 6h or 30m".to_owned()),
            Self::ClockBeforeEpoch => Some("set the system clock".to_owned()),
            Self::UnknownKey { .. } | Self::BadSignature { .. } => Some(
                "the token was signed with other credentials; mint a new one with \
                 `livekit-provision token`, and run `livekit-provision check` if files disagree"
                    .to_owned(),
            ),
            Self::Expired { .. } => Some("mint a new token".to_owned()),
            Self::NotYetValid { .. } => {
                Some("check that the clocks of the signer and this host agree".to_owned())
            }
            _ => None,
        }
    }
}

/// Sign a token for `req` with `creds`, valid from `now`.
pub fn mint(
    creds: &Credentials,
    req: &TokenRequest,
    now: SystemTime,
) -> Result<String, TokenError> {
    req.limits
        .identity(&req.identity)
        .map_err(|e| TokenError::InvalidIdentity {
            reason: e.to_string(),
        })?;
    if let Some(room) = req.room.as_ref().or(req.grants.room.as_ref()) {
        req.limits.room(room).map_err(|e| TokenError::InvalidRoom {
            reason: e.to_string(),
        })?;
    }
    let ttl = req.ttl.as_secs();
    if ttl == 0 || req.ttl > MAX_TTL {
        return Err(TokenError::InvalidTtl { ttl: req.ttl });
    }
    let now = epoch_seconds(now)?;
    let mut video = req.grants.clone();
    if let Some(room) = &req.room {
        video.room = Some(room.clone());
    }
    let claims = Claims {
        iss: creds.key.as_str().to_owned(),
        sub: req.identity.clone(),
        nbf: Some(now),
        iat: Some(now),
        exp: now + ttl,
        video: Some(video),
        name: req.name.clone(),
        metadata: req.metadata.clone(),
    };
    let key = EncodingKey::from_secret(creds.secret.expose().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|source| {
        TokenError::Sign {
            key: creds.key.as_str().to_owned(),
            source,
        }
    })
}

/// Check `token` as livekit-server does and return its claims. `lookup` gives the secret of an
/// API key, or `None` for a key we do not have. A test helper (the `testing` feature): the
/// product signs tokens, livekit-server checks them.
#[cfg(any(test, feature = "testing"))]
pub fn verify(
    token: &str,
    lookup: impl Fn(&str) -> Option<Secret>,
    now: SystemTime,
) -> Result<Claims, TokenError> {
    let now = epoch_seconds(now)?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|source| TokenError::Malformed { source })?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::UnsupportedAlgorithm {
            alg: format!("{:?}", header.alg),
        });
    }
    // Read `iss` before verifying, to pick the key (livekit's `ParseAPIToken` does the same).
    let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|source| TokenError::Malformed { source })?;
    let key = peek
        .iss
        .filter(|k| !k.is_empty())
        .ok_or(TokenError::MissingIssuer)?;
    if peek.exp.is_none() {
        return Err(TokenError::MissingExpiry);
    }
    let secret = lookup(&key).ok_or_else(|| TokenError::UnknownKey { key: key.clone() })?;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.set_issuer(&[&key]);
    // Time is checked below against the caller's clock, not the library's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let decoding = DecodingKey::from_secret(secret.expose().as_bytes());
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|source| match source.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                TokenError::BadSignature { key: key.clone() }
            }
            _ => TokenError::Rejected {
                key: key.clone(),
                source,
            },
        })?
        .claims;

    let leeway = LEEWAY.as_secs();
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    Ok(claims)
}

/// The claims read before the signature is checked.
#[cfg(any(test, feature = "testing"))]
#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
    exp: Option<serde_json::Value>,
}

fn epoch_seconds(time: SystemTime) -> Result<u64, TokenError> {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| TokenError::ClockBeforeEpoch)
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use std::collections::BTreeSet;

    use super::*;
    use crate::secret::ApiKey;
    use crate::validate::DEFAULT_NAME_LIMIT;

    const KEY: &str = "APIkey123";
    const SECRET: &str = "0123456789abcdefghijABCDEFGHIJ0123456789xyz";

    fn creds() -> Credentials {
        Credentials {
            key: ApiKey::new(KEY).unwrap(),
            secret: Secret::new(SECRET),
        }
    }

    fn lookup(key: &str) -> Option<Secret> {
        (key == KEY).then(|| Secret::new(SECRET))
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn at(offset: i64) -> SystemTime {
        let base = t0();
        if offset >= 0 {
            base + Duration::from_secs(offset.unsigned_abs())
        } else {
            base - Duration::from_secs(offset.unsigned_abs())
        }
    }

    fn join_token(ttl: Duration) -> String {
        let mut req = TokenRequest::new("alice", VideoGrants::join("standup"));
        req.ttl = ttl;
        req.name = Some("Alice".to_owned());
        req.metadata = Some("{\"role\":\"host\"}".to_owned());
        mint(&creds(), &req, t0()).unwrap()
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let token = join_token(Duration::from_secs(3600));
        let claims = verify(&token, lookup, at(10)).unwrap();
        assert_eq!(
            claims,
            Claims {
                iss: KEY.to_owned(),
                sub: "alice".to_owned(),
                nbf: Some(1_800_000_000),
                iat: Some(1_800_000_000),
                exp: 1_800_003_600,
                video: Some(VideoGrants::join("standup")),
                name: Some("Alice".to_owned()),
                metadata: Some("{\"role\":\"host\"}".to_owned()),
            }
        );
    }

    #[test]
    fn claim_names_are_what_livekit_reads() {
        let token = join_token(DEFAULT_TTL);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let payload: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        assert_eq!(
            keys(&payload),
            BTreeSet::from([
                "iss", "sub", "nbf", "iat", "exp", "video", "name", "metadata"
            ])
        );
        assert_eq!(payload["exp"], 1_800_000_000 + 6 * 3600);
        assert_eq!(
            payload["video"],
            serde_json::json!({
                "roomJoin": true, "room": "standup", "canPublish": true,
                "canSubscribe": true, "canPublishData": true
            })
        );
        let admin = serde_json::to_value(VideoGrants::admin()).unwrap();
        assert_eq!(
            keys(&admin),
            BTreeSet::from(["roomCreate", "roomList", "roomRecord", "roomAdmin"])
        );
        let every = VideoGrants {
            room_create: Some(true),
            room_list: Some(true),
            room_record: Some(true),
            room_admin: Some(true),
            room_join: Some(true),
            room: Some("r".into()),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            can_publish_sources: Some(vec!["camera".into()]),
            can_update_own_metadata: Some(true),
            ingress_admin: Some(true),
            hidden: Some(true),
            recorder: Some(true),
            agent: Some(true),
            can_subscribe_metrics: Some(true),
            can_manage_agent_session: Some(true),
            destination_room: Some("d".into()),
        };
        assert_eq!(
            keys(&serde_json::to_value(every).unwrap()),
            BTreeSet::from([
                "roomCreate",
                "roomList",
                "roomRecord",
                "roomAdmin",
                "roomJoin",
                "room",
                "canPublish",
                "canSubscribe",
                "canPublishData",
                "canPublishSources",
                "canUpdateOwnMetadata",
                "ingressAdmin",
                "hidden",
                "recorder",
                "agent",
                "canSubscribeMetrics",
                "canManageAgentSession",
                "destinationRoom",
            ])
        );
    }

    #[test]
    fn request_room_sets_the_grant_room() {
        let mut req = TokenRequest::new("bob", VideoGrants::admin());
        req.room = Some("ops".to_owned());
        let token = mint(&creds(), &req, t0()).unwrap();
        let claims = verify(&token, lookup, t0()).unwrap();
        assert_eq!(claims.video.unwrap().room.as_deref(), Some("ops"));
    }

    #[test]
    fn wrong_secret_and_unknown_key_are_refused() {
        let token = join_token(DEFAULT_TTL);
        let other = |_: &str| Some(Secret::new("another-secret-another-secret-another"));
        let err = verify(&token, other, t0()).unwrap_err();
        assert!(matches!(err, TokenError::BadSignature { .. }), "{err:?}");
        assert!(err.hint().is_some());
        let err = verify(&token, |_| None, t0()).unwrap_err();
        assert!(
            matches!(err, TokenError::UnknownKey { ref key } if key == KEY),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET) && !shown.contains(&token));
    }

    #[test]
    fn expiry_and_not_before_allow_one_minute_of_skew() {
        let token = join_token(Duration::from_secs(600));
        assert!(verify(&token, lookup, at(600 + 60)).is_ok());
        let err = verify(&token, lookup, at(600 + 61)).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Expired {
                    exp: 1_800_000_600,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(verify(&token, lookup, at(-60)).is_ok());
        let err = verify(&token, lookup, at(-61)).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::NotYetValid {
                    nbf: 1_800_000_000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let token = join_token(DEFAULT_TTL);
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let err = verify(&hs512, lookup, t0()).unwrap_err();
        assert!(matches!(err, TokenError::UnsupportedAlgorithm { ref alg } if alg == "HS512"));

        // `{"alg":"none","typ":"JWT"}`, the same payload, no signature.
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(&none, lookup, t0()).is_err());
        // The right header with the signature stripped.
        let (signed, _) = token.rsplit_once('.').unwrap();
        assert!(verify(&format!("{signed}."), lookup, t0()).is_err());
        assert!(matches!(
            verify("not a token", lookup, t0()).unwrap_err(),
            TokenError::Malformed { .. }
        ));
    }

    #[test]
    fn missing_exp_or_iss_is_refused() {
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        let no_exp = sign(serde_json::json!({"iss": KEY, "sub": "a", "nbf": 1_800_000_000u64}));
        assert!(matches!(
            verify(&no_exp, lookup, t0()).unwrap_err(),
            TokenError::MissingExpiry
        ));
        let no_iss = sign(serde_json::json!({"sub": "a", "exp": 1_900_000_000u64}));
        assert!(matches!(
            verify(&no_iss, lookup, t0()).unwrap_err(),
            TokenError::MissingIssuer
        ));
    }

    #[test]
    fn requests_are_validated() {
        let mut req = TokenRequest::new("", VideoGrants::join("r"));
        assert!(matches!(
            mint(&creds(), &req, t0()).unwrap_err(),
            TokenError::InvalidIdentity { .. }
        ));
        req.identity = "x".repeat(DEFAULT_NAME_LIMIT + 1);
        assert!(mint(&creds(), &req, t0()).is_err());
        // livekit-server counts bytes: 128 two-byte characters fit, 129 do not.
        req.identity = "é".repeat(DEFAULT_NAME_LIMIT / 2 + 1);
        assert!(matches!(
            mint(&creds(), &req, t0()).unwrap_err(),
            TokenError::InvalidIdentity { .. }
        ));
        req.identity = "é".repeat(DEFAULT_NAME_LIMIT / 2);
        assert!(mint(&creds(), &req, t0()).is_ok());
        req.room = Some("r".repeat(DEFAULT_NAME_LIMIT + 1));
        assert!(matches!(
            mint(&creds(), &req, t0()).unwrap_err(),
            TokenError::InvalidRoom { .. }
        ));
        req.limits.max_room_name_length = DEFAULT_NAME_LIMIT + 1;
        assert!(mint(&creds(), &req, t0()).is_ok());
        req.room = None;
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_TTL + Duration::from_secs(1),
        ] {
            req.ttl = ttl;
            assert!(
                matches!(
                    mint(&creds(), &req, t0()).unwrap_err(),
                    TokenError::InvalidTtl { .. }
                ),
                "{ttl:?}"
            );
        }
        req.ttl = MAX_TTL;
        assert!(mint(&creds(), &req, t0()).is_ok());
        assert!(matches!(
            mint(&creds(), &req, UNIX_EPOCH - Duration::from_secs(1)).unwrap_err(),
            TokenError::ClockBeforeEpoch
        ));
    }
}
