//! Cluster-wide TLS session-ticket keys (DESIGN.md §5). Every node loads the
//! replicated `ticket_keys` table into its `TicketKeyRing`; the leader adds a
//! new key ahead of time and removes expired ones. A ticket issued by one node
//! therefore resumes on every other node.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::unix_now as now;
use crate::error::NodeError;
use crate::follow::follow;
use crate::leader::LeaderJob;
use wharf_cluster::ClusterHandle;
use wharf_store::records::TicketKeyRecord;
use wharf_store::Command;
use wharf_tls::{TicketKey, TicketKeyRing};

/// How long a ticket stays valid for the client.
pub const TICKET_LIFETIME: u32 = 6 * 3600;
/// How often the leader introduces a new encryption key.
const ROTATE_EVERY: u64 = 6 * 3600;
/// A new key is used only this long after it was written, so every node has
/// it before any node encrypts with it.
const ACTIVATION_DELAY: u64 = 60;
/// A key decrypts until every ticket it encrypted has expired.
const KEY_LIFETIME: u64 = ROTATE_EVERY + TICKET_LIFETIME as u64 + ACTIVATION_DELAY;

fn to_key(r: &TicketKeyRecord) -> Option<TicketKey> {
    Some(TicketKey {
        id: r.id,
        secret: r.secret.as_slice().try_into().ok()?,
        created: r.created,
        activate_at: r.activate_at,
        expires: r.expires,
    })
}

fn to_record(k: &TicketKey) -> TicketKeyRecord {
    TicketKeyRecord {
        id: k.id,
        secret: k.secret.to_vec(),
        created: k.created,
        activate_at: k.activate_at,
        expires: k.expires,
    }
}

/// Keeps `ring` equal to the table on this node.
pub async fn follow_table(node: Arc<ClusterHandle>, ring: Arc<TicketKeyRing>) {
    follow(node, move |node| {
        match node.reader().ticket_keys() {
            Ok(records) => ring.replace_keys(records.iter().filter_map(to_key).collect()),
            Err(e) => tracing::error!("cannot read ticket keys: {e}"),
        }
        None
    })
    .await
}

/// Leader job: keep a fresh key ahead of need and drop expired ones.
/// Idempotent, so a new leader simply carries on.
pub struct Rotation;

#[async_trait]
impl LeaderJob for Rotation {
    fn name(&self) -> &'static str {
        "ticket key rotation"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        if let Err(e) = rotate_once(node).await {
            tracing::warn!("ticket key rotation postponed: {e}");
        }
    }
}

pub async fn rotate_once(node: &ClusterHandle) -> Result<(), NodeError> {
    let now = now();
    let keys = node.reader().ticket_keys()?;
    for expired in keys.iter().filter(|k| k.expires <= now) {
        node.write(Command::RemoveTicketKey { id: expired.id })
            .await?;
    }
    let newest = keys.iter().map(|k| k.activate_at).max();
    let due = match newest {
        None => true,
        Some(activate_at) => activate_at + ROTATE_EVERY <= now,
    };
    if due {
        // The very first key is usable at once: no other node can hold a
        // ticket yet, and waiting would leave the cluster without resumption.
        let delay = if newest.is_none() {
            0
        } else {
            ACTIVATION_DELAY
        };
        let key = TicketKey::generate(now, delay, KEY_LIFETIME)?;
        node.write(Command::PutTicketKey(to_record(&key))).await?;
        tracing::info!(activate_in = delay, "added a new session-ticket key");
    }
    Ok(())
}

/// Waits (bounded) until this node holds an active key, so the first clients
/// of a freshly joined node already get tickets that resume elsewhere.
pub async fn wait_for_active_key(ring: &TicketKeyRing, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ring.keys().iter().any(|k| k.is_active(now())) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("no session-ticket key replicated yet: TLS session resumption starts once one arrives");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
