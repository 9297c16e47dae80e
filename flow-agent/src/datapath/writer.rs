//! Writes a compiled policy into the maps, atomically: everything goes into the inactive slot,
//! then one write of `weir_config.policy_gen` makes it active. A failure before the flip leaves
//! the active slot (the policy being enforced) untouched.

use std::collections::BTreeMap;
use std::net::IpAddr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray};
use weir_policy::compiled::{CompiledPolicy, Direction, EndpointPolicy, PolicyEntry};
use weir_probes::abi::{
    self, Config, CtEntry, CtKey, Endpoint, EndpointSlot, HttpDfa, HttpSet, IpcacheKey,
    IpcacheValue, PolicyKey, PolicyValue,
};

use super::DatapathError;

/// A local endpoint as the datapath knows it.
#[derive(Debug, Clone, Copy)]
pub struct LocalEndpoint<'a> {
    pub ifindex: u32,
    pub ep_id: u32,
    pub ips: &'a [IpAddr],
    pub policy: &'a EndpointPolicy,
}

/// What an apply wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub policy_gen: u32,
    pub ipcache_entries: usize,
    pub policy_entries: usize,
    pub endpoints: usize,
}

/// The maps userspace writes.
pub struct MapWriter {
    config: Array<MapData, Config>,
    endpoints: HashMap<MapData, u32, Endpoint>,
    ipcache: LpmTrie<MapData, IpcacheKey, IpcacheValue>,
    policy: LpmTrie<MapData, PolicyKey, PolicyValue>,
    ct: HashMap<MapData, CtKey, CtEntry>,
    http_dfa: Array<MapData, HttpDfa>,
    http_sets: Array<MapData, HttpSet>,
    /// Keys written per slot, so the next apply into that slot can delete them.
    ipcache_keys: [Vec<Key<IpcacheKey>>; 2],
    policy_keys: [Vec<Key<PolicyKey>>; 2],
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |e| DatapathError::Map {
        name,
        source: Box::new(e),
    }
}

impl MapWriter {
    pub(super) fn new(
        config: Map,
        endpoints: Map,
        ipcache: Map,
        policy: Map,
        ct: Map,
        http_dfa: Map,
        http_sets: Map,
    ) -> Result<Self, DatapathError> {
        use weir_probes::maps as m;
        let mut w = MapWriter {
            config: Array::try_from(config).map_err(map_err(m::CONFIG))?,
            endpoints: HashMap::try_from(endpoints).map_err(map_err(m::ENDPOINTS))?,
            ipcache: LpmTrie::try_from(ipcache).map_err(map_err(m::IPCACHE))?,
            policy: LpmTrie::try_from(policy).map_err(map_err(m::POLICY))?,
            ct: HashMap::try_from(ct).map_err(map_err(m::CT))?,
            http_dfa: Array::try_from(http_dfa).map_err(map_err(m::HTTP_DFA))?,
            http_sets: Array::try_from(http_sets).map_err(map_err(m::HTTP_SETS))?,
            ipcache_keys: [Vec::new(), Vec::new()],
            policy_keys: [Vec::new(), Vec::new()],
        };
        // Maps adopted from an earlier agent: learn what each slot holds.
        for key in w.ipcache.keys() {
            let key = key.map_err(map_err(m::IPCACHE))?;
            let slot = usize::from(key.data().slot & 1);
            w.ipcache_keys[slot].push(key);
        }
        for key in w.policy.keys() {
            let key = key.map_err(map_err(m::POLICY))?;
            let slot = usize::from(key.data().slot & 1);
            w.policy_keys[slot].push(key);
        }
        Ok(w)
    }

    /// The active policy generation (0 before the first apply).
    pub fn policy_gen(&self) -> Result<u32, DatapathError> {
        Ok(self
            .config
            .get(&0, 0)
            .map_err(map_err(weir_probes::maps::CONFIG))?
            .policy_gen)
    }

    /// Endpoints currently in `weir_endpoints`, by ifindex (an earlier agent's endpoint ids).
    pub fn endpoints(&self) -> BTreeMap<u32, Endpoint> {
        self.endpoints.iter().filter_map(Result::ok).collect()
    }

    /// Forgets an endpoint whose interface was detached.
    pub fn remove_endpoint(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        match self.endpoints.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(weir_probes::maps::ENDPOINTS)(e)),
        }
    }

    /// The connection-tracking map (garbage collection, inspection).
    pub fn ct(&mut self) -> &mut HashMap<MapData, CtKey, CtEntry> {
        &mut self.ct
    }

    /// Writes a complete policy into the inactive slot and makes it active.
    pub fn apply(
        &mut self,
        compiled: &CompiledPolicy,
        eps: &[LocalEndpoint<'_>],
    ) -> Result<ApplyStats, DatapathError> {
        use weir_probes::maps as m;
        let new_gen = self.policy_gen()?.wrapping_add(1);
        let slot = (new_gen & 1) as u8;
        let s = usize::from(slot);

        // Leftovers of two generations ago live in the slot we are about to fill.
        for key in std::mem::take(&mut self.ipcache_keys[s]) {
            remove_lpm(&mut self.ipcache, &key).map_err(map_err(m::IPCACHE))?;
        }
        for key in std::mem::take(&mut self.policy_keys[s]) {
            remove_lpm(&mut self.policy, &key).map_err(map_err(m::POLICY))?;
        }

        self.write_http(slot, compiled)?;

        let owner: BTreeMap<IpAddr, u32> = eps
            .iter()
            .flat_map(|e| e.ips.iter().map(|ip| (*ip, e.ep_id)))
            .collect();
        for entry in &compiled.ipcache {
            let key = ipcache_key(slot, entry.prefix);
            let host = entry.prefix.prefix_len() == entry.prefix.max_prefix_len();
            let value = IpcacheValue {
                identity: entry.identity,
                ep_id: if host {
                    owner.get(&entry.prefix.addr()).copied().unwrap_or(0)
                } else {
                    0
                },
            };
            self.ipcache
                .insert(&key, value, 0)
                .map_err(map_err(m::IPCACHE))?;
            self.ipcache_keys[s].push(key);
        }

        let mut policy_entries = 0;
        for ep in eps {
            for (dir, policy) in [
                (Direction::Ingress, &ep.policy.ingress),
                (Direction::Egress, &ep.policy.egress),
            ] {
                for entry in &policy.entries {
                    let key = policy_key(slot, dir, ep.ep_id, entry);
                    self.policy
                        .insert(&key, policy_value(entry, compiled), 0)
                        .map_err(map_err(m::POLICY))?;
                    self.policy_keys[s].push(key);
                    policy_entries += 1;
                }
            }
        }

        let mut existing = self.endpoints();
        for ep in eps {
            let mut value = existing.remove(&ep.ifindex).unwrap_or_default();
            value.ep_id = ep.ep_id;
            value.ipv4 = [0; 4];
            value.ipv6 = [0; 16];
            if let Some(v4) = ep.ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }) {
                value.ipv4 = v4.octets();
            }
            if let Some(v6) = ep.ips.iter().find_map(|ip| match ip {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            }) {
                value.ipv6 = v6.octets();
            }
            let p = ep.policy;
            value.slot[s] = EndpointSlot {
                identity: p.identity,
                flags: (if p.ingress.enforced {
                    abi::EP_ENFORCE_INGRESS
                } else {
                    0
                }) | (if p.egress.enforced {
                    abi::EP_ENFORCE_EGRESS
                } else {
                    0
                }),
                ingress_selecting: p.ingress.selecting,
                egress_selecting: p.egress.selecting,
            };
            self.endpoints
                .insert(ep.ifindex, value, 0)
                .map_err(map_err(m::ENDPOINTS))?;
        }
        // Endpoints that left: no policy in the new slot, so they fail closed until detached.
        for (ifindex, mut value) in existing {
            value.slot[s] = EndpointSlot::default();
            self.endpoints
                .insert(ifindex, value, 0)
                .map_err(map_err(m::ENDPOINTS))?;
        }

        self.config
            .set(
                0,
                Config {
                    policy_gen: new_gen,
                    reserved_0: 0,
                },
                0,
            )
            .map_err(map_err(m::CONFIG))?;
        Ok(ApplyStats {
            policy_gen: new_gen,
            ipcache_entries: self.ipcache_keys[s].len(),
            policy_entries,
            endpoints: eps.len(),
        })
    }
}

fn remove_lpm<K: aya::Pod, V: aya::Pod>(
    map: &mut LpmTrie<MapData, K, V>,
    key: &Key<K>,
) -> Result<(), MapError> {
    match map.remove(key) {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

impl MapWriter {
    /// Writes the HTTP rule sets' tables into the slot: every set the policy names gets its four
    /// DFAs and its combination table; the other entries of the slot are cleared, so a stale
    /// set can never be used (a connection naming it fails closed).
    fn write_http(&mut self, slot: u8, compiled: &CompiledPolicy) -> Result<(), DatapathError> {
        use weir_probes::maps as m;
        for (&id, tables) in &compiled.http_tables {
            if id == 0 || id >= abi::HTTP_MAX_SETS {
                return Err(DatapathError::HttpSets {
                    count: compiled.http_tables.len(),
                    max: abi::HTTP_MAX_SETS - 1,
                });
            }
            for (kind, dfa) in [
                (abi::DFA_METHOD, &tables.method),
                (abi::DFA_PATH, &tables.path),
                (abi::DFA_NAME, &tables.name),
                (abi::DFA_VALUE, &tables.value),
            ] {
                let value = kernel_dfa(dfa);
                self.http_dfa
                    .set(abi::http_dfa_index(slot, id, kind), value.as_ref(), 0)
                    .map_err(map_err(m::HTTP_DFA))?;
            }
            let mut set = HttpSet {
                rule_bits: tables.rule_bits,
                slot_reqs: [0; abi::HTTP_MAX_SLOTS],
                needs: [0; abi::HTTP_MAX_REQS],
            };
            set.slot_reqs.copy_from_slice(&tables.slot_reqs);
            set.needs.copy_from_slice(&tables.needs);
            self.http_sets
                .set(abi::http_set_index(slot, id), set, 0)
                .map_err(map_err(m::HTTP_SETS))?;
        }
        for id in 1..abi::HTTP_MAX_SETS {
            if !compiled.http_tables.contains_key(&id) {
                let empty = HttpSet {
                    rule_bits: 0,
                    slot_reqs: [0; abi::HTTP_MAX_SLOTS],
                    needs: [0; abi::HTTP_MAX_REQS],
                };
                self.http_sets
                    .set(abi::http_set_index(slot, id), empty, 0)
                    .map_err(map_err(m::HTTP_SETS))?;
            }
        }
        Ok(())
    }
}

/// A DFA of the policy crate in the kernel's layout (the two share their limits).
// The policy crate's accept-word bits are the datapath's.
const _: () = {
    use weir_policy::http as h;
    assert!(h::BIT_WELLFORMED == abi::HTTP_BIT_WELLFORMED);
    assert!(h::BIT_CL_VALUE == abi::HTTP_BIT_CL_VALUE);
    assert!(h::BIT_CHUNKED == abi::HTTP_BIT_CHUNKED);
    assert!(h::CAPTURE_SHIFT == abi::HTTP_CAPTURE_SHIFT);
    // Each flow header's mark stays below the end mark.
    assert!(abi::HTTP_HDR_MARK as usize + h::MAX_FLOW_HEADERS - 1 < abi::HTTP_HDR_END as usize);
};

fn kernel_dfa(dfa: &weir_policy::http::Dfa) -> Box<HttpDfa> {
    let mut out = Box::new(HttpDfa {
        classes: dfa.classes,
        accept: [0; abi::DFA_STATES],
        trans: [0; abi::DFA_STATES * abi::DFA_CLASSES],
        start: dfa.start,
        reserved_0: [0; 7],
    });
    out.accept.copy_from_slice(&dfa.accept[..abi::DFA_STATES]);
    out.trans
        .copy_from_slice(&dfa.trans[..abi::DFA_STATES * abi::DFA_CLASSES]);
    out
}

/// The ipcache key of a prefix in a slot.
pub fn ipcache_key(slot: u8, prefix: ipnet::IpNet) -> Key<IpcacheKey> {
    let mut data = IpcacheKey {
        slot,
        ..Default::default()
    };
    match prefix.network() {
        IpAddr::V4(a) => {
            data.family = 4;
            data.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            data.family = 6;
            data.addr = a.octets();
        }
    }
    Key::new(
        abi::IPCACHE_FIXED_BITS + u32::from(prefix.prefix_len()),
        data,
    )
}

/// The policy key of an entry: fixed (slot, direction, endpoint, identity), then protocol and
/// the port's top `port_prefix_len` bits.
pub fn policy_key(slot: u8, dir: Direction, ep_id: u32, entry: &PolicyEntry) -> Key<PolicyKey> {
    let mut data = PolicyKey {
        slot,
        direction: match dir {
            Direction::Ingress => abi::DIR_INGRESS,
            Direction::Egress => abi::DIR_EGRESS,
        },
        ep_id,
        identity: entry.identity,
        ..Default::default()
    };
    let bits = if entry.protocol == 0 {
        abi::POLICY_FIXED_BITS
    } else {
        let plen = u32::from(entry.port_prefix_len.min(16));
        let mask = if plen == 0 {
            0
        } else {
            u16::MAX << (16 - plen)
        };
        data.protocol = entry.protocol;
        data.dport = (entry.port & mask).to_be_bytes();
        abi::POLICY_FIXED_BITS + 8 + plen
    };
    Key::new(bits, data)
}

/// The policy value of an entry; `compiled` tells whether its HTTP rules are gRPC rules, which
/// the agent's L7 proxy enforces (`HttpRuleSet::is_grpc`).
pub fn policy_value(entry: &PolicyEntry, compiled: &CompiledPolicy) -> PolicyValue {
    let proxied = entry.l7_rules != 0
        && compiled
            .http_rule_sets
            .get(&entry.l7_rules)
            .is_some_and(|set| set.is_grpc());
    PolicyValue {
        flags: (if entry.deny { abi::POLICY_DENY } else { 0 })
            | (if entry.audit { abi::POLICY_AUDIT } else { 0 })
            | (if proxied { abi::POLICY_L7_PROXY } else { 0 }),
        match_type: entry.match_type as u8,
        rule_set: entry.rule_set,
        l7_rules: entry.l7_rules,
        ..Default::default()
    }
}

/// The kernel's count of events it could not put on the ring buffer (`weir_lost`).
pub struct LostEvents(PerCpuArray<MapData, u64>);

impl LostEvents {
    pub(super) fn new(map: Map) -> Result<Self, DatapathError> {
        Ok(LostEvents(
            PerCpuArray::try_from(map).map_err(map_err(weir_probes::maps::LOST))?,
        ))
    }

    /// Events lost so far, summed over CPUs.
    pub fn total(&self) -> Result<u64, DatapathError> {
        let values = self
            .0
            .get(&0, 0)
            .map_err(map_err(weir_probes::maps::LOST))?;
        Ok(values.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_policy::compiled::MatchType;

    fn entry(identity: u32, protocol: u8, port: u16, port_prefix_len: u8) -> PolicyEntry {
        PolicyEntry {
            identity,
            protocol,
            port,
            port_prefix_len,
            deny: false,
            audit: false,
            l7_rules: 0,
            match_type: MatchType::L3L4,
            rule_set: 7,
        }
    }

    #[test]
    fn policy_keys_put_the_port_prefix_after_the_protocol() {
        let k = policy_key(1, Direction::Egress, 9, &entry(300, 6, 80, 16));
        assert_eq!(k.prefix_len(), 120);
        let d = k.data();
        assert_eq!(
            (d.slot, d.direction, d.ep_id, d.identity, d.protocol),
            (1, abi::DIR_EGRESS, 9, 300, 6)
        );
        assert_eq!(d.dport, [0, 80]);

        // 8080-8087 as one 13-bit prefix; bits below the prefix are cleared.
        let k = policy_key(0, Direction::Ingress, 9, &entry(0, 17, 8083, 13));
        assert_eq!(k.prefix_len(), 96 + 8 + 13);
        assert_eq!(u16::from_be_bytes(k.data().dport), 8080);

        // Any protocol: the prefix stops before the protocol byte.
        let k = policy_key(0, Direction::Ingress, 9, &entry(5, 0, 0, 0));
        assert_eq!(k.prefix_len(), 96);
        assert_eq!((k.data().protocol, k.data().dport), (0, [0, 0]));
    }

    #[test]
    fn ipcache_keys_cover_the_fixed_part_and_the_prefix() {
        let k = ipcache_key(1, "10.200.0.0/16".parse().unwrap());
        assert_eq!(k.prefix_len(), 32 + 16);
        assert_eq!((k.data().slot, k.data().family), (1, 4));
        assert_eq!(&k.data().addr[..4], &[10, 200, 0, 0]);
        let k = ipcache_key(0, "fd00:200::11/128".parse().unwrap());
        assert_eq!(k.prefix_len(), 32 + 128);
        assert_eq!(k.data().family, 6);
    }
}
