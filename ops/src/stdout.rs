//! Standard output when a reader stops early (`vdx audit log | head`): it has what it wanted, so the
//! command ends quietly and successfully. Only standard output is treated so: a broken pipe to the
//! daemon's socket (which closed during an upload, say) stays an error.

use std::fmt;
use std::io::{self, Write};

/// Standard output's reader went away.
#[derive(Debug)]
pub(crate) struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for Closed {}

/// An error writing standard output, as [`Closed`] when its reader went away.
pub(crate) fn error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Closed.into()
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Writes all of `text` and flushes it.
pub(crate) fn write(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(error)
}

/// Whether `e` is standard output's reader going away.
pub(crate) fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Closed>())
}
