//! A NATS core sink: one message per event. Core NATS acknowledges nothing,
//! and a flush only empties the client's buffer into a socket the server may
//! no longer read (a broker that is hung or just died). So a batch counts as
//! delivered only once a message this connection sent to its own inbox,
//! after the batch, has come back: the server handles one connection's
//! messages in order, so the echo proves it took every one before it.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_stream::StreamExt;
use wharf_store::events::EventRecord;

use super::sender::Sender;

pub(super) struct Nats {
    url: String,
    subject: String,
    timeout: Duration,
    link: Option<Link>,
}

/// A connection and its echo subscription.
struct Link {
    client: async_nats::Client,
    inbox: String,
    echo: async_nats::Subscriber,
    /// Echoes asked for: the payload of the next one.
    asked: u64,
}

impl Nats {
    pub(super) fn new(url: &str, subject: &str, timeout: Duration) -> Nats {
        Nats {
            url: url.to_owned(),
            subject: subject.to_owned(),
            timeout,
            link: None,
        }
    }

    async fn connect(&self) -> Result<Link, String> {
        let connect = async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(self.timeout)
                .connect(self.url.as_str())
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
            let inbox = client.new_inbox();
            let echo = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| format!("{}: cannot subscribe to its own inbox: {e}", self.url))?;
            Ok(Link {
                client,
                inbox,
                echo,
                asked: 0,
            })
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| format!("cannot reach {} in time", self.url))?
    }

    /// Keeps the connection only while it works: after an error the next
    /// delivery starts over with a new one.
    fn keep<T>(&mut self, outcome: Result<T, String>) -> Result<T, String> {
        if outcome.is_err() {
            self.link = None;
        }
        outcome
    }
}

impl Link {
    async fn round_trip(&mut self) -> Result<(), String> {
        self.asked += 1;
        let token = self.asked.to_string();
        self.client
            .publish(self.inbox.clone(), Bytes::from(token.clone()))
            .await
            .map_err(|e| e.to_string())?;
        self.client.flush().await.map_err(|e| e.to_string())?;
        while let Some(message) = self.echo.next().await {
            // An older echo, answered late, is passed over.
            if message.payload == token.as_bytes() {
                return Ok(());
            }
        }
        Err("the connection closed".to_owned())
    }
}

#[async_trait]
impl Sender for Nats {
    async fn send(&mut self, event: &EventRecord, body: &[u8]) -> Result<(), String> {
        if self.link.is_none() {
            self.link = Some(self.connect().await?);
        }
        let Some(link) = &self.link else {
            return Err(format!("not connected to {}", self.url));
        };
        let mut headers = async_nats::HeaderMap::new();
        let id = event.id.to_string();
        headers.insert("Wharf-Event-Id", id.as_str());
        headers.insert("Wharf-Event-Type", event.kind.name());
        // JetStream drops a message whose id it has seen: redeliveries
        // after a leader change do not double up in a stream.
        headers.insert("Nats-Msg-Id", id.as_str());
        let published = link.client.publish_with_headers(
            self.subject.clone(),
            headers,
            Bytes::copy_from_slice(body),
        );
        let outcome = tokio::time::timeout(self.timeout, published)
            .await
            .map_err(|_| format!("{} did not take the message in time", self.url))
            .and_then(|r| r.map_err(|e| format!("{}: {e}", self.url)));
        self.keep(outcome)
    }

    async fn settle(&mut self) -> Result<(), String> {
        let Some(link) = self.link.as_mut() else {
            return Err(format!("not connected to {}", self.url));
        };
        let outcome = tokio::time::timeout(self.timeout, link.round_trip())
            .await
            .map_err(|_| format!("{} did not confirm the messages in time", self.url))
            .and_then(|r| r.map_err(|e| format!("{}: {e}", self.url)));
        self.keep(outcome)
    }
}
