//! The FTP/FTPS protocol as data: command parsing, reply encoding, virtual
//! paths, directory listings and TYPE A line-ending conversion.
//!
//! This crate performs no I/O on purpose. Everything a peer can send is
//! turned into typed values here, so the server crate only ever deals with
//! validated input and every parsing rule can be unit-tested without sockets.

pub mod ascii;
pub mod command;
pub mod hash;
pub mod listing;
pub mod path;
pub mod reply;

pub use command::{Command, ParseError};
pub use hash::HashAlgorithm;
pub use listing::{Entry, EntryKind, Facts};
pub use path::{PathError, VirtualPath};
pub use reply::Reply;
