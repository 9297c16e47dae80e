//! The datapath's clock: connection tracking and event aggregation count jiffies (cheap in the
//! kernel, see `weir_runtime_config` in probes/include/weir/abi.h). This reads jiffies through
//! a tiny BPF program and measures the kernel's HZ, so durations can be converted.

use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::Array;
use aya::programs::SchedClassifier;

use super::DatapathError;
use crate::testrun;

/// Tick rates Linux is built with.
const KNOWN_HZ: [u64; 5] = [100, 250, 300, 1000, 1024];
const MEASURE_FOR: Duration = Duration::from_millis(200);

pub struct KernelClock {
    ebpf: Ebpf,
    hz: u64,
}

impl KernelClock {
    /// Loads the clock program and measures HZ (takes about 200 ms).
    pub fn new() -> Result<KernelClock, DatapathError> {
        let mut ebpf =
            Ebpf::load(weir_probes::BPF_EMPTY).map_err(|e| DatapathError::Load(Box::new(e)))?;
        program(&mut ebpf)?
            .load()
            .map_err(|e| DatapathError::Program {
                name: "read_jiffies",
                source: Box::new(e),
            })?;
        let mut clock = KernelClock { ebpf, hz: 0 };
        let (j0, t0) = (clock.jiffies()?, Instant::now());
        std::thread::sleep(MEASURE_FOR);
        let (j1, t1) = (clock.jiffies()?, Instant::now());
        let measured = (j1.wrapping_sub(j0)) as f64 / (t1 - t0).as_secs_f64();
        clock.hz = KNOWN_HZ
            .iter()
            .copied()
            .min_by(|a, b| {
                (*a as f64 - measured)
                    .abs()
                    .total_cmp(&(*b as f64 - measured).abs())
            })
            .unwrap_or(250);
        tracing::debug!(measured, hz = clock.hz, "kernel tick rate");
        Ok(clock)
    }

    /// The kernel's jiffies now.
    pub fn jiffies(&mut self) -> Result<u64, DatapathError> {
        let frame = [0u8; 64];
        testrun::run(program(&mut self.ebpf)?, &frame, 0, 1).map_err(|e| {
            DatapathError::Program {
                name: "read_jiffies",
                source: Box::new(e),
            }
        })?;
        let name = "weir_jiffies";
        let map: Array<_, u64> = Array::try_from(
            self.ebpf
                .map(name)
                .ok_or(DatapathError::MissingMap { name })?,
        )
        .map_err(|e| DatapathError::Map {
            name,
            source: Box::new(e),
        })?;
        map.get(&0, 0).map_err(|e| DatapathError::Map {
            name,
            source: Box::new(e),
        })
    }

    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// A duration in jiffies, rounded up (0 stays 0).
    pub fn to_jiffies(&self, d: Duration) -> u64 {
        let ticks = d.as_nanos() * u128::from(self.hz);
        ticks.div_ceil(1_000_000_000).min(u128::from(u64::MAX)) as u64
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, DatapathError> {
    let not_found = || DatapathError::Program {
        name: "read_jiffies",
        source: Box::new(aya::programs::ProgramError::NotLoaded),
    };
    ebpf.program_mut("read_jiffies")
        .ok_or_else(not_found)?
        .try_into()
        .map_err(|e| DatapathError::Program {
            name: "read_jiffies",
            source: Box::new(e),
        })
}
