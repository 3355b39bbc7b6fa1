//! Reading a file of the cluster file system: its chunks in order, each from
//! the local store or a replica, the next one fetched while the current one
//! is sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
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
        let mut skipped = 0u64;
        let mut remaining = Vec::new();
        let mut skip = 0;
        for c in chunks {
            if skipped + c.len <= offset {
                skipped += c.len;
                continue;
            }
            if remaining.is_empty() {
                skip = (offset - skipped) as usize;
            }
            remaining.push(c);
        }
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

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.pos == this.current.len() {
            let Some(next) = this.next.as_mut() else {
                return Poll::Ready(Ok(()));
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
        let n = buf.remaining().min(this.current.len() - this.pos);
        buf.put_slice(&this.current[this.pos..this.pos + n]);
        this.pos += n;
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
