//! DER certificates from the other side of a connection: an FTPS client's
//! certificate, read with `ClientIdentity::from_der` to map it to a user; a
//! peer's certificate on the cluster port, read with `inspect` to tell node
//! from admin; and the cluster CA certificate every node loads from the
//! replicated store with `ClusterCa::from_pem` (its own small DER reader,
//! `der.rs`).
//!
//! Beyond "no panic": a certificate reads the same as DER and as PEM, its
//! fingerprint is the same both ways, the client identity carries that
//! fingerprint and every DNS name `inspect` sees, and a CA that loads keeps
//! exactly the PEM it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_tls::{certificate_pem, fingerprint, inspect, inspect_leaf_pem, leaf_fingerprint};
use wharf_tls::{ClientIdentity, ClusterCa};

/// The key of the CA certificate in the seed corpus
/// (`corpus/certificate/cluster-ca.der`), so mutations of that certificate
/// get past the key check into the subject reader. Made for fuzzing only; it
/// protects nothing.
const SEED_CA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6zshIw65xpRhN7tD
ALvW1HcUFN1sdXHxsun9p0QaQqyhRANCAAR+YWy0k1QqzruZBnvh/uOOJ2J0zyVz
dKke8D731guCgKUF1LcywmtVmT7KfvOLNHiLzpsQyFv7WdzD671twjK3
-----END PRIVATE KEY-----
";

fuzz_target!(|der: &[u8]| {
    let facts = inspect(der);
    let pem = certificate_pem(der);
    if !der.is_empty() {
        assert_eq!(
            inspect_leaf_pem(&pem),
            facts,
            "DER and PEM read differently"
        );
        assert_eq!(leaf_fingerprint(&pem), Some(fingerprint(der)));
    }
    if let Some(identity) = ClientIdentity::from_der(der) {
        assert_eq!(identity.fingerprint, fingerprint(der));
        for name in facts.iter().flat_map(|f| &f.dns_names) {
            assert!(identity.alt_names.contains(name), "{name:?} lost");
        }
    } else {
        assert_eq!(facts, None, "inspect reads what ClientIdentity cannot");
    }
    if let Ok(ca) = ClusterCa::from_pem(&pem, SEED_CA_KEY) {
        assert_eq!(ca.cert_pem(), pem);
    }
});
