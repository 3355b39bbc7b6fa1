//! Trust anchors for client certificates (mutual TLS): the replicated `trust`
//! table, followed by every node's listeners (`wharf cert trust` changes it).

use std::sync::Arc;

use wharf_cluster::ClusterHandle;
use wharf_tls::TrustAnchors;

use crate::follow::follow;

/// Keeps `anchors` equal to the `trust` table on this node.
pub async fn follow_table(node: Arc<ClusterHandle>, anchors: Arc<TrustAnchors>) {
    let mut seen: Option<Vec<(String, String)>> = None;
    follow(node, move |node| {
        match node.reader().trust_anchors() {
            Ok(records) => {
                let current: Vec<(String, String)> =
                    records.into_iter().map(|r| (r.name, r.cert_pem)).collect();
                if seen.as_ref() != Some(&current) {
                    match anchors.replace(&current) {
                        Ok(count) => {
                            let names: Vec<&str> =
                                current.iter().map(|(n, _)| n.as_str()).collect();
                            tracing::info!(
                                ?names,
                                certificates = count,
                                "trust anchors for client certificates"
                            );
                        }
                        Err(e) => tracing::error!("trust anchors not changed: {e}"),
                    }
                    seen = Some(current);
                }
            }
            Err(e) => tracing::error!("cannot read the trust anchors: {e}"),
        }
        None
    })
    .await
}
