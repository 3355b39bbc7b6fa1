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

/// What one rotation turn does, decided from the table alone.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    remove: Vec<u32>,
    /// `Some(delay)`: add a key that starts encrypting `delay` seconds on.
    add: Option<u64>,
}

fn plan(keys: &[TicketKeyRecord], now: u64) -> Plan {
    let (expired, live): (Vec<_>, Vec<_>) = keys.iter().partition(|k| k.expires <= now);
    let newest = live.iter().map(|k| k.activate_at).max();
    let add = match newest {
        // No key that still decrypts: none can be in use anywhere, so the new
        // one is usable at once (the very first key, or a cluster that was
        // down longer than a key lives). Waiting would only leave the cluster
        // without resumption.
        None => Some(0),
        Some(activate_at) if activate_at + ROTATE_EVERY <= now => Some(ACTIVATION_DELAY),
        Some(_) => None,
    };
    Plan {
        remove: expired.iter().map(|k| k.id).collect(),
        add,
    }
}

pub async fn rotate_once(node: &ClusterHandle) -> Result<(), NodeError> {
    let now = now();
    let keys = node.reader().ticket_keys()?;
    let plan = plan(&keys, now);
    for id in plan.remove {
        node.write(Command::RemoveTicketKey { id }).await?;
    }
    if let Some(delay) = plan.add {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, activate_at: u64, expires: u64) -> TicketKeyRecord {
        TicketKeyRecord {
            id,
            secret: vec![0; 32],
            created: activate_at,
            activate_at,
            expires,
        }
    }

    #[test]
    fn the_first_key_is_usable_at_once() {
        assert_eq!(
            plan(&[], 1_000),
            Plan {
                remove: vec![],
                add: Some(0)
            }
        );
    }

    #[test]
    fn a_fresh_key_means_nothing_to_do() {
        let keys = [key(1, 1_000, 1_000 + KEY_LIFETIME)];
        assert_eq!(
            plan(&keys, 1_010),
            Plan {
                remove: vec![],
                add: None
            }
        );
    }

    #[test]
    fn a_rotation_due_waits_for_every_node_to_learn_the_key() {
        let keys = [key(1, 1_000, 1_000 + KEY_LIFETIME)];
        let now = 1_000 + ROTATE_EVERY;
        assert_eq!(
            plan(&keys, now),
            Plan {
                remove: vec![],
                add: Some(ACTIVATION_DELAY)
            }
        );
    }

    #[test]
    fn a_store_whose_keys_all_expired_gets_a_key_usable_at_once() {
        // A data directory restored (or a cluster restarted) after every key
        // it held has expired: no ticket anywhere can use them, so making the
        // replacement wait would only refuse resumption for a minute.
        let keys = [key(1, 1_000, 2_000), key(2, 1_500, 2_500)];
        assert_eq!(
            plan(&keys, 10_000),
            Plan {
                remove: vec![1, 2],
                add: Some(0)
            }
        );
    }
}
