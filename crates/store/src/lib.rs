//! Wharf's replicated store (DESIGN.md §4): an openraft log and state machine
//! kept in one RocksDB instance per node, with a column family per table.
//!
//! The store knows nothing of FTP: it keeps typed records (users, certificates,
//! ticket keys, bans, …) and applies [`Command`]s to them. Everything a node
//! reads comes from its local state machine through [`StateReader`].

mod chunk_health;
mod columns;
mod compact;
mod db;
mod error;
mod inline;
mod log_store;
mod namespace;
mod parts;
mod reader;
pub mod secrets;
pub mod snapshot;
mod snapshot_io;
mod state_machine;
mod stats;
mod table;

pub mod command;
pub mod events;
pub mod records;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use chunk_health::ChunkState;
pub use command::{
    Announced, Command, CommandResult, FileWrite, Found, FsCommand, Happened, ObjectMove,
    PartsWrite, IMPORTED,
};
pub use db::{open, open_with, OpenedStore, StoreLimits};
pub use error::StoreError;
pub use inline::{InlineBytes, InlineRow};
pub use log_store::LogStore;
pub use namespace::components as path_components;
pub use reader::StateReader;
pub use state_machine::StateMachineStore;
pub use stats::StoreStats;

pub type NodeId = u64;

/// What the cluster knows about a member: where its peers reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// gRPC address for Raft, admin API and chunk transfer.
    pub cluster_addr: String,
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cluster_addr)
    }
}

openraft::declare_raft_types!(
    /// Wharf's Raft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = ClusterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
mod tests;
pub use table::{decode as decode_value, encode as encode_value, CodecError};
