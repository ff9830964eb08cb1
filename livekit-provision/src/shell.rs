//! Quoting for the shell commands that hints suggest (`chmod 600 '/my state/livekit.yaml'`):
//! a path is written bare when that is safe, else in single quotes.

use std::path::Path;

/// `path` as one shell word: bare when it holds only `A-Z a-z 0-9 / . _ -`, else single-quoted
/// (a `'` inside written `'\''`).
pub(crate) fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_stay_bare_and_others_are_quoted() {
        assert_eq!(
            quote(Path::new("/etc/livekit/turn.key")),
            "/etc/livekit/turn.key"
        );
        assert_eq!(quote(Path::new("/my state/a")), "'/my state/a'");
        assert_eq!(quote(Path::new("/it's")), r"'/it'\''s'");
    }
}
