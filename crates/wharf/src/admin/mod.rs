//! Admin commands (`wharf user …`, `wharf cluster …`): calls to a running
//! node's admin service through `wharf_cluster::admin_client`. Three ways to
//! authenticate:
//! - `--data-dir DIR` of a node on this host: its address, the cluster CA and
//!   its node certificate are read from the data dir, nothing else needed;
//! - `--cluster ADDR --token T`: the admin token, which also names the
//!   cluster CA by fingerprint so the node is verified before the token is sent;
//! - `--cluster ADDR --admin-cert DIR`: a client certificate from
//!   `wharf cluster admin-cert`.

pub mod acme;
pub mod ban;
pub mod cert;
pub mod cluster;
pub mod events;
pub mod health;
pub mod storage;
pub mod trust;
pub mod user;

use std::path::PathBuf;

use anyhow::{bail, Result};
use wharf_cluster::admin_client::{AdminAccess, AdminClient};
use wharf_store::CommandResult;

pub use crate::cli::Target;

/// The admin client the command line's target options name.
pub async fn connect(target: &Target) -> Result<AdminClient> {
    let access = match (&target.cluster, &target.token, &target.admin_cert) {
        (Some(addr), Some(token), _) => AdminAccess::Token {
            addr: addr.clone(),
            token: token.clone(),
        },
        (Some(addr), None, Some(dir)) => AdminAccess::Certificate {
            addr: addr.clone(),
            dir: dir.clone(),
        },
        (Some(_), None, None) => bail!("--cluster needs --token or --admin-cert"),
        (None, _, _) => AdminAccess::Local {
            data_dir: target
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("wharf-data")),
        },
    };
    Ok(AdminClient::connect(access).await?)
}

pub fn expect_done(result: CommandResult, what: &str) -> Result<()> {
    match result {
        CommandResult::Done => Ok(()),
        CommandResult::NotFound => bail!("{what}: not found"),
        CommandResult::AlreadyExists => bail!("{what}: already exists"),
        other => bail!("{what}: refused ({other:?})"),
    }
}
