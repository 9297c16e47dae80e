//! The agent's memory of recent flows: a fixed-capacity ring addressed by sequence number.
//! One writer (the monitor thread) appends batches; readers copy ranges out under a short lock
//! and do their filtering and encoding outside it. Followers wait on a `Notify`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::flows::StoredFlow;

/// The largest capacity Cilium allows for Hubble's flow ring (2^16 - 1; Hubble's default is
/// 4095): an agent keeps minutes of a busy node's flows, the relay longer history.
pub const DEFAULT_MAX_FLOWS: usize = 65_535;

struct Ring {
    buf: Vec<StoredFlow>,
    cap: usize,
    /// Sequence number the next flow gets; the oldest stored is `next_seq - buf.len()`.
    next_seq: u64,
    /// Flows per wall-clock second over the last minute: (unix second, count).
    rate: [(u64, u64); 60],
}

pub struct FlowStore {
    ring: Mutex<Ring>,
    notify: Notify,
    seen: AtomicU64,
    started: Instant,
}

impl FlowStore {
    pub fn new(max_flows: usize) -> FlowStore {
        let cap = max_flows.max(1);
        FlowStore {
            ring: Mutex::new(Ring {
                buf: Vec::with_capacity(cap),
                cap,
                next_seq: 0,
                rate: [(0, 0); 60],
            }),
            notify: Notify::new(),
            seen: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().expect("flow store lock poisoned")
    }

    /// Appends flows (their `seq` is assigned here) and wakes followers.
    pub fn push_batch(&self, flows: &mut Vec<StoredFlow>) {
        if flows.is_empty() {
            return;
        }
        let n = flows.len() as u64;
        let now_sec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        {
            let mut ring = self.lock();
            for mut flow in flows.drain(..) {
                flow.seq = ring.next_seq;
                let cap = ring.cap;
                if ring.buf.len() < cap {
                    ring.buf.push(flow);
                } else {
                    let slot = (ring.next_seq % cap as u64) as usize;
                    ring.buf[slot] = flow;
                }
                ring.next_seq += 1;
            }
            let bucket = &mut ring.rate[(now_sec % 60) as usize];
            if bucket.0 != now_sec {
                *bucket = (now_sec, 0);
            }
            bucket.1 += n;
        }
        self.seen.fetch_add(n, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// (oldest stored sequence number, next sequence number).
    pub fn bounds(&self) -> (u64, u64) {
        let ring = self.lock();
        (ring.next_seq - ring.buf.len() as u64, ring.next_seq)
    }

    /// Up to `max` flows starting at `from` (clamped to the oldest stored), oldest first.
    pub fn read_forward(&self, from: u64, max: usize) -> Vec<StoredFlow> {
        let ring = self.lock();
        let oldest = ring.next_seq - ring.buf.len() as u64;
        let start = from.max(oldest);
        let end = ring.next_seq.min(start.saturating_add(max as u64));
        (start..end)
            .map(|seq| ring.buf[(seq % ring.cap as u64) as usize].clone())
            .collect()
    }

    /// Up to `max` flows before `before` (exclusive), newest first.
    pub fn read_backward(&self, before: u64, max: usize) -> Vec<StoredFlow> {
        let ring = self.lock();
        let oldest = ring.next_seq - ring.buf.len() as u64;
        let end = before.min(ring.next_seq);
        let start = end.saturating_sub(max as u64).max(oldest);
        (start..end)
            .rev()
            .map(|seq| ring.buf[(seq % ring.cap as u64) as usize].clone())
            .collect()
    }

    /// Resolves once a flow with sequence number `>= seq` exists.
    pub async fn wait_for(&self, seq: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().next_seq > seq {
                return;
            }
            notified.await;
        }
    }

    /// Wakes every follower (shutdown).
    pub fn wake_all(&self) {
        self.notify.notify_waiters();
    }

    pub fn num_flows(&self) -> u64 {
        self.lock().buf.len() as u64
    }

    pub fn max_flows(&self) -> u64 {
        self.lock().cap as u64
    }

    pub fn seen_flows(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    pub fn uptime_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Approximate flows per second over the last minute.
    pub fn flows_rate(&self) -> f64 {
        let now_sec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let ring = self.lock();
        let total: u64 = ring
            .rate
            .iter()
            .filter(|(sec, _)| *sec + 60 > now_sec && *sec <= now_sec)
            .map(|(_, n)| n)
            .sum();
        let window = (self.started.elapsed().as_secs_f64()).clamp(1.0, 60.0);
        total as f64 / window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn flow(t: i64) -> StoredFlow {
        StoredFlow {
            seq: 0,
            time_unix_ns: t,
            event: Default::default(),
            src: None,
            dst: None,
            interface: None,
            policies: None,
            node: Default::default(),
            l7: None,
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_reads_both_ways() {
        let store = FlowStore::new(4);
        let mut batch: Vec<_> = (0..6).map(flow).collect();
        store.push_batch(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(store.bounds(), (2, 6));
        assert_eq!(
            (store.num_flows(), store.max_flows(), store.seen_flows()),
            (4, 4, 6)
        );
        let fwd: Vec<_> = store
            .read_forward(0, 10)
            .iter()
            .map(|f| (f.seq, f.time_unix_ns))
            .collect();
        assert_eq!(fwd, vec![(2, 2), (3, 3), (4, 4), (5, 5)]);
        let back: Vec<_> = store
            .read_backward(u64::MAX, 3)
            .iter()
            .map(|f| f.seq)
            .collect();
        assert_eq!(back, vec![5, 4, 3]);
        let back: Vec<_> = store.read_backward(4, 10).iter().map(|f| f.seq).collect();
        assert_eq!(back, vec![3, 2]);
    }

    #[tokio::test]
    async fn followers_wake_on_new_flows() {
        let store = Arc::new(FlowStore::new(8));
        let s = store.clone();
        let waiter = tokio::spawn(async move {
            s.wait_for(0).await;
            s.read_forward(0, 8).len()
        });
        tokio::task::yield_now().await;
        store.push_batch(&mut vec![flow(1)]);
        assert_eq!(waiter.await.unwrap(), 1);
    }
}
