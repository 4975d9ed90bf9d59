//! Credentials: which one a new claude process runs on, and when one must rest.
//!
//! Every claude process gets exactly one credential when it starts: the user's own CLI login
//! (`oauth`: its credentials are copied into the agent's config dir) or one API key, passed by
//! environment only (never written into a worktree). The session lives in the agent's config
//! dir, so the same session resumes on any credential.
//!
//! The order of preference follows `authMode`:
//! - `oauth`: the login; while it is rate limited, the keys of api-keys.json (if any); the
//!   login again once its reset time has passed;
//! - `api-keys-first`: the keys in rotation; while every key is rate limited, the login (when
//!   one is available on this machine); the keys again at their reset;
//! - `api-keys-only`: the keys in rotation.
//!
//! A credential is *benched* (not used at all) until a time: the rate limit's reset, the
//! retry delay, at least `minKeyBenchMs` (see `session::policy`). A credential whose latest
//! `rate_limit_event` says `allowed_warning`, or whose utilization passed
//! `quotaWarningThreshold`, has no headroom: new processes prefer any credential that has
//! some, and use it only when none has (quota-aware admission). With every credential benched,
//! the caller pauses until the earliest reset.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cco_claude::{RateLimitState, RateLimitStatus};
use cco_config::{ApiKey, AuthMode};
use chrono::{DateTime, Utc};

use crate::board::{CredentialState, CredentialStatus};

/// Name of the CLI login as a credential.
pub(crate) const LOGIN: &str = "oauth";

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
            Credential::Oauth => LOGIN,
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

/// The latest quota news of a credential (`rate_limit_event`s; subscription logins only).
#[derive(Debug, Clone)]
struct Quota {
    /// `allowed_warning`, or a utilization above the threshold.
    warning: bool,
    utilization: Option<f64>,
    resets_at: Option<DateTime<Utc>>,
    seen: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Slot {
    credential: Credential,
    /// The preference group: 0 first, 1 when everything in 0 is benched.
    tier: u8,
    benched_until: Option<DateTime<Utc>>,
    quota: Option<Quota>,
}

#[derive(Debug)]
struct PoolState {
    slots: Vec<Slot>,
    /// Round robin among the keys of a tier.
    next: usize,
}

/// Shared, thread-safe credential pool of one run.
#[derive(Debug, Clone)]
pub struct KeyPool {
    threshold: f64,
    /// How long a warning without a reset time counts.
    warning_for: Duration,
    state: Arc<Mutex<PoolState>>,
}

impl KeyPool {
    /// The credentials of `mode`: `keys` from api-keys.json; `login`: the CLI login is
    /// available on this machine (for `api-keys-first`'s fallback; `oauth` uses it anyway);
    /// `threshold`: the utilization above which a credential has no headroom.
    pub fn new(mode: AuthMode, keys: Vec<ApiKey>, login: bool, threshold: f64) -> Self {
        let key = |k: ApiKey, tier| Slot {
            credential: Credential::Key(k),
            tier,
            benched_until: None,
            quota: None,
        };
        let login_slot = |tier| Slot {
            credential: Credential::Oauth,
            tier,
            benched_until: None,
            quota: None,
        };
        let slots: Vec<Slot> = match mode {
            AuthMode::Oauth => std::iter::once(login_slot(0))
                .chain(keys.into_iter().map(|k| key(k, 1)))
                .collect(),
            AuthMode::ApiKeysFirst if keys.is_empty() => vec![login_slot(0)],
            AuthMode::ApiKeysFirst => {
                let mut slots: Vec<Slot> = keys.into_iter().map(|k| key(k, 0)).collect();
                if login {
                    slots.push(login_slot(1));
                }
                slots
            }
            AuthMode::ApiKeysOnly => keys.into_iter().map(|k| key(k, 0)).collect(),
        };
        Self {
            threshold,
            warning_for: Duration::from_secs(60),
            state: Arc::new(Mutex::new(PoolState { slots, next: 0 })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding this lock cannot leave it inconsistent: recover the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets benches and warnings whose time has passed.
    fn expire(&self, state: &mut PoolState, now: DateTime<Utc>) {
        let warning_for = chrono::Duration::from_std(self.warning_for).unwrap_or_default();
        for slot in &mut state.slots {
            slot.benched_until = slot.benched_until.filter(|until| *until > now);
            slot.quota = slot.quota.take().filter(|q| match q.resets_at {
                Some(reset) => reset > now,
                None => q.seen + warning_for > now,
            });
        }
    }

    /// The credential for the next process: the first tier with a credential that is not
    /// benched and has headroom (keys in rotation), else one that is not benched at all;
    /// `Err` with the earliest reset when every credential is benched.
    pub fn acquire(&self, now: DateTime<Utc>) -> Result<Credential, AllBenched> {
        let mut state = self.lock();
        self.expire(&mut state, now);
        let count = state.slots.len();
        let usable = |slot: &Slot, headroom: bool| {
            slot.benched_until.is_none()
                && (!headroom || !slot.quota.as_ref().is_some_and(|q| q.warning))
        };
        for headroom in [true, false] {
            for tier in 0..=1u8 {
                let start = state.next;
                let pick = (0..count)
                    .map(|offset| (start + offset) % count)
                    .find(|&i| state.slots[i].tier == tier && usable(&state.slots[i], headroom));
                if let Some(index) = pick {
                    state.next = index + 1;
                    return Ok(state.slots[index].credential.clone());
                }
            }
        }
        let until = state
            .slots
            .iter()
            .filter_map(|s| s.benched_until)
            .min()
            .unwrap_or(now + chrono::Duration::seconds(60));
        Err(AllBenched { until })
    }

    /// Benches a credential until `until` (the rate limit's reset time).
    pub fn bench(&self, name: &str, until: DateTime<Utc>) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.iter_mut().find(|s| s.credential.name() == name) {
            slot.benched_until = Some(slot.benched_until.map_or(until, |t| t.max(until)));
        }
    }

    /// The latest `rate_limit_event` of a process on credential `name`: its headroom. Returns
    /// whether the credential has none now (a warning).
    pub fn observe(&self, name: &str, status: &RateLimitStatus, now: DateTime<Utc>) -> bool {
        let warning = status.state == RateLimitState::AllowedWarning
            || status.state == RateLimitState::Rejected
            || status.max_utilization().is_some_and(|u| u > self.threshold);
        let mut state = self.lock();
        if let Some(slot) = state.slots.iter_mut().find(|s| s.credential.name() == name) {
            slot.quota = Some(Quota {
                warning,
                utilization: status.max_utilization(),
                resets_at: status.resets_at,
                seen: now,
            });
        }
        warning
    }

    /// Names and reset times of the benched credentials (for the journal).
    pub fn benched(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut list: Vec<_> = self
            .lock()
            .slots
            .iter()
            .filter_map(|s| {
                s.benched_until
                    .map(|t| (s.credential.name().to_string(), t))
            })
            .collect();
        list.sort();
        list
    }

    /// Every credential as status lines show it.
    pub fn statuses(&self, now: DateTime<Utc>) -> Vec<CredentialStatus> {
        let mut state = self.lock();
        self.expire(&mut state, now);
        state
            .slots
            .iter()
            .map(|s| {
                let warned = s.quota.as_ref().filter(|q| q.warning);
                let (state, until) = match (s.benched_until, warned) {
                    (Some(until), _) => (CredentialState::Limited, Some(until)),
                    (None, Some(q)) => (CredentialState::Warning, q.resets_at),
                    (None, None) => (CredentialState::Ready, None),
                };
                CredentialStatus {
                    name: s.credential.name().to_string(),
                    login: matches!(s.credential, Credential::Oauth),
                    fallback: s.tier > 0,
                    state,
                    until,
                    utilization: s.quota.as_ref().and_then(|q| q.utilization),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
