//! What `wharf serve` runs with: every setting defined once (`schema`), the
//! layers merged (`layers`), the result checked and turned into the node's
//! configuration (`node_config`, `accounts`), and printed back for
//! `wharf config check` (`effective`).

mod accounts;
pub mod args;
pub mod effective;
mod layers;
mod node_config;
pub mod schema;

use anyhow::Result;
use wharf_node::NodeConfig;

use args::ServeArgs;
use schema::{LogFormat, ServeSettings};

/// What `wharf serve` runs with: the node's configuration, how the binary
/// logs, and the settings it came from (defaults filled in) for printing.
pub struct Settings {
    pub node: NodeConfig,
    pub log_format: LogFormat,
    pub effective: ServeSettings,
    /// `--user NAME:PASSWORD` accounts (printed with the file's users).
    pub quick_users: Vec<String>,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Self> {
        let mut flags = args.settings.clone();
        args.relax.apply(&mut flags.policy);
        let layered = layers::merge(args.config.as_deref(), &flags)?;
        let mut effective = layered.effective;
        node_config::normalize(&mut effective);
        let mut node = node_config::node_config(&effective, layered.given.http_listen.is_some())?;
        for user in &effective.users {
            node.accounts.push(accounts::file_account(user)?);
        }
        for spec in &args.users {
            node.accounts.push(accounts::quick_start_account(spec)?);
        }
        Ok(Settings {
            node,
            log_format: effective.log_format.unwrap_or(LogFormat::Human),
            effective,
            quick_users: args.users.clone(),
        })
    }
}
