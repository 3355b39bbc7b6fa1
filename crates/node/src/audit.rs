//! The audit log: one JSON object per line for every login, ban, admin action
//! and certificate change, apart from the operational log. Events are
//! `tracing` events with the target `audit`, wherever they happen (the engine
//! logs logins and bans, the cluster admin actions, the leader certificate
//! renewals); this layer copies them to a file only the service user reads.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::error::NodeError;

/// The `tracing` target of audit events.
pub const TARGET: &str = "audit";

/// A layer writing audit events to `path` (appended, created 0600).
pub fn layer<S>(path: &Path) -> Result<impl Layer<S>, NodeError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(NodeError::file(
            "cannot create the audit log's directory",
            dir,
        ))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(NodeError::file("cannot open the audit log", path))?;
    // The file is unbuffered and each event is formatted whole, then written
    // in one call: a line survives a crash right after its event.
    Ok(tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .with_filter(filter_fn(|meta| meta.target() == TARGET)))
}
