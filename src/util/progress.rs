//! Progress bars on stderr, and messages that print above them (or plainly without a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps at `pos`, its line drawn by `template` (indicatif's syntax); hidden when
/// `show` is false.
pub fn bar(len: usize, pos: usize, show: bool, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_position(pos as u64);
    pb
}

/// The step bar of `train` and `grpo`.
pub fn steps(len: usize, pos: usize, show: bool) -> ProgressBar {
    bar(
        len,
        pos,
        show,
        "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
    )
}

/// Prints above the progress bar, or plainly when there is no bar (not a terminal).
pub fn say(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        println!("{msg}");
    } else {
        pb.println(msg);
    }
}
