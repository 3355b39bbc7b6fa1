//! Every end-to-end suite in one test binary: each suite is a module
//! (`e2e_lftp::…`), so the support code compiles and links once. The suites
//! drive real `wharf` processes with real clients; `.ci/run` picks suites by
//! module (`cargo nextest run -E 'test(/^e2e_lftp::/)'`).

// Test code: a failed unwrap is the test failing (the workspace denies these
// lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/mod.rs"]
mod support;

#[path = "deploy_files.rs"]
mod deploy_files;
#[path = "e2e_acme.rs"]
mod e2e_acme;
#[path = "e2e_bad_input.rs"]
mod e2e_bad_input;
#[path = "e2e_clients.rs"]
mod e2e_clients;
#[path = "e2e_cluster.rs"]
mod e2e_cluster;
#[path = "e2e_cluster_mtls.rs"]
mod e2e_cluster_mtls;
#[path = "e2e_cluster_tls.rs"]
mod e2e_cluster_tls;
#[path = "e2e_commands.rs"]
mod e2e_commands;
#[path = "e2e_compose.rs"]
mod e2e_compose;
#[path = "e2e_confinement.rs"]
mod e2e_confinement;
#[path = "e2e_curl.rs"]
mod e2e_curl;
#[path = "e2e_event_receivers.rs"]
mod e2e_event_receivers;
#[path = "e2e_events.rs"]
mod e2e_events;
#[path = "e2e_ftplib.rs"]
mod e2e_ftplib;
#[path = "e2e_http.rs"]
mod e2e_http;
#[path = "e2e_lftp.rs"]
mod e2e_lftp;
#[path = "e2e_mtls.rs"]
mod e2e_mtls;
#[path = "e2e_openssl.rs"]
mod e2e_openssl;
#[path = "e2e_operations.rs"]
mod e2e_operations;
#[path = "e2e_policy.rs"]
mod e2e_policy;
#[path = "e2e_proxy.rs"]
mod e2e_proxy;
#[path = "e2e_resume.rs"]
mod e2e_resume;
#[path = "e2e_s3.rs"]
mod e2e_s3;
#[path = "e2e_s3_gateway.rs"]
mod e2e_s3_gateway;
#[path = "e2e_security.rs"]
mod e2e_security;
#[path = "e2e_storage.rs"]
mod e2e_storage;
#[path = "e2e_tls_audit.rs"]
mod e2e_tls_audit;
