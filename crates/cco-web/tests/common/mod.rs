//! Helpers of the dashboard's tests: a run played by fake claude, a small HTTP/1.1 client
//! (plain requests and server-sent events) on tokio's TcpStream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Secret values the run is configured with; no answer may contain them.
pub const KEY_ONE: &str = "websecret-one-AAAA1111BBBB";
pub const KEY_TWO: &str = "websecret-two-CCCC2222DDDD";
pub const ENV_SECRET: &str = "gateway-secret-EEEE3333FFFF";
pub const SECRETS: [&str; 3] = [KEY_ONE, KEY_TWO, ENV_SECRET];

pub struct Project {
    pub dir: tempfile::TempDir,
    pub config_dir: PathBuf,
    /// Task t2's worker waits until this file exists.
    pub marker: PathBuf,
}

/// A flat run of two workers on two API keys: t1 is rate limited once (its key is benched,
/// its session resumes on the other key) and writes a file holding a secret; t2 waits for
/// the marker file. Task titles and agents' text hold secrets too.
pub fn project() -> Project {
    let dir = cco_testkit::temp_dir();
    let marker = dir.path().join("release-t2");
    let tasks = json!([
        {"id": "t1", "title": format!("Write t1.txt for {KEY_TWO}"), "description": "Create t1.txt", "files": ["t1.txt"], "acceptance": "t1.txt exists"},
        {"id": "t2", "title": "Write t2.txt", "description": "Create t2.txt", "files": ["t2.txt"]}
    ]);
    // Planners and reviewers answer through structured output (the run asks for it).
    let answer = |marker: &str, document: Value, cost: f64| {
        let mut rule = cco_testkit::answer_rule(json!({"prompt_contains": marker}), document);
        rule["cost_usd"] = json!(cost);
        rule
    };
    let rules = json!([
        answer("[cco:coordinator-plan]", json!({"status": "continue", "tasks": tasks}), 0.02),
        answer("[cco:replan]", json!({"status": "complete", "reason": "direction met"}), 0.0),
        answer("[cco:review]", json!({"decision": "approve"}), 0.005),
        {"match": {"role": "worker", "prompt_contains": "Task ID: t1"}, "times": 1,
         "steps": [{"text": "starting t1"}, {"rate_limit": {"resets_in_secs": 600, "retries": 1}}]},
        {"match": {"role": "worker", "prompt_contains": "[cco:resume]"}, "steps": [
            {"text": format!("resumed; my key is {KEY_ONE} or {KEY_TWO}")},
            {"write": {"path": "t1.txt", "content": format!("token={ENV_SECRET}\n")}},
            {"commit": "Add t1.txt"}
        ], "result": format!("t1 done with {ENV_SECRET}"), "cost_usd": 0.03},
        {"match": {"role": "worker", "prompt_contains": "Task ID: t2"}, "steps": [
            {"text": "waiting for the release"},
            {"bash": format!("while [ ! -f '{}' ]; do sleep 0.05; done", marker.display())},
            {"write": {"path": "t2.txt", "content": "t2\n"}},
            {"commit": "Add t2.txt"}
        ], "result": "t2 done", "cost_usd": 0.04}
    ]);
    let defaults = json!({
        "workerCount": 2,
        "projectDirection": "Write the files.",
        "pollIntervalMs": 50,
        "restartBackoffMs": 20,
        "killGraceMs": 500,
        "maxRunDurationMinutes": 5,
        "maxBudgetUsd": 10
    });
    let config = json!({"authMode": "api-keys-only", "env": {"GATEWAY_TOKEN": ENV_SECRET}});
    let (_, config_dir) =
        cco_testkit::scripted_project(dir.path(), defaults, &config, &json!({"rules": rules}));
    let keys = config_dir.join("api-keys.json");
    std::fs::write(
        &keys,
        json!([{"name": "k1", "apiKey": KEY_ONE}, {"name": "k2", "apiKey": KEY_TWO}]).to_string(),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    Project {
        dir,
        config_dir,
        marker,
    }
}

impl Project {
    pub fn load(&self) -> cco::config::LoadedConfig {
        cco::config::load(&self.config_dir).expect("valid test config")
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        text += &format!("Host: {addr}\r\n");
    }
    for (key, value) in headers {
        text += &format!("{key}: {value}\r\n");
    }
    text + "\r\n"
}

/// Undoes `Transfer-Encoding: chunked` as far as `raw` goes; returns the body so far and
/// whether the last chunk was seen.
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else {
            return (out, false);
        };
        if size == 0 {
            return (out, true);
        }
        let start = line_end + 2;
        if rest.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

fn split(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        raw[end + 4..].to_vec(),
    ))
}

pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request(addr, method, path, headers).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("answer within a minute")
        .unwrap();
    let (head, body) = split(&raw).expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(&body).0 } else { body };
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "GET", path, &[]).await
}

/// A server-sent events stream.
pub struct Events {
    stream: TcpStream,
    raw: Vec<u8>,
    /// Events already returned (counted in the dechunked body).
    used: usize,
    pub head: String,
}

impl Events {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(request(addr, "GET", path, headers).as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (head, body) = loop {
            if let Some(parts) = split(&raw) {
                break parts;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
                .await
                .expect("answer head")
                .unwrap();
            assert!(
                n > 0,
                "closed before the head: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        };
        Events {
            stream,
            raw: body,
            used: 0,
            head,
        }
    }

    /// The next event (`(name, data)`), waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let (body, _) = dechunk(&self.raw);
            let text = String::from_utf8_lossy(&body[self.used.min(body.len())..]).into_owned();
            if let Some(end) = text.find("\n\n") {
                self.used += text[..end + 2].len();
                let block = &text[..end];
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, data.join("\n")));
            }
            let mut buf = [0u8; 16384];
            let read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.raw.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// Waits (at most `timeout`) for an event named `name` whose data passes `check`.
    pub async fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let (event, data) = self.next(left).await?;
            if event == name && check(&data) {
                return Some(data);
            }
        }
        None
    }
}

/// The part of a board page between the column `column` and the next one.
pub fn column<'a>(board: &'a str, column: &str) -> &'a str {
    let marker = format!("data-column=\"{column}\"");
    let Some(start) = board.find(&marker) else {
        return "";
    };
    let rest = &board[start + marker.len()..];
    match rest.find("data-column=") {
        Some(end) => &rest[..end],
        None => rest,
    }
}

pub fn value(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}
