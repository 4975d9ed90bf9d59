//! The `cluster` section of orchestrator.json: workers on other hosts (issue 15).
//!
//! ```json
//! "cluster": {
//!   "cookieFile": "cluster-cookie",
//!   "nodes": [{"address": "10.0.0.5:7700", "slots": 8, "serverName": "node-a.example"}],
//!   "localSlots": 2,
//!   "tls": {"caFile": "cluster-ca.pem"}
//! }
//! ```
//!
//! Parsing is pure: the cookie file's permissions and the certificates are checked when the
//! cluster starts (`cco-cluster`). A node address that is not loopback needs `tls` unless
//! `insecureTransport` is true: API keys travel to nodes with each turn.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::MAX_MS;
use crate::validate::{describe, resolve, Obj, Result};

const CLUSTER_KEYS: &[&str] = &[
    "cookieFile",
    "nodes",
    "localSlots",
    "tls",
    "insecureTransport",
    "heartbeatMs",
    "nodeTimeoutMs",
    "placementWaitMs",
];
const NODE_KEYS: &[&str] = &["address", "slots", "serverName"];
const TLS_KEYS: &[&str] = &["caFile"];
/// Upper bound for `slots` and `localSlots`.
pub const MAX_SLOTS: u64 = 1000;

/// `cluster`: where workers run besides this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// `cookieFile` (required), resolved: the shared secret of the head and its nodes.
    pub cookie_file: PathBuf,
    /// `nodes` (at least one).
    pub nodes: Vec<NodeAddress>,
    /// `localSlots` (0): workers that may run on this machine as well.
    pub local_slots: usize,
    /// `tls`: connect to nodes over TLS, trusting this CA.
    pub tls: Option<ClusterTls>,
    /// `insecureTransport` (false): allow plain TCP to non-loopback nodes (keys in clear).
    pub insecure_transport: bool,
    /// `heartbeatMs` (1000): how often each node is asked whether it is alive.
    pub heartbeat_ms: u64,
    /// `nodeTimeoutMs` (5000): a node silent this long is lost; its turns go elsewhere.
    pub node_timeout_ms: u64,
    /// `placementWaitMs` (120000): how long a turn waits for a free slot before it counts as
    /// a failed attempt (the restart policy then retries with its backoff).
    pub placement_wait_ms: u64,
}

/// One entry of `cluster.nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    /// `host:port` of its `cco node --listen`.
    pub address: String,
    /// Workers this run may place there (`None`: as many as the node offers).
    pub slots: Option<u32>,
    /// The name its TLS certificate carries (default: the host of `address`).
    pub server_name: Option<String>,
}

impl NodeAddress {
    /// The host part of `address` (brackets of an IPv6 literal removed).
    pub fn host(&self) -> &str {
        split_host_port(&self.address).map_or("", |(h, _)| h)
    }
}

/// `cluster.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTls {
    /// `caFile`, resolved: PEM certificates that sign the nodes' certificates.
    pub ca_file: PathBuf,
}

/// `host:port` split (IPv6 as `[::1]:7700`); `None` when it is not that shape.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(char::is_whitespace)
        || (host.contains(':') && !address.starts_with('['))
    {
        return None;
    }
    Some((host, port))
}

/// True for `localhost` and loopback IP literals.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn parse_cluster(top: &Obj<'_>, dir: &Path) -> Result<Option<ClusterConfig>> {
    let Some(cluster) = top.object("cluster", CLUSTER_KEYS)? else {
        return Ok(None);
    };
    let cookie_file = cluster
        .string("cookieFile", true, false)?
        .map(|raw| resolve(dir, Path::new(raw)))
        .ok_or_else(|| {
            cluster.missing(
                "cookieFile",
                "the path of a file holding the cluster's secret cookie (mode 0600)",
            )
        })?;
    let tls = match cluster.object("tls", TLS_KEYS)? {
        None => None,
        Some(tls) => Some(ClusterTls {
            ca_file: tls
                .string("caFile", true, false)?
                .map(|raw| resolve(dir, Path::new(raw)))
                .ok_or_else(|| {
                    tls.missing(
                        "caFile",
                        "a PEM file of the CA that signs the nodes' certificates",
                    )
                })?,
        }),
    };
    let insecure_transport = cluster.bool("insecureTransport")?.unwrap_or(false);
    let items = cluster.array("nodes", "a list of nodes")?.ok_or_else(|| {
        cluster.missing(
            "nodes",
            "a list of nodes, e.g. [{\"address\": \"10.0.0.5:7700\"}]",
        )
    })?;
    if items.is_empty() {
        return Err(cluster.invalid(cluster.path("nodes"), "at least one node", "an empty list"));
    }
    let mut nodes: Vec<NodeAddress> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("{}[{i}]", cluster.path("nodes"));
        let node = Obj::new(
            top.file,
            prefix,
            item,
            "an object with keys address, slots, serverName",
            false,
        )?;
        node.check_keys(NODE_KEYS)?;
        let address = node.string("address", true, false)?.ok_or_else(|| {
            node.missing("address", "host:port of the node's `cco node --listen`")
        })?;
        let Some((host, _)) = split_host_port(address) else {
            return Err(node.invalid(
                node.path("address"),
                "host:port (e.g. 10.0.0.5:7700 or [::1]:7700)",
                describe(&serde_json::Value::String(address.into()), false),
            ));
        };
        if tls.is_none() && !insecure_transport && !is_loopback_host(host) {
            return Err(node.invalid(
                node.path("address"),
                "a loopback address, or cluster.tls (API keys travel to nodes with each turn); \
                 \"insecureTransport\": true allows plain TCP",
                address.to_string(),
            ));
        }
        if nodes.iter().any(|n| n.address == address) {
            return Err(node.invalid(
                node.path("address"),
                "each node once",
                format!("{address} (listed twice)"),
            ));
        }
        let slots = node.int("slots", 1, MAX_SLOTS, true)?.map(|v| v as u32);
        let server_name = node.string("serverName", true, true)?.map(str::to_string);
        nodes.push(NodeAddress {
            address: address.to_string(),
            slots,
            server_name,
        });
    }
    let ms = |key: &str, default: u64, min: u64| -> Result<u64> {
        Ok(cluster.int(key, min, MAX_MS, false)?.unwrap_or(default))
    };
    Ok(Some(ClusterConfig {
        cookie_file,
        nodes,
        local_slots: cluster.int("localSlots", 0, MAX_SLOTS, false)?.unwrap_or(0) as usize,
        tls,
        insecure_transport,
        heartbeat_ms: ms("heartbeatMs", 1000, 50)?,
        node_timeout_ms: ms("nodeTimeoutMs", 5000, 100)?,
        placement_wait_ms: ms("placementWaitMs", 120_000, 100)?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;

    fn parse(cluster: &str) -> Result<Config, String> {
        let text = format!(r#"{{"repositoryUrl":"/r","workerCount":2,"cluster":{cluster}}}"#);
        Config::from_json_str(&text, Path::new("/c/orchestrator.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_cluster_section_is_read_with_defaults_and_paths_resolved() {
        let c = parse(r#"{"cookieFile":"cookie","nodes":[{"address":"127.0.0.1:7701","slots":4},{"address":"[::1]:7702"}],"localSlots":1}"#)
            .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.cookie_file, Path::new("/c/cookie"));
        assert_eq!(cluster.nodes.len(), 2);
        assert_eq!(cluster.nodes[0].slots, Some(4));
        assert_eq!(cluster.nodes[1].host(), "::1");
        assert_eq!(cluster.local_slots, 1);
        assert_eq!(cluster.heartbeat_ms, 1000);
        assert!(cluster.tls.is_none());
    }

    #[test]
    fn unknown_keys_bad_addresses_and_plain_remote_nodes_are_refused() {
        let e = parse(r#"{"cookieFile":"c","nodes":[{"address":"127.0.0.1:1"}],"localSlot":1}"#)
            .unwrap_err();
        assert!(e.contains("cluster.localSlot"), "{e}");
        assert!(e.contains("localSlots"), "{e}");
        let e = parse(r#"{"cookieFile":"c","nodes":[{"address":"127.0.0.1:1","slot":2}]}"#)
            .unwrap_err();
        assert!(e.contains("cluster.nodes[0].slot"), "{e}");
        let e = parse(r#"{"cookieFile":"c","nodes":[{"address":"no-port"}]}"#).unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let e = parse(r#"{"cookieFile":"c","nodes":[{"address":"10.0.0.5:7700"}]}"#).unwrap_err();
        assert!(
            e.contains("cluster.tls") && e.contains("insecureTransport"),
            "{e}"
        );
        let e = parse(r#"{"nodes":[{"address":"127.0.0.1:1"}]}"#).unwrap_err();
        assert!(e.contains("cluster.cookieFile"), "{e}");
        let e = parse(r#"{"cookieFile":"c","nodes":[]}"#).unwrap_err();
        assert!(e.contains("at least one node"), "{e}");
        // TLS, or an explicit opt-out, allows remote addresses.
        parse(
            r#"{"cookieFile":"c","tls":{"caFile":"ca.pem"},"nodes":[{"address":"10.0.0.5:7700"}]}"#,
        )
        .unwrap();
        parse(r#"{"cookieFile":"c","insecureTransport":true,"nodes":[{"address":"node-a:7700"}]}"#)
            .unwrap();
    }
}
