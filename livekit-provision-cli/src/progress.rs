//! The download progress bar (indicatif) on stderr: drawn only when stderr is a terminal and
//! neither `-q` nor `--json` is given; coloured as every other line on stderr (`--color`,
//! `NO_COLOR`, `CLICOLOR_FORCE`).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use livekit_provision::fetch::{EventSink, FetchEvent};

use crate::output::Printer;

/// The bar while a download runs; cleared from the terminal when dropped.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    colour: bool,
}

impl Progress {
    /// A bar on stderr, or `None` when no progress may be shown (not a terminal, `-q`, `--json`).
    pub fn on_stderr(printer: Printer) -> Option<Self> {
        printer.progress_allowed().then(|| {
            let colour = livekit_provision_setup::stderr_has_color();
            Self::new(ProgressDrawTarget::stderr(), colour)
        })
    }

    fn new(target: ProgressDrawTarget, colour: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(style(false, colour));
        Self { bar, colour }
    }

    /// The library's event sink that moves this bar.
    pub fn sink(&self) -> EventSink {
        let bar = self.bar.clone();
        let colour = self.colour;
        Arc::new(move |event: &FetchEvent| show(&bar, colour, event))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn show(bar: &ProgressBar, colour: bool, event: &FetchEvent) {
    match event {
        FetchEvent::Progress { done, total } => {
            let known = total.filter(|t| *t > 0);
            if bar.length() != known {
                bar.set_style(style(known.is_some(), colour));
                match known {
                    Some(total) => bar.set_length(total),
                    None => bar.unset_length(),
                }
            }
            bar.set_position(*done);
        }
        FetchEvent::Retrying {
            attempt,
            delay,
            reason,
        } => bar.println(format!(
            "attempt {attempt} failed ({reason}); retrying in {}",
            humantime::format_duration(*delay)
        )),
        FetchEvent::Restarted => {
            bar.println("the server ignored the resume request; downloading from the start");
            bar.set_position(0);
        }
        _ => {}
    }
}

/// Bytes, rate and ETA when the size is known (the bar takes the rest of the terminal's width);
/// bytes and rate otherwise.
fn style(sized: bool, colour: bool) -> ProgressStyle {
    ProgressStyle::with_template(template(sized, colour))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn template(sized: bool, colour: bool) -> &'static str {
    match (sized, colour) {
        (true, true) => {
            "downloading {wide_bar:.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        }
        (true, false) => {
            "downloading [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        }
        (false, true) => "downloading {spinner:.cyan} {bytes} {binary_bytes_per_sec}",
        (false, false) => "downloading {spinner} {bytes} {binary_bytes_per_sec}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_move_the_bar() {
        let progress = Progress::new(ProgressDrawTarget::hidden(), false);
        let sink = progress.sink();
        sink(&FetchEvent::Progress {
            done: 5,
            total: Some(10),
        });
        assert_eq!(
            (progress.bar.position(), progress.bar.length()),
            (5, Some(10))
        );
        sink(&FetchEvent::Retrying {
            attempt: 1,
            delay: Duration::from_secs(2),
            reason: "connection reset".to_owned(),
        });
        sink(&FetchEvent::Restarted);
        assert_eq!(progress.bar.position(), 0);
        sink(&FetchEvent::Progress {
            done: 7,
            total: None,
        });
        assert_eq!((progress.bar.position(), progress.bar.length()), (7, None));
    }

    #[test]
    fn every_template_parses() {
        for (sized, colour) in [(true, true), (true, false), (false, true), (false, false)] {
            let template = template(sized, colour);
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
            assert_eq!(template.contains(".cyan"), colour, "{template}");
        }
    }

    #[test]
    fn hidden_when_quiet_or_json() {
        for (json, quiet) in [(true, false), (false, true), (true, true)] {
            assert!(
                Progress::on_stderr(Printer {
                    json,
                    quiet,
                    detail: false
                })
                .is_none()
            );
        }
    }
}
