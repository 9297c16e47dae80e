//! The apply loop: watches the state and policy directories, compiles what they say, writes it
//! into the datapath atomically, attaches new endpoints and detaches departed ones.
//!
//! A change that fails to parse or compile is rejected as a whole, with an error naming the
//! file and field; the last good policy stays enforced.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use weir_policy::compiled::{CompiledPolicy, PolicyRef, RuleSetId};
use weir_policy::{ClusterState, PolicySet};

use crate::datapath::{AttachOutcome, Datapath, LocalEndpoint, MapWriter, collect_garbage};
use crate::flows::{Enrichment, EnrichmentHandle, FastMap, NodeMeta, PeerMeta, PolicyMeta};
use crate::l7::HttpSetMeta;
use crate::proxy::{ProxyPolicy, ProxyPolicyHandle};

/// A source file as loaded (shown by `weir policy get`, replayed by `weir policy trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub content: String,
}

/// A local endpoint as the datapath sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRuntime {
    pub namespace: String,
    pub name: String,
    pub interface: String,
    /// 0 when the interface does not exist (not attached).
    pub ifindex: u32,
    pub ep_id: u32,
    pub ips: Vec<IpAddr>,
}

/// What is enforced right now, for the API.
#[derive(Debug, Clone, Default)]
pub struct PolicyStatus {
    pub revision: u64,
    pub policy_gen: u32,
    pub applied_at: Option<SystemTime>,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub policy_files: Vec<SourceFile>,
    pub state_files: Vec<SourceFile>,
    pub compiled: CompiledPolicy,
    pub endpoints: Vec<EndpointRuntime>,
    /// The last rejected change: its error, and when.
    pub last_error: Option<(SystemTime, String)>,
}

/// Persisted across agent restarts (in the runtime directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    revision: u64,
    /// Rule sets of recent generations: events queued before a restart still resolve.
    rule_sets: BTreeMap<RuleSetId, Vec<PolicyRef>>,
}

pub struct Applier {
    node_name: String,
    state_dir: PathBuf,
    policy_dir: PathBuf,
    runtime_dir: PathBuf,
    options: weir_policy::Options,
    datapath: Datapath,
    writer: MapWriter,
    enrichment: Arc<EnrichmentHandle>,
    status: Arc<RwLock<PolicyStatus>>,
    proxy_policy: Arc<ProxyPolicyHandle>,
    fingerprint: Option<u64>,
    last_compiled: Option<CompiledPolicy>,
    persisted: Persisted,
    /// Rule sets of the generation before the current one.
    previous_rule_sets: BTreeMap<RuleSetId, Vec<PolicyRef>>,
    last_gc: Instant,
    gc_interval: std::time::Duration,
    /// Node devices `from_netdev` is attached to (`--devices`), and those reported missing.
    devices: Vec<String>,
    missing_devices: BTreeSet<String>,
    /// Whether the links an earlier agent pinned for devices no longer configured are gone
    /// (done once: this agent's own pins are removed with the devices it forgets).
    stale_devices_detached: bool,
}

pub struct ApplierConfig {
    pub node_name: String,
    pub state_dir: PathBuf,
    pub policy_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub options: weir_policy::Options,
    pub gc_interval: std::time::Duration,
    pub devices: Vec<String>,
}

impl Applier {
    pub fn new(
        cfg: ApplierConfig,
        datapath: Datapath,
        writer: MapWriter,
        enrichment: Arc<EnrichmentHandle>,
        status: Arc<RwLock<PolicyStatus>>,
        proxy_policy: Arc<ProxyPolicyHandle>,
    ) -> Applier {
        let persisted = load_persisted(&cfg.runtime_dir);
        {
            let mut s = status.write().expect("status lock");
            s.policy_dir = cfg.policy_dir.clone();
            s.state_dir = cfg.state_dir.clone();
            s.revision = persisted.revision;
        }
        let applier = Applier {
            node_name: cfg.node_name,
            state_dir: cfg.state_dir,
            policy_dir: cfg.policy_dir,
            runtime_dir: cfg.runtime_dir,
            options: cfg.options,
            datapath,
            writer,
            enrichment,
            status,
            proxy_policy,
            fingerprint: None,
            last_compiled: None,
            previous_rule_sets: persisted.rule_sets.clone(),
            persisted,
            last_gc: Instant::now(),
            gc_interval: cfg.gc_interval,
            devices: cfg.devices,
            missing_devices: BTreeSet::new(),
            stale_devices_detached: false,
        };
        // Events an earlier agent left in the ring buffer resolve against its rule sets.
        applier.enrichment.store(Enrichment {
            node: Arc::new(NodeMeta {
                name: applier.node_name.clone(),
                labels: Vec::new(),
            }),
            rule_sets: rule_set_meta(&applier.persisted.rule_sets, applier.persisted.revision),
            ..Default::default()
        });
        applier
    }

    /// One iteration: re-applies when a file changed or an endpoint's interface came, went or
    /// was recreated; runs CT garbage collection when due.
    pub fn poll(&mut self) {
        self.sync_devices();
        if self.last_gc.elapsed() >= self.gc_interval {
            self.last_gc = Instant::now();
            let now = self.datapath.clock().jiffies();
            match now.and_then(|now| collect_garbage(&mut self.writer, now)) {
                Ok(stats) if stats.deleted > 0 => {
                    tracing::debug!(
                        scanned = stats.scanned,
                        deleted = stats.deleted,
                        "conntrack garbage collected"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "conntrack garbage collection failed"),
            }
        }
        let (policy_files, state_files) =
            match (yaml_files(&self.policy_dir), state_sources(&self.state_dir)) {
                (Ok(p), Ok(s)) => (p, s),
                (Err(e), _) | (_, Err(e)) => {
                    self.reject(e);
                    return;
                }
            };
        let fingerprint = fingerprint(&policy_files, &state_files, &self.interface_indexes());
        if self.fingerprint == Some(fingerprint) {
            return;
        }
        match self.apply(&policy_files, &state_files) {
            Ok(()) => self.fingerprint = Some(fingerprint),
            Err(message) => {
                // Remember the fingerprint too: the same bad input is reported once, not every poll.
                self.fingerprint = Some(fingerprint);
                self.reject(message);
            }
        }
    }

    /// Keeps `from_netdev` on the configured devices (attaching one that appeared or was
    /// recreated) and off every other: a link an earlier agent pinned for a device no longer
    /// configured is removed at the first poll.
    fn sync_devices(&mut self) {
        let endpoint_interfaces: BTreeSet<String> = self
            .status
            .read()
            .expect("status lock")
            .endpoints
            .iter()
            .map(|e| e.interface.clone())
            .collect();
        for name in &self.devices {
            // An endpoint's veth is no node device: from_netdev there would run before (and
            // instead of) from_container.
            if endpoint_interfaces.contains(name) {
                self.datapath.forget_device(name);
                if self.missing_devices.insert(name.clone()) {
                    tracing::error!(device = %name, "a --devices entry is an endpoint's interface: not attached");
                }
                continue;
            }
            match self.datapath.attach_device(name) {
                Ok((ifindex, outcome)) => {
                    self.missing_devices.remove(name);
                    match outcome {
                        AttachOutcome::Attached => {
                            tracing::info!(device = %name, ifindex, "device attached")
                        }
                        AttachOutcome::Adopted => {
                            tracing::info!(device = %name, ifindex, "device adopted from a previous agent")
                        }
                        AttachOutcome::Unchanged => {}
                    }
                }
                Err(e) => {
                    // Gone (or never there): its link went with it; forget the pin too.
                    self.datapath.forget_device(name);
                    if self.missing_devices.insert(name.clone()) {
                        tracing::warn!(error = %e, "cannot attach device (retried at every poll)");
                    }
                }
            }
        }
        if self.stale_devices_detached {
            return;
        }
        self.stale_devices_detached = true;
        let current: BTreeSet<u32> = self.datapath.devices().map(|(i, _)| i).collect();
        for ifindex in self.datapath.pinned_devices() {
            if !current.contains(&ifindex) {
                tracing::info!(ifindex, "detaching a device that is not configured");
                self.datapath.detach_device(ifindex);
            }
        }
    }

    fn reject(&self, message: String) {
        tracing::error!(error = %message, "rejected policy or state change; the previous policy stays enforced");
        let mut s = self.status.write().expect("status lock");
        s.last_error = Some((SystemTime::now(), message));
    }

    /// Current ifindex of every local endpoint interface (0 when missing).
    fn interface_indexes(&self) -> Vec<(String, u32)> {
        let status = self.status.read().expect("status lock");
        status
            .endpoints
            .iter()
            .map(|e| (e.interface.clone(), ifindex(&e.interface)))
            .collect()
    }

    fn apply(
        &mut self,
        policy_files: &[SourceFile],
        state_files: &[SourceFile],
    ) -> Result<(), String> {
        // Parse exactly the files read (and fingerprinted, and reported by GetPolicy).
        let cluster_yaml = self.state_dir.join("cluster.yaml");
        let state = ClusterState::from_sources(
            state_files
                .iter()
                .find(|f| f.path == cluster_yaml)
                .map(|f| (&f.path, &f.content)),
            state_files
                .iter()
                .filter(|f| f.path != cluster_yaml)
                .map(|f| (&f.path, &f.content)),
        )
        .map_err(|e| e.to_string())?;
        let policies = PolicySet::parse_sources(
            policy_files
                .iter()
                .map(|f| (f.path.display().to_string(), &f.content)),
        )
        .map_err(|e| e.to_string())?;
        let compiled =
            weir_policy::compile(&state, &policies, &self.options).map_err(|e| e.to_string())?;

        // Endpoint ids survive restarts through the pinned endpoint map.
        let known = self.writer.endpoints();
        let mut used: BTreeSet<u32> = BTreeSet::new();
        let mut runtime = Vec::new();
        for ep in &compiled.endpoints {
            let spec = state.endpoint(&ep.namespace, &ep.name).ok_or_else(|| {
                format!(
                    "compiled endpoint {}/{} is not in the state",
                    ep.namespace, ep.name
                )
            })?;
            let idx = ifindex(&ep.interface);
            let ep_id = known
                .get(&idx)
                .map(|e| e.ep_id)
                .filter(|id| *id != 0 && !used.contains(id));
            runtime.push((ep, spec, idx, ep_id));
            if let Some(id) = ep_id {
                used.insert(id);
            }
        }
        let mut next_id = 1u32;
        let mut endpoints = Vec::new();
        for (ep, spec, idx, ep_id) in runtime {
            let ep_id = ep_id.unwrap_or_else(|| {
                while used.contains(&next_id) {
                    next_id += 1;
                }
                used.insert(next_id);
                next_id
            });
            if idx == 0 {
                tracing::warn!(endpoint = %spec, interface = %ep.interface, "interface not found in this network namespace; endpoint not attached");
            }
            endpoints.push(EndpointRuntime {
                namespace: ep.namespace.clone(),
                name: ep.name.clone(),
                interface: ep.interface.clone(),
                ifindex: idx,
                ep_id,
                ips: spec.ips.clone(),
            });
        }

        let unchanged = self.last_compiled.as_ref() == Some(&compiled)
            && self.status.read().expect("status lock").endpoints == endpoints;
        let revision = if self.last_compiled.as_ref() == Some(&compiled) {
            self.persisted.revision
        } else {
            self.persisted.revision + 1
        };

        let policy_gen = if unchanged {
            self.writer.policy_gen().map_err(|e| e.to_string())?
        } else {
            let local: Vec<LocalEndpoint<'_>> = endpoints
                .iter()
                .zip(&compiled.endpoints)
                .filter(|(rt, _)| rt.ifindex != 0)
                .map(|(rt, policy)| LocalEndpoint {
                    ifindex: rt.ifindex,
                    ep_id: rt.ep_id,
                    ips: &rt.ips,
                    policy,
                })
                .collect();
            // Persist the rule sets before events can reference them.
            self.previous_rule_sets = self
                .last_compiled
                .as_ref()
                .map(|c| c.rule_sets.clone())
                .unwrap_or_else(|| self.persisted.rule_sets.clone());
            let mut rule_sets = self.previous_rule_sets.clone();
            rule_sets.extend(compiled.rule_sets.clone());
            self.persisted = Persisted {
                revision,
                rule_sets,
            };
            save_persisted(&self.runtime_dir, &self.persisted);
            self.publish_enrichment(&state, &compiled, &endpoints, revision);

            // The L7 proxy decides with the policy the datapath is about to enforce, from
            // before the flip: it is never behind the kernel (a new endpoint's rules unknown to
            // it while the kernel already hands its connections over).
            let previous = self.proxy_policy.publish(Some(Arc::new(ProxyPolicy::new(
                compiled.clone(),
                endpoints.clone(),
            ))));
            let stats = match self.writer.apply(&compiled, &local) {
                Ok(stats) => stats,
                Err(e) => {
                    self.proxy_policy.publish(previous);
                    return Err(e.to_string());
                }
            };
            tracing::info!(
                revision,
                policy_gen = stats.policy_gen,
                endpoints = stats.endpoints,
                policy_entries = stats.policy_entries,
                ipcache_entries = stats.ipcache_entries,
                "policy applied"
            );
            for n in &compiled.notices {
                tracing::warn!(policy = %format!("{}/{}", n.policy.namespace, n.policy.name), location = %n.location, "{}", n.message);
            }
            stats.policy_gen
        };

        // Attach after the flip, so a new endpoint's first packet already has its policy.
        for ep in endpoints.iter().filter(|e| e.ifindex != 0) {
            match self.datapath.attach(&ep.interface) {
                Ok((_, AttachOutcome::Attached)) => {
                    tracing::info!(endpoint = %format!("{}/{}", ep.namespace, ep.name), interface = %ep.interface, ep_id = ep.ep_id, "endpoint attached")
                }
                Ok((_, AttachOutcome::Adopted)) => {
                    tracing::info!(endpoint = %format!("{}/{}", ep.namespace, ep.name), interface = %ep.interface, ep_id = ep.ep_id, "endpoint adopted from a previous agent")
                }
                Ok((_, AttachOutcome::Unchanged)) => {}
                Err(e) => tracing::error!(error = %e, "cannot attach endpoint"),
            }
        }
        let current: BTreeSet<u32> = endpoints
            .iter()
            .map(|e| e.ifindex)
            .filter(|i| *i != 0)
            .collect();
        let mut stale: Vec<u32> = self
            .datapath
            .attached()
            .map(|(i, _)| i)
            .filter(|i| !current.contains(i))
            .collect();
        stale.extend(
            self.datapath
                .pinned_ifindexes()
                .into_iter()
                .filter(|i| !current.contains(i)),
        );
        stale.sort_unstable();
        stale.dedup();
        for idx in stale {
            tracing::info!(ifindex = idx, "detaching departed endpoint");
            self.datapath.detach(idx);
            if let Err(e) = self.writer.remove_endpoint(idx) {
                tracing::warn!(error = %e, ifindex = idx, "cannot remove endpoint from the datapath");
            }
        }
        self.datapath.remove_stale_versions();

        let mut s = self.status.write().expect("status lock");
        s.revision = revision;
        s.policy_gen = policy_gen;
        if !unchanged {
            s.applied_at = Some(SystemTime::now());
        }
        s.policy_files = policy_files.to_vec();
        s.state_files = state_files.to_vec();
        s.compiled = compiled.clone();
        s.endpoints = endpoints;
        s.last_error = None;
        drop(s);
        self.last_compiled = Some(compiled);
        Ok(())
    }

    fn publish_enrichment(
        &self,
        state: &ClusterState,
        compiled: &CompiledPolicy,
        endpoints: &[EndpointRuntime],
        revision: u64,
    ) {
        let identity_of_ip: BTreeMap<IpAddr, u32> = compiled
            .ipcache
            .iter()
            .filter(|e| e.prefix.prefix_len() == e.prefix.max_prefix_len())
            .map(|e| (e.prefix.addr(), e.identity))
            .collect();
        let labels_of = |id: u32| compiled.identities.get(&id).cloned().unwrap_or_default();
        let mut e = Enrichment {
            node: Arc::new(NodeMeta {
                name: self.node_name.clone(),
                labels: state
                    .node(&self.node_name)
                    .map(|n| n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default(),
            }),
            rule_sets: rule_set_meta(&self.persisted.rule_sets, revision),
            http_sets: http_set_meta(compiled, revision),
            http_flow_headers: compiled.http_flow_headers.clone().into(),
            ..Default::default()
        };
        for spec in &state.endpoints {
            let local = endpoints
                .iter()
                .find(|r| r.namespace == spec.namespace && r.name == spec.name);
            let identity = spec
                .ips
                .iter()
                .find_map(|ip| identity_of_ip.get(ip).copied())
                .unwrap_or(0);
            let meta = Arc::new(PeerMeta {
                ep_id: local.map(|l| l.ep_id).unwrap_or(0),
                identity,
                cluster: state.cluster.name.clone(),
                namespace: spec.namespace.clone(),
                pod_name: spec.name.clone(),
                labels: labels_of(identity),
                workloads: spec
                    .workload
                    .iter()
                    .map(|w| (w.name.clone(), w.kind.clone()))
                    .collect(),
            });
            for ip in &spec.ips {
                e.by_ip.insert(*ip, meta.clone());
            }
        }
        for (id, labels) in &compiled.identities {
            e.by_identity.entry(*id).or_insert_with(|| {
                Arc::new(PeerMeta {
                    identity: *id,
                    labels: labels.clone(),
                    ..Default::default()
                })
            });
        }
        for ep in endpoints.iter().filter(|e| e.ifindex != 0) {
            e.interfaces
                .insert(ep.ifindex, ep.interface.as_str().into());
        }
        self.enrichment.store(e);
    }
}

/// Hubble-style labels of a policy: where it comes from.
fn policy_labels(r: &PolicyRef) -> Vec<String> {
    let mut labels = vec![
        format!("k8s:io.cilium.k8s.policy.derived-from={}", r.kind),
        format!("k8s:io.cilium.k8s.policy.name={}", r.name),
    ];
    if !r.namespace.is_empty() {
        labels.push(format!(
            "k8s:io.cilium.k8s.policy.namespace={}",
            r.namespace
        ));
    }
    labels.push("k8s:io.cilium.k8s.policy.source=file".to_string());
    labels
}

fn policy_meta(r: &PolicyRef, revision: u64) -> PolicyMeta {
    PolicyMeta {
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        labels: policy_labels(r),
        revision,
    }
}

fn rule_set_meta(
    sets: &BTreeMap<RuleSetId, Vec<PolicyRef>>,
    revision: u64,
) -> FastMap<u32, Arc<[PolicyMeta]>> {
    sets.iter()
        .map(|(id, refs)| {
            let metas: Vec<PolicyMeta> = refs.iter().map(|r| policy_meta(r, revision)).collect();
            (*id, metas.into())
        })
        .collect()
}

/// The policy behind each rule of each HTTP rule set, for L7 flows.
fn http_set_meta(compiled: &CompiledPolicy, revision: u64) -> FastMap<u32, Arc<HttpSetMeta>> {
    compiled
        .http_rule_sets
        .iter()
        .map(|(id, set)| {
            let rules: Vec<Arc<[PolicyMeta]>> = set
                .rules
                .iter()
                .map(|r| Arc::from(vec![policy_meta(&r.policy, revision)]))
                .collect();
            let mut distinct: Vec<&PolicyRef> = Vec::new();
            for r in &set.rules {
                if !distinct.contains(&&r.policy) {
                    distinct.push(&r.policy);
                }
            }
            let policies: Vec<PolicyMeta> = distinct
                .into_iter()
                .map(|r| policy_meta(r, revision))
                .collect();
            let meta = HttpSetMeta {
                rules,
                policies: policies.into(),
            };
            (*id, Arc::new(meta))
        })
        .collect()
}

fn ifindex(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).unwrap_or(0)
}

/// The `*.yaml`/`*.yml` files directly in `dir`, in name order, with their content (what
/// `PolicySet::load_dir` and `ClusterState::load_dir` read). A missing directory has none.
fn yaml_files(dir: &Path) -> Result<Vec<SourceFile>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        {
            let content =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(SourceFile { path, content });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `cluster.yaml` (when present) and `endpoints/*.yaml` of a state directory.
fn state_sources(dir: &Path) -> Result<Vec<SourceFile>, String> {
    let cluster = dir.join("cluster.yaml");
    let mut out = Vec::new();
    match std::fs::read_to_string(&cluster) {
        Ok(content) => out.push(SourceFile {
            path: cluster,
            content,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", cluster.display())),
    }
    out.extend(yaml_files(&dir.join("endpoints"))?);
    Ok(out)
}

fn fingerprint(policy: &[SourceFile], state: &[SourceFile], interfaces: &[(String, u32)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in policy.iter().chain(state) {
        f.path.hash(&mut h);
        f.content.hash(&mut h);
    }
    interfaces.hash(&mut h);
    h.finish()
}

fn persisted_path(dir: &Path) -> PathBuf {
    dir.join("agent-state.json")
}

fn load_persisted(dir: &Path) -> Persisted {
    std::fs::read(persisted_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_persisted(dir: &Path, p: &Persisted) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(".agent-state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(p).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, persisted_path(dir))
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot persist agent state");
    }
}
