//! Certificate signing requests a joining node (or an admin) sends over the
//! cluster port, through `ClusterCa::sign_request` (DER, parsed by rcgen and
//! x509-parser, signature checked).
//!
//! Beyond "no panic": when a request is signed, the certificate says what
//! the CA decided, not what the request asked for. Its only name is the
//! role name, whatever subject or extensions the request carries.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wharf_tls::{inspect_leaf_pem, ClusterCa, LeafUsage};

/// The name a join gives every node (`wharf_cluster::credentials::NODE_NAME`).
const NODE_NAME: &str = "wharf-node";

fuzz_target!(|request: &[u8]| {
    let names = [NODE_NAME.to_owned()];
    let lifetime = Duration::from_secs(86_400);
    let Ok(signed) = ca().sign_request(request, &names, lifetime, LeafUsage::ServerAndClient)
    else {
        return;
    };
    let facts = inspect_leaf_pem(&signed.chain_pem).expect("the CA issues readable certificates");
    assert_eq!(facts.dns_names, names, "the request chose the names");
    assert!(signed.chain_pem.ends_with(ca().cert_pem()));
});

fn ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| ClusterCa::generate("fuzz").expect("a CA can be generated"))
}
