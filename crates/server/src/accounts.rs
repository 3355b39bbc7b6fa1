//! The `Accounts` boundary (DESIGN.md §3) and the account source of a single
//! node: users from the config file and quick-start users from the command line.
//! The replicated store implements the same trait later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use async_trait::async_trait;
use ipnet::IpNet;

use crate::verified::VerifiedPasswords;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Permissions {
    pub list: bool,
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub rename: bool,
    pub mkdir: bool,
}

impl Permissions {
    pub fn all() -> Self {
        Self {
            list: true,
            read: true,
            write: true,
            delete: true,
            rename: true,
            mkdir: true,
        }
    }

    /// The names of the rights granted, in the order `from_names` knows them.
    pub fn names(&self) -> Vec<String> {
        [
            (self.list, "list"),
            (self.read, "read"),
            (self.write, "write"),
            (self.delete, "delete"),
            (self.rename, "rename"),
            (self.mkdir, "mkdir"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_owned())
        .collect()
    }

    /// Parses names such as `["list", "read"]`; unknown names are an error so
    /// a typo in the config never silently grants or removes a right.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut p = Self::default();
        for name in names {
            match name.as_ref() {
                "list" => p.list = true,
                "read" => p.read = true,
                "write" => p.write = true,
                "delete" => p.delete = true,
                "rename" => p.rename = true,
                "mkdir" => p.mkdir = true,
                "all" => p = Self::all(),
                other => return Err(format!("unknown permission {other:?} (expected list, read, write, delete, rename, mkdir or all)")),
            }
        }
        Ok(p)
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub home: PathBuf,
    pub permissions: Permissions,
    /// Source networks allowed to log in; empty means any not denied.
    pub allow: Vec<IpNet>,
    /// Source networks refused even when `allow` names them.
    pub deny: Vec<IpNet>,
    /// Canonical verbs the user may send once logged in, beyond the ones
    /// every session needs (`commands::always_allowed`); empty means all.
    pub commands: Vec<String>,
    /// Concurrent sessions; 0 means unlimited.
    pub max_sessions: usize,
    /// Bytes per second; 0 means unlimited.
    pub upload_rate: u64,
    pub download_rate: u64,
    /// Cluster storage limits on the user's files; 0 = unlimited.
    pub quota: Quota,
}

/// Limits on what a user's files may take (enforced by cluster storage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub bytes: u64,
    pub files: u64,
}

#[derive(Clone)]
pub struct Account {
    pub user: User,
    /// argon2id PHC string.
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("login incorrect")]
    BadCredentials,
    #[error("user {user} may not log in from {peer}")]
    SourceNotAllowed { user: String, peer: IpAddr },
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, AuthError>;
}

/// Accounts held in memory, from the config file and `--user`.
pub struct StaticAccounts {
    accounts: HashMap<String, Account>,
    /// Verified against for unknown users so timing does not reveal which
    /// user names exist.
    decoy_hash: String,
}

impl StaticAccounts {
    pub fn new(accounts: Vec<Account>) -> Self {
        let decoy_hash = hash_password("wharf-decoy-password").unwrap_or_default();
        Self {
            accounts: accounts
                .into_iter()
                .map(|a| (a.user.name.clone(), a))
                .collect(),
            decoy_hash,
        }
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

#[async_trait]
impl Accounts for StaticAccounts {
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, AuthError> {
        let account = self.accounts.get(name).cloned();
        check_login(account, password, peer, &self.decoy_hash).await
    }
}

/// The end of every login, whatever the account source: the password is
/// checked against the account's hash, or against `decoy_hash` when there is
/// no such account so the time taken does not reveal which names exist; then
/// the source address against the account's allow list.
pub async fn check_login(
    account: Option<Account>,
    password: &str,
    peer: IpAddr,
    decoy_hash: &str,
) -> Result<User, AuthError> {
    let verified = VerifiedPasswords::global();
    let ok = match &account {
        Some(a) if verified.knows(&a.password_hash, password) => true,
        _ => {
            let hash = account
                .as_ref()
                .map_or_else(|| decoy_hash.to_owned(), |a| a.password_hash.clone());
            let owned = password.to_owned();
            // argon2 costs tens of milliseconds of CPU: keep it off the reactor.
            let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &owned))
                .await
                .unwrap_or(false);
            if let (true, Some(a)) = (ok, &account) {
                verified.remember(&a.password_hash, password);
            }
            ok
        }
    };
    let user = match account {
        Some(a) if ok => a.user,
        _ => return Err(AuthError::BadCredentials),
    };
    if !crate::address_rules::permits(&user.allow, &user.deny, peer) {
        return Err(AuthError::SourceNotAllowed {
            user: user.name,
            peer,
        });
    }
    Ok(user)
}

/// Checks a per-user command allow-list: verbs in any case, aliases (`XMKD`)
/// taken as their standard name; an unknown verb is an error so a typo never
/// silently locks a partner out or lets it do more.
pub fn command_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|name| {
            let upper = name.as_ref().trim().to_ascii_uppercase();
            wharf_ftp::command::canonical_verb(&upper)
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!(
                        "unknown FTP command {:?} in the command list",
                        name.as_ref()
                    )
                })
        })
        .collect()
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// An argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, password: &str, allow: Vec<IpNet>) -> Account {
        Account {
            user: User {
                name: name.into(),
                home: "/tmp".into(),
                permissions: Permissions::all(),
                allow,
                deny: Vec::new(),
                commands: Vec::new(),
                max_sessions: 0,
                upload_rate: 0,
                download_rate: 0,
                quota: Quota::default(),
            },
            password_hash: hash_password(password).unwrap(),
        }
    }

    #[tokio::test]
    async fn right_password_logs_in_and_wrong_or_unknown_does_not() {
        let accounts = StaticAccounts::new(vec![account("alice", "s3cret", vec![])]);
        let peer = "127.0.0.1".parse().unwrap();
        assert_eq!(
            accounts
                .authenticate("alice", "s3cret", peer)
                .await
                .unwrap()
                .name,
            "alice"
        );
        assert_eq!(
            accounts
                .authenticate("alice", "wrong", peer)
                .await
                .unwrap_err(),
            AuthError::BadCredentials
        );
        assert_eq!(
            accounts
                .authenticate("bob", "s3cret", peer)
                .await
                .unwrap_err(),
            AuthError::BadCredentials
        );
    }

    #[tokio::test]
    async fn a_login_remembers_a_right_password_and_never_a_wrong_one() {
        let a = account("carol", "right-one", vec![]);
        let phc = a.password_hash.clone();
        let accounts = StaticAccounts::new(vec![a]);
        let peer = "127.0.0.1".parse().unwrap();
        let verified = VerifiedPasswords::global();
        assert!(accounts.authenticate("carol", "wrong", peer).await.is_err());
        assert!(!verified.knows(&phc, "wrong"));
        assert!(!verified.knows(&phc, "right-one"));
        assert!(accounts
            .authenticate("carol", "right-one", peer)
            .await
            .is_ok());
        assert!(verified.knows(&phc, "right-one"));
        // The remembered password still passes; a wrong one still fails.
        assert!(accounts
            .authenticate("carol", "right-one", peer)
            .await
            .is_ok());
        assert!(accounts.authenticate("carol", "wrong", peer).await.is_err());
    }

    #[tokio::test]
    async fn allow_list_refuses_other_sources() {
        let accounts = StaticAccounts::new(vec![account(
            "p",
            "pw",
            vec!["10.0.0.0/8".parse().unwrap()],
        )]);
        assert!(accounts
            .authenticate("p", "pw", "10.1.2.3".parse().unwrap())
            .await
            .is_ok());
        assert!(matches!(
            accounts
                .authenticate("p", "pw", "127.0.0.1".parse().unwrap())
                .await,
            Err(AuthError::SourceNotAllowed { .. })
        ));
    }

    #[tokio::test]
    async fn deny_list_refuses_its_networks_even_inside_the_allow_list() {
        let mut a = account("d", "pw", vec!["10.0.0.0/8".parse().unwrap()]);
        a.user.deny = vec!["10.6.0.0/16".parse().unwrap()];
        let accounts = StaticAccounts::new(vec![a]);
        let login = |ip: &str| accounts.authenticate("d", "pw", ip.parse().unwrap());
        assert!(login("10.5.0.1").await.is_ok());
        assert!(matches!(
            login("10.6.0.1").await,
            Err(AuthError::SourceNotAllowed { .. })
        ));
    }

    #[test]
    fn command_names_are_checked_and_made_canonical() {
        assert_eq!(
            command_list(&["stor", "XMKD", "size"]).unwrap(),
            ["STOR", "MKD", "SIZE"]
        );
        assert!(command_list(&["STOR", "UPLOAD"]).is_err());
    }

    #[test]
    fn unknown_permission_name_is_rejected() {
        assert!(Permissions::from_names(&["read", "wirte"]).is_err());
        assert_eq!(
            Permissions::from_names(&["all"]).unwrap(),
            Permissions::all()
        );
    }
}
