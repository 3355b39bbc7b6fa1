//! Conversions between openraft's types and their protobuf messages. Input from
//! the network is checked: a missing required field is an `invalid_argument`
//! status, never a panic.

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, EntryPayload, LeaderId, LogId, Membership, SnapshotMeta, StoredMembership,
    Vote,
};
use tonic::Status;
use wharf_store::{ClusterNode, NodeId, TypeConfig};

use crate::internal::OrInternal;
use crate::pb;

fn missing(what: &str) -> Status {
    Status::invalid_argument(format!("missing field {what}"))
}

pub fn log_id_to_pb(l: &LogId<NodeId>) -> pb::LogId {
    pb::LogId {
        term: l.leader_id.term,
        node_id: l.leader_id.node_id,
        index: l.index,
    }
}

pub fn log_id_from_pb(l: &pb::LogId) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(l.term, l.node_id), l.index)
}

pub fn vote_to_pb(v: &Vote<NodeId>) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub fn vote_from_pb(v: Option<&pb::Vote>) -> Result<Vote<NodeId>, Status> {
    let v = v.ok_or_else(|| missing("vote"))?;
    Ok(Vote {
        leader_id: LeaderId::new(v.term, v.node_id),
        committed: v.committed,
    })
}

pub fn membership_to_pb(m: &Membership<NodeId, ClusterNode>) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| pb::NodeIdSet {
                ids: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| {
                (
                    *id,
                    pb::Node {
                        cluster_addr: n.cluster_addr.clone(),
                    },
                )
            })
            .collect(),
    }
}

pub fn membership_from_pb(
    m: Option<&pb::Membership>,
) -> Result<Membership<NodeId, ClusterNode>, Status> {
    let m = m.ok_or_else(|| missing("membership"))?;
    let configs: Vec<BTreeSet<NodeId>> = m
        .configs
        .iter()
        .map(|s| s.ids.iter().copied().collect())
        .collect();
    let nodes: BTreeMap<NodeId, ClusterNode> = m
        .nodes
        .iter()
        .map(|(id, n)| {
            (
                *id,
                ClusterNode {
                    cluster_addr: n.cluster_addr.clone(),
                },
            )
        })
        .collect();
    // Membership::new asserts every voter has a node entry; check first so a
    // malformed message is an error, not a panic.
    if configs.iter().flatten().any(|id| !nodes.contains_key(id)) {
        return Err(Status::invalid_argument(
            "membership names a voter without a node entry",
        ));
    }
    Ok(Membership::new(configs, nodes))
}

fn stored_membership_to_pb(m: &StoredMembership<NodeId, ClusterNode>) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: m.log_id().as_ref().map(log_id_to_pb),
        membership: Some(membership_to_pb(m.membership())),
    }
}

fn stored_membership_from_pb(
    m: Option<&pb::StoredMembership>,
) -> Result<StoredMembership<NodeId, ClusterNode>, Status> {
    let m = m.ok_or_else(|| missing("last_membership"))?;
    Ok(StoredMembership::new(
        m.log_id.as_ref().map(log_id_from_pb),
        membership_from_pb(m.membership.as_ref())?,
    ))
}

fn entry_to_pb(e: &openraft::Entry<TypeConfig>) -> Result<pb::Entry, Status> {
    use pb::entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(pb::Empty {}),
        EntryPayload::Normal(cmd) => {
            Payload::Command(wharf_store::encode_value(cmd).or_internal()?)
        }
        EntryPayload::Membership(m) => Payload::Membership(membership_to_pb(m)),
    };
    Ok(pb::Entry {
        log_id: Some(log_id_to_pb(&e.log_id)),
        payload: Some(payload),
    })
}

fn entry_from_pb(e: &pb::Entry) -> Result<openraft::Entry<TypeConfig>, Status> {
    use pb::entry::Payload;
    let log_id = log_id_from_pb(e.log_id.as_ref().ok_or_else(|| missing("entry.log_id"))?);
    let payload = match e.payload.as_ref().ok_or_else(|| missing("entry.payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Command(bytes) => EntryPayload::Normal(
            wharf_store::decode_value(bytes)
                .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?,
        ),
        Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(Some(m))?),
    };
    Ok(openraft::Entry { log_id, payload })
}

pub fn append_to_pb(
    r: &AppendEntriesRequest<TypeConfig>,
) -> Result<pb::AppendEntriesRequest, Status> {
    Ok(pb::AppendEntriesRequest {
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: r.prev_log_id.as_ref().map(log_id_to_pb),
        entries: r
            .entries
            .iter()
            .map(entry_to_pb)
            .collect::<Result<_, _>>()?,
        leader_commit: r.leader_commit.as_ref().map(log_id_to_pb),
    })
}

pub fn append_from_pb(
    r: &pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, Status> {
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(r.vote.as_ref())?,
        prev_log_id: r.prev_log_id.as_ref().map(log_id_from_pb),
        entries: r
            .entries
            .iter()
            .map(entry_from_pb)
            .collect::<Result<_, _>>()?,
        leader_commit: r.leader_commit.as_ref().map(log_id_from_pb),
    })
}

pub fn append_response_to_pb(r: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(pb::Empty {}),
        AppendEntriesResponse::PartialSuccess(m) => R::PartialSuccess(pb::PartialSuccess {
            matching: m.as_ref().map(log_id_to_pb),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Empty {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

pub fn append_response_from_pb(
    r: &pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<NodeId>, Status> {
    use pb::append_entries_response::Result as R;
    Ok(match r.result.as_ref().ok_or_else(|| missing("result"))? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(p) => {
            AppendEntriesResponse::PartialSuccess(p.matching.as_ref().map(log_id_from_pb))
        }
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(Some(v))?),
    })
}

pub fn vote_request_to_pb(r: &VoteRequest<NodeId>) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
    }
}

pub fn vote_request_from_pb(r: &pb::VoteRequest) -> Result<VoteRequest<NodeId>, Status> {
    Ok(VoteRequest {
        vote: vote_from_pb(r.vote.as_ref())?,
        last_log_id: r.last_log_id.as_ref().map(log_id_from_pb),
    })
}

pub fn vote_response_to_pb(r: &VoteResponse<NodeId>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id_to_pb),
    }
}

pub fn vote_response_from_pb(r: &pb::VoteResponse) -> Result<VoteResponse<NodeId>, Status> {
    Ok(VoteResponse {
        vote: vote_from_pb(r.vote.as_ref())?,
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id_from_pb),
    })
}

pub fn snapshot_to_pb(r: &InstallSnapshotRequest<TypeConfig>) -> pb::InstallSnapshotRequest {
    pb::InstallSnapshotRequest {
        vote: Some(vote_to_pb(&r.vote)),
        meta: Some(pb::SnapshotMeta {
            last_log_id: r.meta.last_log_id.as_ref().map(log_id_to_pb),
            last_membership: Some(stored_membership_to_pb(&r.meta.last_membership)),
            snapshot_id: r.meta.snapshot_id.clone(),
        }),
        offset: r.offset,
        data: r.data.clone(),
        done: r.done,
    }
}

pub fn snapshot_from_pb(
    r: pb::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<TypeConfig>, Status> {
    let meta = r.meta.as_ref().ok_or_else(|| missing("meta"))?;
    Ok(InstallSnapshotRequest {
        vote: vote_from_pb(r.vote.as_ref())?,
        meta: SnapshotMeta {
            last_log_id: meta.last_log_id.as_ref().map(log_id_from_pb),
            last_membership: stored_membership_from_pb(meta.last_membership.as_ref())?,
            snapshot_id: meta.snapshot_id.clone(),
        },
        offset: r.offset,
        data: r.data,
        done: r.done,
    })
}

pub fn snapshot_response_to_pb(r: &InstallSnapshotResponse<NodeId>) -> pb::InstallSnapshotResponse {
    pb::InstallSnapshotResponse {
        vote: Some(vote_to_pb(&r.vote)),
    }
}

pub fn snapshot_response_from_pb(
    r: &pb::InstallSnapshotResponse,
) -> Result<InstallSnapshotResponse<NodeId>, Status> {
    Ok(InstallSnapshotResponse {
        vote: vote_from_pb(r.vote.as_ref())?,
    })
}

/// The mismatch a follower reported for a snapshot chunk (`service`
/// puts it in the status details).
pub fn snapshot_mismatch_from_status(status: &Status) -> Option<openraft::error::SnapshotMismatch> {
    if status.code() != tonic::Code::FailedPrecondition {
        return None;
    }
    serde_json::from_slice(status.details()).ok()
}
