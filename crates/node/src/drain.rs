//! Applies the replicated drain flag of this node to the engine, and tells
//! the operator when a drained node has no sessions left.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use wharf_cluster::ClusterHandle;
use wharf_server::EngineControl;

use crate::follow::follow;

/// How often a draining node checks whether its last session has closed.
const DRAINED_CHECK: Duration = Duration::from_secs(2);

/// Applies the flag now (so a node restarted while drained never accepts a
/// connection), then follows it in the background.
pub fn follow_setting(node: Arc<ClusterHandle>, engine: EngineControl) -> JoinHandle<()> {
    engine.set_draining(node.is_draining(node.node_id()));
    let mut announced_empty = false;
    let mut applied = None;
    tokio::spawn(follow(node, move |node| {
        let draining = node.is_draining(node.node_id());
        if applied != Some(draining) {
            let was_draining = applied == Some(true);
            applied = Some(draining);
            engine.set_draining(draining);
            announced_empty = false;
            if draining {
                tracing::warn!(
                    open_sessions = engine.open_sessions(),
                    "draining: new FTPS connections get 421 until `wharf cluster undrain {}`",
                    node.node_id()
                );
            } else if was_draining {
                tracing::info!("drain lifted: accepting FTPS connections again");
            }
        }
        if draining && !announced_empty && engine.open_sessions() == 0 {
            tracing::info!("drained: no FTPS sessions left on this node");
            announced_empty = true;
        }
        (draining && !announced_empty).then_some(DRAINED_CHECK)
    }))
}
