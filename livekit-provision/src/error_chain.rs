//! One walk of an error's cause chain, and the [`Hint`] an error gives when it knows its fix.
//!
//! Every place that shows an error — the binaries' `error:` / `caused by:` / `hint:` lines, the
//! daemon's `status.provisioning.last_error` and its JSON-RPC error messages, `check`'s findings —
//! goes through [`ErrorReport`], so they all drop the same repeats: `#[error(transparent)]` and
//! `"…: {source}"` messages already contain their cause, which is then not said twice.

use std::error::Error;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An error that can tell the operator how to fix it. Each error type implements it beside its
/// own definition (its variants and their fixes read together).
pub trait Hint: Error {
    /// One line saying what to do about this error, when a fix is known.
    fn hint(&self) -> Option<String>;
}

/// An error as it is shown: its message, its causes (repeats dropped) and its hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// The error's own message.
    pub message: String,
    /// The messages of its `source()` chain, outermost first, without repeats.
    pub causes: Vec<String>,
    /// What to do about it, when known.
    pub hint: Option<String>,
}

impl ErrorReport {
    /// `error` with its causes and `hint`.
    pub fn new(error: &dyn Error, hint: Option<String>) -> Self {
        let message = error.to_string();
        let mut causes: Vec<String> = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            let said = text.is_empty()
                || message.contains(&text)
                || causes.iter().any(|earlier| earlier.contains(&text));
            if !said {
                causes.push(text);
            }
            source = cause.source();
        }
        Self {
            message,
            causes,
            hint,
        }
    }

    /// An error that knows its own [`Hint`].
    pub fn of<E: Hint>(error: &E) -> Self {
        Self::new(error, error.hint())
    }

    /// The one line a failure is shown as unless more is asked for (`-v`): what failed and its
    /// innermost cause, the most specific thing said (`connection refused`, `permission
    /// denied`); the layers between — an HTTP library's, say — are left out.
    pub fn headline(&self) -> String {
        match self.causes.last() {
            Some(innermost) => format!("{}: {innermost}", self.message),
            None => self.message.clone(),
        }
    }

    /// A message with no error value behind it.
    pub fn message(message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint,
        }
    }
}

/// One line: the message and its causes joined by `: ` (the hint is not part of it).
impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// `error` and its causes on one line (see [`ErrorReport`]'s `Display`).
pub fn one_line(error: &dyn Error) -> String {
    ErrorReport::new(error, None).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("could not read {path}")]
        Read {
            path: String,
            #[source]
            source: std::io::Error,
        },
        #[error(transparent)]
        Transparent(#[from] Middle),
        #[error("wrapped: {0}")]
        Repeats(#[source] std::io::Error),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("store unreachable")]
    struct Middle(#[source] std::io::Error);

    impl Hint for Outer {
        fn hint(&self) -> Option<String> {
            matches!(self, Self::Read { .. }).then(|| "check the path".to_owned())
        }
    }

    fn io(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_owned())
    }

    #[test]
    fn causes_are_listed_outermost_first() {
        let e = Outer::Read {
            path: "/x".into(),
            source: io("permission denied"),
        };
        let report = ErrorReport::of(&e);
        assert_eq!(report.message, "could not read /x");
        assert_eq!(report.causes, ["permission denied"]);
        assert_eq!(report.hint.as_deref(), Some("check the path"));
        assert_eq!(report.to_string(), "could not read /x: permission denied");
    }

    #[test]
    fn repeats_are_said_once() {
        // transparent: the outer message is the middle one, said once.
        let e = Outer::Transparent(Middle(io("connection refused")));
        assert_eq!(one_line(&e), "store unreachable: connection refused");
        // a message that embeds its source.
        let e = Outer::Repeats(io("disk full"));
        assert_eq!(ErrorReport::new(&e, None).causes, Vec::<String>::new());
        assert_eq!(one_line(&e), "wrapped: disk full");
    }

    #[test]
    fn the_headline_is_the_message_and_the_innermost_cause() {
        let report = ErrorReport {
            message: "downloading http://127.0.0.1:9/x failed after 5 attempts".into(),
            causes: vec![
                "error sending request".into(),
                "client error (Connect)".into(),
                "Connection refused (os error 111)".into(),
            ],
            hint: None,
        };
        assert_eq!(
            report.headline(),
            "downloading http://127.0.0.1:9/x failed after 5 attempts: Connection refused (os error 111)"
        );
        assert_eq!(ErrorReport::message("plain", None).headline(), "plain");
    }

    #[test]
    fn a_message_has_no_causes() {
        let r = ErrorReport::message("no state directory", Some("pass --state-dir".into()));
        assert_eq!(r.to_string(), "no state directory");
        assert!(r.causes.is_empty());
    }
}
