//! Wharf's cluster layer: the Raft transport and cluster services over gRPC
//! (tonic + prost, messages in `proto/`), membership and the write path.

pub mod admin_client;
pub mod chunks;
mod convert;
pub mod credentials;
mod drain;
mod error;
mod group_commit;
mod grpc;
mod internal;
pub mod local_admin;
mod network;
mod node;
mod peer_health;
mod rounds;
mod service;
mod start;
pub mod transport;

pub mod pb {
    //! Generated from `proto/wharf/cluster/v1/*.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("wharf.cluster.v1");
}

pub use node::{
    ClusterConfig, ClusterError, ClusterHandle, RunningCluster, SnapshotSettings, WriteError,
    ADMIN_TOKEN_FILE, CLUSTER_ADDR_FILE, JOIN_TOKEN_FILE,
};
pub use start::{is_member, start};
