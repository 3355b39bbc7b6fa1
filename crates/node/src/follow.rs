//! Keeping node-local state equal to a replicated table (ticket keys,
//! certificates, trust anchors, the drain flag): one loop that applies the
//! table now and again after every change the node applies.

use std::sync::Arc;
use std::time::Duration;

use wharf_cluster::ClusterHandle;

/// Calls `apply` now and after every change to the store, until the store
/// closes. `apply` may ask to be called again after a while even without a
/// change (the drain flag watches open sessions).
pub async fn follow<F>(node: Arc<ClusterHandle>, mut apply: F)
where
    F: FnMut(&ClusterHandle) -> Option<Duration> + Send,
{
    let mut changes = node.reader().changes();
    loop {
        let again = apply(&node);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep_or_never(again) => {}
        }
    }
}

async fn sleep_or_never(after: Option<Duration>) {
    match after {
        Some(after) => tokio::time::sleep(after).await,
        None => std::future::pending().await,
    }
}
