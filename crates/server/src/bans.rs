//! The `BanList` boundary: bans that every node honours. The engine keeps its
//! own bans too (they act at once); a `BanList` spreads them to the cluster.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

#[async_trait]
pub trait BanList: Send + Sync {
    /// Time left if `ip` is banned anywhere in the cluster.
    fn banned(&self, ip: IpAddr) -> Option<Duration>;
    /// Records a ban that every node honours.
    async fn ban(&self, ip: IpAddr, duration: Duration, reason: &str);
}

/// For a server that shares bans with nobody.
pub struct LocalOnly;

#[async_trait]
impl BanList for LocalOnly {
    fn banned(&self, _ip: IpAddr) -> Option<Duration> {
        None
    }

    async fn ban(&self, _ip: IpAddr, _duration: Duration, _reason: &str) {}
}
