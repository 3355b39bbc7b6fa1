//! Reading a file of the cluster file system: its chunks in order, each from
//! the local store or a replica, the next one fetched while the current one
//! is sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::task::JoinHandle;
use wharf_cluster::ClusterHandle;
use wharf_store::records::ChunkRef;

type Fetch = JoinHandle<std::io::Result<Vec<u8>>>;

pub struct ChunkReader {
    node: Arc<ClusterHandle>,
    chunks: std::vec::IntoIter<ChunkRef>,
    /// Bytes of the first chunk to skip (the REST offset).
    skip: usize,
    current: Vec<u8>,
    pos: usize,
    next: Option<Fetch>,
}

fn fetch(node: &Arc<ClusterHandle>, chunk: ChunkRef) -> Fetch {
    let node = node.clone();
    tokio::spawn(async move {
        node.read_chunk(chunk.hash)
            .await
            .map_err(std::io::Error::other)
    })
}

impl ChunkReader {
    pub fn new(node: Arc<ClusterHandle>, chunks: Vec<ChunkRef>, offset: u64) -> Self {
        let (skip, remaining) = from_offset(chunks, offset);
        let mut chunks = remaining.into_iter();
        let next = chunks.next().map(|c| fetch(&node, c));
        Self {
            node,
            chunks,
            skip,
            current: Vec::new(),
            pos: 0,
            next,
        }
    }
}

/// The chunks that hold the bytes from `offset` on, and how many bytes of the
/// first of them come before `offset`.
fn from_offset(chunks: Vec<ChunkRef>, offset: u64) -> (usize, Vec<ChunkRef>) {
    let mut start = 0u64;
    let mut chunks = chunks.into_iter();
    for chunk in chunks.by_ref() {
        if start + chunk.len > offset {
            let skip = (offset - start) as usize;
            return (skip, std::iter::once(chunk).chain(chunks).collect());
        }
        start += chunk.len;
    }
    (0, Vec::new())
}

impl AsyncBufRead for ChunkReader {
    /// The rest of the current chunk, as fetched: the transfer sends from it
    /// directly.
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.pos == this.current.len() {
            let Some(next) = this.next.as_mut() else {
                return Poll::Ready(Ok(&[]));
            };
            let fetched = match Pin::new(next).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => Err(std::io::Error::other(e)),
            };
            this.next = this.chunks.next().map(|c| fetch(&this.node, c));
            let data = fetched?;
            this.pos = this.skip.min(data.len());
            this.skip = 0;
            this.current = data;
        }
        Poll::Ready(Ok(this.current.get(this.pos..).unwrap_or_default()))
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amount).min(this.current.len());
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let available = match self.as_mut().poll_fill_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(bytes)) => bytes,
        };
        let n = buf.remaining().min(available.len());
        buf.put_slice(available.get(..n).unwrap_or_default());
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        if let Some(next) = self.next.take() {
            next.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_blob::ChunkHash;

    fn chunk(len: u64) -> ChunkRef {
        ChunkRef {
            hash: ChunkHash::of(&len.to_be_bytes()),
            len,
        }
    }

    fn lens(chunks: &[ChunkRef]) -> Vec<u64> {
        chunks.iter().map(|c| c.len).collect()
    }

    #[test]
    fn an_offset_inside_a_later_chunk_keeps_every_chunk_after_it() {
        // A short last chunk must not be mistaken for one before the offset.
        let file = vec![chunk(4), chunk(4), chunk(4), chunk(1)];
        let (skip, rest) = from_offset(file.clone(), 5);
        assert_eq!((skip, lens(&rest)), (1, vec![4, 4, 1]));
        let (skip, rest) = from_offset(file.clone(), 0);
        assert_eq!((skip, lens(&rest)), (0, vec![4, 4, 4, 1]));
        let (skip, rest) = from_offset(file.clone(), 8);
        assert_eq!((skip, lens(&rest)), (0, vec![4, 1]));
        let (skip, rest) = from_offset(file.clone(), 12);
        assert_eq!((skip, lens(&rest)), (0, vec![1]));
        let (_, rest) = from_offset(file, 13);
        assert!(rest.is_empty(), "nothing is left at the end of the file");
    }
}
