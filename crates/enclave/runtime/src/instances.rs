//! The sandbox's instance slots, shared by training jobs and predictions.
//!
//! The sandbox keeps a fixed pool of instance slots (`--instances`, each resident at its
//! memory cap). Without a line to wait in, the request that found every slot taken failed;
//! here predictions wait their turn, in arrival order, up to a bounded number of waiters —
//! past that a request is refused at once, before it is counted, with a clean "retry later".
//! A training job waits for its slot as long as it takes (a prediction holds one only while
//! its trainer runs), so a job never fails because predictions were in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Predictions that may wait for a slot at once, per slot.
pub const WAITING_PER_SLOT: usize = 128;

/// The pool's slots and the line in front of them.
pub struct InstanceSlots {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// One slot, taken until dropped.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// A prediction's place in line: it counts as waiting until it gets its slot or is dropped.
pub struct Ticket {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// The line is full: the request is refused before anything is counted or computed.
#[derive(Debug, PartialEq, Eq)]
pub struct LineFull;

impl InstanceSlots {
    /// `slots` slots (the sandbox's `max_instances`), with up to `slots ×`
    /// [`WAITING_PER_SLOT`] predictions waiting.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: slots.saturating_mul(WAITING_PER_SLOT),
        }
    }

    /// A place in line for a prediction, or [`LineFull`].
    pub fn line_up(&self) -> Result<Ticket, LineFull> {
        let max = self.max_waiting;
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < max).then_some(w + 1)
            })
            .map_err(|_| LineFull)?;
        Ok(Ticket {
            slots: self.slots.clone(),
            waiting: self.waiting.clone(),
        })
    }

    /// A slot for a training job, whenever one is free.
    pub async fn for_training(&self) -> Option<Slot> {
        self.slots.clone().acquire_owned().await.ok().map(Slot)
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }

    /// Predictions waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

impl Ticket {
    /// The slot, once free, if that is before `until` (or whenever, without `until`).
    pub async fn slot(self, until: Option<Instant>) -> Option<Slot> {
        let acquire = self.slots.clone().acquire_owned();
        let permit = match until {
            Some(until) => tokio::time::timeout_at(until, acquire).await.ok()?,
            None => acquire.await,
        };
        permit.ok().map(Slot)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn predictions_wait_in_line_for_a_free_slot() {
        let pool = InstanceSlots::new(1);
        let held = pool.line_up().unwrap().slot(None).await.unwrap();
        assert_eq!(pool.free(), 0);
        let ticket = pool.line_up().unwrap();
        assert_eq!(pool.waiting(), 1);
        let waiter = tokio::spawn(ticket.slot(Some(Instant::now() + Duration::from_secs(5))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "got a slot while none was free");
        drop(held);
        assert!(waiter.await.unwrap().is_some());
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn a_full_line_refuses_and_a_late_slot_is_none() {
        let pool = InstanceSlots::new(1);
        let _held = pool.line_up().unwrap().slot(None).await.unwrap();
        let tickets: Vec<_> = (0..WAITING_PER_SLOT)
            .map(|_| pool.line_up().unwrap())
            .collect();
        assert_eq!(pool.line_up().err(), Some(LineFull));
        drop(tickets);
        let late = pool.line_up().unwrap();
        let got = late
            .slot(Some(Instant::now() + Duration::from_millis(20)))
            .await;
        assert!(got.is_none());
        assert_eq!(pool.waiting(), 0);
    }
}
