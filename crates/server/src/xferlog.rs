//! The transfer log: one xferlog-format line per transfer (what log analysers
//! such as those shipped with wu-ftpd, ProFTPD and vsftpd read) and the same
//! facts as a structured tracing event.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

pub struct TransferRecord<'a> {
    pub peer: IpAddr,
    pub user: &'a str,
    pub path: &'a str,
    pub bytes: u64,
    pub duration: Duration,
    pub direction: Direction,
    pub ascii: bool,
    pub complete: bool,
}

impl TransferRecord<'_> {
    /// `current-time transfer-time remote-host bytes filename type flag direction
    /// access-mode user service auth-method auth-user-id status`.
    pub fn xferlog_line(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let name: String = self
            .path
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        format!(
            "{} {} {} {} {} {} _ {} r {} ftp 0 * {}\n",
            now.format("%a %b %e %H:%M:%S %Y"),
            self.duration.as_secs().max(1),
            self.peer,
            self.bytes,
            name,
            if self.ascii { 'a' } else { 'b' },
            match self.direction {
                Direction::Incoming => 'i',
                Direction::Outgoing => 'o',
            },
            self.user,
            if self.complete { 'c' } else { 'i' },
        )
    }
}

pub struct TransferLog {
    file: Option<Mutex<tokio::fs::File>>,
}

impl TransferLog {
    pub async fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .await?,
            )),
            None => None,
        };
        Ok(Self { file })
    }

    pub async fn record(&self, r: &TransferRecord<'_>) {
        tracing::info!(
            target: "wharf::transfer",
            peer = %r.peer, user = r.user, path = r.path, bytes = r.bytes,
            millis = r.duration.as_millis() as u64,
            direction = ?r.direction, complete = r.complete,
            "transfer {}", if r.complete { "completed" } else { "incomplete" }
        );
        if let Some(file) = &self.file {
            let line = r.xferlog_line(chrono::Utc::now());
            if let Err(e) = file.lock().await.write_all(line.as_bytes()).await {
                tracing::warn!("cannot append to the transfer log: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn xferlog_line_has_the_fourteen_classic_fields() {
        let r = TransferRecord {
            peer: "192.0.2.1".parse().unwrap(),
            user: "alice",
            path: "/in/my file.csv",
            bytes: 1234,
            duration: Duration::from_secs(3),
            direction: Direction::Incoming,
            ascii: false,
            complete: true,
        };
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 4, 5, 6).unwrap();
        assert_eq!(
            r.xferlog_line(now),
            "Sun Nov  1 04:05:06 2026 3 192.0.2.1 1234 /in/my_file.csv b _ i r alice ftp 0 * c\n"
        );
    }
}
