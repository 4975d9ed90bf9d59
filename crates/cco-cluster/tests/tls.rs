//! A head and a node in one process over TLS with a private CA: the node joins; a head
//! without TLS is refused by the same node.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cco_actors::{Cluster, NodeState, RunLink};
use cco_cluster::{acceptor, start_node, ClusterHead, NodeOptions};
use cco_config::{ClusterConfig, ClusterTls, NodeAddress};

fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn link(dir: &std::path::Path) -> RunLink {
    let mut cfg = cco_git::GitConfig::new(dir.join("ws"), String::new());
    cfg.git_timeout = Duration::from_secs(30);
    let (git, _) = cco_git::GitHandle::spawn(cfg).await.unwrap();
    RunLink {
        run_id: "run-tls".into(),
        run_dir: dir.join("run"),
        git,
        resumed: false,
        report: Arc::new(|_| {}),
    }
}

fn cluster(dir: &std::path::Path, port: u16, tls: Option<std::path::PathBuf>) -> ClusterConfig {
    ClusterConfig {
        cookie_file: dir.join("cookie"),
        nodes: vec![NodeAddress {
            address: format!("127.0.0.1:{port}"),
            slots: None,
            server_name: Some("node-a.test".into()),
        }],
        local_slots: 0,
        tls: tls.map(|ca_file| ClusterTls { ca_file }),
        insecure_transport: false,
        heartbeat_ms: 200,
        node_timeout_ms: 5000,
        placement_wait_ms: 1000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_tls_joins_and_a_plain_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("cookie"), "tls-test-cookie-0123456789\n");
    // A private CA and the node's certificate.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node_key = rcgen::KeyPair::generate().unwrap();
    let node_cert = rcgen::CertificateParams::new(vec!["node-a.test".to_string()])
        .unwrap()
        .signed_by(&node_key, &issuer)
        .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(dir.path().join("node.pem"), node_cert.pem()).unwrap();
    write_private(&dir.path().join("node-key.pem"), &node_key.serialize_pem());

    let port = free_port();
    let tls = acceptor(
        &dir.path().join("node.pem"),
        &dir.path().join("node-key.pem"),
    )
    .unwrap();
    let node = start_node(
        NodeOptions {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            name: "node-a".into(),
            slots: 3,
            dir: dir.path().join("node"),
            claude: "/bin/true".into(),
            git_timeout: Duration::from_secs(30),
            guard: None,
        },
        "tls-test-cookie-0123456789".into(),
        Some(tls),
    )
    .await
    .unwrap();

    let head = ClusterHead::new(&cluster(dir.path(), port, Some(ca_file))).unwrap();
    head.attach(link(dir.path()).await).await.unwrap();
    assert_eq!(head.wait_for_nodes(1, Duration::from_secs(30)).await, 1);
    let record = head.nodes().remove(0);
    assert_eq!(record.name, "node-a");
    assert_eq!(record.state, NodeState::Joined);
    assert_eq!(record.slots, 3);
    assert!(record.free_disk_bytes.is_some());
    head.detach().await;

    // The same node refuses a head that speaks plain TCP.
    let plain = ClusterHead::new(&cluster(dir.path(), port, None)).unwrap();
    plain
        .attach(link(&dir.path().join("plain")).await)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = plain.nodes().remove(0);
        assert!(!record.state.is_up(), "a plain head joined a TLS node");
        if record.state == NodeState::Refused {
            assert!(record.last_error.unwrap_or_default().contains("TLS"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    plain.detach().await;
    node.stop().await;
}
