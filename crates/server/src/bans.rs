//! The `BanList` boundary: bans that every node honours. The engine bans at
//! once on its own; once a `BanList` has recorded the ban for the cluster, the
//! engine drops its own copy so that lifting the ban (`wharf ban remove`)
//! lifts it everywhere.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

#[async_trait]
pub trait BanList: Send + Sync {
    /// Time left if `ip` is banned anywhere in the cluster.
    fn banned(&self, ip: IpAddr) -> Option<Duration>;
    /// Records a ban that every node honours; true once it is recorded (the
    /// engine then relies on `banned` alone), false if the ban stays local.
    async fn ban(&self, ip: IpAddr, duration: Duration, reason: &str) -> bool;
}

/// For a server that shares bans with nobody.
pub struct LocalOnly;

#[async_trait]
impl BanList for LocalOnly {
    fn banned(&self, _ip: IpAddr) -> Option<Duration> {
        None
    }

    async fn ban(&self, _ip: IpAddr, _duration: Duration, _reason: &str) -> bool {
        false
    }
}
