//! The gRPC services a node serves to its peers: the Raft RPCs, and the
//! cluster service (write forwarding, join, status, removal).

use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RaftError};
use tonic::{Code, Request, Response, Status};
use wharf_store::NodeId;

use crate::convert;
use crate::internal::OrInternal;
use crate::node::ClusterHandle;
use crate::pb;

/// The settings `StorageSettings` answers with (written by the node's
/// storage set-up, `crates/node/src/storage.rs`); nothing secret.
const STORAGE_SETTINGS: [&str; 6] = [
    "fs.storage",
    "fs.s3.endpoint",
    "fs.s3.bucket",
    "fs.s3.prefix",
    "fs.s3.region",
    "fs.s3.path_style",
];

pub struct RaftService {
    pub node: Arc<ClusterHandle>,
}

fn raft_error<E: std::error::Error>(e: RaftError<NodeId, E>) -> Status {
    Status::unavailable(format!("raft: {e}"))
}

/// A snapshot chunk that does not continue the stream the follower holds is
/// reported with the mismatch in the status details, so the leader restarts
/// the stream instead of retrying the same chunk.
fn snapshot_error(e: RaftError<NodeId, InstallSnapshotError>) -> Status {
    match e {
        RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)) => {
            let details = serde_json::to_vec(&m).unwrap_or_default();
            Status::with_details(
                Code::FailedPrecondition,
                format!("snapshot mismatch: {m}"),
                details.into(),
            )
        }
        other => raft_error(other),
    }
}

/// Events one `ListEvents` answers with at most.
const MAX_EVENTS_PER_CALL: usize = 1000;

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.node.check_node(&request)?;
        let req = convert::append_from_pb(request.get_ref())?;
        let resp = self
            .node
            .raft
            .append_entries(req)
            .await
            .map_err(raft_error)?;
        Ok(Response::new(convert::append_response_to_pb(&resp)))
    }

    async fn request_vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.node.check_node(&request)?;
        let req = convert::vote_request_from_pb(request.get_ref())?;
        let resp = self.node.raft.vote(req).await.map_err(raft_error)?;
        Ok(Response::new(convert::vote_response_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        self.node.check_node(&request)?;
        let req = convert::snapshot_from_pb(request.into_inner())?;
        let resp = self
            .node
            .raft
            .install_snapshot(req)
            .await
            .map_err(snapshot_error)?;
        Ok(Response::new(convert::snapshot_response_to_pb(&resp)))
    }
}

/// Longest validity of an admin client certificate: there is no revocation
/// list yet, so expiry is what retires a lost one.
const MAX_ADMIN_CERT_SECS: u64 = 365 * 24 * 3600;

/// Who made an admin call, for the audit log: the remote address.
fn caller<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "local".to_owned(), |a| a.to_string())
}

pub struct ClusterService {
    pub node: Arc<ClusterHandle>,
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn forward(
        &self,
        request: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardReply>, Status> {
        self.node.check_admin(&request)?;
        let from_peer = request.metadata().contains_key(crate::node::FORWARDED);
        let command = wharf_store::decode_value(&request.get_ref().command)
            .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?;
        // A peer's forward is answered by the leader alone (no second hop);
        // an operator's call goes through the usual write path.
        let (result, log_index) = if from_peer {
            self.node.write_as_leader(command).await?
        } else {
            let action = command.audit_summary();
            let outcome = self.node.write_indexed(command).await;
            let caller = caller(&request);
            match &outcome {
                Ok((result, _)) => tracing::info!(target: "audit", event = "admin", %action,
                    ?result, caller, "admin action"),
                Err(e) => tracing::warn!(target: "audit", event = "admin", %action,
                    error = %e, caller, "admin action failed"),
            }
            outcome.map_err(|e| Status::unavailable(e.to_string()))?
        };
        let result = wharf_store::encode_value(&result).or_internal()?;
        Ok(Response::new(pb::ForwardReply { result, log_index }))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        let req = request.into_inner();
        let node_id = self.node.admit(&req.token, req.cluster_addr).await?;
        Ok(Response::new(pb::JoinReply { node_id }))
    }

    async fn certify(
        &self,
        request: Request<pb::CertifyRequest>,
    ) -> Result<Response<pb::CertifyReply>, Status> {
        let req = request.get_ref();
        let chain_pem = self.node.certify(&req.token, &req.request)?;
        Ok(Response::new(pb::CertifyReply { chain_pem }))
    }

    async fn certify_admin(
        &self,
        request: Request<pb::CertifyAdminRequest>,
    ) -> Result<Response<pb::CertifyReply>, Status> {
        self.node.check_admin(&request)?;
        let req = request.get_ref();
        let lifetime =
            std::time::Duration::from_secs(req.lifetime_secs.clamp(60, MAX_ADMIN_CERT_SECS));
        let chain_pem = self.node.certify_admin(&req.request, lifetime)?;
        Ok(Response::new(pb::CertifyReply { chain_pem }))
    }

    async fn status(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        self.node.check_admin(&request)?;
        Ok(Response::new(self.node.status_with_reports().await))
    }

    async fn list_users(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::UserList>, Status> {
        self.node.check_admin(&request)?;
        let users = self
            .node
            .reader
            .users()
            .or_internal()?
            .into_iter()
            .map(|u| {
                let usage = self.node.reader.usage(&u.name).unwrap_or_default();
                pb::UserSummary {
                    quota_bytes: u.quota_bytes,
                    quota_files: u.quota_files,
                    used_bytes: usage.bytes,
                    used_files: usage.files,
                    name: u.name,
                    home: u.home,
                    permissions: u.permissions,
                    allow: u.allow,
                    deny: u.deny,
                    commands: u.commands,
                    login: u.login,
                    certificates: u.certificates,
                    data_tls: u.data_tls,
                    enabled: u.enabled,
                }
            })
            .collect();
        Ok(Response::new(pb::UserList { users }))
    }

    async fn list_certs(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::CertList>, Status> {
        self.node.check_admin(&request)?;
        let certs = self
            .node
            .reader
            .certs()
            .or_internal()?
            .into_iter()
            .map(|c| pb::CertSummary {
                fingerprint: wharf_tls::leaf_fingerprint(&c.chain_pem).unwrap_or_default(),
                name: c.name,
                source: format!("{:?}", c.source),
                not_before: c.not_before,
                not_after: c.not_after,
                generation: c.generation,
            })
            .collect();
        Ok(Response::new(pb::CertList { certs }))
    }

    async fn list_trust_anchors(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::CertList>, Status> {
        self.node.check_admin(&request)?;
        let certs = self
            .node
            .reader
            .trust_anchors()
            .or_internal()?
            .into_iter()
            .map(|t| {
                let facts = wharf_tls::inspect_leaf_pem(&t.cert_pem);
                pb::CertSummary {
                    fingerprint: wharf_tls::leaf_fingerprint(&t.cert_pem).unwrap_or_default(),
                    name: t.name,
                    source: "trust".into(),
                    not_before: facts.as_ref().map_or(0, |f| f.not_before),
                    not_after: facts.as_ref().map_or(0, |f| f.not_after),
                    generation: 0,
                }
            })
            .collect();
        Ok(Response::new(pb::CertList { certs }))
    }

    async fn list_acme(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::AcmeList>, Status> {
        self.node.check_admin(&request)?;
        let certs = self
            .node
            .reader
            .acme_certs()
            .or_internal()?
            .into_iter()
            .map(|a| pb::AcmeSummary {
                order_url: a.order.as_ref().map(|o| o.url.clone()).unwrap_or_default(),
                order_started: a.order.as_ref().map_or(0, |o| o.started),
                order_started_by: a.order.as_ref().map_or(0, |o| o.started_by),
                name: a.name,
                domains: a.domains,
                directory: a.directory,
                last_error: a.last_error,
                failures: a.failures,
            })
            .collect();
        Ok(Response::new(pb::AcmeList { certs }))
    }

    async fn list_bans(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::BanList>, Status> {
        self.node.check_admin(&request)?;
        let bans = self
            .node
            .reader
            .bans()
            .or_internal()?
            .into_iter()
            .map(|b| pb::BanSummary {
                address: b.address,
                until: b.until,
                reason: b.reason,
            })
            .collect();
        Ok(Response::new(pb::BanList { bans }))
    }

    async fn list_sinks(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::SinkList>, Status> {
        self.node.check_admin(&request)?;
        let reader = &self.node.reader;
        let last_event = reader.last_event_id().or_internal()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut sinks = Vec::new();
        for s in reader.sinks().or_internal()? {
            let oldest = reader.events_after(s.delivered, 1).or_internal()?;
            sinks.push(pb::SinkSummary {
                target: s.target.describe(),
                types: s.filter.types,
                user: s.filter.user,
                path_prefix: s.filter.path_prefix,
                backlog: last_event.saturating_sub(s.delivered),
                oldest_undelivered_secs: oldest
                    .first()
                    .map_or(0, |e| now.saturating_sub(e.time_ms) / 1000),
                name: s.name,
                delivered: s.delivered,
                last_error: s.last_error,
                failures: s.failures,
                delivered_at_ms: s.delivered_at_ms,
            });
        }
        let retention = reader.event_retention().or_internal()?;
        Ok(Response::new(pb::SinkList {
            sinks,
            last_event,
            max_events: retention.max_count,
            max_age_secs: retention.max_age.as_secs(),
            event_digest: reader.event_digest().or_internal()?.as_str().to_owned(),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        self.node.check_admin(&request)?;
        let req = request.get_ref();
        let limit = (req.limit as usize).clamp(1, MAX_EVENTS_PER_CALL);
        let reader = &self.node.reader;
        let events = reader
            .events_after(req.after, limit)
            .or_internal()?
            .iter()
            .map(|e| String::from_utf8_lossy(&e.to_json()).into_owned())
            .collect();
        Ok(Response::new(pb::EventList {
            events,
            last_event: reader.last_event_id().or_internal()?,
        }))
    }

    async fn storage_settings(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::StorageSettingsReply>, Status> {
        self.node.check_admin(&request)?;
        let mut settings = std::collections::HashMap::new();
        for key in STORAGE_SETTINGS {
            if let Some(value) = self.node.reader.setting(key).or_internal()? {
                settings.insert(key.to_owned(), value);
            }
        }
        Ok(Response::new(pb::StorageSettingsReply { settings }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.node.check_admin(&request)?;
        let node_id = request.get_ref().node_id;
        self.node.remove(node_id).await?;
        tracing::info!(target: "audit", event = "admin", action = %format!("remove node {node_id}"),
            caller = caller(&request), "admin action");
        Ok(Response::new(pb::Empty {}))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.node.check_admin(&request)?;
        let req = request.get_ref();
        self.node.set_draining(req.node_id, req.draining).await?;
        let action = format!(
            "{} node {}",
            if req.draining { "drain" } else { "undrain" },
            req.node_id
        );
        tracing::info!(target: "audit", event = "admin", %action, caller = caller(&request),
            "admin action");
        Ok(Response::new(pb::Empty {}))
    }

    async fn report(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::NodeReport>, Status> {
        self.node.check_admin(&request)?;
        Ok(Response::new(self.node.report()))
    }

    async fn read_index(
        &self,
        request: Request<pb::Empty>,
    ) -> Result<Response<pb::ReadIndexReply>, Status> {
        self.node.check_node(&request)?;
        let index = self.node.leader_read_index().await?;
        Ok(Response::new(pb::ReadIndexReply { index }))
    }
}
