//! Component output as Spin 4 keeps it: each component's stdout and stderr appended to
//! `<log dir>/<component>_stdout.txt` / `_stderr.txt`, and also shown on the host's own
//! stdout/stderr unless quiet (`spin up --quiet`).

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Clone, Copy)]
enum Which {
    Stdout,
    Stderr,
}

/// One component's stdout or stderr: a log file (when there is a log directory) and/or
/// the host's own stream.
#[derive(Clone)]
pub struct ComponentOutput {
    file: Option<Arc<std::fs::File>>,
    follow: bool,
    which: Which,
}

impl ComponentOutput {
    /// (stdout, stderr) of component `id`.
    pub fn open(
        id: &str,
        log_dir: Option<&Path>,
        follow: bool,
    ) -> anyhow::Result<(ComponentOutput, ComponentOutput)> {
        let open = |suffix: &str| -> anyhow::Result<Option<Arc<std::fs::File>>> {
            let Some(dir) = log_dir else { return Ok(None) };
            std::fs::create_dir_all(dir)?;
            let name: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{name}_{suffix}.txt")))?;
            Ok(Some(Arc::new(f)))
        };
        Ok((
            ComponentOutput {
                file: open("stdout")?,
                follow,
                which: Which::Stdout,
            },
            ComponentOutput {
                file: open("stderr")?,
                follow,
                which: Which::Stderr,
            },
        ))
    }

    fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            // One append per guest write: lines of concurrent instances do not interleave.
            (&**f).write_all(buf)?;
        }
        if self.follow || self.file.is_none() {
            match self.which {
                Which::Stdout => std::io::stdout().lock().write_all(buf)?,
                Which::Stderr => std::io::stderr().lock().write_all(buf)?,
            }
        }
        Ok(())
    }
}

impl IsTerminal for ComponentOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Written in place, as Spin's own component output is: the default adapter hands
    /// every write to a background task, two thread wake-ups per log line.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for ComponentOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_all(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1024 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for ComponentOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for ComponentOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write_all(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
