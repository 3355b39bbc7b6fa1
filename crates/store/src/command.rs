//! The commands carried in the Raft log. Applying one is deterministic: every
//! node reaches the same tables from the same log.

use serde::{Deserialize, Serialize};

use crate::records::{AcmeToken, BanRecord, CaRecord, CertRecord, TicketKeyRecord, UserRecord};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds or replaces a user. With `create_only`, an existing user is left
    /// untouched and the result is `AlreadyExists`.
    PutUser {
        user: UserRecord,
        create_only: bool,
    },
    RemoveUser {
        name: String,
    },
    /// Replaces a user's password hash; `NotFound` for an unknown user.
    SetPassword {
        name: String,
        password_hash: String,
    },
    PutCert(CertRecord),
    RemoveCert {
        name: String,
    },
    PutCa(CaRecord),
    PutTicketKey(TicketKeyRecord),
    RemoveTicketKey {
        id: u32,
    },
    PutBan(BanRecord),
    RemoveBan {
        address: String,
    },
    PutAcmeToken(AcmeToken),
    RemoveAcmeToken {
        token: String,
    },
    PutSetting {
        key: String,
        value: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    NotFound,
    AlreadyExists,
}
