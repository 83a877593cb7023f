//! A progress bar on standard error, shown only on a terminal and only for long inputs.

use std::io::{self, IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// Inputs below this size finish before a bar would be worth drawing.
const MIN_BYTES: u64 = 32 * 1024 * 1024;

/// Set by a full-screen program (`vdx tui`) that owns the terminal: no bar is drawn over it.
static SILENT: AtomicBool = AtomicBool::new(false);

/// No progress bars from now on in this process.
pub(crate) fn silence() {
    SILENT.store(true, Ordering::Relaxed);
}

/// Wraps `input` with a byte-counting bar when stderr is a terminal.
pub(crate) fn wrap<'a>(
    input: Box<dyn Read + 'a>,
    len: Option<u64>,
    verb: &str,
) -> (Box<dyn Read + 'a>, Option<ProgressBar>) {
    match len.and_then(|len| bar(len, verb)) {
        Some(bar) => (Box::new(bar.wrap_read(input)), Some(bar)),
        None => (input, None),
    }
}

/// A byte-counting bar for `len` bytes labelled `what`, or `None` when it is not worth drawing
/// (short input, or stderr not a terminal).
pub(crate) fn bar(len: u64, what: &str) -> Option<ProgressBar> {
    if len < MIN_BYTES || !io::stderr().is_terminal() || SILENT.load(Ordering::Relaxed) {
        return None;
    }
    let bar = ProgressBar::new(len).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
