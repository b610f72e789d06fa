//! Progress of long commands on stderr: a bar with the current phase, drawn only when stderr is
//! a terminal (indicatif hides it otherwise), so pipes, logs and `--json` output stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units of work, with the time left at the rate so far.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    styled(
        len,
        what,
        "{prefix} {msg:<28} [{bar:30}] {pos}/{len} {elapsed}, ~{eta} left",
    )
}

/// A bar over work measured in estimated milliseconds (a sweep's grid, each point weighted by
/// the time model): the share done and the time left, not the units.
pub(crate) fn timed_bar(estimated_ms: u64, what: &str) -> ProgressBar {
    styled(
        estimated_ms,
        what,
        "{prefix} {msg:<28} [{bar:30}] {percent:>3}% {elapsed}, ~{eta} left",
    )
}

fn styled(len: u64, what: &str, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}
