//! The JSON-RPC error object and its codes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The daemon could not produce an answer (it could not serialize one).
pub const INTERNAL_ERROR: i64 = -32603;
/// The method ran and failed (provisioning, supervision, token errors).
pub const SERVER_ERROR: i64 = -32000;
/// The node is not provisioned yet (no consistent credentials on disk).
pub const NOT_PROVISIONED: i64 = -32001;

/// A JSON-RPC error object: `{code, message, data?: {hint?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// One line for a human: the error and its causes.
    pub message: String,
    /// Details; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ErrorData>,
}

/// The `data` of an [`RpcError`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorData {
    /// What to do about it.
    #[serde(default)]
    pub hint: Option<String>,
}

/// The message (`data.hint` is separate: [`RpcError::hint`]).
impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RpcError {}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32602` with `message`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// A method failure with its hint, when there is one.
    pub fn server(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::new(SERVER_ERROR, message).with_hint(hint)
    }

    /// A method failure from an error that knows its fix: its causes on one line, its hint.
    pub fn from_error<E: livekit_provision::Hint>(error: &E) -> Self {
        Self::from_report(&livekit_provision::ErrorReport::of(error))
    }

    /// A method failure from an [`ErrorReport`](livekit_provision::ErrorReport).
    pub fn from_report(report: &livekit_provision::ErrorReport) -> Self {
        Self::server(report.to_string(), report.hint.clone())
    }

    /// Attach `hint` as `data.hint`.
    #[must_use]
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        if let Some(hint) = hint {
            self.data = Some(ErrorData { hint: Some(hint) });
        }
        self
    }

    /// The hint, when there is one.
    pub fn hint(&self) -> Option<&str> {
        self.data.as_ref()?.hint.as_deref()
    }
}
