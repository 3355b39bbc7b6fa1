//! What a control session knows, grouped by concern so that each command in
//! `crate::commands` takes only the groups it reads or changes, while the
//! control loop in `crate::session` owns them all. It lives outside `session`
//! so that `commands` never sees the loop's `Session`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use wharf_ftp::command::{ProtectionLevel, TransferType};
use wharf_ftp::{Facts, HashAlgorithm, Reply, VirtualPath};
use wharf_tls::SessionBinding;

use crate::accounts::User;
use crate::control::ControlConnection;
use crate::data::transfer::TransferJob;
use crate::data::{DataSetup, DataTlsContext};
use crate::fs::FileSystem;
use crate::guard::UserSlot;
use crate::xferlog::Direction;
use crate::Shared;

/// What applying a command asks the loop to do next.
pub enum Outcome {
    Reply(Reply),
    /// Send `234`, then run the TLS handshake.
    Upgrade(Reply),
    Transfer(Box<PendingTransfer>),
    /// Send the reply and close the connection.
    Close(Reply),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// A transfer about to start, with what the transfer log needs afterwards.
pub struct PendingTransfer {
    pub job: TransferJob,
    pub path: String,
    pub direction: Direction,
    /// Directory listings are not logged as transfers.
    pub logged: bool,
}

/// An authenticated user with their file tree. Holds the user's session
/// slot, so that logging out (REIN, the session's end) frees it.
pub struct LoggedIn {
    pub user: User,
    pub fs: Arc<dyn FileSystem>,
    _slot: UserSlot,
}

impl LoggedIn {
    pub fn new(user: User, fs: Arc<dyn FileSystem>, slot: UserSlot) -> Self {
        Self {
            user,
            fs,
            _slot: slot,
        }
    }
}

/// The control connection and what it arrived with: the client's and our
/// address, and the TLS binding its data connections must match.
pub struct Connection {
    /// This node's number for the session (its log span's `session`).
    pub id: u64,
    pub control: ControlConnection,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub binding: SessionBinding,
}

impl Connection {
    /// The client's address as bans and scores know it (IPv4-mapped made plain).
    pub fn client_ip(&self) -> IpAddr {
        crate::address_rules::canonical(self.peer.ip())
    }

    /// Who opens a home through this session, for what storage records.
    pub fn opener(&self) -> crate::fs::Opener {
        crate::fs::Opener {
            session: self.id,
            client: self.client_ip(),
        }
    }
}

/// Who the client is: the HOST it asked for, the name a USER left waiting for
/// PASS, and the login once it succeeded.
#[derive(Default)]
pub struct Login {
    pub host: Option<String>,
    pub pending_user: Option<String>,
    pub account: Option<LoggedIn>,
}

impl Login {
    pub fn user(&self) -> Option<&User> {
        self.account.as_ref().map(|l| &l.user)
    }
}

/// Where the client stands in its file tree: the working directory, and the
/// path an RNFR left for RNTO.
pub struct Navigation {
    pub cwd: VirtualPath,
    pub rename_from: Option<VirtualPath>,
}

impl Default for Navigation {
    fn default() -> Self {
        Self {
            cwd: VirtualPath::root(),
            rename_from: None,
        }
    }
}

/// How the next transfers run, as TYPE, PBSZ and PROT, REST, OPTS HASH and
/// OPTS MLST set it.
pub struct TransferSettings {
    pub transfer_type: TransferType,
    pub pbsz_done: bool,
    pub prot: ProtectionLevel,
    /// The REST offset for the next RETR or STOR.
    pub rest: u64,
    pub hash: HashAlgorithm,
    pub facts: Facts,
}

impl TransferSettings {
    fn new(implicit: bool) -> Self {
        Self {
            transfer_type: TransferType::Image,
            // Implicit FTPS clients expect protected data without asking.
            pbsz_done: implicit,
            prot: if implicit {
                ProtectionLevel::Private
            } else {
                ProtectionLevel::Clear
            },
            rest: 0,
            hash: HashAlgorithm::Sha256,
            facts: Facts::all(),
        }
    }

    pub fn ascii(&self) -> bool {
        self.transfer_type == TransferType::Ascii
    }

    pub fn private(&self) -> bool {
        self.prot == ProtectionLevel::Private
    }
}

/// Where the next data connection comes from (PASV, EPSV, PORT, EPRT), and
/// whether EPSV ALL ruled out everything but EPSV.
#[derive(Default)]
pub struct DataChannel {
    pub setup: Option<DataSetup>,
    pub epsv_all: bool,
}

/// A session's state, group by group: the control loop owns it and
/// `commands::apply` lends each command the groups it needs.
pub struct SessionState {
    pub conn: Connection,
    pub login: Login,
    pub nav: Navigation,
    pub settings: TransferSettings,
    pub data: DataChannel,
}

impl SessionState {
    pub fn new(conn: Connection, implicit: bool) -> Self {
        Self {
            conn,
            login: Login::default(),
            nav: Navigation::default(),
            settings: TransferSettings::new(implicit),
            data: DataChannel::default(),
        }
    }

    /// What a data connection's handshake needs to know of this session.
    pub fn data_tls_context(&self, shared: &Shared) -> DataTlsContext {
        DataTlsContext {
            configs: shared.tls.clone(),
            binding: self.conn.binding.clone(),
            user: self
                .login
                .user()
                .map(|u| u.name.clone())
                .unwrap_or_default(),
        }
    }
}
