//! Applies the replicated drain flag of this node to the engine, and tells
//! the operator when a drained node has no sessions left.

use std::sync::Arc;
use std::time::Duration;

use wharf_cluster::ClusterHandle;
use wharf_server::EngineControl;

/// How often a draining node checks whether its last session has closed.
const DRAINED_CHECK: Duration = Duration::from_secs(2);

/// Applies the flag now (so a node restarted while drained never accepts a
/// connection), then follows it in the background.
pub fn follow_setting(node: Arc<ClusterHandle>, engine: EngineControl) {
    engine.set_draining(node.is_draining(node.node_id));
    tokio::spawn(follow(node, engine));
}

async fn follow(node: Arc<ClusterHandle>, engine: EngineControl) {
    let mut changes = node.reader.changes();
    let mut announced_empty = false;
    let mut applied = None;
    loop {
        let draining = node.is_draining(node.node_id);
        if applied != Some(draining) {
            let was_draining = applied == Some(true);
            applied = Some(draining);
            engine.set_draining(draining);
            announced_empty = false;
            if draining {
                tracing::warn!(
                    open_sessions = engine.open_sessions(),
                    "draining: new FTPS connections get 421 until `wharf cluster undrain {}`",
                    node.node_id
                );
            } else if was_draining {
                tracing::info!("drain lifted: accepting FTPS connections again");
            }
        }
        if draining && !announced_empty && engine.open_sessions() == 0 {
            tracing::info!("drained: no FTPS sessions left on this node");
            announced_empty = true;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(DRAINED_CHECK), if draining && !announced_empty => {}
        }
    }
}
