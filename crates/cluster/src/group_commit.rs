//! Group commit of namespace changes on the leader: while one log entry is
//! being appended and replicated, the changes that arrive meanwhile (this
//! node's uploads and those forwarded by followers) queue up, and the next
//! entry carries all of them (`Command::FsBatch`). Sixty-four concurrent
//! uploads then cost a few fsyncs and replication rounds, not sixty-four,
//! while a lone writer waits exactly as long as before.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use wharf_store::{Command, CommandResult, FsCommand, Raft};

/// At most this many changes share an entry (an upload's checkpoint lists
/// its chunks, so entries stay well under a megabyte or two).
const MAX_GROUP: usize = 128;
/// At most this much file content (small files' last chunks, carried in
/// their writes) shares an entry: a follower receives an entry whole, within
/// one heartbeat interval (the log store's append budget is 1 MiB).
const MAX_GROUP_INLINE: usize = 512 << 10;

type Committed = Result<(CommandResult, u64), Status>;

struct Pending {
    command: FsCommand,
    reply: oneshot::Sender<Committed>,
}

/// The queue in front of the leader's log. Its task ends when the last
/// handle is dropped.
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
    timeout: Duration,
}

impl GroupCommit {
    pub(crate) fn start(raft: Raft, timeout: Duration) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending, timeout));
        Self { queue, timeout }
    }

    /// Commits `command` with whatever else is waiting; its own result and
    /// the entry's log index. The caller waits at most `timeout` in all,
    /// queueing included (an entry stuck without quorum must not hold the
    /// changes behind it for two timeouts). A caller that goes away or
    /// times out does not take the change back: once queued, it may still be
    /// committed, like any submitted write whose answer was lost.
    pub(crate) async fn commit(&self, command: FsCommand) -> Committed {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| Status::unavailable("this node is shutting down"))?;
        match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => Err(no_quorum()),
            Ok(answer) => answer.map_err(|_| Status::unavailable("this node is shutting down"))?,
        }
    }
}

fn no_quorum() -> Status {
    Status::unavailable("no quorum: the write was not committed in time")
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>, timeout: Duration) {
    // A change that would have made the last group too heavy leads the next.
    let mut next: Option<Pending> = None;
    loop {
        let first = match next.take() {
            Some(first) => first,
            None => match pending.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut inline = first.command.inline_len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            let Ok(more) = pending.try_recv() else {
                break;
            };
            inline += more.command.inline_len();
            if inline > MAX_GROUP_INLINE {
                next = Some(more);
                break;
            }
            group.push(more);
        }
        commit_group(&raft, group, timeout).await;
    }
}

/// One entry for the whole group (a lone change goes as itself), each
/// result back to its caller.
async fn commit_group(raft: &Raft, mut group: Vec<Pending>, timeout: Duration) {
    if group.len() == 1 {
        let Pending { command, reply } = group.remove(0);
        let _ = reply.send(client_write(raft, Command::Fs(command), timeout).await);
        return;
    }
    let (commands, replies): (Vec<_>, Vec<_>) =
        group.into_iter().map(|p| (p.command, p.reply)).unzip();
    let count = commands.len();
    let failed = match client_write(raft, Command::FsBatch(commands), timeout).await {
        Ok((CommandResult::Batch(results), index)) if results.len() == count => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok((result, index)));
            }
            return;
        }
        Ok((other, _)) => Status::internal(format!(
            "a batch of {count} changes was answered with {other:?}"
        )),
        Err(status) => status,
    };
    for reply in replies {
        let _ = reply.send(Err(failed.clone()));
    }
}

/// The leader's half of a write: commit through Raft, bounded in time.
pub(crate) async fn client_write(raft: &Raft, command: Command, timeout: Duration) -> Committed {
    match tokio::time::timeout(timeout, raft.client_write(command)).await {
        Err(_) => Err(no_quorum()),
        Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
            Err(Status::unavailable("not the leader"))
        }
        Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
    }
}
