//! Admin commands (`wharf user …`, `wharf cluster …`): gRPC calls to a running
//! node's cluster service, authenticated with the cluster's admin token. With
//! `--data-dir`, the node's address and token are read from its data dir, so an
//! operator on the host needs nothing else.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use tonic::transport::Channel;
use wharf_cluster::pb::cluster_client::ClusterClient;
use wharf_cluster::pb::{self};
use wharf_store::{Command, CommandResult};

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Data directory of a node on this host (its address and admin token are read from it).
    #[arg(long, env = "WHARF_DATA_DIR", conflicts_with = "cluster")]
    pub data_dir: Option<PathBuf>,
    /// Cluster address of a node (HOST:PORT); needs --token.
    #[arg(long, env = "WHARF_CLUSTER", requires = "token")]
    pub cluster: Option<String>,
    /// The cluster's admin token (in DATA_DIR/admin_token on every node).
    #[arg(long, env = "WHARF_ADMIN_TOKEN")]
    pub token: Option<String>,
}

fn read_file(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| {
            format!(
                "cannot read {}: is a node running with --data-dir {}?",
                path.display(),
                dir.display()
            )
        })?
        .trim()
        .to_owned())
}

pub struct Admin {
    client: ClusterClient<Channel>,
    token: String,
}

impl Admin {
    pub async fn connect(target: &Target) -> Result<Self> {
        let (addr, token) = match (&target.data_dir, &target.cluster, &target.token) {
            (_, Some(addr), Some(token)) => (addr.clone(), token.clone()),
            (Some(dir), _, _) => {
                let dir = dir.join("cluster");
                (
                    read_file(&dir, wharf_cluster::CLUSTER_ADDR_FILE)?,
                    read_file(&dir, wharf_cluster::ADMIN_TOKEN_FILE)?,
                )
            }
            _ => {
                let dir = PathBuf::from("wharf-data").join("cluster");
                (
                    read_file(&dir, wharf_cluster::CLUSTER_ADDR_FILE)?,
                    read_file(&dir, wharf_cluster::ADMIN_TOKEN_FILE)?,
                )
            }
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach the node at {addr}"))?;
        Ok(Self {
            client: ClusterClient::new(channel),
            token,
        })
    }

    fn request<T>(&self, body: T) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(body);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(request)
    }

    pub async fn write(&mut self, command: Command) -> Result<CommandResult> {
        let bytes = wharf_store::encode_value(&command)?;
        let request = self.request(pb::ForwardRequest { command: bytes })?;
        let reply = self
            .client
            .forward(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        Ok(wharf_store::decode_value(&reply.result)?)
    }

    pub async fn users(&mut self) -> Result<Vec<pb::UserSummary>> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_users(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .users)
    }

    pub async fn certs(&mut self) -> Result<Vec<pb::CertSummary>> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_certs(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .certs)
    }

    pub async fn status(&mut self) -> Result<pb::StatusReply> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .status(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner())
    }

    pub async fn remove_node(&mut self, node_id: u64) -> Result<()> {
        let request = self.request(pb::RemoveNodeRequest { node_id })?;
        self.client
            .remove_node(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(())
    }
}

pub fn expect_done(result: CommandResult, what: &str) -> Result<()> {
    match result {
        CommandResult::Done => Ok(()),
        CommandResult::NotFound => bail!("{what}: not found"),
        CommandResult::AlreadyExists => bail!("{what}: already exists"),
    }
}
