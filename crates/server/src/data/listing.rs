//! A directory listing sent as it is read: a task turns pages of entries
//! into lines and hands them over a short channel to the data connection,
//! which reads them like a file. Memory stays at a few pages whatever the
//! directory's size; a failure while reading reaches the transfer as an
//! error (451), not as a listing cut short.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wharf_ftp::Entry;

use crate::fs::{DirPages, FileReader};

/// Pages formatted ahead of the data connection.
const PAGES_AHEAD: usize = 2;

/// Reads the lines `line` makes of each entry of `pages`, each ended by CRLF.
pub fn lines<F>(mut pages: Box<dyn DirPages>, line: F) -> FileReader
where
    F: Fn(&Entry) -> String + Send + 'static,
{
    let (tx, rx) = mpsc::channel(PAGES_AHEAD);
    let task = tokio::spawn(async move {
        loop {
            let page = match pages.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut bytes = Vec::with_capacity(page.len() * 64);
            for entry in &page {
                bytes.extend_from_slice(line(entry).as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            // The reader is gone (the transfer ended): stop reading pages.
            if tx.send(Ok(bytes)).await.is_err() {
                return;
            }
        }
    });
    Box::new(ListingReader {
        rx,
        current: Vec::new(),
        pos: 0,
        task,
    })
}

struct ListingReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    task: JoinHandle<()>,
}

impl Drop for ListingReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AsyncBufRead for ListingReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.pos == this.current.len() {
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(&[])),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(bytes))) => {
                    this.current = bytes;
                    this.pos = 0;
                }
            }
        }
        Poll::Ready(Ok(this.current.get(this.pos..).unwrap_or_default()))
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amount).min(this.current.len());
    }
}

impl AsyncRead for ListingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = match self.as_mut().poll_fill_buf(cx) {
            Poll::Ready(Ok(bytes)) => bytes,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = available.len().min(buf.remaining());
        buf.put_slice(available.get(..n).unwrap_or_default());
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsError;
    use async_trait::async_trait;
    use tokio::io::AsyncReadExt;
    use wharf_ftp::EntryKind;

    fn entry(name: String) -> Entry {
        Entry {
            name,
            kind: EntryKind::File,
            size: 1,
            modified: std::time::SystemTime::UNIX_EPOCH,
            mode: 0o644,
            nlink: 1,
            unique: String::new(),
            perm: String::new(),
        }
    }

    /// `pages` pages of `per` entries, then `Err` when `fail` is set.
    struct Numbered {
        next: usize,
        pages: usize,
        per: usize,
        fail: bool,
    }

    #[async_trait]
    impl DirPages for Numbered {
        async fn next_page(&mut self) -> Result<Option<Vec<Entry>>, FsError> {
            if self.next == self.pages {
                return match self.fail {
                    true => Err(FsError::Io(io::Error::other("store unreachable"))),
                    false => Ok(None),
                };
            }
            let start = self.next * self.per;
            self.next += 1;
            Ok(Some(
                (start..start + self.per)
                    .map(|i| entry(format!("f{i:06}")))
                    .collect(),
            ))
        }
    }

    #[tokio::test]
    async fn every_page_becomes_lines_in_order() {
        let pages = Numbered {
            next: 0,
            pages: 30,
            per: 1000,
            fail: false,
        };
        let mut reader = lines(Box::new(pages), |e| e.name.clone());
        let mut text = String::new();
        reader.read_to_string(&mut text).await.unwrap();
        let names: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(names.len(), 30_000);
        assert_eq!(names[0], "f000000");
        assert_eq!(names[29_999], "f029999");
    }

    #[tokio::test]
    async fn a_failure_while_listing_is_an_error_not_an_early_end() {
        let pages = Numbered {
            next: 0,
            pages: 3,
            per: 10,
            fail: true,
        };
        let mut reader = lines(Box::new(pages), |e| e.name.clone());
        let mut text = String::new();
        let err = reader.read_to_string(&mut text).await.unwrap_err();
        assert!(err.to_string().contains("store unreachable"), "{err}");
    }
}
