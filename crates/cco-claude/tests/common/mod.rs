//! Helpers shared by the driver tests that run fake-claude.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use cco_claude::{ClaudeSession, SessionHandle, SessionOutcome, SessionSpec, SessionUpdate};
use cco_testkit::{fake_claude, process_group_alive, wait_until_async, write_script};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

/// Upper bound for any single run in these tests.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = cco_testkit::temp_dir();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Env { dir }
    }
    pub fn cwd(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    pub fn spec(&self, script: Value, prompt: &str) -> SessionSpec {
        let script = write_script(self.dir.path(), &script);
        let mut spec = SessionSpec::new(fake_claude(), prompt, self.cwd(), self.config_dir());
        spec.label = "test-agent".into();
        spec.env.push((
            "FAKE_CLAUDE_SCRIPT".into(),
            script.to_string_lossy().into_owned(),
        ));
        spec.kill_grace = Duration::from_millis(300);
        spec.wall_timeout = Some(RUN_LIMIT);
        spec
    }
}

pub fn rule(v: Value) -> Value {
    json!({ "rules": [], "default": v })
}

/// Collects updates until `Finished` (checking it is the last one).
pub async fn collect(
    mut rx: UnboundedReceiver<SessionUpdate>,
) -> (Vec<SessionUpdate>, SessionOutcome) {
    let mut updates = Vec::new();
    let res = tokio::time::timeout(RUN_LIMIT + Duration::from_secs(5), async {
        while let Some(u) = rx.recv().await {
            updates.push(u);
        }
    })
    .await;
    assert!(res.is_ok(), "updates did not end");
    assert!(
        matches!(updates.first(), Some(SessionUpdate::Started { .. })),
        "Started comes first"
    );
    let Some(SessionUpdate::Finished(outcome)) = updates.last().cloned() else {
        panic!("Finished must be the last update: {updates:?}")
    };
    assert_eq!(
        updates
            .iter()
            .filter(|u| matches!(u, SessionUpdate::Finished(_)))
            .count(),
        1
    );
    (updates, outcome)
}

pub async fn run(spec: SessionSpec) -> (SessionHandle, Vec<SessionUpdate>, SessionOutcome) {
    let (handle, rx) = ClaudeSession::spawn(spec).expect("spawn");
    let (updates, outcome) = collect(rx).await;
    (handle, updates, outcome)
}

pub async fn assert_group_gone(pgid: u32) {
    wait_until_async(
        Duration::from_secs(5),
        "process group gone",
        || async move { !process_group_alive(pgid) },
    )
    .await;
}
