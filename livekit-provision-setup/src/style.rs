//! Colour: one choice for everything either binary writes on stderr — its own `error:`,
//! `warning:` and `hint:` labels, clap's usage errors, the log lines and the progress bar — and
//! one scheme for the labels (clap's own: `error:` red, as uv colours them: `warning:` yellow,
//! `hint:` cyan, all bold).
//!
//! The choice is `--color auto|always|never`; with `auto` (the default) `NO_COLOR` turns colour
//! off, `CLICOLOR_FORCE` turns it on, and otherwise stderr gets colour when it is a terminal.
//! It is anstream's process-wide choice, which clap's messages follow too.

use std::ffi::OsString;

use anstyle::{AnsiColor, Style};

/// `--color`: when to colour what is written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    /// When stderr is a terminal, unless `NO_COLOR` is set (`CLICOLOR_FORCE` forces it)
    #[default]
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

impl ColorWhen {
    fn choice(self) -> anstream::ColorChoice {
        match self {
            Self::Auto => anstream::ColorChoice::Auto,
            Self::Always => anstream::ColorChoice::Always,
            Self::Never => anstream::ColorChoice::Never,
        }
    }

    /// The `--color` of a command line, read before clap parses it so that clap's own usage
    /// errors follow it too (`--color WHEN` or `--color=WHEN`; the last one wins, nothing after
    /// `--` counts; a value clap will refuse counts as `auto`).
    pub fn in_args(args: &[OsString]) -> Self {
        let mut when = Self::Auto;
        let mut args = args.iter().map(|a| a.to_str().unwrap_or_default());
        while let Some(arg) = args.next() {
            let value = match arg {
                "--" => break,
                "--color" => args.next().unwrap_or_default(),
                _ => match arg.strip_prefix("--color=") {
                    Some(value) => value,
                    None => continue,
                },
            };
            when = <Self as clap::ValueEnum>::from_str(value, false).unwrap_or_default();
        }
        when
    }

    /// Make this the process's choice (anstream's, which clap follows and [`stderr`] applies).
    pub fn apply(self) {
        self.choice().write_global();
    }
}

/// Whether what is written on stderr now gets colour: the process's choice, then
/// `NO_COLOR`, `CLICOLOR_FORCE` and whether stderr is a terminal.
pub fn stderr_has_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// stderr, locked, dropping the escape codes of [`Label`]s when colour is off.
pub fn stderr() -> anstream::AutoStream<std::io::StderrLock<'static>> {
    anstream::AutoStream::auto(std::io::stderr().lock())
}

/// The label of one of the tool's own lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `error:` (red, as clap's).
    Error,
    /// `warning:` (yellow).
    Warning,
    /// `hint:` (cyan).
    Hint,
}

impl Label {
    const fn style(self) -> Style {
        match self {
            Self::Error => AnsiColor::Red.on_default().bold(),
            Self::Warning => AnsiColor::Yellow.on_default().bold(),
            Self::Hint => AnsiColor::Cyan.on_default().bold(),
        }
    }

    const fn word(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Hint => "hint",
        }
    }

    /// `error:` with its escape codes, as clap paints its own (written through [`stderr`],
    /// they are dropped when colour is off).
    pub fn painted(self) -> String {
        let style = self.style();
        format!("{style}{}:{style:#}", self.word())
    }
}

/// clap's styles, with its `error:` in the same style as ours.
pub fn clap_styles() -> clap::builder::Styles {
    clap::builder::Styles::styled().error(Label::Error.style())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_color_option_is_read_before_clap() {
        let cases: [(&[&str], ColorWhen); 7] = [
            (&["lp", "status"], ColorWhen::Auto),
            (&["lp", "--color", "never", "status"], ColorWhen::Never),
            (&["lp", "status", "--color=always"], ColorWhen::Always),
            (
                &["lp", "--color=never", "--color", "always"],
                ColorWhen::Always,
            ),
            (&["lp", "--color", "bogus"], ColorWhen::Auto),
            (&["lp", "--color"], ColorWhen::Auto),
            (&["lp", "--", "--color=never"], ColorWhen::Auto),
        ];
        for (line, want) in cases {
            assert_eq!(ColorWhen::in_args(&args(line)), want, "{line:?}");
        }
    }

    #[test]
    fn labels_have_one_scheme_and_clap_shares_the_error_style() {
        assert_eq!(Label::Error.painted(), "\u{1b}[1m\u{1b}[31merror:\u{1b}[0m");
        assert_eq!(
            Label::Warning.painted(),
            "\u{1b}[1m\u{1b}[33mwarning:\u{1b}[0m"
        );
        assert_eq!(Label::Hint.painted(), "\u{1b}[1m\u{1b}[36mhint:\u{1b}[0m");
        assert_eq!(*clap_styles().get_error(), Label::Error.style());
    }
}
