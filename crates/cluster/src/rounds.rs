//! Shared rounds: many callers asking the same question at once (what is the
//! read index? is this node still the leader?) share one round of asking
//! instead of each paying for its own network round trip.
//!
//! A caller may only take the answer of a round that *started after it
//! arrived*: a read-index confirmed before a login began does not cover the
//! writes committed between that confirmation and the login. So a caller
//! that arrives while a round is under way waits for the next one, which
//! serves everybody who arrived during the previous one. With rounds of
//! length `t`, a caller waits at most about `2t`, and the number of rounds
//! no longer grows with the number of callers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub struct SharedRounds<T> {
    /// One round at a time; its waiters queue here (tokio's lock is fair).
    gate: tokio::sync::Mutex<()>,
    /// Rounds started so far; a round's number is the count once it started.
    started: AtomicU64,
    /// The last finished round: its number and its answer.
    last: Mutex<Option<(u64, T)>>,
}

impl<T: Clone> Default for SharedRounds<T> {
    fn default() -> Self {
        Self {
            gate: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }
}

impl<T: Clone> SharedRounds<T> {
    /// The answer of a round that started after this call: one already
    /// finished by the time this caller's turn comes, or `round`, run now.
    /// Dropped half-way, the round is abandoned and the next caller runs its
    /// own.
    pub async fn ask<F, Fut>(&self, round: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let arrived = self.started.load(Ordering::SeqCst);
        let _turn = self.gate.lock().await;
        if let Some((number, answer)) = self.last_answer() {
            if number > arrived {
                return answer;
            }
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = round().await;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((number, answer.clone()));
        answer
    }

    fn last_answer(&self) -> Option<(u64, T)> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A round that counts how often it ran and answers with its own number,
    /// after a pause long enough for other callers to arrive meanwhile.
    async fn counted(runs: &AtomicUsize) -> usize {
        let number = runs.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        number
    }

    /// One caller asking in a task of its own.
    fn spawn_ask(
        rounds: &Arc<SharedRounds<usize>>,
        runs: &Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<usize> {
        let (rounds, runs) = (rounds.clone(), runs.clone());
        tokio::spawn(async move { rounds.ask(|| counted(&runs)).await })
    }

    #[tokio::test]
    async fn callers_arriving_during_a_round_share_the_next_one() {
        let rounds = Arc::new(SharedRounds::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let first = spawn_ask(&rounds, &runs);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let during: Vec<_> = (0..20).map(|_| spawn_ask(&rounds, &runs)).collect();
        assert_eq!(first.await.unwrap(), 1);
        for caller in during {
            assert_eq!(
                caller.await.unwrap(),
                2,
                "a caller that arrived during round 1 must not take its answer"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "21 callers, 2 rounds");
    }

    #[tokio::test]
    async fn a_caller_after_a_finished_round_runs_a_new_one() {
        let rounds = SharedRounds::default();
        let runs = AtomicUsize::new(0);
        assert_eq!(rounds.ask(|| counted(&runs)).await, 1);
        assert_eq!(rounds.ask(|| counted(&runs)).await, 2);
    }

    #[tokio::test]
    async fn an_abandoned_round_leaves_the_next_caller_to_run_its_own() {
        let rounds = Arc::new(SharedRounds::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let abandoned = spawn_ask(&rounds, &runs);
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(rounds.ask(|| counted(&runs)).await, 2);
    }
}
