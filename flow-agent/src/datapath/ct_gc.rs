//! Connection-tracking garbage collection: deletes entries whose lifetime ran out. The datapath
//! already ignores expired entries; this gives their memory back before LRU eviction would.

use nix::time::{ClockId, clock_gettime};

use super::{DatapathError, MapWriter};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtGcStats {
    pub scanned: usize,
    pub deleted: usize,
}

/// Nanoseconds on the clock of event timestamps (`bpf_ktime_get_boot_ns`).
pub fn boot_time_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// One pass over `weir_ct`, deleting entries that expired before `now_jiffies`.
pub fn collect_garbage(
    writer: &mut MapWriter,
    now_jiffies: u64,
) -> Result<CtGcStats, DatapathError> {
    let now = now_jiffies;
    let ct = writer.ct();
    let mut stats = CtGcStats::default();
    let mut expired = Vec::new();
    for item in ct.iter() {
        // Entries may vanish (LRU) while we iterate: skip those.
        let Ok((key, entry)) = item else { continue };
        stats.scanned += 1;
        if entry.expires <= now {
            expired.push(key);
        }
    }
    for key in expired {
        if ct.remove(&key).is_ok() {
            stats.deleted += 1;
        }
    }
    Ok(stats)
}
