//! `livekit-provision completions SHELL` and `livekit-provision man [--out-dir DIR]`: generated
//! from the clap definition, so they always list the commands and options this binary has.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;

use super::man_sections;
use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::output::{CliError, Exit};

/// The name the scripts complete and the man page documents.
const BIN: &str = "livekit-provision";

pub fn completions(args: &CompletionsArgs) -> Result<Exit, CliError> {
    write_stdout(&completion_script(args.shell))
}

pub fn man(args: &ManArgs) -> Result<Exit, CliError> {
    match &args.out_dir {
        Some(dir) => {
            man_pages_into(dir)?;
            Ok(Exit::Success)
        }
        None => write_stdout(&man_page()?),
    }
}

fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    script
}

/// The exit codes the EXIT STATUS section lists: every [`Exit`], from the one table.
const EXIT_STATUS: [(Exit, &str); 5] = [
    (
        Exit::Success,
        "success; for ensure --dry-run: nothing to do; for check: healthy",
    ),
    (
        Exit::Failure,
        "an error; for check: problems found; for ensure: livekit-server could not be installed",
    ),
    (Exit::ChangesPending, "ensure --dry-run: changes pending"),
    (
        Exit::Usage,
        "a usage error: an unknown command or option, a bad or missing argument (EX_USAGE)",
    ),
    (
        Exit::Refused,
        "exec refused to start: not provisioned, inconsistent, or not configured for an outside supervisor (EX_CONFIG)",
    ),
];

/// The page of `livekit-provision` itself (its SUBCOMMANDS section names the other pages),
/// clap_mangen's with EXIT STATUS, ENVIRONMENT and FILES sections before VERSION.
fn man_page() -> Result<Vec<u8>, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(for_man_pages())
        .render(&mut page)
        .map_err(|e| CliError::msg(format!("cannot render the man page: {e}"), None))?;
    let page = String::from_utf8_lossy(&page);
    let at = page.find("\n.SH VERSION").map_or(page.len(), |i| i + 1);
    Ok(format!(
        "{}{}{}{}{}",
        &page[..at],
        exit_status_section(),
        man_sections::environment(&Cli::command()),
        man_sections::files(),
        &page[at..]
    )
    .into_bytes())
}

/// `.SH "EXIT STATUS"` in roff, a tagged paragraph per code.
fn exit_status_section() -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (exit, meaning) in EXIT_STATUS {
        // Writing into a String cannot fail.
        let _ = write!(roff, ".TP\n\\fB{}\\fR\n{meaning}\n", exit.code());
    }
    roff
}

/// `livekit-provision.1` and `livekit-provision-<subcommand>.1` for every subcommand, in `dir`.
fn man_pages_into(dir: &Path) -> Result<(), CliError> {
    let failed = |e: &dyn std::fmt::Display| {
        CliError::msg(
            format!("cannot write the man pages into {}: {e}", dir.display()),
            Some("pass an existing directory you can write to, e.g. --out-dir .".to_owned()),
        )
    };
    clap_mangen::generate_to(for_man_pages(), dir).map_err(|e| failed(&e))?;
    // The top page again, with its EXIT STATUS section.
    let top = dir.join(format!("{BIN}.1"));
    livekit_provision::write_atomically(&top, &man_page()?, 0o644).map_err(|e| failed(&e))
}

/// The CLI without clap's `help` subcommand, which has no page of its own.
fn for_man_pages() -> clap::Command {
    Cli::command().disable_help_subcommand(true)
}

/// All of it on stdout; a closed pipe is not an error (the reader has what it wanted).
fn write_stdout(bytes: &[u8]) -> Result<Exit, CliError> {
    match io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::msg(format!("cannot write to stdout: {e}"), None))
        }
        _ => Ok(Exit::Success),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// Every subcommand, nested ones included, as (name, page path): `("list", "secrets-list")`.
    fn subcommands() -> Vec<(String, String)> {
        fn walk(cmd: &clap::Command, prefix: &str, found: &mut Vec<(String, String)>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{prefix}{}", sub.get_name());
                walk(sub, &format!("{path}-"), found);
                found.push((sub.get_name().to_owned(), path));
            }
        }
        let mut found = Vec::new();
        walk(&Cli::command(), "", &mut found);
        found
    }

    #[test]
    fn completion_scripts_name_every_subcommand() {
        let names: Vec<String> = subcommands().into_iter().map(|(name, _)| name).collect();
        assert!(names.len() > 15, "{names:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completion_script(shell)).unwrap();
            assert!(!script.trim().is_empty(), "{shell}: empty script");
            for name in &names {
                assert!(script.contains(name.as_str()), "{shell}: no {name}");
            }
        }
        // Every shell clap_complete knows renders something.
        for shell in clap_complete::Shell::value_variants() {
            assert!(!completion_script(*shell).is_empty(), "{shell}");
        }
    }

    #[test]
    fn man_pages_into_a_directory_one_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        man_pages_into(dir.path()).unwrap();
        let page = |name: &str| dir.path().join(format!("{name}.1"));
        assert!(page("livekit-provision").is_file());
        for (_, name) in subcommands() {
            let path = page(&format!("livekit-provision-{name}"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(text.contains(".TH"), "{name}: not roff");
        }
        let missing = dir.path().join("missing");
        let err = man_pages_into(&missing).unwrap_err();
        assert!(format!("{err:?}").contains("missing"), "{err:?}");
    }

    #[test]
    fn the_man_page_lists_every_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        man_pages_into(dir.path()).unwrap();
        let written = std::fs::read(dir.path().join("livekit-provision.1")).unwrap();
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert_eq!(written, page.as_bytes(), "--out-dir and stdout differ");
        let section = page
            .split(".SH \"EXIT STATUS\"")
            .nth(1)
            .expect("no EXIT STATUS");
        for code in [0, 1, 2, 64, 78] {
            assert!(
                section.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                "no {code}: {section}"
            );
        }
        assert!(section.contains("usage error"), "{section}");
        // Then ENVIRONMENT and FILES, before VERSION.
        let env = page.find(".SH ENVIRONMENT").expect("no ENVIRONMENT");
        let files = page.find(".SH FILES").expect("no FILES");
        let version = page.find(".SH VERSION").expect("no VERSION");
        assert!(env < files && files < version, "sections out of order");
        assert!(
            page[env..files].contains("\\fBLIVEKIT_PROVISION_RELEASE_URL\\fR"),
            "{}",
            &page[env..files]
        );
    }

    #[test]
    fn man_page_names_every_top_level_subcommand() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff");
        assert!(page.contains("livekit\\-provision"), "no program name");
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name().replace('-', "\\-");
            assert!(page.contains(&name), "the man page lacks {name}");
        }
    }
}
