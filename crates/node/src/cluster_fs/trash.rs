//! Objects no file keeps any more (`--storage s3`). The change that lets an
//! object go — `DELE`, a rename's old keys, an upload replaced while in
//! flight — puts it in `object_trash` in the same log entry, so a failure
//! between the commit and the bucket's DELETE (the endpoint down, the node
//! killed) leaves a record, not an orphan object. The node that made the
//! change removes the objects at once and then forgets them, in batches
//! off the command's path (`Forgetting`); the leader's upkeep retries what
//! is still there a turn later.
//!
//! A key a later file records again leaves the trash in that file's entry,
//! and each removal looks again just before the DELETE: the trash never
//! takes a live object. What remains is the race the design accepts: a
//! `STOR` whose PUT lands between that look and the DELETE.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use wharf_cluster::ClusterHandle;
use wharf_store::records::TrashEntry;
use wharf_store::{Command, CommandResult, FsCommand};

use crate::objects::Objects;

/// Entries forgotten per log entry.
const FORGET_BATCH: usize = 1000;
/// Entries the leader looks at per turn (their keys stay in memory until
/// the next turn).
const SWEEP_MAX: usize = 10_000;
/// Entries removed between two checks that this node still leads; a turn
/// ends after a round in which none could be removed (the endpoint down).
const SWEEP_ROUND: usize = 100;

/// Hands what a command removed from the bucket to one task per node,
/// which forgets it after the command's reply: one log entry per batch,
/// made of whatever queued while the previous one committed. A DELE thus
/// waits for one commit, not two, and a stream of them shares the second.
#[derive(Clone)]
pub(crate) struct Forgetting {
    queue: mpsc::UnboundedSender<TrashEntry>,
}

impl Forgetting {
    /// Starts the node's task; it ends when the last handle is dropped.
    pub(crate) fn start(node: Arc<ClusterHandle>) -> Self {
        let (queue, mut removed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while removed.recv_many(&mut batch, FORGET_BATCH).await > 0 {
                forget(&node, &batch).await;
                batch.clear();
            }
        });
        Forgetting { queue }
    }
}

/// Removes what `entries` name from the bucket; `forgetting` forgets
/// those that are gone. A removal that fails stays in the trash for the
/// leader.
pub(crate) async fn empty(
    node: &ClusterHandle,
    objects: &Objects,
    entries: Vec<TrashEntry>,
    forgetting: &Forgetting,
) {
    for entry in entries {
        if discard(node, objects, &entry).await {
            // Refused only once the node is shutting down: the leader's
            // sweep finds the object gone.
            let _ = forgetting.queue.send(entry);
        }
    }
}

/// Removes what `entries` name from the bucket and forgets those that are
/// gone before it returns; how many.
async fn empty_now(node: &ClusterHandle, objects: &Objects, entries: Vec<TrashEntry>) -> usize {
    let mut gone = Vec::with_capacity(entries.len());
    for entry in entries {
        if discard(node, objects, &entry).await {
            gone.push(entry);
        }
    }
    for batch in gone.chunks(FORGET_BATCH) {
        forget(node, batch).await;
    }
    gone.len()
}

/// One log entry that forgets `entries` (those still as given).
async fn forget(node: &ClusterHandle, entries: &[TrashEntry]) {
    let forget = FsCommand::ForgetTrash {
        entries: entries.to_vec(),
    };
    match node.write(Command::Fs(forget)).await {
        Ok(CommandResult::Done) => {}
        Ok(other) => tracing::debug!("forgetting removed objects: {other:?}"),
        // They stay listed; the leader's next turn finds them gone.
        Err(e) => tracing::debug!("forgetting removed objects deferred: {e}"),
    }
}

/// Whether the object or multipart upload `entry` names is gone now.
async fn discard(node: &ClusterHandle, objects: &Objects, entry: &TrashEntry) -> bool {
    if !entry.abort.is_empty() {
        return objects.abort(&entry.key, &entry.abort).await;
    }
    if live(node, objects, &entry.key) {
        // A later file keeps its content there: forget, do not delete.
        return true;
    }
    // Another object at the key was stored after this one went (an upload
    // or a rename's copy not yet recorded): not this entry's to delete.
    match objects.etag_at(&entry.key).await {
        Ok(None) => return true,
        Ok(Some(etag)) if !entry.etag.is_empty() && etag != entry.etag => return true,
        Ok(Some(_)) => {}
        Err(e) => {
            tracing::warn!(key = %entry.key, "object left in the bucket for now: {e}");
            return false;
        }
    }
    objects.delete(&entry.key).await
}

/// Whether the file at `key`'s path records its content at `key`.
fn live(node: &ClusterHandle, objects: &Objects, key: &str) -> bool {
    objects
        .path_of(key)
        .is_some_and(|path| records_key(node, &path, key))
}

/// Whether the file at `path` records its content at `key`.
pub(crate) fn records_key(node: &ClusterHandle, path: &str, key: &str) -> bool {
    node.reader()
        .lookup(path)
        .ok()
        .flatten()
        .and_then(|inode| inode.object)
        .is_some_and(|object| object.key == key)
}

/// The leader's share: entries that were already in the trash at its last
/// turn (their node failed to remove them, or died first) are removed now.
#[derive(Default)]
pub(crate) struct Sweep {
    seen: HashSet<Vec<u8>>,
}

impl Sweep {
    pub(crate) async fn turn(&mut self, node: &ClusterHandle, objects: &Objects) {
        let mut seen = HashSet::new();
        let mut due = Vec::new();
        let mut after: Option<TrashEntry> = None;
        while seen.len() < SWEEP_MAX {
            let Ok(page) = node.reader().trash_page(after.as_ref(), FORGET_BATCH) else {
                break;
            };
            let Some(last) = page.last().cloned() else {
                break;
            };
            for entry in page {
                let row = entry.row_key();
                if self.seen.contains(&row) {
                    due.push(entry);
                }
                seen.insert(row);
            }
            after = Some(last);
        }
        self.seen = seen;
        if !due.is_empty() {
            tracing::info!(
                objects = due.len(),
                "removing objects left in the bucket after their files went"
            );
        }
        for round in due.chunks(SWEEP_ROUND) {
            if !node.is_leader().await || empty_now(node, objects, round.to_vec()).await == 0 {
                return;
            }
        }
    }
}
