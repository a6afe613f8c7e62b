//! The group-commit queue: requests wait here for the one writer, and [`Queue::next_batch`]
//! hands it everything that is waiting as one batch, so one checkpoint and one fsync cover them
//! all. It knows nothing of sealing: a batch is bounded by [`CommitPolicy`] and by each job's
//! weight (the entries it will become), and what a job means is the appender's business.
//!
//! Under load, requests that arrive while one batch is being sealed and fsync'd form the next
//! batch; `max_delay` lets a lightly loaded server wait briefly for company instead.

use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How the appender forms group commits.
#[derive(Clone, Copy, Debug)]
pub struct CommitPolicy {
    /// At most this many entries per commit (a single job heavier than this is a batch alone).
    pub max_entries: usize,
    /// After the first request of a batch arrives, wait at most this long for more before
    /// committing. Zero commits as soon as the queue is momentarily empty; under load, requests
    /// that arrive during one fsync form the next batch either way.
    pub max_delay: Duration,
}

impl CommitPolicy {
    /// Entries per commit at most, unless configured.
    pub const DEFAULT_MAX_ENTRIES: usize = 1024;
}

impl Default for CommitPolicy {
    fn default() -> CommitPolicy {
        CommitPolicy {
            max_entries: CommitPolicy::DEFAULT_MAX_ENTRIES,
            max_delay: Duration::ZERO,
        }
    }
}

/// The writer's end of the queue.
pub struct Queue<J> {
    rx: mpsc::Receiver<J>,
    policy: CommitPolicy,
    weight: fn(&J) -> usize,
    /// Waiting with a timeout needs a tokio timer, and the writer is a plain thread: a timer
    /// made outside a runtime panics ("no reactor running").
    timer: tokio::runtime::Runtime,
}

/// A queue holding up to four batches' worth of jobs (senders wait beyond that) and the handle
/// requests send on. `weight` is how many entries a job becomes.
pub fn channel<J>(policy: CommitPolicy, weight: fn(&J) -> usize) -> (mpsc::Sender<J>, Queue<J>) {
    let (tx, rx) = mpsc::channel(policy.max_entries.max(1) * 4);
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a timer runtime");
    let queue = Queue {
        rx,
        policy,
        weight,
        timer,
    };
    (tx, queue)
}

impl<J> Queue<J> {
    /// Blocks until a job arrives, then gathers what else is waiting (or arrives within
    /// `max_delay`) up to `max_entries`. `None` once every sender is gone and the queue is
    /// drained: the writer's cue to stop.
    pub fn next_batch(&mut self) -> Option<Vec<J>> {
        let first = self.rx.blocking_recv()?;
        let mut entries = (self.weight)(&first);
        let mut batch = vec![first];
        let deadline = Instant::now() + self.policy.max_delay;
        while entries < self.policy.max_entries {
            let Some(job) = self.next_before(deadline) else {
                break;
            };
            entries += (self.weight)(&job);
            batch.push(job);
        }
        Some(batch)
    }

    /// A job already waiting, or one arriving before `deadline`.
    fn next_before(&mut self, deadline: Instant) -> Option<J> {
        match self.rx.try_recv() {
            Ok(job) => Some(job),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let rx = &mut self.rx;
                self.timer
                    .block_on(async { tokio::time::timeout(left, rx.recv()).await })
                    .ok()
                    .flatten()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_entries: usize, max_delay: Duration) -> CommitPolicy {
        CommitPolicy {
            max_entries,
            max_delay,
        }
    }

    #[test]
    fn everything_waiting_is_one_batch() {
        let (tx, mut queue) = channel(policy(100, Duration::ZERO), |_: &u32| 1);
        for job in 0..7 {
            tx.try_send(job).unwrap();
        }
        assert_eq!(queue.next_batch().unwrap(), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_stops_at_max_entries_and_the_rest_waits_in_order() {
        let (tx, mut queue) = channel(policy(3, Duration::ZERO), |_: &u32| 1);
        for job in 0..7 {
            tx.try_send(job).unwrap();
        }
        assert_eq!(queue.next_batch().unwrap(), vec![0, 1, 2]);
        assert_eq!(queue.next_batch().unwrap(), vec![3, 4, 5]);
        assert_eq!(queue.next_batch().unwrap(), vec![6]);
    }

    #[test]
    fn weights_count_toward_max_entries_and_a_heavy_job_goes_alone() {
        // A job's weight is its value: 5 entries then 1 fill a batch of 6; 10 is over the
        // limit on its own and still goes, alone.
        let (tx, mut queue) = channel(policy(6, Duration::ZERO), |j: &usize| *j);
        for job in [5, 1, 10, 2] {
            tx.try_send(job).unwrap();
        }
        assert_eq!(queue.next_batch().unwrap(), vec![5, 1]);
        assert_eq!(queue.next_batch().unwrap(), vec![10]);
        assert_eq!(queue.next_batch().unwrap(), vec![2]);
    }

    #[test]
    fn with_a_delay_a_later_job_joins_the_batch() {
        // A long delay and room for two: the batch closes when the second job arrives, however
        // late the sender is (no timing is asserted).
        let (tx, mut queue) = channel(policy(2, Duration::from_secs(600)), |_: &u32| 1);
        tx.try_send(1).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::yield_now();
            tx.blocking_send(2).unwrap();
        });
        assert_eq!(queue.next_batch().unwrap(), vec![1, 2]);
        sender.join().unwrap();
    }

    #[test]
    fn the_queue_drains_then_ends_when_every_sender_is_gone() {
        let (tx, mut queue) = channel(policy(2, Duration::from_secs(600)), |_: &u32| 1);
        tx.try_send(1).unwrap();
        drop(tx);
        // The delay is not waited out: with no sender left, nothing more can come.
        assert_eq!(queue.next_batch().unwrap(), vec![1]);
        assert_eq!(queue.next_batch(), None);
    }
}
