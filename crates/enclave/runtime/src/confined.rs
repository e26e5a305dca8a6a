//! Threads for confined predictions, kept and reused.
//!
//! A confined prediction runs its engine operations inline on one thread at nice 15 (see
//! `resources` and [`chiron_engine::on_this_thread`]). Joining a one-thread rayon pool is for
//! good, and rayon leaves the pool's state behind when such a thread exits — measured with
//! heaptrack at several KB per prediction when every prediction had a thread of its own (RSS
//! grew without bound under load). So each thread here joins its pool once, then serves one
//! prediction after another; a thread idle for [`IDLE_EXIT`] ends, so a burst's threads do not
//! stay forever. How many threads there are follows from how many predictions were in flight
//! at once, which the host sees from the requests anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::resources::{TRAINER_STACK_BYTES, lower_job_thread_priority};

/// How long a thread waits for its next prediction before it ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(60);

/// One prediction's work, run on a confined thread.
pub type Work = Box<dyn FnOnce() + Send>;

/// The idle confined threads, each with the sender of its own queue.
#[derive(Default)]
pub struct ConfinedThreads {
    idle: Mutex<Vec<(u64, Sender<Work>)>>,
    next_id: AtomicU64,
}

impl ConfinedThreads {
    /// Runs `work` on an idle confined thread, or on a new one. `Err` only if no thread could
    /// be started.
    pub fn run(self: &Arc<Self>, mut work: Work) -> std::io::Result<()> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut i| i.pop());
            let Some((_, sender)) = idle else {
                return self.start(work);
            };
            match sender.send(work) {
                Ok(()) => return Ok(()),
                // That thread has just ended; try the next.
                Err(mpsc::SendError(back)) => work = back,
            }
        }
    }

    /// Threads idle now.
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    fn start(self: &Arc<Self>, first: Work) -> std::io::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, queue) = mpsc::channel::<Work>();
        let threads = self.clone();
        std::thread::Builder::new()
            .name("chiron-predict".into())
            // A trainer's stack: the guest runs on it.
            .stack_size(TRAINER_STACK_BYTES)
            .spawn(move || {
                lower_job_thread_priority();
                chiron_engine::on_this_thread(|| {
                    first();
                    threads.serve(id, &sender, &queue);
                });
            })?;
        Ok(())
    }

    /// Offers this thread for more work until it has been idle for [`IDLE_EXIT`].
    fn serve(&self, id: u64, sender: &Sender<Work>, queue: &mpsc::Receiver<Work>) {
        loop {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push((id, sender.clone()));
            }
            loop {
                match queue.recv_timeout(IDLE_EXIT) {
                    Ok(work) => {
                        work();
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        let mut idle = match self.idle.lock() {
                            Ok(i) => i,
                            Err(_) => return,
                        };
                        if let Some(at) = idle.iter().position(|(i, _)| *i == id) {
                            idle.remove(at);
                            return;
                        }
                        // Taken from the list just now: its work is on the way.
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_thread_serves_one_prediction_after_another() {
        let threads = Arc::new(ConfinedThreads::default());
        let (tx, rx) = mpsc::channel();
        let mut ids = std::collections::HashSet::new();
        for _ in 0..20 {
            let tx = tx.clone();
            threads
                .run(Box::new(move || {
                    tx.send(std::thread::current().id()).unwrap();
                }))
                .unwrap();
            ids.insert(rx.recv().unwrap());
            // Until the thread has offered itself again.
            while threads.idle() == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(ids.len(), 1, "one thread served them all");
    }

    #[test]
    fn concurrent_predictions_get_threads_of_their_own() {
        let threads = Arc::new(ConfinedThreads::default());
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            threads
                .run(Box::new(move || {
                    barrier.wait();
                    tx.send(std::thread::current().id()).unwrap();
                }))
                .unwrap();
        }
        // All three wait at the barrier at once: each has a thread.
        barrier.wait();
        let ids: std::collections::HashSet<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(ids.len(), 3);
    }
}
