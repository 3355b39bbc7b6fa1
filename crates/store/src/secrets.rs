//! Secrets at rest: private keys (certificates, the cluster CA) and TLS
//! ticket keys are sealed with a key the operator provides before they enter
//! the Raft log, so neither the log, the state machine, snapshots nor backups
//! of a data directory hold them in clear. Every node of a cluster is given
//! the same key; records written without one stay readable (a cluster that
//! adopts a key later), records sealed with another key are an error naming
//! both key ids.
//!
//! A sealed value is ASCII: `sealed:v1:<key id>:<hex of nonce, ciphertext,
//! tag>`, AES-256-GCM with a random nonce and the field's label as AAD (a
//! sealed CA key cannot be passed off as a ticket key).

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};

use crate::command::Command;
pub use crate::error::SecretsError;
use crate::events::{SinkRecord, SinkTarget};
use crate::records::{AcmeAccountRecord, AcmeCertRecord, CaRecord, CertRecord, TicketKeyRecord};

const PREFIX: &str = "sealed:v1:";
const KEY_LEN: usize = 32;

/// The operator's key. Its id (a hash prefix) is stored beside each sealed
/// value so a node with another key says so instead of failing obscurely.
pub struct SecretsKey {
    aead: RandomizedNonceKey,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsKey({})", self.id)
    }
}

const CERT_KEY: &str = "certificate key";
const CA_KEY: &str = "cluster CA key";
const TICKET_KEY: &str = "ticket key";
const ACME_ORDER_KEY: &str = "ACME certificate key";
const ACME_ACCOUNT: &str = "ACME account key";
const SINK_SECRET: &str = "event sink secret";

impl SecretsKey {
    /// From its hex form (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SecretsError> {
        let text = text.trim();
        if text.len() != KEY_LEN * 2 {
            return Err(SecretsError::BadKey);
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| SecretsError::BadKey)?;
        }
        let aead =
            RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| SecretsError::BadKey)?;
        let mut named = b"wharf secrets key ".to_vec();
        named.extend_from_slice(&bytes);
        let id = hex(digest(&SHA256, &named)
            .as_ref()
            .get(..4)
            .unwrap_or_default());
        Ok(Self { aead, id })
    }

    /// Eight hex digits naming the key (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, label: &'static str, plain: &[u8]) -> Result<String, SecretsError> {
        let mut buf = plain.to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(label.as_bytes()), &mut buf)
            .map_err(|_| SecretsError::Seal { label })?;
        let mut body = nonce.as_ref().to_vec();
        body.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}:{}", self.id, hex(&body)))
    }

    fn open(&self, label: &'static str, sealed: &str) -> Result<Vec<u8>, SecretsError> {
        let damaged = || SecretsError::Damaged { label };
        let (id, body) = sealed_parts(sealed).ok_or_else(damaged)?;
        if id != self.id {
            return Err(SecretsError::WrongKey {
                label,
                sealed_with: id.to_owned(),
                ours: self.id.clone(),
            });
        }
        let body = unhex(body).ok_or_else(damaged)?;
        let (nonce, sealed) = body.split_first_chunk::<NONCE_LEN>().ok_or_else(damaged)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(label.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| damaged())?;
        Ok(plain.to_vec())
    }

    /// Seals the secrets `command` carries that are still in clear.
    pub fn seal_command(&self, command: Command) -> Result<Command, SecretsError> {
        Ok(match command {
            Command::PutCert(mut c) if !is_sealed(c.key_pem.as_bytes()) => {
                c.key_pem = self.seal(CERT_KEY, c.key_pem.as_bytes())?;
                Command::PutCert(c)
            }
            Command::PutCa(mut c) if !is_sealed(c.key_pem.as_bytes()) => {
                c.key_pem = self.seal(CA_KEY, c.key_pem.as_bytes())?;
                Command::PutCa(c)
            }
            Command::PutTicketKey(mut k) if !is_sealed(&k.secret) => {
                k.secret = self.seal(TICKET_KEY, &k.secret)?.into_bytes();
                Command::PutTicketKey(k)
            }
            Command::CompleteAcmeOrder {
                mut cert,
                order_url,
            } => {
                self.seal_text(CERT_KEY, &mut cert.key_pem)?;
                Command::CompleteAcmeOrder { cert, order_url }
            }
            Command::PutAcmeCert(mut acme) => {
                if let Some(order) = &mut acme.order {
                    self.seal_text(ACME_ORDER_KEY, &mut order.key_pem)?;
                }
                Command::PutAcmeCert(acme)
            }
            Command::SetAcmeOrder {
                name,
                expected,
                mut order,
                error,
            } => {
                if let Some(order) = &mut order {
                    self.seal_text(ACME_ORDER_KEY, &mut order.key_pem)?;
                }
                Command::SetAcmeOrder {
                    name,
                    expected,
                    order,
                    error,
                }
            }
            Command::PutAcmeAccount(mut account) => {
                self.seal_text(ACME_ACCOUNT, &mut account.credentials)?;
                Command::PutAcmeAccount(account)
            }
            Command::PutSink(mut sink) => {
                if let SinkTarget::Webhook { secret, .. } = &mut sink.target {
                    if !secret.is_empty() {
                        self.seal_text(SINK_SECRET, secret)?;
                    }
                }
                Command::PutSink(sink)
            }
            other => other,
        })
    }

    fn seal_text(&self, label: &'static str, value: &mut String) -> Result<(), SecretsError> {
        if !is_sealed(value.as_bytes()) {
            *value = self.seal(label, value.as_bytes())?;
        }
        Ok(())
    }
}

fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(PREFIX.as_bytes())
}

fn sealed_parts(sealed: &str) -> Option<(&str, &str)> {
    sealed.strip_prefix(PREFIX)?.split_once(':')
}

/// Opens `value` if it is sealed; a clear value is returned as it is.
fn open_value(
    key: Option<&SecretsKey>,
    label: &'static str,
    value: &[u8],
) -> Result<Option<Vec<u8>>, SecretsError> {
    if !is_sealed(value) {
        return Ok(None);
    }
    let text = std::str::from_utf8(value).map_err(|_| SecretsError::Damaged { label })?;
    match key {
        Some(key) => key.open(label, text).map(Some),
        None => Err(SecretsError::NoKey {
            label,
            sealed_with: sealed_parts(text).map_or("?", |(id, _)| id).to_owned(),
        }),
    }
}

fn open_text(
    key: Option<&SecretsKey>,
    label: &'static str,
    value: &mut String,
) -> Result<(), SecretsError> {
    if let Some(plain) = open_value(key, label, value.as_bytes())? {
        *value = String::from_utf8(plain).map_err(|_| SecretsError::Damaged { label })?;
    }
    Ok(())
}

pub(crate) fn open_cert(key: Option<&SecretsKey>, c: &mut CertRecord) -> Result<(), SecretsError> {
    open_text(key, CERT_KEY, &mut c.key_pem)
}

pub(crate) fn open_acme_cert(
    key: Option<&SecretsKey>,
    a: &mut AcmeCertRecord,
) -> Result<(), SecretsError> {
    match &mut a.order {
        Some(order) => open_text(key, ACME_ORDER_KEY, &mut order.key_pem),
        None => Ok(()),
    }
}

pub(crate) fn open_acme_account(
    key: Option<&SecretsKey>,
    a: &mut AcmeAccountRecord,
) -> Result<(), SecretsError> {
    open_text(key, ACME_ACCOUNT, &mut a.credentials)
}

pub(crate) fn open_sink(key: Option<&SecretsKey>, s: &mut SinkRecord) -> Result<(), SecretsError> {
    match &mut s.target {
        SinkTarget::Webhook { secret, .. } => open_text(key, SINK_SECRET, secret),
        SinkTarget::Nats { .. } => Ok(()),
    }
}

pub(crate) fn open_ca(key: Option<&SecretsKey>, c: &mut CaRecord) -> Result<(), SecretsError> {
    open_text(key, CA_KEY, &mut c.key_pem)
}

pub(crate) fn open_ticket_key(
    key: Option<&SecretsKey>,
    k: &mut TicketKeyRecord,
) -> Result<(), SecretsError> {
    if let Some(plain) = open_value(key, TICKET_KEY, &k.secret)? {
        k.secret = plain;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn ca() -> CaRecord {
        CaRecord {
            cert_pem: "CERT".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nabc\n".into(),
        }
    }

    fn sealed_ca(key: &SecretsKey) -> CaRecord {
        match key.seal_command(Command::PutCa(ca())).unwrap() {
            Command::PutCa(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sealed_key_opens_with_the_same_key_only() {
        let key = SecretsKey::from_hex(KEY).unwrap();
        let mut c = sealed_ca(&key);
        assert!(c.key_pem.starts_with(PREFIX), "{}", c.key_pem);
        assert!(!c.key_pem.contains("PRIVATE"));
        assert_eq!(c.cert_pem, "CERT", "only the key is sealed");

        let other = SecretsKey::from_hex(OTHER).unwrap();
        let mut copy = c.clone();
        assert!(matches!(
            open_ca(Some(&other), &mut copy),
            Err(SecretsError::WrongKey { .. })
        ));
        assert!(matches!(
            open_ca(None, &mut copy),
            Err(SecretsError::NoKey { .. })
        ));
        open_ca(Some(&key), &mut c).unwrap();
        assert_eq!(c, ca());
    }

    #[test]
    fn sealing_is_idempotent_and_clear_records_stay_readable() {
        let key = SecretsKey::from_hex(KEY).unwrap();
        let once = sealed_ca(&key);
        let twice = match key.seal_command(Command::PutCa(once.clone())).unwrap() {
            Command::PutCa(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(once, twice);
        let mut clear = ca();
        open_ca(Some(&key), &mut clear).unwrap();
        assert_eq!(clear, ca());
    }

    #[test]
    fn ticket_keys_round_trip_and_labels_keep_fields_apart() {
        let key = SecretsKey::from_hex(KEY).unwrap();
        let record = TicketKeyRecord {
            id: 7,
            secret: vec![9; 32],
            created: 1,
            activate_at: 2,
            expires: 3,
        };
        let Command::PutTicketKey(mut sealed) = key
            .seal_command(Command::PutTicketKey(record.clone()))
            .unwrap()
        else {
            panic!("not a ticket key")
        };
        assert_ne!(sealed.secret, record.secret);
        // The same ciphertext presented as a CA key does not open.
        let mut swapped = ca();
        swapped.key_pem = String::from_utf8(sealed.secret.clone()).unwrap();
        assert!(matches!(
            open_ca(Some(&key), &mut swapped),
            Err(SecretsError::Damaged { .. })
        ));
        open_ticket_key(Some(&key), &mut sealed).unwrap();
        assert_eq!(sealed, record);
    }

    #[test]
    fn malformed_keys_and_tampered_values_are_errors() {
        assert_eq!(
            SecretsKey::from_hex("abcd").unwrap_err(),
            SecretsError::BadKey
        );
        assert_eq!(
            SecretsKey::from_hex(&"zz".repeat(32)).unwrap_err(),
            SecretsError::BadKey
        );
        let key = SecretsKey::from_hex(KEY).unwrap();
        let mut c = sealed_ca(&key);
        let last = c.key_pem.pop().unwrap();
        c.key_pem.push(if last == '0' { '1' } else { '0' });
        assert!(matches!(
            open_ca(Some(&key), &mut c),
            Err(SecretsError::Damaged { .. })
        ));
    }

    #[test]
    fn acme_account_and_order_keys_are_sealed_and_open_again() {
        use crate::records::{AcmeAccountRecord, AcmeChallenge, AcmeOrder};
        let key = SecretsKey::from_hex(KEY).unwrap();
        let account = AcmeAccountRecord {
            directory: "https://acme.test/dir".into(),
            credentials: r#"{"key_pkcs8":"secret"}"#.into(),
        };
        let Command::PutAcmeAccount(mut sealed) = key
            .seal_command(Command::PutAcmeAccount(account.clone()))
            .unwrap()
        else {
            panic!("not an account")
        };
        assert!(
            !sealed.credentials.contains("secret"),
            "{}",
            sealed.credentials
        );
        open_acme_account(Some(&key), &mut sealed).unwrap();
        assert_eq!(sealed, account);

        let order = AcmeOrder {
            url: "https://acme.test/order/1".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nabc\n".into(),
            challenges: vec![AcmeChallenge {
                token: "tok".into(),
                key_authorization: "tok.thumb".into(),
            }],
            started: 1,
            started_by: 2,
        };
        let Command::SetAcmeOrder {
            order: Some(sealed_order),
            ..
        } = key
            .seal_command(Command::SetAcmeOrder {
                name: "default".into(),
                expected: None,
                order: Some(order.clone()),
                error: None,
            })
            .unwrap()
        else {
            panic!("no order")
        };
        assert!(!sealed_order.key_pem.contains("PRIVATE"));
        assert_eq!(
            sealed_order.challenges, order.challenges,
            "tokens stay readable"
        );
        let mut record = crate::records::AcmeCertRecord::new("default", vec![], "");
        record.order = Some(sealed_order);
        open_acme_cert(Some(&key), &mut record).unwrap();
        assert_eq!(record.order, Some(order));
    }
}
