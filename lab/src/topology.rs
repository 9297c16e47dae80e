//! Building and removing a lab's namespaces, links, addresses and routes with `ip`.
//!
//! Every veth is created inside a lab namespace with its peer placed directly into another lab
//! namespace (`ip -n A link add X type veth peer name Y netns B`), so no interface, address or
//! route ever appears in the host's namespace.

use std::time::Duration;

use crate::cmd::{ip, ip_in};
use crate::error::LabError;
use crate::netns;
use crate::plan::{
    Endpoint, GATEWAY_V4, GATEWAY_V6, Node, Plan, WORLD_PREFIX_V4, WORLD_PREFIX_V6,
    node_link_local, node_link_mac, node_link_name,
};

/// Sysctls of every lab namespace: no duplicate address detection (addresses are usable at
/// once), no router solicitations, and ICMP echo sockets for every group (`Lab::ping`).
const COMMON_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// A node routes between its endpoints, the other nodes and the world.
const NODE_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.forwarding", "1"),
];

/// Creates every namespace, link, address and route of the plan, in order: nodes, world,
/// node-to-node links, endpoints. Stops at the first failure (the caller removes what exists).
pub(crate) fn build(plan: &Plan) -> Result<(), LabError> {
    for node in &plan.nodes {
        create_node(node)?;
    }
    create_world(plan)?;
    for (a, b) in plan.node_links() {
        link_nodes(a, b)?;
    }
    for ep in &plan.endpoints {
        let node = plan
            .node_by_name(&ep.node)
            .expect("plan invariant: endpoints are on known nodes");
        create_endpoint(node, ep)?;
    }
    Ok(())
}

fn add_netns(name: &str, sysctls: &[&[(&str, &str)]]) -> Result<(), LabError> {
    // The first `ip netns add` on a machine turns /run/netns into a mount point; two of them
    // racing (parallel tests) can stack two mounts and hide a namespace. Serialise them here.
    static NETNS_ADD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    {
        let _serialised = NETNS_ADD
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ip(&["netns", "add", name])?;
    }
    ip_in(name, &["link", "set", "lo", "up"])?;
    for set in sysctls {
        netns::set_sysctls(name, set)?;
    }
    Ok(())
}

fn create_node(node: &Node) -> Result<(), LabError> {
    let ns = node.netns.as_str();
    add_netns(ns, &[COMMON_SYSCTLS, NODE_SYSCTLS])?;
    // `cluster0` holds the node's addresses. Kernels built without the dummy driver (like the
    // Firecracker kernels CI runs on) get an ifb device instead, which behaves the same here.
    let dummy = ip_in(
        ns,
        &[
            "link", "add", "cluster0", "address", &node.mac, "type", "dummy",
        ],
    );
    if let Err(err) = dummy {
        tracing::debug!(%err, netns = ns, "no dummy driver, using ifb for cluster0");
        ip_in(
            ns,
            &[
                "link", "add", "cluster0", "address", &node.mac, "type", "ifb",
            ],
        )?;
    }
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/32", node.ipv4),
            "dev",
            "cluster0",
        ],
    )?;
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/128", node.ipv6),
            "dev",
            "cluster0",
            "nodad",
        ],
    )?;
    ip_in(ns, &["link", "set", "cluster0", "up"])?;
    // Cluster addresses that no endpoint or node holds are unreachable here, rather than sent to
    // the world (which would route them back: a loop until the TTL runs out).
    for cidr in crate::plan::pod_cidrs() {
        ip_in(ns, &["route", "add", "unreachable", &cidr.to_string()])?;
    }
    Ok(())
}

fn create_world(plan: &Plan) -> Result<(), LabError> {
    let world = &plan.world;
    let node = plan
        .node_by_name(&world.node)
        .expect("plan invariant: the world is linked to a known node");
    let (ns, node_ns, ext) = (
        world.netns.as_str(),
        node.netns.as_str(),
        world.node_interface.as_str(),
    );
    add_netns(ns, &[COMMON_SYSCTLS])?;
    ip_in(
        node_ns,
        &[
            "link",
            "add",
            ext,
            "address",
            &world.node_mac,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            &world.mac,
            "netns",
            ns,
        ],
    )?;
    ip_in(
        node_ns,
        &[
            "addr",
            "add",
            &format!("{}/{WORLD_PREFIX_V4}", world.node_ipv4),
            "dev",
            ext,
        ],
    )?;
    ip_in(
        node_ns,
        &[
            "addr",
            "add",
            &format!("{}/{WORLD_PREFIX_V6}", world.node_ipv6),
            "dev",
            ext,
            "nodad",
        ],
    )?;
    ip_in(node_ns, &["link", "set", ext, "up"])?;
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/{WORLD_PREFIX_V4}", world.ipv4),
            "dev",
            "eth0",
        ],
    )?;
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/{WORLD_PREFIX_V6}", world.ipv6),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    ip_in(ns, &["link", "set", "eth0", "up"])?;
    // The node's default routes lead to the world; the world reaches every pod through the node.
    ip_in(
        node_ns,
        &[
            "-4",
            "route",
            "add",
            "default",
            "via",
            &world.ipv4.to_string(),
            "dev",
            ext,
        ],
    )?;
    ip_in(
        node_ns,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &world.ipv6.to_string(),
            "dev",
            ext,
        ],
    )?;
    let [v4, v6] = crate::plan::pod_cidrs();
    ip_in(
        ns,
        &[
            "route",
            "add",
            &v4.to_string(),
            "via",
            &world.node_ipv4.to_string(),
            "dev",
            "eth0",
        ],
    )?;
    ip_in(
        ns,
        &[
            "route",
            "add",
            &v6.to_string(),
            "via",
            &world.node_ipv6.to_string(),
            "dev",
            "eth0",
        ],
    )
}

/// A veth between two nodes, with routes to each other's address and pod ranges; a node that is
/// not the world gateway sends everything else to the gateway.
fn link_nodes(a: &Node, b: &Node) -> Result<(), LabError> {
    let (a_dev, b_dev) = (node_link_name(b.index), node_link_name(a.index));
    ip_in(
        &a.netns,
        &[
            "link",
            "add",
            &a_dev,
            "address",
            &node_link_mac(a.index, b.index),
            "type",
            "veth",
            "peer",
            "name",
            &b_dev,
            "address",
            &node_link_mac(b.index, a.index),
            "netns",
            &b.netns,
        ],
    )?;
    for (me, peer, dev) in [(a, b, &a_dev), (b, a, &b_dev)] {
        let ns = me.netns.as_str();
        let (src4, src6) = (me.ipv4.to_string(), me.ipv6.to_string());
        let peer_ll = node_link_local(peer.index).to_string();
        let link_local = format!("{}/64", node_link_local(me.index));
        ip_in(ns, &["addr", "add", &link_local, "dev", dev, "nodad"])?;
        ip_in(ns, &["link", "set", dev, "up"])?;
        let peer4 = format!("{}/32", peer.ipv4);
        ip_in(ns, &["route", "add", &peer4, "dev", dev, "src", &src4])?;
        let (cidr4, gw4) = (peer.pod_cidr_v4.to_string(), peer.ipv4.to_string());
        ip_in(
            ns,
            &[
                "route", "add", &cidr4, "via", &gw4, "dev", dev, "src", &src4,
            ],
        )?;
        let peer6 = format!("{}/128", peer.ipv6);
        ip_in(
            ns,
            &[
                "route", "add", &peer6, "via", &peer_ll, "dev", dev, "src", &src6,
            ],
        )?;
        let cidr6 = peer.pod_cidr_v6.to_string();
        ip_in(
            ns,
            &[
                "route", "add", &cidr6, "via", &peer_ll, "dev", dev, "src", &src6,
            ],
        )?;
        if peer.world_gateway && !me.world_gateway {
            ip_in(
                ns,
                &["-4", "route", "add", "default", "via", &gw4, "dev", dev],
            )?;
            ip_in(
                ns,
                &["-6", "route", "add", "default", "via", &peer_ll, "dev", dev],
            )?;
        }
    }
    Ok(())
}

fn create_endpoint(node: &Node, ep: &Endpoint) -> Result<(), LabError> {
    let (ns, node_ns, lxc) = (
        ep.netns.as_str(),
        node.netns.as_str(),
        ep.interface.as_str(),
    );
    add_netns(ns, &[COMMON_SYSCTLS])?;
    ip_in(
        node_ns,
        &[
            "link",
            "add",
            lxc,
            "address",
            &ep.host_mac,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            &ep.mac,
            "netns",
            ns,
        ],
    )?;
    // Endpoint side: its addresses, and both default routes through the host-side veth.
    ip_in(
        ns,
        &["addr", "add", &format!("{}/32", ep.ipv4), "dev", "eth0"],
    )?;
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/128", ep.ipv6),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    ip_in(ns, &["link", "set", "eth0", "up"])?;
    // Node side: the IPv6 gateway address and a host route to the endpoint.
    ip_in(node_ns, &["link", "set", lxc, "up"])?;
    ip_in(
        node_ns,
        &[
            "addr",
            "add",
            &format!("{GATEWAY_V6}/64"),
            "dev",
            lxc,
            "nodad",
        ],
    )?;
    let (src4, src6) = (node.ipv4.to_string(), node.ipv6.to_string());
    ip_in(
        node_ns,
        &[
            "route",
            "add",
            &format!("{}/32", ep.ipv4),
            "dev",
            lxc,
            "src",
            &src4,
        ],
    )?;
    ip_in(
        node_ns,
        &[
            "route",
            "add",
            &format!("{}/128", ep.ipv6),
            "dev",
            lxc,
            "src",
            &src6,
        ],
    )?;
    let gw4 = GATEWAY_V4.to_string();
    ip_in(
        ns,
        &[
            "neigh",
            "add",
            &gw4,
            "lladdr",
            &ep.host_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )?;
    ip_in(
        ns,
        &[
            "-4", "route", "add", "default", "via", &gw4, "dev", "eth0", "onlink",
        ],
    )?;
    ip_in(
        ns,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &GATEWAY_V6.to_string(),
            "dev",
            "eth0",
        ],
    )
}

/// Removes everything of a plan that exists: processes living in its namespaces, the nodes'
/// BPF pin directories, the namespaces and the run directory. Never fails midway; returns what
/// could not be removed.
pub(crate) fn teardown(plan: &Plan) -> Vec<String> {
    let mut failures = Vec::new();
    let names = plan.netns_names();

    let processes = netns::processes_in(&names);
    if !processes.is_empty() {
        for (pid, ns) in &processes {
            tracing::debug!(%pid, netns = %ns, "stopping process of the lab");
        }
        let pids: Vec<_> = processes.iter().map(|(pid, _)| *pid).collect();
        for pid in netns::terminate(&pids, Duration::from_secs(3)) {
            failures.push(format!("process {pid} survived SIGKILL"));
        }
    }

    for node in &plan.nodes {
        let dir = plan.bpffs_dir(node);
        if dir.file_name().and_then(|n| n.to_str()) != Some(node.name.as_str()) {
            failures.push(format!(
                "refusing to remove {}: not a node's pin directory",
                dir.display()
            ));
            continue;
        }
        if dir.symlink_metadata().is_ok()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            failures.push(format!("cannot remove {}: {e}", dir.display()));
        }
    }

    for name in names.iter().rev() {
        if netns::exists(name)
            && let Err(e) = ip(&["netns", "del", name])
        {
            failures.push(e.to_string());
        }
    }

    let run_dir = &plan.run_dir;
    if run_dir.file_name().and_then(|n| n.to_str()) != Some(plan.prefix.as_str()) {
        failures.push(format!(
            "refusing to remove {}: not the lab's run directory",
            run_dir.display()
        ));
    } else if run_dir.symlink_metadata().is_ok()
        && let Err(e) = std::fs::remove_dir_all(run_dir)
    {
        failures.push(format!("cannot remove {}: {e}", run_dir.display()));
    }
    failures
}
