//! `wharf events sink add|list|remove`, `wharf events tail` and
//! `wharf events retention`: upload events and where the leader delivers
//! them (crates/node/src/events).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use wharf_store::events::{
    sink_state, EventDigest, EventFilter, Retention, SinkRecord, SinkTarget,
};
use wharf_store::Command;

use crate::admin::{connect, expect_done};
use crate::cli::{EventsCommand, SinkCommand};

/// Events one `tail` call asks for, and how often it asks when idle.
const TAIL_PAGE: u32 = 500;
const TAIL_POLL: Duration = Duration::from_millis(250);

pub async fn run(command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::Sink(command) => sink(command).await,
        EventsCommand::Tail {
            from,
            no_follow,
            target,
        } => {
            let admin = connect(&target).await?;
            tail(&admin, from, !no_follow).await
        }
        EventsCommand::Retention {
            max_count,
            max_age,
            target,
        } => {
            let admin = connect(&target).await?;
            for (key, value) in [
                (Retention::MAX_COUNT_SETTING, max_count),
                (Retention::MAX_AGE_SETTING, max_age),
            ] {
                if let Some(value) = value {
                    let put = Command::PutSetting {
                        key: key.to_owned(),
                        value: value.to_string(),
                    };
                    expect_done(admin.write(put).await?, key)?;
                }
            }
            if max_count.is_some() || max_age.is_some() {
                println!("event retention set for the cluster");
            }
            let list = admin.sinks().await?;
            println!(
                "events are kept until every sink has them, at most {} events or {} s \
                 (set with --max-count/--max-age)",
                list.max_events, list.max_age_secs
            );
            Ok(())
        }
        EventsCommand::Digest { digest, target } => {
            let admin = connect(&target).await?;
            if let Some(digest) = digest {
                let value = EventDigest::parse(&digest).map_err(anyhow::Error::msg)?;
                let put = Command::PutSetting {
                    key: EventDigest::SETTING.to_owned(),
                    value: value.as_str().to_owned(),
                };
                expect_done(admin.write(put).await?, EventDigest::SETTING)?;
            }
            let list = admin.sinks().await?;
            println!("file.uploaded events carry digest: {}", list.event_digest);
            Ok(())
        }
    }
}

async fn sink(command: SinkCommand) -> Result<()> {
    match command {
        SinkCommand::Add {
            name,
            webhook,
            secret_file,
            ca_file,
            in_flight,
            nats,
            subject,
            types,
            user,
            path_prefix,
            target,
        } => {
            let read = |path: &std::path::Path, what: &str| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the {what} {}", path.display()))
            };
            let sink_target = match (webhook, nats, subject) {
                (Some(url), None, None) => SinkTarget::Webhook {
                    url,
                    secret: match &secret_file {
                        Some(f) => read(f, "secret file")?.trim().to_owned(),
                        None => String::new(),
                    },
                    ca_pem: match &ca_file {
                        Some(f) => read(f, "CA file")?,
                        None => String::new(),
                    },
                    in_flight,
                },
                (None, Some(url), Some(subject)) => SinkTarget::Nats { url, subject },
                _ => bail!("give --webhook URL, or --nats URL with --subject SUBJECT"),
            };
            let filter = EventFilter {
                types,
                user: user.unwrap_or_default(),
                path_prefix: path_prefix.unwrap_or_default(),
            };
            let record =
                SinkRecord::new(name.clone(), sink_target, filter).map_err(anyhow::Error::msg)?;
            let admin = connect(&target).await?;
            expect_done(
                admin.write(Command::PutSink(record)).await?,
                &format!("event sink {name}"),
            )?;
            println!("event sink {name} added: it gets the events recorded from now on");
        }
        SinkCommand::List { json, target } => {
            let list = connect(&target).await?.sinks().await?;
            for s in list.sinks {
                let state = sink_state(&s.last_error, s.backlog);
                if json {
                    let line = serde_json::json!({
                        "name": s.name, "target": s.target, "state": state,
                        "types": s.types, "user": s.user, "path_prefix": s.path_prefix,
                        "delivered": s.delivered, "backlog": s.backlog,
                        "oldest_undelivered_secs": s.oldest_undelivered_secs,
                        "last_error": s.last_error, "failures": s.failures,
                        "delivered_at_ms": s.delivered_at_ms,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{}\t{}\t{state}\tdelivered={}\tbacklog={}\toldest_undelivered={}s\tlast_error={}",
                        s.name,
                        s.target,
                        s.delivered,
                        s.backlog,
                        s.oldest_undelivered_secs,
                        if s.last_error.is_empty() { "-" } else { &s.last_error }
                    );
                }
            }
        }
        SinkCommand::Remove { name, target } => {
            let admin = connect(&target).await?;
            expect_done(
                admin
                    .write(Command::RemoveSink { name: name.clone() })
                    .await?,
                &format!("event sink {name}"),
            )?;
            println!("event sink {name} removed");
        }
    }
    Ok(())
}

/// Prints events after `from` (default: the last one recorded) as JSON lines;
/// with `follow`, keeps asking for new ones.
async fn tail(
    admin: &wharf_cluster::admin_client::AdminClient,
    from: Option<u64>,
    follow: bool,
) -> Result<()> {
    let mut after = match from {
        Some(id) => id,
        None => admin.events(u64::MAX, 1).await?.last_event,
    };
    loop {
        let page = admin.events(after, TAIL_PAGE).await?;
        let got = page.events.len();
        for event in page.events {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&event) {
                let id = value.get("id").and_then(serde_json::Value::as_u64);
                after = after.max(id.unwrap_or(after));
            }
            println!("{event}");
        }
        if got < TAIL_PAGE as usize {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(TAIL_POLL).await;
        }
    }
}
