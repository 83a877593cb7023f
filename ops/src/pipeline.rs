//! A writer that hands full buffers to a background thread, so that disk writes overlap with
//! encryption and hashing on the other core. Memory stays bounded: at most `DEPTH` buffers in flight.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

const BUFFER: usize = 1024 * 1024;
const DEPTH: usize = 4;

/// Writes to `inner` on its own thread. Call [`BackgroundWriter::finish`] to learn whether every
/// write succeeded; dropping it without `finish` still waits for the thread.
pub(crate) struct BackgroundWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    pub(crate) fn new(mut inner: W) -> Self {
        let (full_tx, full_rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = std::thread::spawn(move || {
            for buf in full_rx {
                inner.write_all(&buf)?;
                // The producer may have gone; a lost spare buffer is only an allocation later.
                let _ = empty_tx.try_send(buf);
            }
            inner.flush()?;
            Ok(inner)
        });
        Self {
            buffer: Vec::with_capacity(BUFFER),
            full: Some(full_tx),
            empty: empty_rx,
            thread: Some(thread),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let spare = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        let full = std::mem::replace(&mut self.buffer, spare);
        self.buffer.clear();
        let sent = self.full.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer thread stopped: its error is reported by `finish`.
            _ => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "output writer stopped",
            )),
        }
    }

    /// Flushes everything, waits for the thread, and returns the inner writer or the first error.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        self.join(sent)
    }

    fn join(&mut self, sent: io::Result<()>) -> io::Result<W> {
        self.full = None;
        let result = match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("output writer panicked"))),
            None => Err(io::Error::other("output writer already finished")),
        };
        match (result, sent) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(inner), Ok(())) => Ok(inner),
        }
    }
}

impl<W: Write + Send + 'static> Write for BackgroundWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(BUFFER - self.buffer.len());
        self.buffer.extend_from_slice(&data[..take]);
        if self.buffer.len() == BUFFER {
            self.send()?;
        }
        Ok(take)
    }

    /// Buffers are written in order by the thread; durability is `finish` plus the caller's fsync.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for BackgroundWriter<W> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join(Ok(()));
        }
    }
}

/// A file that flushes itself to disk every `SYNC_EVERY` bytes, from the writer thread, so that the
/// final fsync finds little left to do and disk writeback overlaps the cryptography.
pub(crate) struct SyncingFile {
    file: std::fs::File,
    unsynced: usize,
}

const SYNC_EVERY: usize = 32 * 1024 * 1024;

impl SyncingFile {
    pub(crate) fn new(file: std::fs::File) -> Self {
        Self { file, unsynced: 0 }
    }
}

impl Write for SyncingFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order() {
        let mut w = BackgroundWriter::new(Vec::new());
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let chunk: Vec<u8> = (0..(i % 997)).map(|j| (i ^ j) as u8).collect();
            w.write_all(&chunk).unwrap();
            expected.extend(chunk);
        }
        assert_eq!(w.finish().unwrap(), expected);
    }

    #[test]
    fn a_failing_sink_is_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = BackgroundWriter::new(Full);
        let mut failed = false;
        for _ in 0..64 {
            if w.write_all(&[0u8; 100_000]).is_err() {
                failed = true;
                break;
            }
        }
        let finished = w.finish();
        assert!(failed || finished.is_err());
        assert!(finished.is_err());
    }
}
