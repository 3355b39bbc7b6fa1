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

use wharf_tls::{CertMatch, ClientIdentity};

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

impl User {
    /// A password user with every permission and no other rule or limit
    /// (`--user NAME:PASSWORD`, tests).
    pub fn unrestricted(name: &str, home: std::path::PathBuf) -> Self {
        User {
            name: name.to_owned(),
            home,
            permissions: Permissions::all(),
            allow: Vec::new(),
            deny: Vec::new(),
            commands: Vec::new(),
            login: LoginMethod::Password,
            certificates: Vec::new(),
            max_sessions: 0,
            upload_rate: 0,
            download_rate: 0,
            quota: Quota::default(),
            data_tls: None,
        }
    }

    /// Whether the client certificate `id` belongs to this user.
    pub fn certificate_matches(&self, id: &ClientIdentity) -> bool {
        if self.certificates.is_empty() {
            id.common_names.contains(&self.name)
        } else {
            self.certificates.iter().any(|m| m.matches(id))
        }
    }
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

/// What a user proves to log in (DESIGN.md §5: password, certificate, or both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginMethod {
    #[default]
    Password,
    /// A trusted client certificate mapped to the user; no password.
    Certificate,
    /// The certificate and the password.
    Both,
}

impl LoginMethod {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "password" => Ok(Self::Password),
            "certificate" => Ok(Self::Certificate),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "login method {other:?}: expected password, certificate or both"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Certificate => "certificate",
            Self::Both => "both",
        }
    }

    fn needs_password(self) -> bool {
        self != Self::Certificate
    }
}

/// What the client offers at login.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    /// `None` at `USER`, when a certificate alone may log the user in.
    pub password: Option<&'a str>,
    /// The client's verified TLS certificate, if it presented one.
    pub certificate: Option<&'a ClientIdentity>,
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
    pub login: LoginMethod,
    /// How a client certificate maps to this user; empty means its subject
    /// common name must be the user name.
    pub certificates: Vec<CertMatch>,
    /// Concurrent sessions; 0 means unlimited.
    pub max_sessions: usize,
    /// Bytes per second; 0 means unlimited.
    pub upload_rate: u64,
    pub download_rate: u64,
    /// Cluster storage limits on the user's files; 0 = unlimited.
    pub quota: Quota,
    /// What this user's data connections must prove; `None` = the server's rule.
    pub data_tls: Option<crate::data_tls::DataTlsRule>,
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
    /// The reply is the same as for a wrong password; the log says why.
    #[error("user {user} needs a trusted client certificate mapped to it")]
    CertificateNotAccepted { user: String },
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn authenticate(
        &self,
        name: &str,
        credentials: Credentials<'_>,
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
        credentials: Credentials<'_>,
        peer: IpAddr,
    ) -> Result<User, AuthError> {
        let account = self.accounts.get(name).cloned();
        check_login(account, credentials, peer, &self.decoy_hash).await
    }
}

/// The end of every login, whatever the account source: the password is
/// checked against the account's hash, or against `decoy_hash` when there is
/// no such account so the time taken does not reveal which names exist; the
/// certificate against the account's mapping; what the account's login
/// method asks for must hold; then the source address against its lists.
pub async fn check_login(
    account: Option<Account>,
    credentials: Credentials<'_>,
    peer: IpAddr,
    decoy_hash: &str,
) -> Result<User, AuthError> {
    let wants_password = account
        .as_ref()
        .is_none_or(|a| a.user.login.needs_password());
    let password_ok = match credentials.password {
        Some(password) if wants_password => {
            password_matches(account.as_ref(), password, decoy_hash).await
        }
        _ => false,
    };
    let user = match account {
        Some(a) => a.user,
        None => return Err(AuthError::BadCredentials),
    };
    let certificate_ok = credentials
        .certificate
        .is_some_and(|id| user.certificate_matches(id));
    let ok = match user.login {
        LoginMethod::Password => password_ok,
        LoginMethod::Certificate => certificate_ok,
        LoginMethod::Both => password_ok && certificate_ok,
    };
    if !ok {
        return Err(if user.login == LoginMethod::Password || certificate_ok {
            AuthError::BadCredentials
        } else {
            AuthError::CertificateNotAccepted { user: user.name }
        });
    }
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

/// The password check of `check_login` (remembered successes skip argon2).
async fn password_matches(account: Option<&Account>, password: &str, decoy_hash: &str) -> bool {
    let verified = VerifiedPasswords::global();
    if let Some(a) = account {
        if verified.knows(&a.password_hash, password) {
            return true;
        }
    }
    let hash = account.map_or_else(|| decoy_hash.to_owned(), |a| a.password_hash.clone());
    let owned = password.to_owned();
    // argon2 costs tens of milliseconds of CPU: keep it off the reactor.
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &owned))
        .await
        .unwrap_or(false);
    if let (true, Some(a)) = (ok, account) {
        verified.remember(&a.password_hash, password);
    }
    ok
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

    fn pw(password: &str) -> Credentials<'_> {
        Credentials {
            password: Some(password),
            certificate: None,
        }
    }

    fn account(name: &str, password: &str, allow: Vec<IpNet>) -> Account {
        Account {
            user: User {
                allow,
                ..User::unrestricted(name, "/tmp".into())
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
                .authenticate("alice", pw("s3cret"), peer)
                .await
                .unwrap()
                .name,
            "alice"
        );
        assert_eq!(
            accounts
                .authenticate("alice", pw("wrong"), peer)
                .await
                .unwrap_err(),
            AuthError::BadCredentials
        );
        assert_eq!(
            accounts
                .authenticate("bob", pw("s3cret"), peer)
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
        assert!(accounts
            .authenticate("carol", pw("wrong"), peer)
            .await
            .is_err());
        assert!(!verified.knows(&phc, "wrong"));
        assert!(!verified.knows(&phc, "right-one"));
        assert!(accounts
            .authenticate("carol", pw("right-one"), peer)
            .await
            .is_ok());
        assert!(verified.knows(&phc, "right-one"));
        // The remembered password still passes; a wrong one still fails.
        assert!(accounts
            .authenticate("carol", pw("right-one"), peer)
            .await
            .is_ok());
        assert!(accounts
            .authenticate("carol", pw("wrong"), peer)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn allow_list_refuses_other_sources() {
        let accounts = StaticAccounts::new(vec![account(
            "p",
            "pw",
            vec!["10.0.0.0/8".parse().unwrap()],
        )]);
        assert!(accounts
            .authenticate("p", pw("pw"), "10.1.2.3".parse().unwrap())
            .await
            .is_ok());
        assert!(matches!(
            accounts
                .authenticate("p", pw("pw"), "127.0.0.1".parse().unwrap())
                .await,
            Err(AuthError::SourceNotAllowed { .. })
        ));
    }

    #[tokio::test]
    async fn deny_list_refuses_its_networks_even_inside_the_allow_list() {
        let mut a = account("d", "pw", vec!["10.0.0.0/8".parse().unwrap()]);
        a.user.deny = vec!["10.6.0.0/16".parse().unwrap()];
        let accounts = StaticAccounts::new(vec![a]);
        let login = |ip: &str| accounts.authenticate("d", pw("pw"), ip.parse().unwrap());
        assert!(login("10.5.0.1").await.is_ok());
        assert!(matches!(
            login("10.6.0.1").await,
            Err(AuthError::SourceNotAllowed { .. })
        ));
    }

    fn identity(cn: &str, fingerprint: &str) -> ClientIdentity {
        ClientIdentity {
            fingerprint: fingerprint.into(),
            common_names: vec![cn.into()],
            alt_names: Vec::new(),
        }
    }

    #[tokio::test]
    async fn certificate_users_log_in_with_a_mapped_certificate_and_no_password() {
        let mut a = account("edi", "unused", vec![]);
        a.user.login = LoginMethod::Certificate;
        let accounts = StaticAccounts::new(vec![a]);
        let peer = "127.0.0.1".parse().unwrap();
        let mine = identity("edi", "aa");
        let other = identity("someone", "bb");
        let with = |certificate, password| Credentials {
            password,
            certificate,
        };
        assert!(accounts
            .authenticate("edi", with(Some(&mine), None), peer)
            .await
            .is_ok());
        assert!(matches!(
            accounts
                .authenticate("edi", with(Some(&other), None), peer)
                .await,
            Err(AuthError::CertificateNotAccepted { .. })
        ));
        // A password is no substitute for the certificate.
        assert!(accounts
            .authenticate("edi", with(None, Some("unused")), peer)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn both_needs_the_pinned_certificate_and_the_password() {
        let mut a = account("bank", "s3cret", vec![]);
        a.user.login = LoginMethod::Both;
        a.user.certificates =
            vec![CertMatch::parse(&format!("sha256:{}", "cc".repeat(32))).unwrap()];
        let accounts = StaticAccounts::new(vec![a]);
        let peer = "127.0.0.1".parse().unwrap();
        let pinned = identity("anything", &"cc".repeat(32));
        let unpinned = identity("bank", &"dd".repeat(32));
        let try_login = |certificate, password| {
            accounts.authenticate(
                "bank",
                Credentials {
                    password: Some(password),
                    certificate,
                },
                peer,
            )
        };
        assert!(try_login(Some(&pinned), "s3cret").await.is_ok());
        assert!(try_login(Some(&pinned), "wrong").await.is_err());
        assert!(try_login(Some(&unpinned), "s3cret").await.is_err());
        assert!(try_login(None, "s3cret").await.is_err());
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
