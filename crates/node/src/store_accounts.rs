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
        user_from_record(r, &self.data_dir)
    }
}

/// The user a record describes, a relative home taken under `base`; the
/// error names the first field that is not valid.
pub fn user_from_record(r: UserRecord, base: &Path) -> Result<User, String> {
    let home = PathBuf::from(&r.home);
    Ok(User {
        home: if home.is_absolute() {
            home
        } else {
            base.join(home)
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

/// An account as the store keeps it, from whichever source (`wharf user add`,
/// the config file's `[[user]]`, `--user`): checked by the same conversion a
/// login makes, and every rule written in its canonical form (`all` as the
/// rights it grants, command aliases resolved).
pub fn checked_record(record: UserRecord) -> Result<UserRecord, String> {
    let user = user_from_record(record.clone(), Path::new(""))?;
    Ok(UserRecord {
        permissions: user.permissions.names(),
        allow: user.allow.iter().map(ToString::to_string).collect(),
        deny: user.deny.iter().map(ToString::to_string).collect(),
        commands: user.commands,
        login: user.login.as_str().to_owned(),
        certificates: user.certificates.iter().map(ToString::to_string).collect(),
        data_tls: user
            .data_tls
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        ..record
    })
}

/// A password account with every right and no other rule, home `home/NAME`
/// (`--user NAME:PASSWORD`, tests).
pub fn unrestricted_record(name: &str, password_hash: String) -> UserRecord {
    UserRecord {
        name: name.to_owned(),
        password_hash,
        home: format!("home/{name}"),
        permissions: Permissions::all().names(),
        enabled: true,
        ..UserRecord::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UserRecord {
        UserRecord {
            permissions: vec!["all".into()],
            allow: vec!["10.0.0.0/8".into()],
            commands: vec!["xmkd".into(), "stor".into()],
            certificates: vec!["cn:partner".into()],
            data_tls: "same-user".into(),
            ..unrestricted_record("partner", "$argon2id$…".into())
        }
    }

    #[test]
    fn a_record_is_checked_and_kept_in_canonical_form() {
        let checked = checked_record(record()).expect("valid");
        assert_eq!(
            checked.permissions,
            ["list", "read", "write", "delete", "rename", "mkdir"]
        );
        assert_eq!(checked.commands, ["MKD", "STOR"]);
        assert_eq!(checked.login, "password");
        assert_eq!(checked.data_tls, "same-user");
        assert_eq!(checked.home, "home/partner");
        assert!(checked.enabled);
    }

    #[test]
    fn a_record_with_an_invalid_rule_is_refused_naming_it() {
        for (broken, word) in [
            (
                UserRecord {
                    deny: vec!["10.0.0.300/8".into()],
                    ..record()
                },
                "deny entry",
            ),
            (
                UserRecord {
                    permissions: vec!["exec".into()],
                    ..record()
                },
                "unknown permission",
            ),
            (
                UserRecord {
                    login: "token".into(),
                    ..record()
                },
                "login method",
            ),
            (
                UserRecord {
                    commands: vec!["SITE EXEC".into()],
                    ..record()
                },
                "unknown FTP command",
            ),
            (
                UserRecord {
                    certificates: vec!["issuer:x".into()],
                    ..record()
                },
                "certificate match",
            ),
            (
                UserRecord {
                    data_tls: "never".into(),
                    ..record()
                },
                "data-connection TLS rule",
            ),
        ] {
            let error = checked_record(broken).expect_err(word);
            assert!(error.contains(word), "{error:?} should name {word:?}");
        }
    }
}
