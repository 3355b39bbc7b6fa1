//! Who may do what on the cluster port: the join and admin tokens, node
//! and admin certificates, and signing certificates for new nodes and
//! operators.

use std::time::Duration;

use tonic::Status;
use wharf_store::Command;
use wharf_tls::{ClusterCa, LeafUsage};

use super::{ClusterHandle, WriteError};
use crate::credentials::{self, Token, NODE_CERT_LIFETIME, NODE_NAME};
use crate::internal::OrInternal;
use crate::transport::{self, PeerRole};

pub(super) const JOIN_TOKEN_SETTING: &str = "join_token";

const ADMIN_TOKEN_SETTING: &str = "admin_token";

impl ClusterHandle {
    /// Makes sure the cluster has its join and admin tokens; the node that
    /// bootstraps the cluster creates them.
    pub async fn ensure_tokens(&self) -> Result<(), WriteError> {
        for key in [JOIN_TOKEN_SETTING, ADMIN_TOKEN_SETTING] {
            if let Ok(Some(_)) = self.reader.setting(key) {
                continue;
            }
            self.write(Command::PutSetting {
                key: key.into(),
                value: random_token(),
            })
            .await?;
        }
        Ok(())
    }

    /// The join token as operators pass it (`wharf cluster token`).
    pub fn join_token(&self) -> Option<String> {
        self.token(JOIN_TOKEN_SETTING)
    }

    /// The admin token as operators pass it (`--token`).
    pub fn admin_token(&self) -> Option<String> {
        self.token(ADMIN_TOKEN_SETTING)
    }

    fn token(&self, setting: &str) -> Option<String> {
        let secret = self.reader.setting(setting).ok().flatten()?;
        Some(
            Token {
                secret,
                ca_fingerprint: self.transport.credentials().ca_fingerprint(),
            }
            .to_string(),
        )
    }

    /// Whether `presented` (a whole token or its secret) is the secret kept
    /// in `setting`.
    pub(super) fn token_matches(&self, setting: &str, presented: &str) -> Result<bool, Status> {
        let expected = self.reader.setting(setting).or_internal()?.ok_or_else(|| {
            Status::unavailable("this node has not received the cluster's tokens yet")
        })?;
        let secret = Token::parse(presented).map_or_else(|_| presented.to_owned(), |t| t.secret);
        Ok(constant_time_eq(secret.as_bytes(), expected.as_bytes()))
    }

    /// Admin calls need a node or admin certificate from the cluster CA, or
    /// `authorization: Bearer <admin token>`.
    pub fn check_admin<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        if transport::peer_role(request).is_some() {
            return Ok(());
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if self.token_matches(ADMIN_TOKEN_SETTING, p)? => Ok(()),
            _ => Err(Status::unauthenticated(
                "admin calls need the admin token or a cluster client certificate",
            )),
        }
    }

    /// Raft traffic is accepted only from members' certificates.
    pub fn check_node<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        match transport::peer_role(request) {
            Some(PeerRole::Node) => Ok(()),
            Some(PeerRole::Admin) => Err(Status::permission_denied(
                "an admin certificate cannot take part in Raft",
            )),
            None => Err(Status::unauthenticated(
                "Raft calls need a node certificate from the cluster CA",
            )),
        }
    }

    /// Signs a node certificate for a key made by a node that holds the join
    /// token; returns the chain.
    pub fn certify(&self, token: &str, request: &[u8]) -> Result<String, Status> {
        if !self.token_matches(JOIN_TOKEN_SETTING, token)? {
            tracing::warn!("refused a certificate request with a wrong join token");
            return Err(Status::permission_denied("wrong join token"));
        }
        self.sign(
            request,
            NODE_NAME,
            NODE_CERT_LIFETIME,
            LeafUsage::ServerAndClient,
        )
    }

    /// Signs an admin client certificate (the caller passed `check_admin`).
    pub fn certify_admin(&self, request: &[u8], lifetime: Duration) -> Result<String, Status> {
        self.sign(
            request,
            credentials::ADMIN_NAME,
            lifetime,
            LeafUsage::Client,
        )
    }

    fn sign(
        &self,
        request: &[u8],
        name: &str,
        lifetime: Duration,
        usage: LeafUsage,
    ) -> Result<String, Status> {
        let record = self.reader.ca().or_internal()?.ok_or_else(|| {
            Status::unavailable("the cluster CA has not replicated to this node yet")
        })?;
        let ca = ClusterCa::from_pem(&record.cert_pem, &record.key_pem).or_internal()?;
        let signed = ca
            .sign_request(request, &[name.to_owned()], lifetime, usage)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(name, serial = %signed.serial_hex, "issued a cluster certificate");
        Ok(signed.chain_pem)
    }
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
