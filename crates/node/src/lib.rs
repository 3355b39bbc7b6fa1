//! A Wharf node as a library: [`Node::start`] puts together the cluster
//! member, the FTPS engine, the replicated tables the node follows and the
//! leader's jobs from a [`NodeConfig`]; [`Node::run`] serves until shutdown.
//! The `wharf` binary is a command line over this crate; tests start nodes
//! in-process with it.
//!
//! Where things live:
//! - `cluster_fs/`: the cluster file system — where an upload becomes durable
//!   (`writer`), how files are read (`reader`), chunk repair and collection
//!   (`upkeep`).
//! - `leader`: the one loop of the leader's jobs; `follow`: the one loop of
//!   the tables every node follows; `clock`: the one clock.
//! - `ticket_keys`, `certificates`, `acme/`, `trust`: TLS state shared by the
//!   cluster; `store_accounts` (one check of an account for every source),
//!   `cluster_bans`: the engine's accounts and bans over the store; `storage`: the cluster's choice of storage;
//!   `drain`; `http` (metrics, health, ACME challenges); `audit` (the audit
//!   log's layer).
//! - `events/`: delivering upload events to webhooks and NATS (leader job).

pub mod acme;
pub mod audit;
pub mod certificates;
pub mod clock;
pub mod cluster_bans;
pub mod cluster_fs;
pub mod config;
pub mod drain;
pub mod error;
pub mod events;
pub mod follow;
pub mod http;
pub mod leader;
pub mod local_events;
mod node;
pub mod objects;
pub mod storage;
pub mod store_accounts;
pub mod summary;
pub mod ticket_keys;
pub mod trust;

pub use config::{ClientCerts, Join, JoinToken, NodeConfig, S3Config, StorageMode};
pub use error::NodeError;
pub use node::Node;
