//! Handing one event to a sink: an HTTP(S) POST signed with HMAC-SHA256, or a
//! NATS core message. Either succeeds (the sink has it) or says why not; the
//! delivery loop retries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::Sha256;
use wharf_store::events::{EventRecord, SinkTarget};

/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
pub trait Sender: Send {
    /// Hands over `body` (the event as JSON). A sender may only queue it:
    /// it counts as delivered once `settle` succeeds.
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String>;

    /// Waits until everything sent has reached the sink.
    async fn settle(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A sender for `target`, or why one cannot be made (a bad CA file, say).
pub fn for_target(target: &SinkTarget) -> Result<Box<dyn Sender>, String> {
    match target {
        SinkTarget::Webhook {
            url,
            secret,
            ca_pem,
        } => Ok(Box::new(Webhook::new(url, secret, ca_pem)?)),
        SinkTarget::Nats { url, subject } => Ok(Box::new(Nats {
            url: url.clone(),
            subject: subject.clone(),
            client: None,
        })),
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Webhook {
    url: hyper::Uri,
    secret: Vec<u8>,
    client: HttpsClient,
}

impl Webhook {
    fn new(url: &str, secret: &str, ca_pem: &str) -> Result<Self, String> {
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let tls = if ca_pem.is_empty() {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("the sink's CA is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the sink's CA is not usable: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            secret: secret.as_bytes().to_vec(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    fn signature(&self, body: &[u8]) -> Option<String> {
        if self.secret.is_empty() {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(body);
        Some(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }
}

#[async_trait]
impl Sender for Webhook {
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String> {
        let mut request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "wharf-events")
            .header("X-Wharf-Event-Id", event.id.to_string())
            .header("X-Wharf-Event-Type", event.kind.name());
        if let Some(signature) = self.signature(body) {
            request = request.header("X-Wharf-Signature", signature);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(DELIVERY_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {DELIVERY_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.url))
        }
    }
}

struct Nats {
    url: String,
    subject: String,
    client: Option<async_nats::Client>,
}

#[async_trait]
impl Sender for Nats {
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(DELIVERY_TIMEOUT)
                    .connect(self.url.as_str());
                let c = tokio::time::timeout(DELIVERY_TIMEOUT, connect)
                    .await
                    .map_err(|_| format!("cannot reach {} in time", self.url))?
                    .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
                self.client = Some(c.clone());
                c
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        let id = event.id.to_string();
        headers.insert("Wharf-Event-Id", id.as_str());
        headers.insert("Wharf-Event-Type", event.kind.name());
        // JetStream drops a message whose id it has seen: redeliveries
        // after a leader change do not double up in a stream.
        headers.insert("Nats-Msg-Id", id.as_str());
        let published = client.publish_with_headers(
            self.subject.clone(),
            headers,
            Bytes::copy_from_slice(body),
        );
        let outcome = tokio::time::timeout(DELIVERY_TIMEOUT, published)
            .await
            .map_err(|_| format!("{} did not take the message in time", self.url))
            .and_then(|r| r.map_err(|e| format!("{}: {e}", self.url)));
        if outcome.is_err() {
            // Start over with a new connection next time.
            self.client = None;
        }
        outcome
    }

    /// Core NATS acknowledges nothing: a flush at least proves the server
    /// took every message published since the last one, in order, on one
    /// connection (one round trip per batch, not per event).
    async fn settle(&mut self) -> Result<(), String> {
        let Some(client) = &self.client else {
            return Err(format!("not connected to {}", self.url));
        };
        let outcome = tokio::time::timeout(DELIVERY_TIMEOUT, client.flush())
            .await
            .map_err(|_| format!("{} did not confirm the messages in time", self.url))
            .and_then(|r| r.map_err(|e| format!("{}: {e}", self.url)));
        if outcome.is_err() {
            self.client = None;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_body_in_hex() {
        let hook = Webhook::new("http://127.0.0.1:1/x", "key", "").unwrap();
        // As `printf '{"a":1}' | openssl dgst -sha256 -hmac key` computes it.
        assert_eq!(
            hook.signature(br#"{"a":1}"#).unwrap(),
            "sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342"
        );
        let unsigned = Webhook::new("http://127.0.0.1:1/x", "", "").unwrap();
        assert_eq!(unsigned.signature(b"x"), None);
    }
}
