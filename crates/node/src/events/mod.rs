//! Delivering events (DESIGN.md §6a): the leader hands each sink its events
//! in commit order, one at a time, and commits how far it got, so a new
//! leader carries on from there — at least once; consumers deduplicate by
//! id. A failing sink is retried with growing pauses while the others go on.
//! Events every sink has are forgotten after a while; past the retention
//! limits the oldest go even if undelivered (counted, and audited).

mod digest;
mod nats;
mod sender;

pub(crate) use digest::ContentDigest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wharf_cluster::ClusterHandle;
use wharf_store::events::{EventRecord, Retention, SinkRecord, SinkTarget};
use wharf_store::Command;

use crate::clock::unix_now_ms;
use crate::leader::LeaderJob;
use sender::Sender;

/// Events read for one sink per turn.
const BATCH: usize = 256;
/// The first pause after a failure; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long events every sink has stay readable (`wharf events tail`).
const KEEP_DELIVERED: Duration = Duration::from_secs(600);
/// Most events one pruning turn looks at.
const PRUNE_SCAN: usize = 100_000;
/// How often the leader looks for events to forget.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// What this node delivered while it led, for `/metrics`.
#[derive(Default)]
pub struct DeliveryCounts {
    per_sink: std::sync::Mutex<BTreeMap<String, (u64, u64)>>,
}

impl DeliveryCounts {
    fn add(&self, sink: &str, delivered: u64, failed: u64) {
        if let Ok(mut counts) = self.per_sink.lock() {
            let entry = counts.entry(sink.to_owned()).or_default();
            entry.0 += delivered;
            entry.1 += failed;
        }
    }

    /// `(sink, delivered, failed)` since this process started.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        self.per_sink
            .lock()
            .map(|c| c.iter().map(|(k, (d, f))| (k.clone(), *d, *f)).collect())
            .unwrap_or_default()
    }
}

struct SinkState {
    target: SinkTarget,
    sender: Box<dyn Sender>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

pub struct Delivery {
    pub counts: Arc<DeliveryCounts>,
    sinks: BTreeMap<String, SinkState>,
    pruned_at: Option<Instant>,
}

impl Delivery {
    pub fn new(counts: Arc<DeliveryCounts>) -> Self {
        Self {
            counts,
            sinks: BTreeMap::new(),
            pruned_at: None,
        }
    }

    /// The sender for `sink`, made anew when its target changed.
    fn state(&mut self, sink: &SinkRecord) -> Result<&mut SinkState, String> {
        let stale = self
            .sinks
            .get(&sink.name)
            .is_none_or(|s| s.target != sink.target);
        if stale {
            let sender = sender::for_target(&sink.target)?;
            self.sinks.insert(
                sink.name.clone(),
                SinkState {
                    target: sink.target.clone(),
                    sender,
                    retry_at: None,
                    backoff: FIRST_BACKOFF,
                },
            );
        }
        self.sinks
            .get_mut(&sink.name)
            .ok_or_else(|| "the sink vanished".to_owned())
    }

    /// Hands `sink` the events after its position; commits the new position
    /// (and the error that stopped it, if one did).
    async fn deliver(&mut self, node: &ClusterHandle, sink: SinkRecord) {
        let waiting = self.sinks.get(&sink.name).is_some_and(|s| {
            s.target == sink.target && s.retry_at.is_some_and(|at| Instant::now() < at)
        });
        if waiting {
            return;
        }
        let events = match node.reader().events_after(sink.delivered, BATCH) {
            Ok(events) if events.is_empty() => return,
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(sink = %sink.name, "cannot read events: {e}");
                return;
            }
        };
        let counts = self.counts.clone();
        let (mut position, mut sent) = (sink.delivered, 0);
        let mut error;
        match self.state(&sink) {
            Err(e) => error = Some(e),
            Ok(state) => {
                let wanted: Vec<&EventRecord> =
                    events.iter().filter(|e| sink.filter.matches(e)).collect();
                let (handed, failed) = state.sender.send_all(&wanted).await;
                sent = handed as u64;
                // Everything before the first event not handed over is
                // delivered or filtered out (ids increase by one).
                position = match (wanted.get(handed), &failed) {
                    (Some(stopped), Some(_)) => stopped.id.saturating_sub(1),
                    _ => events.last().map_or(position, |e| e.id),
                };
                error = failed;
                // What was handed over counts once the sink confirms it.
                if sent > 0 {
                    if let Err(e) = state.sender.settle().await {
                        position = sink.delivered;
                        sent = 0;
                        error = Some(e);
                    }
                }
                match &error {
                    Some(_) => {
                        state.retry_at = Some(Instant::now() + state.backoff);
                        state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                    }
                    None => {
                        state.retry_at = None;
                        state.backoff = FIRST_BACKOFF;
                    }
                }
            }
        }
        counts.add(&sink.name, sent, u64::from(error.is_some()));
        if let Some(e) = &error {
            tracing::warn!(sink = %sink.name, position, "event delivery failed, will retry: {e}");
        }
        let progressed = position > sink.delivered;
        let error_text = error.unwrap_or_default();
        if progressed || error_text != sink.last_error || !error_text.is_empty() {
            let command = Command::SinkProgress {
                name: sink.name.clone(),
                delivered: position,
                at_ms: if progressed { unix_now_ms() } else { 0 },
                error: error_text,
            };
            if let Err(e) = node.write(command).await {
                tracing::warn!(sink = %sink.name, "cannot record the sink's position: {e}");
            }
        }
    }

    /// Forgets events every sink has once they are old enough, and the
    /// oldest beyond the retention limits whatever their state.
    async fn prune(&mut self, node: &ClusterHandle, sinks: &[SinkRecord]) {
        if self.pruned_at.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.pruned_at = Some(Instant::now());
        let reader = node.reader();
        let Ok(last) = reader.last_event_id() else {
            return;
        };
        let everywhere = sinks.iter().map(|s| s.delivered).min().unwrap_or(last);
        let limits = Limits {
            everywhere,
            now_ms: unix_now_ms(),
            retention: reader.event_retention().unwrap_or(Retention::DEFAULT),
        };
        // Past the count limit, whatever their state; then as far as the
        // oldest are delivered and old enough, or past the age limit, a page
        // at a time (at most PRUNE_SCAN per turn, which keeps up with far
        // more uploads per second than a node takes).
        let mut through = last.saturating_sub(limits.retention.max_count);
        let (mut after, mut first, mut scanned) = (0, None, 0);
        loop {
            let Ok(page) = reader.events_after(after, BATCH) else {
                return;
            };
            first = first.or(page.first().map(|e| e.id));
            scanned += page.len();
            match limits.prunable_through(&page) {
                Some(end) => {
                    through = through.max(end);
                    let whole = page.last().is_some_and(|e| e.id == end);
                    if !whole || page.len() < BATCH || scanned >= PRUNE_SCAN {
                        break;
                    }
                    after = end;
                }
                None => break,
            }
        }
        let Some(first) = first else {
            return;
        };
        if through < first {
            return;
        }
        let dropped = through.saturating_sub(everywhere.max(first - 1));
        if dropped > 0 {
            tracing::warn!(
                target: crate::audit::TARGET,
                action = "events.dropped",
                dropped,
                through,
                "events dropped undelivered: past the retention limits"
            );
        }
        if let Err(e) = node.write(Command::PruneEvents { through, dropped }).await {
            tracing::warn!("cannot forget delivered events: {e}");
        }
    }
}

/// What decides whether an event may be forgotten.
struct Limits {
    /// Every sink has the events up to this id.
    everywhere: u64,
    now_ms: u64,
    retention: Retention,
}

impl Limits {
    fn older_than(&self, event: &EventRecord, age: Duration) -> bool {
        self.now_ms.saturating_sub(event.time_ms) > age.as_millis() as u64
    }

    /// The last id of `page`'s leading run of events that may go: delivered
    /// everywhere and kept `KEEP_DELIVERED`, or past the age limit.
    fn prunable_through(&self, page: &[EventRecord]) -> Option<u64> {
        page.iter()
            .take_while(|e| {
                (e.id <= self.everywhere && self.older_than(e, KEEP_DELIVERED))
                    || self.older_than(e, self.retention.max_age)
            })
            .last()
            .map(|e| e.id)
    }
}

#[async_trait]
impl LeaderJob for Delivery {
    fn name(&self) -> &'static str {
        "event delivery"
    }

    fn every(&self) -> Duration {
        Duration::from_millis(200)
    }

    async fn turn(&mut self, node: &Arc<ClusterHandle>) {
        let sinks = match node.reader().sinks() {
            Ok(sinks) => sinks,
            Err(e) => {
                tracing::warn!("cannot read the event sinks: {e}");
                return;
            }
        };
        self.sinks
            .retain(|name, _| sinks.iter().any(|s| &s.name == name));
        for sink in sinks.iter().cloned() {
            self.deliver(node, sink).await;
        }
        self.prune(node, &sinks).await;
    }

    fn not_leading(&mut self) {
        self.sinks.clear();
        self.pruned_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_store::events::EventKind;

    const MINUTE_MS: u64 = 60_000;

    /// Events 1..=n, one a second, the last at `now_ms`.
    fn events(n: u64, now_ms: u64) -> Vec<EventRecord> {
        (1..=n)
            .map(|id| EventRecord {
                id,
                time_ms: now_ms - (n - id) * 1000,
                node: 1,
                user: "u".into(),
                session: String::new(),
                client: String::new(),
                kind: EventKind::FileDeleted {
                    path: format!("/{id}"),
                },
            })
            .collect()
    }

    fn limits(everywhere: u64, now_ms: u64, max_age: Duration) -> Limits {
        Limits {
            everywhere,
            now_ms,
            retention: Retention {
                max_count: 1_000_000,
                max_age,
            },
        }
    }

    #[test]
    fn delivered_events_go_once_kept_long_enough() {
        let now = 100 * MINUTE_MS;
        // 1,200 events over 20 minutes, all delivered: the first 600 s worth
        // (plus the one on the boundary) stay readable, the older go.
        let page = events(1_200, now);
        let l = limits(1_200, now, Retention::DEFAULT.max_age);
        assert_eq!(l.prunable_through(&page), Some(599));
    }

    #[test]
    fn undelivered_events_stay_until_the_age_limit() {
        let now = 100 * MINUTE_MS;
        let page = events(1_200, now);
        // Delivered only up to 100: those go, the rest wait for a sink.
        let l = limits(100, now, Retention::DEFAULT.max_age);
        assert_eq!(l.prunable_through(&page), Some(100));
        // With a five-minute age limit, everything older goes, delivered or not.
        let l = limits(100, now, Duration::from_secs(300));
        assert_eq!(l.prunable_through(&page), Some(899));
        // Nothing old: nothing goes.
        let l = limits(0, now, Retention::DEFAULT.max_age);
        assert_eq!(l.prunable_through(&page), None);
    }
}
