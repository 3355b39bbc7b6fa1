//! `wharf cluster token|status|remove|drain|undrain|admin-cert`: membership
//! and the cluster's credentials.

use anyhow::{Context, Result};

use crate::admin::connect;
use crate::cli::ClusterCommand;

pub async fn run(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Token { data_dir } => {
            let path = data_dir
                .join("cluster")
                .join(wharf_cluster::JOIN_TOKEN_FILE);
            let token = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}: is a node running with --data-dir {}?",
                    path.display(),
                    data_dir.display()
                )
            })?;
            println!("{}", token.trim());
        }
        ClusterCommand::Status { target } => {
            let s = connect(&target).await?.status().await?;
            println!(
                "node {} ({}), term {}, leader {}, last log {}, applied {}",
                s.node_id,
                s.state,
                s.term,
                s.leader_id.map_or("none".to_owned(), |l| l.to_string()),
                s.last_log_index.map_or("-".to_owned(), |i| i.to_string()),
                s.last_applied_index
                    .map_or("-".to_owned(), |i| i.to_string()),
            );
            println!(
                "storage: chunks {}, replication {}, under-replicated {}",
                s.chunks, s.replication, s.under_replicated
            );
            for m in s.members {
                let lag = match (s.last_log_index, m.matched_index) {
                    (Some(last), Some(matched)) => {
                        format!("\tlag {}", last.saturating_sub(matched))
                    }
                    _ => String::new(),
                };
                let sessions = match m.open_sessions {
                    Some(n) => format!("\tsessions {n}"),
                    None => "\tunreachable".to_owned(),
                };
                let drain = if m.draining { "\tdraining" } else { "" };
                println!(
                    "  node {}\t{}\t{}{lag}{sessions}{drain}",
                    m.node_id, m.cluster_addr, m.role
                );
            }
        }
        ClusterCommand::AdminCert { out, days, target } => {
            let admin = connect(&target).await?;
            admin.save_admin_certificate(days, &out).await?;
            println!(
                "wrote an admin certificate valid for {days} days to {}; use it with --cluster ADDR --admin-cert {}",
                out.display(),
                out.display()
            );
        }
        ClusterCommand::Drain { node_id, target } => {
            connect(&target).await?.drain(node_id, true).await?;
            println!("node {node_id} is draining: new connections get 421; see `wharf cluster status` for its open sessions");
        }
        ClusterCommand::Undrain { node_id, target } => {
            connect(&target).await?.drain(node_id, false).await?;
            println!("node {node_id} accepts connections again");
        }
        ClusterCommand::Remove { node_id, target } => {
            connect(&target).await?.remove_node(node_id).await?;
            println!("removed node {node_id}");
        }
    }
    Ok(())
}
