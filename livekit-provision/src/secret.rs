//! Secret values, API keys and their minting.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show `****`. The value is reachable
//! only through [`Secret::expose`], so every place that handles the plain text is greppable.

use std::fmt;

use zeroize::Zeroizing;

/// The smallest API secret we accept from an operator. livekit-server only logs an error for
/// shorter secrets and starts anyway; we refuse them at the edge instead.
pub const MIN_API_SECRET_LEN: usize = 32;

/// The largest value (of any kind) we accept into a secret.
pub const MAX_SECRET_LEN: usize = 4096;

/// Length of a freshly minted API secret: base62 of 32 random bytes is about 43 characters, as
/// livekit-server's own `generate-keys` does.
pub(crate) const MINTED_SECRET_LEN: usize = 43;

/// Length of the random part of a minted API key (`API` + 12 base62 characters).
pub(crate) const MINTED_KEY_RANDOM_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A secret value. `Debug` and `Display` print `****`; the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a value as a secret. No validation: see [`Secret::api_secret`] for API secrets.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// Validate `value` as a LiveKit API secret: at least [`MIN_API_SECRET_LEN`] characters of
    /// printable ASCII, none of `'` `"` `\` `$` `` ` `` or whitespace (those cannot be carried
    /// unchanged through every file format and shell that reads `backend.env`).
    pub fn api_secret(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let secret = Self::new(value);
        validate_secret_text(secret.expose(), MIN_API_SECRET_LEN)?;
        Ok(secret)
    }

    /// The plain value. Every caller of this is a place where the secret leaves our hands.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Number of characters (bytes: secrets are ASCII).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Mint a fresh API secret from the OS RNG: 43 base62 characters (`MINTED_SECRET_LEN`).
    pub fn mint_api_secret() -> Result<Self, getrandom::Error> {
        Ok(Self::new(random_base62(MINTED_SECRET_LEN)?))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A LiveKit API key: 1–128 characters of `[A-Za-z0-9_-]`. Not secret on its own (it travels in
/// every token's `iss` claim), so it prints normally.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiKey(String);

impl ApiKey {
    /// Validate an API key.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        if value.is_empty() || value.len() > 128 {
            return Err(InvalidValue::new(
                "must be 1 to 128 characters long",
                Some(value),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(InvalidValue::new(
                format!("contains {bad:?}; only letters, digits, '_' and '-' are allowed"),
                Some(value),
            ));
        }
        Ok(Self(value))
    }

    /// Mint a fresh key: `API` followed by 12 base62 characters from the OS RNG.
    pub fn mint() -> Result<Self, getrandom::Error> {
        Ok(Self(format!(
            "API{}",
            random_base62(MINTED_KEY_RANDOM_LEN)?
        )))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.0)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a value was refused. Carries the offending value only when it is not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", match value { Some(v) => format!("{v:?} ") , None => String::new() })]
pub struct InvalidValue {
    /// What is wrong, phrased to follow the value ("is not a semantic version").
    pub reason: String,
    /// The offending value, when it may be shown (never for secrets).
    pub value: Option<String>,
}

impl InvalidValue {
    /// A refusal with its reason and, for non-secret values, the value, clipped to 64
    /// characters (a 10 MB value is not echoed whole).
    pub fn new(reason: impl Into<String>, value: Option<String>) -> Self {
        Self {
            reason: reason.into(),
            value: value.map(clip),
        }
    }
}

/// The most characters of a refused value an error shows; the rest is replaced by
/// `… (N bytes in all)`.
pub(crate) const SHOWN_VALUE_CHARS: usize = 64;

fn clip(value: String) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        None => value,
        Some((end, _)) => format!("{}… ({} bytes in all)", &value[..end], value.len()),
    }
}

/// Check text meant to be a secret (API secret, Redis password). Never echoes the value.
pub(crate) fn validate_secret_text(value: &str, min_len: usize) -> Result<(), InvalidValue> {
    if value.len() < min_len {
        return Err(InvalidValue::new(
            format!(
                "secret is {} characters long; at least {min_len} are required",
                value.len()
            ),
            None,
        ));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(InvalidValue::new(
            format!("secret is longer than {MAX_SECRET_LEN} characters"),
            None,
        ));
    }
    for (i, c) in value.chars().enumerate() {
        let forbidden = matches!(c, '\'' | '"' | '\\' | '$' | '`');
        if !c.is_ascii_graphic() || forbidden {
            let shown = if c.is_ascii_graphic() {
                format!("{c:?}")
            } else {
                format!("U+{:04X}", u32::from(c))
            };
            return Err(InvalidValue::new(
                format!(
                    "secret has {shown} at position {}; use printable ASCII without whitespace, quotes, '\\', '$' or '`'",
                    i + 1
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// `len` characters of base62 from the OS RNG, by rejection sampling (no modulo bias).
fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for b in buf {
            // 248 = 4 * 62: values at or above it would bias the low digits.
            if b < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_shown_clipped() {
        let huge = "1".repeat(10 << 20);
        let err = InvalidValue::new("is not an IP address", Some(huge));
        let shown = err.to_string();
        assert!(shown.len() < 200, "{} bytes shown", shown.len());
        assert!(shown.contains("10485760 bytes in all"), "{shown}");
        let short = InvalidValue::new("is short", Some("1.2.3".to_owned()));
        assert_eq!(short.value.as_deref(), Some("1.2.3"));
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2-hunter2-hunter2-hunter2-hunter2");
        assert_eq!(format!("{s}"), "****");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn minted_values_have_livekit_shape() {
        let k = ApiKey::mint().unwrap();
        assert!(k.as_str().starts_with("API"));
        assert_eq!(k.as_str().len(), 15);
        let s = Secret::mint_api_secret().unwrap();
        assert_eq!(s.len(), MINTED_SECRET_LEN);
        assert!(s.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(Secret::api_secret(s.expose()).is_ok());
        assert_ne!(s, Secret::mint_api_secret().unwrap());
    }

    #[test]
    fn api_secret_validation_names_the_problem_not_the_value() {
        let short = Secret::api_secret("short").unwrap_err();
        assert!(short.reason.contains("at least 32"));
        assert!(short.value.is_none());
        for bad in ["'", "\"", "\\", "$", "`", " ", "\n", "é"] {
            let v = format!("{}{bad}", "a".repeat(40));
            let err = Secret::api_secret(v.clone()).unwrap_err();
            assert!(!err.to_string().contains(&"a".repeat(40)), "{err}");
        }
        // Characters that YAML and env files need quoting for are fine: we quote them.
        assert!(Secret::api_secret(format!("0123:#{}", "x".repeat(30))).is_ok());
    }

    #[test]
    fn api_key_validation() {
        assert!(ApiKey::new("APIabc_DEF-1").is_ok());
        for bad in ["", "a b", "a:b", "ключ", &"a".repeat(129)] {
            assert!(ApiKey::new(bad).is_err(), "{bad}");
        }
    }
}
