//! A plugin's stderr: the first few KiB are kept (a panic message fits) to be logged with the
//! plugin's name, the rest is dropped. Writes never fail, so a chatty plugin is not killed by
//! its own output.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    async_trait,
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamError},
};

/// Keeps the first `capacity` bytes written to it.
#[derive(Clone)]
pub(crate) struct CappedStderr {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl CappedStderr {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buffer: Arc::default(),
            capacity,
        }
    }

    fn append(&self, bytes: &[u8]) {
        // A poisoned lock only means another writer panicked mid-append: the bytes are
        // still fine to read and extend.
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Forgets what was written, for the next event.
    pub(crate) fn clear(&self) {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// What was kept, as trimmed lossy UTF-8.
    pub(crate) fn contents(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buffer).trim().to_owned()
    }
}

impl IsTerminal for CappedStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl OutputStream for CappedStderr {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait]
impl Pollable for CappedStderr {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_never_fails() {
        let mut stderr = CappedStderr::new(8);
        stderr
            .write(bytes::Bytes::from_static(b"panicked"))
            .unwrap();
        stderr
            .write(bytes::Bytes::from_static(b" at lib.rs"))
            .unwrap();
        assert!(stderr.check_write().unwrap() > 0);
        assert_eq!(stderr.contents(), "panicked");
        stderr.clear();
        assert_eq!(stderr.contents(), "");
    }
}
