//! Showing a URL or a store spec without its credentials: the one rule used everywhere one is
//! shown (errors, logs, `Debug`, status, manifests).
//!
//! The rule reads the text and never trusts a URL parser to find the credentials. A password may
//! hold an unencoded `/`, `?`, `#`, `:` or `@` (`https://u:pa/ss@host/`); a parser then sees
//! another host (`u`, port `12` for `https://u:12/ss@host/`) or fails, and a redactor that only
//! looks where a well-formed authority ends echoes the password. Here everything between
//! `scheme://` and the **last** `@` is masked, and so is everything from the first `?` or `#`
//! after it. This may mask more than needed (an `@` in a path), never less.

use reqwest::Url;

/// What a credential is shown as.
pub const MASK: &str = "****";

/// `url` as it may be shown: user and password as `****`, query and fragment as `?****`/`#****`.
pub fn url(url: &Url) -> String {
    text(url.as_str())
}

/// A secret-store spec we could not parse, as it may be shown: [`text`], except that when a `?`
/// comes before the last `@` everything after the scheme is masked. A spec's query may hold a
/// password (`sentinel_password=`) with an `@` in it, and whether that `@` ends a userinfo or
/// sits in the query cannot be told, so neither side of it is shown.
pub fn spec(spec: &str) -> String {
    let question = spec.find('?');
    let at = spec.rfind('@');
    match (question, at) {
        (Some(q), Some(a)) if q < a => match spec.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://{MASK}"),
            None => MASK.to_owned(),
        },
        _ => text(spec),
    }
}

/// [`url`] for text that may not parse as a URL, or that a parser would read differently from
/// what its author meant (a store spec, a release base URL given on the command line).
///
/// `scheme://user:pass@host/path?query` becomes `scheme://****:****@host/path?****`; userinfo
/// without `:` becomes `****`. Text without `://` is masked up to its last `@` the same way.
pub fn text(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let mut shown = String::with_capacity(text.len());
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            if rest[..at].contains(':') {
                shown.push_str(MASK);
                shown.push(':');
            }
            shown.push_str(MASK);
            shown.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    match after_userinfo.find(['?', '#']) {
        Some(i) => {
            shown.push_str(&after_userinfo[..=i]);
            shown.push_str(MASK);
        }
        None => shown.push_str(after_userinfo),
    }
    shown
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::StoreSpec;

    #[test]
    fn masks_userinfo_query_and_fragment() {
        let cases = [
            ("https://h/x", "https://h/x"),
            ("https://u:p@h/x", "https://****:****@h/x"),
            ("https://tok@h/x", "https://****@h/x"),
            ("https://tok@[bad/x", "https://****@[bad/x"),
            ("https://u:pa/ss@host/", "https://****:****@host/"),
            ("https://u:12/ss@host/", "https://****:****@host/"),
            ("https://u:p@ss@host/r", "https://****:****@host/r"),
            ("https://u:p?ss@host/r", "https://****:****@host/r"),
            ("https://h/x?token=abc", "https://h/x?****"),
            ("https://h/x#abc", "https://h/x#****"),
            ("redis://:pw@h:1/3?prefix=a", "redis://****:****@h:1/3?****"),
            ("u:pw@host", "****:****@host"),
            (
                "file:/var/lib/x/secrets.json",
                "file:/var/lib/x/secrets.json",
            ),
        ];
        for (given, shown) in cases {
            assert_eq!(text(given), shown, "{given}");
        }
        let parsed = Url::parse("https://u:hunter2@mirror.example/rel").unwrap();
        assert_eq!(url(&parsed), "https://****:****@mirror.example/rel");
    }

    /// A userinfo part: uppercase letters (which nothing else in a generated URL holds), the
    /// separators that break naive redactors, and percent-escapes.
    fn credential() -> impl Strategy<Value = String> {
        const SEPARATORS: [&str; 9] = ["/", "@", ":", "?", "#", "%40", "%2F", "%3A", "%25"];
        proptest::collection::vec(
            prop_oneof![
                "[A-Z]{1,4}",
                proptest::sample::select(&SEPARATORS[..]).prop_map(str::to_owned),
            ],
            1..8,
        )
        .prop_map(|parts| parts.concat())
        .prop_filter("holds a letter", |s| {
            percent_decoded(s).bytes().any(|b| b.is_ascii_uppercase())
        })
    }

    fn percent_decoded(text: &str) -> String {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match text.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                Some(Ok(b)) if bytes[i] == b'%' => {
                    out.push(b);
                    i += 3;
                }
                _ => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn assert_hidden(shown: &str, password: &str) -> Result<(), TestCaseError> {
        prop_assert!(!shown.contains(password), "{shown}");
        prop_assert!(!shown.contains(&percent_decoded(password)), "{shown}");
        // Uppercase letters come only from the credentials: none may be left.
        prop_assert!(!shown.bytes().any(|b| b.is_ascii_uppercase()), "{shown}");
        Ok(())
    }

    proptest! {
        #[test]
        fn a_url_never_shows_its_password(
            scheme in prop_oneof![Just("https"), Just("http"), Just("redis"), Just("rediss")],
            user in proptest::option::of(credential()),
            password in credential(),
            host in "[a-z]{1,10}(\\.[a-z]{2,5})?",
            port in proptest::option::of(1u16..),
            path in "(/[a-z0-9._-]{0,8}){0,3}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let user = user.unwrap_or_default();
            let given = format!("{scheme}://{user}:{password}@{host}{port}{path}");
            let shown = text(&given);
            assert_hidden(&shown, &password)?;
            prop_assert!(shown.contains(&format!("@{host}{port}{path}")), "{shown}");
            if let Ok(parsed) = Url::parse(&given) {
                assert_hidden(&url(&parsed), &password)?;
            }
        }

        #[test]
        fn a_store_spec_never_shows_its_password(
            tls in any::<bool>(),
            password in credential(),
            host in "[a-z]{1,10}",
            tail in prop_oneof![Just(""), Just("/2"), Just(":6380"), Just("?prefix=x-")],
            layout in prop_oneof![Just(""), Just("+sentinel"), Just("+cluster")],
            in_query in any::<bool>(),
        ) {
            let scheme = if tls { "rediss" } else { "redis" };
            let given = match layout {
                // Sentinel: the password may also be the sentinels' (in the query).
                "+sentinel" if in_query => format!(
                    "{scheme}{layout}://{host},{host}:26380/m?sentinel_password={password}"
                ),
                "+sentinel" => format!("{scheme}{layout}://user:{password}@{host},{host}/m{tail}"),
                _ => format!("{scheme}{layout}://user:{password}@{host}{tail}"),
            };
            let shown = match StoreSpec::parse(&given) {
                Ok(spec) => format!("{spec} {spec:?}"),
                Err(e) => format!("{e} {e:?}"),
            };
            // The type names in `Debug` are the only other uppercase letters.
            let shown = ["RedisSpec", "Redis", "InvalidSpec"]
                .iter()
                .fold(shown, |acc, name| acc.replace(name, ""));
            assert_hidden(&shown, &password)?;
            // A '?' before the last '@' hides the whole spec (`spec`); otherwise the host shows.
            let ambiguous = given
                .find('?')
                .zip(given.rfind('@'))
                .is_some_and(|(q, a)| q < a);
            if !ambiguous {
                prop_assert!(shown.contains(&host), "{shown}");
            }
        }
    }
}
