//! `token.create`: its parameters and result.

use std::fmt;
use std::time::Duration;

use livekit_provision::token::{self, TokenRequest, VideoGrants};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RpcError;

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
