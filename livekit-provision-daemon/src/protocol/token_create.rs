//! `token.create`: its parameters and result.

use std::fmt;
use std::time::{Duration, SystemTime};

use livekit_provision::token::{self, TokenError, TokenRequest, VideoGrants};
use livekit_provision::{DiskTriple, ErrorReport, Hint, NotProvisioned, StateDir};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{NOT_PROVISIONED, RpcError};

/// A duration (a token's validity, a rotation's grace): a humantime duration (`"6h"`) or whole
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ttl {
    /// Whole seconds.
    Seconds(u64),
    /// A duration such as `"6h"` or `"30m"`.
    Text(String),
}

impl Ttl {
    /// The duration; `-32602` naming `param` when the text is not one.
    pub fn duration(&self, param: &str) -> Result<Duration, RpcError> {
        match self {
            Self::Seconds(s) => Ok(Duration::from_secs(*s)),
            Self::Text(text) => humantime::parse_duration(text).map_err(|e| {
                RpcError::invalid_params(format!("{param} {text:?} is not a duration: {e}"))
            }),
        }
    }
}

/// The parameters of `token.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateParams {
    /// The participant identity (`sub`).
    pub identity: String,
    /// The room to join; with neither `grants` nor `admin`, the token joins this room.
    #[serde(default)]
    pub room: Option<String>,
    /// Validity; 6 hours when absent.
    #[serde(default)]
    pub ttl: Option<Ttl>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Participant metadata.
    #[serde(default)]
    pub metadata: Option<String>,
    /// Explicit video grants (livekit's `video` claim); override `room` and `admin`.
    #[serde(default)]
    pub grants: Option<VideoGrants>,
    /// Grant room administration (create, list, admin, record).
    #[serde(default)]
    pub admin: Option<bool>,
}

impl TokenCreateParams {
    /// The token request these parameters describe, validated.
    pub fn request(&self) -> Result<TokenRequest, RpcError> {
        let ttl = match &self.ttl {
            None => token::DEFAULT_TTL,
            Some(ttl) => ttl.duration("ttl")?,
        };
        let grants = match (&self.grants, self.admin.unwrap_or(false), &self.room) {
            (Some(grants), _, _) => grants.clone(),
            (None, true, _) => VideoGrants::admin(),
            (None, false, Some(room)) => VideoGrants::join(room.clone()),
            (None, false, None) => {
                return Err(RpcError::invalid_params(
                    "give a room to join, grants, or admin: true",
                ));
            }
        };
        let mut request = TokenRequest::new(self.identity.clone(), grants);
        request.room.clone_from(&self.room);
        request.name.clone_from(&self.name);
        request.metadata.clone_from(&self.metadata);
        request.ttl = ttl;
        Ok(request)
    }
}

/// The result of `token.create`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenCreateResult {
    /// The signed JWT (a credential: never logged).
    pub token: String,
    /// The API key it is signed for.
    pub api_key: String,
    /// The identity it was issued to.
    pub identity: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// The token is a credential: `Debug` shows `****`.
impl fmt::Debug for TokenCreateResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCreateResult")
            .field("token", &"****")
            .field("api_key", &self.api_key)
            .field("identity", &self.identity)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenCreateResult {
    /// A token for `request`, signed at `now` with the credentials the three files of `state`
    /// agree on, within the limits of the `livekit.yaml` the server runs with (a token it would
    /// refuse at join is refused here): what `token.create` answers and the CLI's `token`
    /// prints. The files are read once.
    pub fn mint(
        state: &StateDir,
        mut request: TokenRequest,
        now: SystemTime,
    ) -> Result<Self, TokenCreateError> {
        let disk = DiskTriple::read(state);
        request.limits = disk
            .livekit_yaml
            .valid()
            .map(livekit_provision::LivekitYaml::token_limits)
            .unwrap_or_default();
        let creds = disk
            .consistent_credentials()
            .ok_or_else(|| NotProvisioned {
                state: state.root().to_owned(),
            })?;
        let token = token::mint(&creds, &request, now)?;
        Ok(Self {
            token,
            api_key: creds.key.as_str().to_owned(),
            identity: request.identity,
            expires_at: livekit_provision::clock::rfc3339(now + request.ttl),
        })
    }
}

/// Why no token was made ([`TokenCreateResult::mint`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenCreateError {
    /// The three files are missing or disagree: there are no credentials to sign with.
    #[error(transparent)]
    NotProvisioned(#[from] NotProvisioned),
    /// The request was refused (identity, room, ttl) or could not be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl Hint for TokenCreateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotProvisioned(e) => e.hint(),
            Self::Token(e) => e.hint(),
        }
    }
}

/// `token.create`'s errors: not provisioned yet is [`NOT_PROVISIONED`] (the caller may wait for
/// provisioning), a refused request "invalid params", anything else a server error.
impl From<&TokenCreateError> for RpcError {
    fn from(e: &TokenCreateError) -> Self {
        match e {
            TokenCreateError::NotProvisioned(_) => RpcError::new(
                NOT_PROVISIONED,
                "the node has no consistent credentials on disk yet",
            )
            .with_hint(Some(
                "wait for provisioning (`status`), or run `livekit-provision check`".to_owned(),
            )),
            TokenCreateError::Token(
                TokenError::InvalidIdentity { .. }
                | TokenError::InvalidRoom { .. }
                | TokenError::InvalidTtl { .. },
            ) => RpcError::invalid_params(e.to_string()).with_hint(e.hint()),
            TokenCreateError::Token(_) => RpcError::from_report(&ErrorReport::of(e)),
        }
    }
}
