//! The client of a node's admin service: what `wharf user …`, `wharf
//! cluster …` and the other admin commands, and the benchmark harness, talk
//! to a running node through. Three ways in ([`AdminAccess`]): the data
//! directory of a node on this host, an admin token, or an admin client
//! certificate from `wharf cluster admin-cert`.

use std::future::Future;
use std::path::{Path, PathBuf};

use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use wharf_store::{Command, CommandResult};

use crate::credentials::{self, Token, TokenError};
use crate::error::ClusterError;
use crate::local_admin::{self, LocalAdminError};
use crate::pb::{self, cluster_client::ClusterClient};
use crate::transport::{self, FetchCaError};

/// File names in an `--admin-cert` directory.
pub const ADMIN_CA_FILE: &str = "ca.pem";
pub const ADMIN_CERT_FILE: &str = "admin.pem";
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// How an admin client reaches and proves itself to a node.
pub enum AdminAccess {
    /// A node on this host: its address, the cluster CA and its node
    /// certificate are read from its data directory.
    Local { data_dir: PathBuf },
    /// The cluster's admin token, which also names the cluster CA by
    /// fingerprint, so the node is verified before the token is sent.
    Token { addr: String, token: String },
    /// A directory holding an admin certificate, its key and the cluster CA.
    Certificate { addr: String, dir: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Local(#[from] LocalAdminError),
    #[error("cannot verify the node at {addr}: {source}")]
    Verify { addr: String, source: FetchCaError },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the node at {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Save(#[from] ClusterError),
    #[error("the node signed no usable certificate")]
    NoCertificate,
    #[error("cannot make an admin key: {0}")]
    Key(#[from] wharf_tls::CaError),
    #[error("cannot encode or decode a command: {0}")]
    Codec(#[from] wharf_store::CodecError),
    #[error("the admin token cannot be sent as a header")]
    BadToken,
    /// The node's answer to a refused call.
    #[error("{}", .0.message())]
    Refused(Status),
}

/// Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct AdminClient {
    client: ClusterClient<Channel>,
    /// The admin token's secret, when that is how this client authenticates.
    bearer: Option<String>,
}

impl AdminClient {
    pub async fn connect(access: AdminAccess) -> Result<Self, AdminError> {
        let (addr, endpoint, bearer) = match access {
            AdminAccess::Token { addr, token } => {
                let token = Token::parse(&token)?;
                let ca_pem = transport::fetch_ca(&addr, &token.ca_fingerprint)
                    .await
                    .map_err(|source| AdminError::Verify {
                        addr: addr.clone(),
                        source,
                    })?;
                let endpoint = transport::client_endpoint(&addr, &ca_pem, None)
                    .map_err(|source| connect_error(&addr, source))?;
                (addr, endpoint, Some(token.secret))
            }
            AdminAccess::Certificate { addr, dir } => {
                let read = |name: &str| {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path)
                        .map_err(|source| AdminError::Read { path, source })
                };
                let (ca, cert, key) = (
                    read(ADMIN_CA_FILE)?,
                    read(ADMIN_CERT_FILE)?,
                    read(ADMIN_KEY_FILE)?,
                );
                let endpoint = transport::client_endpoint(&addr, &ca, Some((&cert, &key)))
                    .map_err(|source| connect_error(&addr, source))?;
                (addr, endpoint, None)
            }
            AdminAccess::Local { data_dir } => {
                let (addr, endpoint) = local_admin::endpoint(&data_dir.join("cluster"))?;
                (addr, endpoint, None)
            }
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| connect_error(&addr, source))?;
        Ok(Self {
            client: ClusterClient::new(channel),
            bearer,
        })
    }

    /// One call: `body` with the token attached (when there is one), the
    /// node's refusal as [`AdminError::Refused`].
    async fn call<Q, A, F, Fut>(&self, body: Q, rpc: F) -> Result<A, AdminError>
    where
        F: FnOnce(ClusterClient<Channel>, Request<Q>) -> Fut,
        Fut: Future<Output = Result<Response<A>, Status>>,
    {
        let mut request = Request::new(body);
        if let Some(secret) = &self.bearer {
            let value = format!("Bearer {secret}")
                .parse()
                .map_err(|_| AdminError::BadToken)?;
            request.metadata_mut().insert("authorization", value);
        }
        // A clone shares the connection (tonic's channel is a handle).
        rpc(self.client.clone(), request)
            .await
            .map(Response::into_inner)
            .map_err(AdminError::Refused)
    }

    /// Has the cluster CA sign an admin certificate for a key made here, and
    /// writes the directory [`AdminAccess::Certificate`] reads: the key, the
    /// chain and the cluster CA (the chain's last certificate).
    pub async fn save_admin_certificate(&self, days: u64, dir: &Path) -> Result<(), AdminError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let (key_pem, request) = wharf_tls::certificate_request()?;
        let body = pb::CertifyAdminRequest {
            request,
            lifetime_secs: days * 24 * 3600,
        };
        let chain_pem = self
            .call(body, |mut c, r| async move { c.certify_admin(r).await })
            .await?
            .chain_pem;
        let ca = match CertificateDer::pem_slice_iter(chain_pem.as_bytes()).last() {
            Some(Ok(der)) => wharf_tls::certificate_pem(&der),
            _ => return Err(AdminError::NoCertificate),
        };
        std::fs::create_dir_all(dir).map_err(|source| AdminError::Create {
            path: dir.to_owned(),
            source,
        })?;
        for (name, pem) in [
            (ADMIN_KEY_FILE, &key_pem),
            (ADMIN_CERT_FILE, &chain_pem),
            (ADMIN_CA_FILE, &ca),
        ] {
            credentials::write_private(&dir.join(name), pem)?;
        }
        Ok(())
    }

    /// Proposes a command to the cluster (through the leader).
    pub async fn write(&self, command: Command) -> Result<CommandResult, AdminError> {
        let command = wharf_store::encode_value(&command)?;
        let reply = self
            .call(pb::ForwardRequest { command }, |mut c, r| async move {
                c.forward(r).await
            })
            .await?;
        Ok(wharf_store::decode_value(&reply.result)?)
    }

    pub async fn users(&self) -> Result<Vec<pb::UserSummary>, AdminError> {
        let reply = self
            .call(
                pb::Empty {},
                |mut c, r| async move { c.list_users(r).await },
            )
            .await?;
        Ok(reply.users)
    }

    pub async fn certs(&self) -> Result<Vec<pb::CertSummary>, AdminError> {
        let reply = self
            .call(
                pb::Empty {},
                |mut c, r| async move { c.list_certs(r).await },
            )
            .await?;
        Ok(reply.certs)
    }

    pub async fn trust_anchors(&self) -> Result<Vec<pb::CertSummary>, AdminError> {
        let reply = self
            .call(pb::Empty {}, |mut c, r| async move {
                c.list_trust_anchors(r).await
            })
            .await?;
        Ok(reply.certs)
    }

    pub async fn acme(&self) -> Result<Vec<pb::AcmeSummary>, AdminError> {
        let reply = self
            .call(pb::Empty {}, |mut c, r| async move { c.list_acme(r).await })
            .await?;
        Ok(reply.certs)
    }

    pub async fn bans(&self) -> Result<Vec<pb::BanSummary>, AdminError> {
        let reply = self
            .call(pb::Empty {}, |mut c, r| async move { c.list_bans(r).await })
            .await?;
        Ok(reply.bans)
    }

    pub async fn sinks(&self) -> Result<pb::SinkList, AdminError> {
        self.call(
            pb::Empty {},
            |mut c, r| async move { c.list_sinks(r).await },
        )
        .await
    }

    pub async fn events(&self, after: u64, limit: u32) -> Result<pb::EventList, AdminError> {
        let body = pb::ListEventsRequest { after, limit };
        self.call(body, |mut c, r| async move { c.list_events(r).await })
            .await
    }

    /// The cluster's `fs.*` settings (where files' contents live).
    pub async fn storage_settings(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, AdminError> {
        let reply = self
            .call(pb::Empty {}, |mut c, r| async move {
                c.storage_settings(r).await
            })
            .await?;
        Ok(reply.settings)
    }

    pub async fn status(&self) -> Result<pb::StatusReply, AdminError> {
        self.call(pb::Empty {}, |mut c, r| async move { c.status(r).await })
            .await
    }

    pub async fn remove_node(&self, node_id: u64) -> Result<(), AdminError> {
        let body = pb::RemoveNodeRequest { node_id };
        self.call(body, |mut c, r| async move { c.remove_node(r).await })
            .await?;
        Ok(())
    }

    pub async fn drain(&self, node_id: u64, draining: bool) -> Result<(), AdminError> {
        let body = pb::DrainRequest { node_id, draining };
        self.call(body, |mut c, r| async move { c.drain(r).await })
            .await?;
        Ok(())
    }
}

fn connect_error(addr: &str, source: tonic::transport::Error) -> AdminError {
    AdminError::Connect {
        addr: addr.to_owned(),
        source,
    }
}
