//! Admin commands (`wharf user …`, `wharf cluster …`): gRPC calls over TLS to
//! a running node's cluster service. Three ways to authenticate:
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
pub mod trust;
pub mod user;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tonic::transport::Channel;
use wharf_cluster::credentials::Token;

pub use crate::cli::Target;
use wharf_cluster::pb::cluster_client::ClusterClient;
use wharf_cluster::pb::{self};
use wharf_cluster::transport;
use wharf_store::{Command, CommandResult};

/// File names in an `--admin-cert` directory.
pub const ADMIN_CA_FILE: &str = "ca.pem";
pub const ADMIN_CERT_FILE: &str = "admin.pem";
pub const ADMIN_KEY_FILE: &str = "admin.key";

pub struct Admin {
    client: ClusterClient<Channel>,
    /// The admin token's secret, when that is how this client authenticates.
    bearer: Option<String>,
}

impl Admin {
    pub async fn connect(target: &Target) -> Result<Self> {
        let (addr, endpoint, bearer) = match (&target.cluster, &target.token, &target.admin_cert) {
            (Some(addr), Some(token), _) => {
                let token = Token::parse(token)?;
                let ca_pem = transport::fetch_ca(addr, &token.ca_fingerprint)
                    .await
                    .with_context(|| format!("cannot verify the node at {addr}"))?;
                let endpoint = transport::client_endpoint(addr, &ca_pem, None)?;
                (addr.clone(), endpoint, Some(token.secret))
            }
            (Some(addr), None, Some(dir)) => {
                let read = |name: &str| {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))
                };
                let (ca, cert, key) = (
                    read(ADMIN_CA_FILE)?,
                    read(ADMIN_CERT_FILE)?,
                    read(ADMIN_KEY_FILE)?,
                );
                let endpoint = transport::client_endpoint(addr, &ca, Some((&cert, &key)))?;
                (addr.clone(), endpoint, None)
            }
            (Some(_), None, None) => bail!("--cluster needs --token or --admin-cert"),
            (None, _, _) => {
                let dir = target
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("wharf-data"))
                    .join("cluster");
                let (addr, endpoint) = wharf_cluster::local_admin::endpoint(&dir)?;
                (addr, endpoint, None)
            }
        };
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach the node at {addr}"))?;
        Ok(Self {
            client: ClusterClient::new(channel),
            bearer,
        })
    }

    fn request<T>(&self, body: T) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(body);
        if let Some(secret) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {secret}").parse()?);
        }
        Ok(request)
    }

    /// Has the cluster CA sign an admin certificate for a key made here;
    /// returns (chain, key), PEM.
    pub async fn admin_certificate(&mut self, days: u64) -> Result<(String, String)> {
        let (key_pem, request) = wharf_tls::certificate_request()?;
        let request = self.request(pb::CertifyAdminRequest {
            request,
            lifetime_secs: days * 24 * 3600,
        })?;
        let chain_pem = self
            .client
            .certify_admin(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .chain_pem;
        Ok((chain_pem, key_pem))
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

    pub async fn trust_anchors(&mut self) -> Result<Vec<pb::CertSummary>> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_trust_anchors(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .certs)
    }

    pub async fn acme(&mut self) -> Result<Vec<pb::AcmeSummary>> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_acme(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .certs)
    }

    pub async fn bans(&mut self) -> Result<Vec<pb::BanSummary>> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_bans(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .bans)
    }

    pub async fn sinks(&mut self) -> Result<pb::SinkList> {
        let request = self.request(pb::Empty {})?;
        Ok(self
            .client
            .list_sinks(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner())
    }

    pub async fn events(&mut self, after: u64, limit: u32) -> Result<pb::EventList> {
        let request = self.request(pb::ListEventsRequest { after, limit })?;
        Ok(self
            .client
            .list_events(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner())
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

    pub async fn drain(&mut self, node_id: u64, draining: bool) -> Result<()> {
        let request = self.request(pb::DrainRequest { node_id, draining })?;
        self.client
            .drain(request)
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
        other => bail!("{what}: refused ({other:?})"),
    }
}
