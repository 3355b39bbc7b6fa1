//! The write path: any node accepts a write and forwards it to the leader;
//! the answer comes only after this node applied it (read-your-writes).

use std::time::{Duration, Instant};

use tonic::Status;
use wharf_store::{Command, CommandResult};

use super::{ClusterHandle, WRITE_TIMEOUT};
use crate::group_commit;
use crate::internal::OrInternal;
use crate::pb;
use crate::pb::cluster_client::ClusterClient;

/// Metadata key marking a write forwarded by a peer.
pub(crate) const FORWARDED: &str = "x-wharf-forwarded";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("no leader with a quorum answered within {0:?}: the cluster cannot accept changes now (are a majority of nodes up?)")]
    NoQuorum(Duration),
    #[error("the write was committed but this node did not apply it in time")]
    NotApplied,
    #[error("the leader refused the write: {0}")]
    Refused(String),
}

impl ClusterHandle {
    /// Applies `command` through the leader and returns its result once this
    /// node's own state machine has applied it (read-your-writes).
    pub async fn write(&self, command: Command) -> Result<CommandResult, WriteError> {
        self.write_indexed(command).await.map(|(result, _)| result)
    }

    /// `write`, also returning the log index the command was committed at.
    pub async fn write_indexed(
        &self,
        command: Command,
    ) -> Result<(CommandResult, u64), WriteError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut last_refusal = None;
        while Instant::now() < deadline {
            let leader = self.raft.current_leader().await;
            let attempt = match leader {
                Some(id) if id == self.node_id => self.write_as_leader(command.clone()).await,
                Some(id) => match self.member_addr(id) {
                    Some(addr) => match self.forward_channel(&addr) {
                        Ok(channel) => forward(channel, &addr, &command, deadline).await,
                        Err(status) => Err(status),
                    },
                    None => Err(Status::unavailable("leader address unknown")),
                },
                None => Err(Status::unavailable("no leader")),
            };
            match attempt {
                Ok((result, index)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return match tokio::time::timeout(
                        remaining.max(Duration::from_secs(1)),
                        self.reader.wait_applied(index),
                    )
                    .await
                    {
                        Ok(()) => Ok((result, index)),
                        Err(_) => Err(WriteError::NotApplied),
                    };
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    return Err(WriteError::Refused(status.message().to_owned()))
                }
                Err(status) => {
                    last_refusal = Some(status.message().to_owned());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::warn!(
            reason = last_refusal.as_deref().unwrap_or("none"),
            "write failed: no quorum"
        );
        Err(WriteError::NoQuorum(WRITE_TIMEOUT))
    }

    /// The channel to `addr`, connected lazily and reconnecting by itself.
    pub(crate) fn forward_channel(&self, addr: &str) -> Result<tonic::transport::Channel, Status> {
        let mut channels = self
            .forward_channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = self
            .transport
            .endpoint(addr)
            .map_err(|e| Status::unavailable(e.to_string()))?
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The leader's half of a write: commit through Raft, bounded in time.
    /// Namespace changes go through the group commit.
    pub async fn write_as_leader(&self, command: Command) -> Result<(CommandResult, u64), Status> {
        match command {
            Command::Fs(change) => self.group_commit.commit(change).await,
            other => {
                let sealed = self.reader.seal(other).or_internal()?;
                group_commit::client_write(&self.raft, sealed, WRITE_TIMEOUT).await
            }
        }
    }
}

/// Sends a write to the leader, authenticated by this node's certificate.
async fn forward(
    channel: tonic::transport::Channel,
    addr: &str,
    command: &Command,
    deadline: Instant,
) -> Result<(CommandResult, u64), Status> {
    let bytes = wharf_store::encode_value(command).or_internal()?;
    let mut request = tonic::Request::new(pb::ForwardRequest { command: bytes });
    request.set_timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100)),
    );
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    let reply = ClusterClient::new(channel)
        .forward(request)
        .await
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument => s,
            _ => Status::unavailable(format!("leader {addr}: {}", s.message())),
        })?
        .into_inner();
    let result = wharf_store::decode_value(&reply.result).or_internal()?;
    Ok((result, reply.log_index))
}
