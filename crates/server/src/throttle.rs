//! Per-transfer bandwidth limit (vsftpd's `local_max_rate`).

use std::time::{Duration, Instant};

pub struct Throttle {
    bytes_per_sec: u64,
    started: Instant,
    sent: u64,
}

impl Throttle {
    /// `0` means unlimited.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec,
            started: Instant::now(),
            sent: 0,
        }
    }

    /// Accounts for `n` bytes and sleeps until the average rate since the start
    /// is back under the limit.
    pub async fn consume(&mut self, n: usize) {
        if self.bytes_per_sec == 0 {
            return;
        }
        self.sent += n as u64;
        let due = Duration::from_secs_f64(self.sent as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limited_transfer_takes_at_least_size_over_rate() {
        let mut t = Throttle::new(1000);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            t.consume(500).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(4900));
    }
}
