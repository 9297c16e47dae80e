//! The monitor: one thread that drains the datapath's ring buffer, decodes each record, enriches
//! it and appends it to the flow store in batches. It also polls the kernel's lost-event
//! counter so drops of events are reported, never silent.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aya::maps::{MapData, RingBuf};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weir_probes::abi::{self, FlowEvent};

use crate::datapath::boot_time_ns;
use crate::flows::EnrichmentHandle;
use crate::l7::HttpJoin;
use crate::store::FlowStore;

/// The datapath wakes the monitor only once 32 KiB of events are queued (1/32 of a ring
/// smaller than 1 MiB; `WAKE_BYTES` in `datapath/mod.rs`); otherwise the monitor finds the
/// events within this many milliseconds.
const POLL_MS: u16 = 100;

/// Flows are handed to the store in batches of at most this many.
const BATCH: usize = 1024;

/// Counters of the monitor, shared with the server.
#[derive(Debug, Default)]
pub struct MonitorStats {
    /// Records that could not be decoded (unknown type or version, truncated).
    pub decode_errors: AtomicU64,
    /// Events the kernel could not queue (ring buffer full), as last read from `weir_lost`.
    pub kernel_lost: AtomicU64,
    pub events: AtomicU64,
}

impl MonitorStats {
    /// Events that never became flows: lost in the kernel (ring buffer full) or undecodable.
    /// Reported as ServerStatus `num_lost_events`.
    pub fn lost_events(&self) -> u64 {
        self.kernel_lost.load(Ordering::Relaxed) + self.decode_errors.load(Ordering::Relaxed)
    }
}

/// Converts the datapath's boot-time stamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime - boottime, in nanoseconds.
    offset_ns: i64,
}

impl Clock {
    pub fn now() -> Clock {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Clock {
            offset_ns: real - boot_time_ns() as i64,
        }
    }
    pub fn to_unix_ns(self, boot_ns: u64) -> i64 {
        boot_ns as i64 + self.offset_ns
    }
}

/// Reads `lost` (the kernel's lost-event counter) periodically.
pub type LostCounter = Box<dyn FnMut() -> Option<u64> + Send>;

/// Drains the ring buffer until `stop` is set.
pub fn spawn(
    mut ring: RingBuf<MapData>,
    enrichment: Arc<EnrichmentHandle>,
    store: Arc<FlowStore>,
    stats: Arc<MonitorStats>,
    mut lost: LostCounter,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-monitor".into())
        .spawn(move || {
            let mut clock = Clock::now();
            let mut clock_at = Instant::now();
            let mut batch = Vec::with_capacity(BATCH);
            let mut http = HttpJoin::new();
            while !stop.load(Ordering::Relaxed) {
                let ready = {
                    let mut fds = [PollFd::new(ring.as_fd(), PollFlags::POLLIN)];
                    poll(&mut fds, PollTimeout::from(POLL_MS))
                };
                if let Err(e) = ready
                    && e != nix::errno::Errno::EINTR
                {
                    tracing::error!(error = %e, "polling the event ring buffer failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
                if clock_at.elapsed() >= Duration::from_secs(1) {
                    clock = Clock::now();
                    clock_at = Instant::now();
                    if let Some(n) = lost() {
                        stats.kernel_lost.store(n, Ordering::Relaxed);
                    }
                }
                drain(
                    &mut ring,
                    &enrichment,
                    &store,
                    &stats,
                    clock,
                    &mut batch,
                    &mut http,
                );
            }
            drain(
                &mut ring,
                &enrichment,
                &store,
                &stats,
                clock,
                &mut batch,
                &mut http,
            );
        })
}

/// Reads every record currently in the ring buffer into the store. Returns how many.
#[allow(clippy::too_many_arguments)]
pub fn drain(
    ring: &mut RingBuf<MapData>,
    enrichment: &EnrichmentHandle,
    store: &FlowStore,
    stats: &MonitorStats,
    clock: Clock,
    batch: &mut Vec<crate::flows::StoredFlow>,
    http: &mut HttpJoin,
) -> usize {
    let enrich = enrichment.load();
    let mut n = 0;
    while let Some(item) = ring.next() {
        let decoded = if item.first() == Some(&abi::EVENT_L7) {
            http.record(&item, &enrich, |t| clock.to_unix_ns(t), batch)
        } else {
            FlowEvent::decode(&item).map(|ev| {
                let time = clock.to_unix_ns(ev.ts_boot_ns);
                batch.push(enrich.enrich(ev, time));
            })
        };
        match decoded {
            Ok(()) => n += 1,
            Err(e) => {
                if stats.decode_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(error = %e, "cannot decode a datapath event (further errors are only counted)");
                }
            }
        }
        drop(item);
        if batch.len() >= BATCH {
            store.push_batch(batch);
        }
    }
    store.push_batch(batch);
    stats.events.fetch_add(n as u64, Ordering::Relaxed);
    n
}
