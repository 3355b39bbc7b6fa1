//! Accounts served from the replicated `users` table: a user added through
//! any node can log in on every node as soon as that node has applied it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ipnet::IpNet;
use wharf_server::accounts::{
    check_login, command_list, Account, AuthError, Credentials, LoginMethod, Permissions, User,
};
use wharf_server::data_tls::DataTlsRule;
use wharf_server::Accounts;
use wharf_store::records::UserRecord;
use wharf_store::StateReader;
use wharf_tls::CertMatch;

pub struct StoreAccounts {
    reader: StateReader,
    /// Relative home directories are taken from here: the node's data dir
    /// with local storage, the namespace root with cluster storage.
    data_dir: PathBuf,
    decoy_hash: String,
}

impl StoreAccounts {
    pub fn new(reader: StateReader, data_dir: &Path) -> Self {
        Self {
            reader,
            data_dir: data_dir.to_owned(),
            decoy_hash: wharf_server::accounts::hash_password("wharf-decoy").unwrap_or_default(),
        }
    }

    fn to_user(&self, r: UserRecord) -> Result<User, String> {
        let home = PathBuf::from(&r.home);
        Ok(User {
            home: if home.is_absolute() {
                home
            } else {
                self.data_dir.join(home)
            },
            permissions: Permissions::from_names(&r.permissions)?,
            allow: networks(&r.allow, "allow")?,
            deny: networks(&r.deny, "deny")?,
            commands: command_list(&r.commands)?,
            login: LoginMethod::parse(if r.login.is_empty() {
                "password"
            } else {
                &r.login
            })?,
            certificates: r
                .certificates
                .iter()
                .map(|rule| CertMatch::parse(rule))
                .collect::<Result<_, _>>()?,
            max_sessions: r.max_sessions as usize,
            upload_rate: r.upload_rate,
            download_rate: r.download_rate,
            quota: wharf_server::accounts::Quota {
                bytes: r.quota_bytes,
                files: r.quota_files,
            },
            data_tls: (!r.data_tls.is_empty())
                .then(|| DataTlsRule::parse(&r.data_tls))
                .transpose()?,
            name: r.name,
        })
    }
}

fn networks(list: &[String], what: &str) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|e| format!("{what} entry {s:?}: {e}"))
        })
        .collect()
}

#[async_trait]
impl Accounts for StoreAccounts {
    async fn authenticate(
        &self,
        name: &str,
        credentials: Credentials<'_>,
        peer: IpAddr,
    ) -> Result<User, AuthError> {
        let record = match self.reader.user(name) {
            Ok(r) => r.filter(|r| r.enabled),
            Err(e) => {
                tracing::error!("cannot read the users table: {e}");
                None
            }
        };
        let account = match record {
            None => None,
            Some(r) => {
                let password_hash = r.password_hash.clone();
                match self.to_user(r) {
                    Ok(user) => Some(Account {
                        user,
                        password_hash,
                    }),
                    Err(e) => {
                        tracing::error!(user = name, "account record unusable: {e}");
                        None
                    }
                }
            }
        };
        check_login(account, credentials, peer, &self.decoy_hash).await
    }
}

/// The replicated record of a configured account (`--user`, `[[user]]`),
/// as the bootstrapping node imports it.
pub fn to_record(account: &Account) -> UserRecord {
    let user = &account.user;
    UserRecord {
        name: user.name.clone(),
        password_hash: account.password_hash.clone(),
        home: user.home.display().to_string(),
        permissions: user.permissions.names(),
        allow: user.allow.iter().map(|n| n.to_string()).collect(),
        deny: user.deny.iter().map(|n| n.to_string()).collect(),
        commands: user.commands.clone(),
        login: user.login.as_str().to_owned(),
        certificates: user.certificates.iter().map(|m| m.to_string()).collect(),
        max_sessions: user.max_sessions as u64,
        upload_rate: user.upload_rate,
        download_rate: user.download_rate,
        enabled: true,
        quota_bytes: user.quota.bytes,
        quota_files: user.quota.files,
        data_tls: user
            .data_tls
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
    }
}
