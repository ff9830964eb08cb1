//! JSON-RPC 2.0 framing: one JSON object per line, in and out.
//!
//! A malformed request gets an error response (never a crash): `-32700` for bytes that are not
//! JSON, `-32600` for JSON that is not a request (or a line over [`MAX_LINE`] bytes, after which
//! the connection is closed), `-32601` for an unknown method, `-32602` for bad parameters.
//! Batches are not supported (`-32600`). A request without `id` is a notification: it runs and
//! gets no answer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::protocol::{INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, RpcError};

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` for a notification.
    pub id: Option<Value>,
    /// The method name.
    pub method: String,
    /// The parameters: an object (absent or `null` become an empty object).
    pub params: Map<String, Value>,
}

/// Parse one request line. On error, the id to answer with (`null` when unknown) and the error.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batch requests are not supported"
        } else {
            "a request must be a JSON object"
        };
        return Err((Value::Null, RpcError::new(INVALID_REQUEST, what)));
    };
    let id = obj.remove("id");
    let answer_id = id.clone().unwrap_or(Value::Null);
    let invalid = |msg: &str| (answer_id.clone(), RpcError::new(INVALID_REQUEST, msg));
    if !matches!(
        &id,
        None | Some(Value::Null | Value::Number(_) | Value::String(_))
    ) {
        return Err((
            Value::Null,
            RpcError::new(INVALID_REQUEST, "id must be a number, a string or null"),
        ));
    }
    if obj.get("jsonrpc") != Some(&Value::String("2.0".to_owned())) {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return Err(invalid("\"method\" must be a string"));
    };
    let params = params_object(obj.remove("params")).map_err(|e| (answer_id, e))?;
    Ok(Request { id, method, params })
}

/// A request's `params`: an object (absent or `null` become an empty object); anything else
/// is `-32602`. The socket and a host's [`ControlPlane`](crate::ControlPlane) read them alike.
pub fn params_object(params: Option<Value>) -> Result<Map<String, Value>, RpcError> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(RpcError::invalid_params("params must be an object")),
    }
}

/// A response as the server writes it: `result` or `error`, never both.
#[derive(Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

/// A request as the client writes it.
#[derive(Serialize)]
struct Call<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a P,
}

/// The response line (with its newline) for `id`.
pub fn response_line(id: &Value, result: Result<Value, RpcError>) -> Vec<u8> {
    let (result, error) = match result {
        Ok(result) => (Some(result), None),
        Err(error) => (None, Some(error)),
    };
    line(&Answer {
        jsonrpc: "2.0",
        id,
        result,
        error,
    })
}

/// `value` as one JSON line (serde_json escapes every newline inside strings).
fn line(value: &impl Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| {
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{INTERNAL_ERROR},"message":"the daemon could not serialize its answer"}}}}"#
        )
        .into_bytes()
    });
    line.push(b'\n');
    line
}

/// A response as the client reads it: its `result` or its `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    /// The id of the request answered.
    #[serde(default)]
    pub id: Value,
    /// The result of a successful call.
    #[serde(default)]
    pub result: Option<Value>,
    /// The error of a failed one.
    #[serde(default)]
    pub error: Option<RpcError>,
}

/// The request line (with its newline) of a call.
pub fn request_line(id: u64, method: &str, params: &impl Serialize) -> Vec<u8> {
    line(&Call {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::{INVALID_PARAMS, SERVER_ERROR};

    fn code(line: &str) -> i64 {
        parse_request(line.as_bytes()).unwrap_err().1.code
    }

    #[test]
    fn parses_requests_and_notifications() {
        let r = parse_request(br#"{"jsonrpc":"2.0","id":7,"method":"status"}"#).unwrap();
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(r.method, "status");
        assert!(r.params.is_empty());
        let n = parse_request(br#"{"jsonrpc":"2.0","method":"ensure","params":{"a":1}}"#).unwrap();
        assert_eq!(n.id, None);
        assert_eq!(n.params.get("a"), Some(&json!(1)));
    }

    #[test]
    fn malformed_requests_get_their_codes() {
        assert_eq!(code("{not json"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(code("42"), INVALID_REQUEST);
        assert_eq!(code(r#"{"id":1,"method":"status"}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            INVALID_PARAMS
        );
        let (id, _) = parse_request(br#"{"jsonrpc":"1.0","id":"a","method":"x"}"#).unwrap_err();
        assert_eq!(id, json!("a"));
    }

    #[test]
    fn responses_are_one_line() {
        let ok = response_line(&json!(1), Ok(json!({"a": "b\nc"})));
        assert_eq!(ok.last(), Some(&b'\n'));
        assert!(!ok[..ok.len() - 1].contains(&b'\n'));
        let err = response_line(
            &Value::Null,
            Err(RpcError::server("boom", Some("fix".into()))),
        );
        let v: Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(v["error"]["code"], json!(SERVER_ERROR));
        assert_eq!(v["error"]["data"]["hint"], json!("fix"));
    }
}
