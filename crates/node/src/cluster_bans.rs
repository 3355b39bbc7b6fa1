//! Bans in the replicated `bans` table: an address banned after failed logins
//! on one node is refused by every node, and the leader removes expired bans.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now as now;
use crate::leader::LeaderJob;
use async_trait::async_trait;
use wharf_cluster::ClusterHandle;
use wharf_server::bans::BanList;
use wharf_store::records::BanRecord;
use wharf_store::Command;

pub struct ClusterBans {
    pub node: Arc<ClusterHandle>,
}

#[async_trait]
impl BanList for ClusterBans {
    fn banned(&self, ip: IpAddr) -> Option<Duration> {
        match self.node.reader().ban(&ip.to_string()) {
            Ok(Some(ban)) if ban.until > now() => Some(Duration::from_secs(ban.until - now())),
            Ok(_) => None,
            Err(e) => {
                tracing::error!("cannot read the bans table: {e}");
                None
            }
        }
    }

    async fn ban(&self, ip: IpAddr, duration: Duration, reason: &str) -> bool {
        let record = BanRecord {
            address: ip.to_string(),
            until: now() + duration.as_secs(),
            reason: reason.to_owned(),
        };
        match self.node.write(Command::PutBan(record)).await {
            Ok(_) => {
                tracing::info!(%ip, ?duration, reason, "ban recorded for every node");
                true
            }
            Err(e) => {
                tracing::warn!(%ip, "ban stays local to this node: {e}");
                false
            }
        }
    }
}

/// Leader job: drop bans that have expired. Idempotent across leader changes.
pub struct Expiry;

#[async_trait]
impl LeaderJob for Expiry {
    fn name(&self) -> &'static str {
        "ban expiry"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        let Ok(bans) = node.reader().bans() else {
            return;
        };
        for ban in bans.into_iter().filter(|b| b.until <= now()) {
            if let Err(e) = node
                .write(Command::RemoveBan {
                    address: ban.address.clone(),
                })
                .await
            {
                tracing::warn!(address = %ban.address, "cannot remove an expired ban yet: {e}");
            }
        }
    }
}
