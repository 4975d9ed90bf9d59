//! Credential rotation across rate limits.
//!
//! Every claude process gets exactly one credential when it starts: the user's own CLI login
//! (`oauth`: credentials copied into the agent's config dir) or one API key, passed by
//! environment only (never written into a worktree). A key that hits a rate limit is benched
//! until its reset time and the same session resumes on the next key; when nothing is left,
//! the caller pauses until the earliest reset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cco_config::{ApiKey, AuthMode};
use chrono::{DateTime, Utc};

/// Bench time used when a rate-limited result carries no reset time.
pub const DEFAULT_BENCH: chrono::Duration = chrono::Duration::seconds(60);

/// What a process authenticates with.
#[derive(Clone, Debug)]
pub enum Credential {
    /// The user's own Claude Code login (no key in the environment).
    Oauth,
    Key(ApiKey),
}

impl Credential {
    /// The name used for benching and in logs (never the secret).
    pub fn name(&self) -> &str {
        match self {
            Credential::Oauth => "oauth",
            Credential::Key(key) => &key.name,
        }
    }

    /// Environment for the child; API keys travel only this way.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Credential::Oauth => Vec::new(),
            Credential::Key(key) => key.env_vars(),
        }
    }
}

/// Every credential is benched until the returned time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllBenched {
    pub until: DateTime<Utc>,
}

#[derive(Debug)]
struct PoolState {
    benched: HashMap<String, DateTime<Utc>>,
    next: usize,
}

/// Shared, thread-safe credential pool of one run.
#[derive(Debug, Clone)]
pub struct KeyPool {
    mode: AuthMode,
    keys: Arc<Vec<ApiKey>>,
    state: Arc<Mutex<PoolState>>,
}

impl KeyPool {
    pub fn new(mode: AuthMode, keys: Vec<ApiKey>) -> Self {
        Self {
            mode,
            keys: Arc::new(keys),
            state: Arc::new(Mutex::new(PoolState {
                benched: HashMap::new(),
                next: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding this lock cannot leave it inconsistent: recover the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The credential for the next process, round-robin over keys that are not benched.
    pub fn acquire(&self, now: DateTime<Utc>) -> Result<Credential, AllBenched> {
        let mut state = self.lock();
        state.benched.retain(|_, until| *until > now);
        let use_keys = matches!(self.mode, AuthMode::ApiKeysFirst | AuthMode::ApiKeysOnly);
        if use_keys && !self.keys.is_empty() {
            for offset in 0..self.keys.len() {
                let index = (state.next + offset) % self.keys.len();
                let key = &self.keys[index];
                if !state.benched.contains_key(&key.name) {
                    state.next = index + 1;
                    return Ok(Credential::Key(key.clone()));
                }
            }
        }
        let oauth_allowed = !matches!(self.mode, AuthMode::ApiKeysOnly);
        if oauth_allowed && !state.benched.contains_key("oauth") {
            return Ok(Credential::Oauth);
        }
        let until = state
            .benched
            .values()
            .min()
            .copied()
            .unwrap_or(now + DEFAULT_BENCH);
        Err(AllBenched { until })
    }

    /// Benches a credential until `until` (the rate limit's reset time).
    pub fn bench(&self, name: &str, until: DateTime<Utc>) {
        let mut state = self.lock();
        let entry = state.benched.entry(name.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Names and reset times of the benched credentials (for status and the journal).
    pub fn benched(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut list: Vec<_> = self
            .lock()
            .benched
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        list.sort();
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cco_config::parse_api_keys;
    use std::path::Path;

    fn keys() -> Vec<ApiKey> {
        parse_api_keys(
            r#"[{"name":"a","apiKey":"sk-ant-aaaaaaaaaaaa"},{"name":"b","apiKey":"sk-ant-bbbbbbbbbbbb"}]"#,
            Path::new("api-keys.json"),
        )
        .expect("valid keys")
    }

    #[test]
    fn rotates_and_benches_keys_then_falls_back_to_oauth_in_keys_first() {
        let pool = KeyPool::new(AuthMode::ApiKeysFirst, keys());
        let now = Utc::now();
        assert_eq!(pool.acquire(now).unwrap().name(), "a");
        assert_eq!(pool.acquire(now).unwrap().name(), "b");
        pool.bench("a", now + chrono::Duration::seconds(30));
        assert_eq!(pool.acquire(now).unwrap().name(), "b");
        assert_eq!(pool.acquire(now).unwrap().name(), "b");
        pool.bench("b", now + chrono::Duration::seconds(10));
        assert_eq!(pool.acquire(now).unwrap().name(), "oauth");
    }

    #[test]
    fn keys_only_pauses_until_the_earliest_reset_and_recovers() {
        let pool = KeyPool::new(AuthMode::ApiKeysOnly, keys());
        let now = Utc::now();
        pool.bench("a", now + chrono::Duration::seconds(30));
        pool.bench("b", now + chrono::Duration::seconds(10));
        let err = pool.acquire(now).unwrap_err();
        assert_eq!(err.until, now + chrono::Duration::seconds(10));
        let later = now + chrono::Duration::seconds(11);
        assert_eq!(pool.acquire(later).unwrap().name(), "b");
    }

    #[test]
    fn oauth_mode_ignores_keys_and_benches_the_login() {
        let pool = KeyPool::new(AuthMode::Oauth, keys());
        let now = Utc::now();
        assert!(matches!(pool.acquire(now), Ok(Credential::Oauth)));
        pool.bench("oauth", now + chrono::Duration::seconds(5));
        assert!(pool.acquire(now).is_err());
    }

    #[test]
    fn key_env_carries_the_secret_only_in_the_environment() {
        let cred = Credential::Key(keys().remove(0));
        assert_eq!(
            cred.env(),
            vec![(
                "ANTHROPIC_API_KEY".to_string(),
                "sk-ant-aaaaaaaaaaaa".to_string()
            )]
        );
        assert!(!format!("{cred:?}").contains("sk-ant-aaaa"));
    }
}
