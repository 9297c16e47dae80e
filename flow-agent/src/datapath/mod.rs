//! The kernel side of the agent: loading (or adopting) the endpoint programs and their pinned
//! maps, attaching them to endpoint interfaces with pinned TCX links, and writing policy.
//!
//! Pin layout under the node's bpffs directory (e.g. `/sys/fs/bpf/weir/<node>`):
//!
//! ```text
//! v<ABI>/maps/<map>               every weir_* map (the layout version is in the path)
//! v<ABI>/progs/<program>          from_container and to_container of the running agent
//! links/<ifindex>-ingress         TCX link of from_container on the endpoint's host-side veth
//! links/<ifindex>-egress          TCX link of to_container
//! ```
//!
//! Links outlive the agent: while it is stopped the datapath keeps enforcing the last policy.
//! A restarted agent replaces the program behind each link atomically (`BPF_LINK_UPDATE`).

mod clock;
mod ct_gc;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Map, MapData, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachOptions};
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use weir_probes::abi::{self, RuntimeConfig};

pub use clock::KernelClock;
pub use ct_gc::{CtGcStats, boot_time_ns, collect_garbage};
pub use writer::{ApplyStats, LocalEndpoint, LostEvents, MapWriter};

/// Durations and switches compiled into the programs (`weir_runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// At most one trace per connection and direction per interval (besides SYN/FIN/RST);
    /// zero reports every packet.
    pub trace_interval: Duration,
    /// At most one drop event per flow per interval; zero reports every drop.
    pub drop_interval: Duration,
    pub ct_lifetime_tcp: Duration,
    pub ct_lifetime_syn: Duration,
    pub ct_lifetime_close: Duration,
    pub ct_lifetime_other: Duration,
    pub policy_verdict_events: bool,
}

impl Default for Timing {
    /// Cilium's defaults: 5 s aggregation, 6 h established TCP, 60 s SYN and non-TCP, 10 s close.
    fn default() -> Self {
        Timing {
            trace_interval: Duration::from_secs(5),
            drop_interval: Duration::from_secs(5),
            ct_lifetime_tcp: Duration::from_secs(21_600),
            ct_lifetime_syn: Duration::from_secs(60),
            ct_lifetime_close: Duration::from_secs(10),
            ct_lifetime_other: Duration::from_secs(60),
            policy_verdict_events: true,
        }
    }
}

/// The datapath wakes the agent once this many bytes of events are queued (or 1/32 of a ring
/// smaller than 1 MiB, [`wake_bytes`]); below that the agent finds them at its next poll. A
/// wakeup per event would cost the agent a context switch per event; a large threshold makes
/// each drain long, and a drain holds up whatever it preempts on a busy node: with 256 KiB (1/32
/// of the default 8 MiB ring, the threshold before) a drain is ~1 300 HTTP records, ~0.35 ms at
/// the 270–300 ns per record the datapath benchmark measures, and it set the p99 latency of
/// `scripts/bench-http.sh`'s single connection; 8 KiB doubled the agent's CPU
/// (docs/performance.md). The ring itself stays large, for bursts the agent cannot keep up with
/// at once.
const WAKE_BYTES: u32 = 32 << 10;

/// The wake threshold for a ring of `ring_bytes`.
fn wake_bytes(ring_bytes: u32) -> u32 {
    (ring_bytes / 32).min(WAKE_BYTES)
}

impl Timing {
    fn runtime(&self, clock: &KernelClock, ring_bytes: u32) -> RuntimeConfig {
        RuntimeConfig {
            trace_interval_jiffies: clock.to_jiffies(self.trace_interval),
            drop_interval_jiffies: clock.to_jiffies(self.drop_interval),
            ct_lifetime_tcp_jiffies: clock.to_jiffies(self.ct_lifetime_tcp),
            ct_lifetime_syn_jiffies: clock.to_jiffies(self.ct_lifetime_syn),
            ct_lifetime_close_jiffies: clock.to_jiffies(self.ct_lifetime_close),
            ct_lifetime_other_jiffies: clock.to_jiffies(self.ct_lifetime_other),
            policy_verdict_events: u32::from(self.policy_verdict_events),
            wake_bytes: wake_bytes(ring_bytes),
        }
    }
}

/// How to load the datapath.
#[derive(Debug, Clone)]
pub struct DatapathOptions {
    /// Pin maps and links under this bpffs directory; `None` pins nothing (tests, benchmarks).
    pub pin_dir: Option<PathBuf>,
    pub timing: Timing,
    /// Size of the ring buffer in bytes (a power of two, at least a page).
    pub events_ring_bytes: u32,
    /// Connection-tracking entries (LRU).
    pub ct_max_entries: u32,
    /// Policy entries, both slots together.
    pub policy_max_entries: u32,
    /// Ipcache prefixes, both slots together.
    pub ipcache_max_entries: u32,
}

impl Default for DatapathOptions {
    fn default() -> Self {
        DatapathOptions {
            pin_dir: None,
            timing: Timing::default(),
            events_ring_bytes: 8 << 20,
            ct_max_entries: 262_144,
            policy_max_entries: 131_072,
            ipcache_max_entries: 131_072,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("cannot prepare bpffs directory {path}: {source}")]
    PinDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount bpffs on /sys/fs/bpf: {0}")]
    MountBpffs(#[source] nix::Error),
    #[error(
        "/sys/fs/bpf in this mount namespace is not the host's bpffs: pins made here would \
         vanish with the agent and the datapath would stop enforcing when it stops. \
         Mount bpffs on the host's /sys/fs/bpf and enter only the network namespace (for example \
         `nsenter --net=/run/netns/NAME weir-agent ...`, not `ip netns exec`, which remounts /sys)"
    )]
    PrivateBpffs,
    #[error("the policy needs {count} HTTP rule sets; the datapath holds {max}")]
    HttpSets { count: usize, max: u32 },
    #[error("cannot load the datapath object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("map {name} is missing from the datapath object")]
    MissingMap { name: &'static str },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("interface {ifname}: {source}")]
    Interface {
        ifname: String,
        #[source]
        source: nix::Error,
    },
    #[error("interface {ifname}: cannot attach {program}: {source}")]
    Attach {
        ifname: String,
        program: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot pin program {program} at {path}: {source}")]
    PinProgram {
        program: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("interface {ifname}: cannot pin the link of {program} at {path}: {source}")]
    PinLink {
        ifname: String,
        program: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The hooks of the datapath: two per endpoint, one per node device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// TC ingress of the host-side veth: the endpoint's egress (`from_container`).
    FromContainer,
    /// TC egress of the host-side veth: the endpoint's ingress (`to_container`).
    ToContainer,
    /// TC ingress of a node device (`--devices`): connections from other nodes and the world
    /// to proxied ports of local endpoints (`from_netdev`).
    FromNetdev,
}

impl Hook {
    /// The hooks of an endpoint's interface.
    pub const BOTH: [Hook; 2] = [Hook::FromContainer, Hook::ToContainer];
    pub const ALL: [Hook; 3] = [Hook::FromContainer, Hook::ToContainer, Hook::FromNetdev];

    pub fn program(self) -> &'static str {
        match self {
            Hook::FromContainer => weir_probes::PROG_FROM_CONTAINER,
            Hook::ToContainer => weir_probes::PROG_TO_CONTAINER,
            Hook::FromNetdev => weir_probes::PROG_FROM_NETDEV,
        }
    }

    fn attach_type(self) -> TcAttachType {
        match self {
            Hook::FromContainer | Hook::FromNetdev => TcAttachType::Ingress,
            Hook::ToContainer => TcAttachType::Egress,
        }
    }

    /// The pin name of an interface's link: `<ifindex>-ingress`/`-egress` for endpoints
    /// (`pinned_ifindexes` reads these back), `netdev-<ifindex>` for devices.
    fn pin_name(self, ifindex: u32) -> String {
        match self {
            Hook::FromContainer => format!("{ifindex}-ingress"),
            Hook::ToContainer => format!("{ifindex}-egress"),
            Hook::FromNetdev => format!("netdev-{ifindex}"),
        }
    }
}

/// A link that keeps a program attached: pinned (outlives the agent) or held by this process.
#[derive(Debug)]
enum HeldLink {
    Pinned(#[allow(dead_code)] PinnedLink),
    Owned(#[allow(dead_code)] FdLink),
}

/// How an interface came to be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachOutcome {
    /// New TCX links were created.
    Attached,
    /// Links pinned by an earlier agent now run this agent's programs.
    Adopted,
    /// This agent had already attached the interface.
    Unchanged,
}

/// The loaded datapath.
pub struct Datapath {
    ebpf: Ebpf,
    clock: KernelClock,
    pin_root: Option<PathBuf>,
    /// ifindex → (name, links of both hooks)
    attached: BTreeMap<u32, (String, Vec<HeldLink>)>,
    /// Node devices: ifindex → (name, from_netdev's link)
    devices: BTreeMap<u32, (String, HeldLink)>,
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

impl Datapath {
    /// Loads the endpoint programs. With a pin directory, maps pinned there by an earlier agent
    /// are reused (connections and unread events survive a restart); missing ones are created
    /// and pinned.
    pub fn load(opts: &DatapathOptions) -> Result<Datapath, DatapathError> {
        let clock = KernelClock::new()?;
        let runtime = opts.timing.runtime(&clock, opts.events_ring_bytes);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(weir_probes::RUNTIME_CONFIG_GLOBAL, &runtime, true)
            .map_max_entries(weir_probes::maps::EVENTS, opts.events_ring_bytes)
            .map_max_entries(weir_probes::maps::CT, opts.ct_max_entries)
            .map_max_entries(weir_probes::maps::POLICY, opts.policy_max_entries)
            .map_max_entries(weir_probes::maps::IPCACHE, opts.ipcache_max_entries);
        let map_dir = match &opts.pin_dir {
            Some(root) => {
                ensure_bpffs(root)?;
                let dir = root.join(format!("v{}", abi::ABI_VERSION)).join("maps");
                let progs = root.join(format!("v{}", abi::ABI_VERSION)).join("progs");
                for sub in [dir.clone(), progs, root.join("links")] {
                    std::fs::create_dir_all(&sub)
                        .map_err(|source| DatapathError::PinDir { path: sub, source })?;
                }
                Some(dir)
            }
            None => None,
        };
        if let Some(dir) = &map_dir {
            for name in weir_probes::maps::ALL {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader
            .load(weir_probes::BPF_LXC)
            .map_err(|e| DatapathError::Load(Box::new(e)))?;
        for hook in Hook::ALL {
            let prog = program_mut(&mut ebpf, hook.program())?;
            prog.load().map_err(|e| DatapathError::Program {
                name: hook.program(),
                source: Box::new(e),
            })?;
            if let Some(root) = &opts.pin_dir {
                // Replace the previous agent's pin: its program lives on while links use it.
                let path = root
                    .join(format!("v{}", abi::ABI_VERSION))
                    .join("progs")
                    .join(hook.program());
                let _ = std::fs::remove_file(&path);
                prog.pin(&path)
                    .map_err(|source| DatapathError::PinProgram {
                        program: hook.program(),
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        Ok(Datapath {
            ebpf,
            clock,
            pin_root: opts.pin_dir.clone(),
            attached: BTreeMap::new(),
            devices: BTreeMap::new(),
        })
    }

    /// Takes the maps the agent writes (policy, ipcache, endpoints, config) and CT.
    pub fn take_writer(&mut self) -> Result<MapWriter, DatapathError> {
        MapWriter::new(
            self.take_map(weir_probes::maps::CONFIG)?,
            self.take_map(weir_probes::maps::ENDPOINTS)?,
            self.take_map(weir_probes::maps::IPCACHE)?,
            self.take_map(weir_probes::maps::POLICY)?,
            self.take_map(weir_probes::maps::CT)?,
            self.take_map(weir_probes::maps::HTTP_DFA)?,
            self.take_map(weir_probes::maps::HTTP_SETS)?,
        )
    }

    /// Takes the kernel's lost-event counter.
    pub fn take_lost(&mut self) -> Result<LostEvents, DatapathError> {
        LostEvents::new(self.take_map(weir_probes::maps::LOST)?)
    }

    /// Takes the event ring buffer.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let name = weir_probes::maps::EVENTS;
        RingBuf::try_from(self.take_map(name)?).map_err(|e| DatapathError::Map {
            name,
            source: Box::new(e),
        })
    }

    /// Takes the L7 proxy's listener map (a SOCKMAP).
    pub fn take_proxy_listener(&mut self) -> Result<aya::maps::SockMap<MapData>, DatapathError> {
        let name = weir_probes::maps::PROXY_LISTENER;
        aya::maps::SockMap::try_from(self.take_map(name)?).map_err(|e| DatapathError::Map {
            name,
            source: Box::new(e),
        })
    }

    fn take_map(&mut self, name: &'static str) -> Result<Map, DatapathError> {
        self.ebpf
            .take_map(name)
            .ok_or(DatapathError::MissingMap { name })
    }

    /// The kernel clock connection tracking runs on.
    pub fn clock(&mut self) -> &mut KernelClock {
        &mut self.clock
    }

    /// A program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn program(&mut self, hook: Hook) -> Result<&mut SchedClassifier, DatapathError> {
        program_mut(&mut self.ebpf, hook.program())
    }

    /// Attaches both programs to an interface of the current network namespace, adopting links
    /// an earlier agent pinned for it.
    pub fn attach(&mut self, ifname: &str) -> Result<(u32, AttachOutcome), DatapathError> {
        let ifindex = interface_index(ifname)?;
        if self.attached.contains_key(&ifindex) {
            return Ok((ifindex, AttachOutcome::Unchanged));
        }
        let mut links = Vec::with_capacity(2);
        let mut adopted = false;
        for hook in Hook::BOTH {
            let (held, was_pinned) = self.link(ifname, ifindex, hook)?;
            adopted |= was_pinned;
            links.push(held);
        }
        self.attached.insert(ifindex, (ifname.to_string(), links));
        let outcome = if adopted {
            AttachOutcome::Adopted
        } else {
            AttachOutcome::Attached
        };
        Ok((ifindex, outcome))
    }

    /// Attaches (or adopts) `hook`'s program on an interface; true when a pinned link was
    /// adopted.
    fn link(
        &mut self,
        ifname: &str,
        ifindex: u32,
        hook: Hook,
    ) -> Result<(HeldLink, bool), DatapathError> {
        let pin_path = self.link_pin_path(ifindex, hook);
        let prog = program_mut(&mut self.ebpf, hook.program())?;
        let attach_err = |source: Box<dyn std::error::Error + Send + Sync>| DatapathError::Attach {
            ifname: ifname.to_string(),
            program: hook.program(),
            source,
        };
        let existing = pin_path
            .as_deref()
            .and_then(|p| PinnedLink::from_pin(p).ok());
        if let Some(pinned) = existing {
            // The pin keeps the link alive while its program is replaced in place.
            let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                .map_err(|e| attach_err(e.into()))?;
            let id = prog
                .attach_to_link(link)
                .map_err(|e| attach_err(e.into()))?;
            let link = prog.take_link(id).map_err(|e| attach_err(e.into()))?;
            let held = HeldLink::Owned(FdLink::try_from(link).map_err(|e| attach_err(e.into()))?);
            return Ok((held, true));
        }
        let id = prog
            .attach_with_options(
                ifname,
                hook.attach_type(),
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(|e| attach_err(e.into()))?;
        let link = FdLink::try_from(prog.take_link(id).map_err(|e| attach_err(e.into()))?)
            .map_err(|e| attach_err(e.into()))?;
        let held = match pin_path {
            Some(path) => {
                HeldLink::Pinned(link.pin(&path).map_err(|e| DatapathError::PinLink {
                    ifname: ifname.to_string(),
                    program: hook.program(),
                    path: path.clone(),
                    source: Box::new(e),
                })?)
            }
            None => HeldLink::Owned(link),
        };
        Ok((held, false))
    }

    /// Detaches an interface: removes the pins and closes the links.
    pub fn detach(&mut self, ifindex: u32) {
        for hook in Hook::BOTH {
            if let Some(path) = self.link_pin_path(ifindex, hook) {
                let _ = std::fs::remove_file(path);
            }
        }
        self.attached.remove(&ifindex);
    }

    /// Attaches `from_netdev` to a node device (adopting an earlier agent's pinned link). A
    /// device that was recreated under the same name is attached again.
    pub fn attach_device(&mut self, ifname: &str) -> Result<(u32, AttachOutcome), DatapathError> {
        let ifindex = interface_index(ifname)?;
        if self.devices.contains_key(&ifindex) {
            return Ok((ifindex, AttachOutcome::Unchanged));
        }
        self.forget_device(ifname);
        let (held, adopted) = self.link(ifname, ifindex, Hook::FromNetdev)?;
        self.devices.insert(ifindex, (ifname.to_string(), held));
        let outcome = if adopted {
            AttachOutcome::Adopted
        } else {
            AttachOutcome::Attached
        };
        Ok((ifindex, outcome))
    }

    /// Detaches `from_netdev` from the device this agent attached under `ifname` (one that was
    /// recreated or removed since).
    pub fn forget_device(&mut self, ifname: &str) {
        let stale: Vec<u32> = self
            .devices
            .iter()
            .filter(|(_, (name, _))| name == ifname)
            .map(|(i, _)| *i)
            .collect();
        for i in stale {
            self.detach_device(i);
        }
    }

    /// Detaches `from_netdev` from a device: removes the pin and closes the link.
    pub fn detach_device(&mut self, ifindex: u32) {
        if let Some(path) = self.link_pin_path(ifindex, Hook::FromNetdev) {
            let _ = std::fs::remove_file(path);
        }
        self.devices.remove(&ifindex);
    }

    /// Devices `from_netdev` is attached to, by ifindex.
    pub fn devices(&self) -> impl Iterator<Item = (u32, &str)> {
        self.devices.iter().map(|(i, (n, _))| (*i, n.as_str()))
    }

    /// Ifindexes of devices with pinned `from_netdev` links (from this or an earlier agent).
    pub fn pinned_devices(&self) -> Vec<u32> {
        if self.pin_root.is_none() {
            return self.devices.keys().copied().collect();
        }
        self.pinned_links(|name| name.strip_prefix("netdev-")?.parse().ok())
    }

    /// The ifindexes `ifindex_of` reads from the names of the pinned links, sorted, once each.
    fn pinned_links(&self, ifindex_of: impl Fn(&str) -> Option<u32>) -> Vec<u32> {
        let Some(root) = &self.pin_root else {
            return Vec::new();
        };
        let mut out: Vec<u32> = std::fs::read_dir(root.join("links"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| ifindex_of(e.file_name().to_str()?))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Interfaces this agent has attached, by ifindex.
    pub fn attached(&self) -> impl Iterator<Item = (u32, &str)> {
        self.attached.iter().map(|(i, (n, _))| (*i, n.as_str()))
    }

    /// Ifindexes that have pinned links (from this or an earlier agent).
    pub fn pinned_ifindexes(&self) -> Vec<u32> {
        if self.pin_root.is_none() {
            return self.attached.keys().copied().collect();
        }
        // `<ifindex>-ingress`, `<ifindex>-egress` (not `netdev-<ifindex>`).
        self.pinned_links(|name| name.split('-').next()?.parse().ok())
    }

    /// Removes maps of other ABI versions (after an upgrade adopted every link).
    pub fn remove_stale_versions(&self) {
        let Some(root) = &self.pin_root else { return };
        let current = format!("v{}", abi::ABI_VERSION);
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('v') && name != current {
                tracing::info!(dir = %entry.path().display(), "removing maps of an older datapath version");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn link_pin_path(&self, ifindex: u32, hook: Hook) -> Option<PathBuf> {
        self.pin_root
            .as_ref()
            .map(|root| root.join("links").join(hook.pin_name(ifindex)))
    }
}

/// The index of an interface of the current network namespace.
fn interface_index(ifname: &str) -> Result<u32, DatapathError> {
    nix::net::if_::if_nametoindex(ifname).map_err(|source| DatapathError::Interface {
        ifname: ifname.to_string(),
        source,
    })
}

fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    let prog = ebpf.program_mut(name).ok_or(DatapathError::Program {
        name,
        source: Box::new(aya::programs::ProgramError::NotLoaded),
    })?;
    prog.try_into().map_err(|e| DatapathError::Program {
        name,
        source: Box::new(e),
    })
}

/// Mounts bpffs on /sys/fs/bpf when the pin directory lives there and nothing is mounted yet.
/// Whether pins under `base` would live in a mount namespace of the agent's own, one that dies
/// with it: the agent's mount namespace differs from the host's (PID 1's, or where that cannot be
/// read, the parent process's) and `base` is unmounted here or is another bpffs instance than the
/// one the host sees. In a container with the host's /sys/fs/bpf mounted this is never true.
fn private_bpffs(base: &Path, mounted: bool) -> bool {
    let Ok(own) = std::fs::read_link("/proc/self/ns/mnt") else {
        return false;
    };
    let parent = format!("/proc/{}", std::os::unix::process::parent_id());
    let reference = ["/proc/1", parent.as_str()]
        .into_iter()
        .find_map(|p| Some((p, std::fs::read_link(format!("{p}/ns/mnt")).ok()?)));
    let Some((proc_dir, theirs)) = reference else {
        return false;
    };
    if own == theirs {
        return false;
    }
    if !mounted {
        return true;
    }
    let their_base = Path::new(proc_dir)
        .join("root")
        .join(base.strip_prefix("/").unwrap_or(base));
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(base), std::fs::metadata(&their_base)) {
        (Ok(ours), Ok(theirs)) => ours.dev() != theirs.dev(),
        _ => false,
    }
}

fn ensure_bpffs(pin_dir: &Path) -> Result<(), DatapathError> {
    let base = Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(base) {
        return Ok(());
    }
    let mounted = nix::sys::statfs::statfs(base)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false);
    // A bpffs mounted in a private mount namespace dies with the agent, and with it the pinned
    // links: the datapath would stop enforcing when the agent stops. `ip netns exec` creates
    // exactly that situation (it remounts /sys and mounts a fresh bpffs of its own).
    if private_bpffs(base, mounted) {
        return Err(DatapathError::PrivateBpffs);
    }
    if !mounted {
        tracing::info!("mounting bpffs on /sys/fs/bpf");
        nix::mount::mount(
            Some("bpf"),
            base,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(DatapathError::MountBpffs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_woken_at_32_kib_or_a_32nd_of_a_smaller_ring() {
        assert_eq!(wake_bytes(8 << 20), 32 << 10);
        assert_eq!(wake_bytes(1 << 20), 32 << 10);
        assert_eq!(wake_bytes(256 << 10), 8 << 10);
        assert_eq!(wake_bytes(4096), 128);
    }
}
