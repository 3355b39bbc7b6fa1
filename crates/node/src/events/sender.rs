//! Handing one event to a sink: an HTTP(S) POST signed with HMAC-SHA256, or a
//! NATS core message. Either succeeds (the sink has it) or says why not; the
//! delivery loop retries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
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

use super::nats::Nats;

/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
pub trait Sender: Send {
    /// Hands over `body` (the event as JSON). A sender may only queue it:
    /// it counts as delivered once `settle` succeeds.
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String>;

    /// Hands over `events` in order: how many of them, from the first, were
    /// handed over, and the error that stopped the rest.
    async fn send_all(&mut self, events: &[&EventRecord]) -> (usize, Option<String>) {
        for (n, event) in events.iter().enumerate() {
            if let Err(e) = self.send(event, &event.to_json()).await {
                return (n, Some(e));
            }
        }
        (events.len(), None)
    }

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
            in_flight,
        } => Ok(Box::new(Webhook::new(url, secret, ca_pem, *in_flight)?)),
        SinkTarget::Nats { url, subject } => {
            Ok(Box::new(Nats::new(url, subject, DELIVERY_TIMEOUT)))
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Webhook {
    url: hyper::Uri,
    secret: Vec<u8>,
    client: HttpsClient,
    /// Requests at a time (1: in commit order).
    in_flight: usize,
}

impl Webhook {
    fn new(url: &str, secret: &str, ca_pem: &str, in_flight: u32) -> Result<Self, String> {
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
            in_flight: in_flight.max(1) as usize,
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

    async fn post(&self, id: u64, kind: &'static str, body: Vec<u8>) -> Result<(), String> {
        let mut request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "wharf-events")
            .header("X-Wharf-Event-Id", id.to_string())
            .header("X-Wharf-Event-Type", kind);
        if let Some(signature) = self.signature(&body) {
            request = request.header("X-Wharf-Signature", signature);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
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

#[async_trait]
impl Sender for Webhook {
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String> {
        self.post(event.id, event.kind.name(), body.to_vec()).await
    }

    /// Up to `in_flight` POSTs at a time. Answers are taken in commit order,
    /// so what counts as delivered is the prefix before the first failure;
    /// the requests still running then are dropped and sent again later.
    async fn send_all(&mut self, events: &[&EventRecord]) -> (usize, Option<String>) {
        let this = &*self;
        let posts: Vec<_> = events
            .iter()
            .map(|event| this.post(event.id, event.kind.name(), event.to_json()))
            .collect();
        let mut answers = futures_util::stream::iter(posts).buffered(this.in_flight);
        let mut delivered = 0;
        while let Some(answer) = answers.next().await {
            if let Err(e) = answer {
                return (delivered, Some(e));
            }
            delivered += 1;
        }
        (delivered, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_body_in_hex() {
        let hook = Webhook::new("http://127.0.0.1:1/x", "key", "", 1).unwrap();
        // As `printf '{"a":1}' | openssl dgst -sha256 -hmac key` computes it.
        assert_eq!(
            hook.signature(br#"{"a":1}"#).unwrap(),
            "sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342"
        );
        let unsigned = Webhook::new("http://127.0.0.1:1/x", "", "", 1).unwrap();
        assert_eq!(unsigned.signature(b"x"), None);
    }
}
