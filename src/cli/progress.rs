//! Progress of long commands on stderr: a bar with the current phase, drawn only when stderr is
//! a terminal (indicatif hides it otherwise), so pipes, logs and `--json` output stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units of work.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix} {msg:<28} [{bar:30}] {pos}/{len} {elapsed}")
        .expect("the template is valid")
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}
