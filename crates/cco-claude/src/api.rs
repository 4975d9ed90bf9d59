//! API trouble as it happens: typed `system/api_retry` and `rate_limit_event` signals, and the
//! classification of API errors (rate limit, overloaded, other 5xx, connection).
//!
//! The CLI retries failed requests itself and reports each retry as it starts waiting; a key
//! that keeps answering 429 is only given up after all retries (minutes). A caller that reads
//! [`SessionUpdate::api_signal`] (or [`StreamEvent::api_signal`]) on every update sees the
//! first 429 or a `rejected` rate limit at once and can stop the process, bench the key and
//! resume the session elsewhere — while the CLI is still waiting.
//!
//! ```
//! use cco_claude::{parse_line, ApiErrorClass, ApiSignal};
//! let line = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":3,"retry_delay_ms":30000,"error_status":429,"error":"rate_limit"}"#;
//! let signal = parse_line(line).unwrap().api_signal().unwrap();
//! assert!(signal.is_rate_limit_hit());
//! let ApiSignal::Retry(retry) = signal else { unreachable!() };
//! assert_eq!(retry.class, ApiErrorClass::RateLimited);
//! assert_eq!(retry.class.to_string(), "API error 429 (rate limited)");
//! ```

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::events::{ApiRetryEvent, RateLimitEvent, StreamEvent, SystemEvent};
use crate::outcome::OutcomeKind;
use crate::session::SessionUpdate;

/// What an API error status means for an orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorClass {
    /// 429: this key (or subscription) is rate limited. Bench the key, not the API.
    RateLimited,
    /// 529: the API is overloaded. Transient and not the key's fault.
    Overloaded,
    /// Another 5xx. Transient and not the key's fault.
    ServerError(u16),
    /// No HTTP status: the connection failed or timed out. Transient.
    Connection,
    /// Any other status (400, 401, 403, ...): a request or credential problem, not transient.
    Other(u16),
}

impl ApiErrorClass {
    /// Classifies an HTTP status (`None`: no response at all).
    pub fn from_status(status: Option<u16>) -> ApiErrorClass {
        match status {
            None => ApiErrorClass::Connection,
            Some(429) => ApiErrorClass::RateLimited,
            Some(529) => ApiErrorClass::Overloaded,
            Some(s @ 500..=599) => ApiErrorClass::ServerError(s),
            Some(s) => ApiErrorClass::Other(s),
        }
    }

    /// The API is unavailable for everyone (529, 5xx, connection errors): wait and retry with
    /// the same key; never bench a key for it.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ApiErrorClass::Overloaded | ApiErrorClass::ServerError(_) | ApiErrorClass::Connection
        )
    }

    pub fn is_rate_limit(self) -> bool {
        self == ApiErrorClass::RateLimited
    }

    /// The HTTP status, when there was one.
    pub fn status(self) -> Option<u16> {
        match self {
            ApiErrorClass::RateLimited => Some(429),
            ApiErrorClass::Overloaded => Some(529),
            ApiErrorClass::ServerError(s) | ApiErrorClass::Other(s) => Some(s),
            ApiErrorClass::Connection => None,
        }
    }
}

impl fmt::Display for ApiErrorClass {
    /// `API error 429 (rate limited)`, `API error 529 (overloaded)`, `API error 503 (server
    /// error)`, `API connection error`, `API error 401`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiErrorClass::RateLimited => f.write_str("API error 429 (rate limited)"),
            ApiErrorClass::Overloaded => f.write_str("API error 529 (overloaded)"),
            ApiErrorClass::ServerError(s) => write!(f, "API error {s} (server error)"),
            ApiErrorClass::Connection => f.write_str("API connection error"),
            ApiErrorClass::Other(s) => write!(f, "API error {s}"),
        }
    }
}

/// One API signal from the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiSignal {
    /// `system/api_retry`: a request failed; the CLI waits `retry_delay` and tries again.
    Retry(ApiRetry),
    /// `rate_limit_event`: the subscription's rate-limit status (OAuth logins only).
    RateLimit(RateLimitStatus),
}

impl ApiSignal {
    /// The key must stop now: a 429 retry, or a `rejected` rate limit.
    pub fn is_rate_limit_hit(&self) -> bool {
        match self {
            ApiSignal::Retry(r) => r.class.is_rate_limit(),
            ApiSignal::RateLimit(r) => r.state == RateLimitState::Rejected,
        }
    }

    /// The API itself is in trouble (a 529, 5xx or connection retry): not the key's fault.
    pub fn is_api_unavailable(&self) -> bool {
        matches!(self, ApiSignal::Retry(r) if r.class.is_transient())
    }

    /// The earliest time this signal allows the key to be used again: the reset time of a
    /// rate limit, or `now` + the retry delay the CLI announced. `None` when it says nothing.
    pub fn not_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            ApiSignal::Retry(r) => r.retry_at(now),
            ApiSignal::RateLimit(r) => r.resets_at,
        }
    }
}

impl fmt::Display for ApiSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiSignal::Retry(r) => r.fmt(f),
            ApiSignal::RateLimit(r) => r.fmt(f),
        }
    }
}

/// A typed `system/api_retry` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRetry {
    pub class: ApiErrorClass,
    /// 1-based; `None` if the CLI did not say.
    pub attempt: Option<u64>,
    pub max_retries: Option<u64>,
    /// How long the CLI waits before this retry (`retry_delay_ms`; honours `retry-after`).
    pub retry_delay: Option<Duration>,
    /// The CLI's short error name (`rate_limit`, `overloaded`, ...).
    pub error: Option<String>,
}

impl ApiRetry {
    fn from_event(e: &ApiRetryEvent) -> ApiRetry {
        ApiRetry {
            class: ApiErrorClass::from_status(e.error_status),
            attempt: e.attempt,
            max_retries: e.max_retries,
            retry_delay: e.retry_delay_ms.map(Duration::from_millis),
            error: e.error.clone(),
        }
    }

    /// `now` + the retry delay.
    pub fn retry_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let delay = chrono::Duration::from_std(self.retry_delay?).ok()?;
        now.checked_add_signed(delay)
    }
}

impl fmt::Display for ApiRetry {
    /// `API error 429 (rate limited): retry 1 of 3 in 30 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: retry", self.class)?;
        match (self.attempt, self.max_retries) {
            (Some(a), Some(m)) => write!(f, " {a} of {m}")?,
            (Some(a), None) => write!(f, " {a}")?,
            _ => {}
        }
        if let Some(d) = self.retry_delay {
            write!(f, " in {:.1} s", d.as_secs_f64())?;
        }
        Ok(())
    }
}

/// `status` of a rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitState {
    Allowed,
    /// Allowed, but utilization passed a warning threshold: prefer other keys.
    AllowedWarning,
    /// Requests are refused until `resets_at`.
    Rejected,
    /// A status this version does not know (kept as sent; empty when missing).
    Other(String),
}

impl fmt::Display for RateLimitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateLimitState::Allowed => "allowed",
            RateLimitState::AllowedWarning => "allowed (warning)",
            RateLimitState::Rejected => "rejected",
            RateLimitState::Other(s) if s.is_empty() => "unknown",
            RateLimitState::Other(s) => s,
        })
    }
}

/// One rate-limit window (`five_hour`, `seven_day`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitWindowStatus {
    pub name: String,
    pub utilization: Option<f64>,
    pub resets_at: Option<DateTime<Utc>>,
    pub surpassed_threshold: Option<f64>,
}

/// A typed `rate_limit_event`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitStatus {
    pub state: RateLimitState,
    pub resets_at: Option<DateTime<Utc>>,
    /// 0.0 ..= 1.0 of the deciding window used.
    pub utilization: Option<f64>,
    /// The deciding window (`rateLimitType`), e.g. `five_hour`.
    pub limit_type: Option<String>,
    pub surpassed_threshold: Option<f64>,
    pub using_overage: Option<bool>,
    /// Every window, by name.
    pub windows: Vec<RateLimitWindowStatus>,
}

impl RateLimitStatus {
    fn from_event(e: &RateLimitEvent) -> RateLimitStatus {
        let info = &e.rate_limit_info;
        let state = match info.status.as_deref().unwrap_or("") {
            "allowed" => RateLimitState::Allowed,
            "allowed_warning" => RateLimitState::AllowedWarning,
            "rejected" => RateLimitState::Rejected,
            other => RateLimitState::Other(other.to_owned()),
        };
        RateLimitStatus {
            state,
            resets_at: info.resets_at.and_then(unix_secs),
            utilization: info.utilization,
            limit_type: info.rate_limit_type.clone(),
            surpassed_threshold: info.surpassed_threshold,
            using_overage: info.is_using_overage,
            windows: info
                .unified_windows
                .iter()
                .map(|(name, w)| RateLimitWindowStatus {
                    name: name.clone(),
                    utilization: w.utilization,
                    resets_at: w.resets_at.and_then(unix_secs),
                    surpassed_threshold: w.surpassed_threshold,
                })
                .collect(),
        }
    }

    /// The highest utilization reported (the deciding window or any other).
    pub fn max_utilization(&self) -> Option<f64> {
        self.windows
            .iter()
            .filter_map(|w| w.utilization)
            .chain(self.utilization)
            .fold(None, |max: Option<f64>, u| {
                Some(max.map_or(u, |m| m.max(u)))
            })
    }
}

impl fmt::Display for RateLimitStatus {
    /// `rate limit rejected (five_hour, 100% used, resets 2026-12-01 01:27 UTC)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limit {}", self.state)?;
        let mut parts = Vec::new();
        if let Some(t) = &self.limit_type {
            parts.push(t.clone());
        }
        if let Some(u) = self.max_utilization() {
            parts.push(format!("{:.0}% used", u * 100.0));
        }
        if let Some(at) = self.resets_at {
            parts.push(format!("resets {}", at.format("%Y-%m-%d %H:%M UTC")));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

fn unix_secs(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

impl StreamEvent {
    /// The API signal this event carries, if any.
    pub fn api_signal(&self) -> Option<ApiSignal> {
        match self {
            StreamEvent::System(SystemEvent::ApiRetry(r)) => {
                Some(ApiSignal::Retry(ApiRetry::from_event(r)))
            }
            StreamEvent::RateLimit(r) => Some(ApiSignal::RateLimit(RateLimitStatus::from_event(r))),
            _ => None,
        }
    }
}

impl SessionUpdate {
    /// The API signal of an [`SessionUpdate::Event`], if any: call it on every update to react
    /// to the first 429 or `rejected` rate limit while the process still runs.
    pub fn api_signal(&self) -> Option<ApiSignal> {
        match self {
            SessionUpdate::Event(e) => e.api_signal(),
            _ => None,
        }
    }
}

impl OutcomeKind {
    /// The class of API error that ended the run, if one did.
    pub fn api_error_class(&self) -> Option<ApiErrorClass> {
        match self {
            OutcomeKind::RateLimited { .. } => Some(ApiErrorClass::RateLimited),
            OutcomeKind::ApiError { status, .. } => Some(ApiErrorClass::from_status(*status)),
            _ => None,
        }
    }

    /// Ended by an API that was unavailable (529, 5xx, connection): not the task's fault and
    /// not the key's.
    pub fn is_api_unavailable(&self) -> bool {
        self.api_error_class()
            .is_some_and(ApiErrorClass::is_transient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse_line;

    fn signal(line: &str) -> ApiSignal {
        parse_line(line).unwrap().api_signal().unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(
            ApiErrorClass::from_status(Some(429)),
            ApiErrorClass::RateLimited
        );
        assert_eq!(
            ApiErrorClass::from_status(Some(529)),
            ApiErrorClass::Overloaded
        );
        assert_eq!(
            ApiErrorClass::from_status(Some(503)),
            ApiErrorClass::ServerError(503)
        );
        assert_eq!(ApiErrorClass::from_status(None), ApiErrorClass::Connection);
        assert_eq!(
            ApiErrorClass::from_status(Some(401)),
            ApiErrorClass::Other(401)
        );
        assert!(ApiErrorClass::Overloaded.is_transient());
        assert!(ApiErrorClass::Connection.is_transient());
        assert!(!ApiErrorClass::RateLimited.is_transient());
        assert!(!ApiErrorClass::Other(400).is_transient());
        assert_eq!(
            ApiErrorClass::Overloaded.to_string(),
            "API error 529 (overloaded)"
        );
        assert_eq!(
            ApiErrorClass::ServerError(500).to_string(),
            "API error 500 (server error)"
        );
        assert_eq!(
            ApiErrorClass::Connection.to_string(),
            "API connection error"
        );
        assert_eq!(ApiErrorClass::Overloaded.status(), Some(529));
    }

    #[test]
    fn retry_signals() {
        let s = signal(
            r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":3,"retry_delay_ms":30000,"error_status":429,"error":"rate_limit"}"#,
        );
        assert!(s.is_rate_limit_hit());
        assert!(!s.is_api_unavailable());
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        assert_eq!(
            s.not_before(now),
            Some(Utc.timestamp_opt(1_030, 0).unwrap())
        );
        assert_eq!(
            s.to_string(),
            "API error 429 (rate limited): retry 2 of 3 in 30.0 s"
        );

        let s = signal(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":508,"error_status":529,"error":"overloaded"}"#,
        );
        assert!(s.is_api_unavailable());
        assert!(!s.is_rate_limit_hit());
        let s =
            signal(r#"{"type":"system","subtype":"api_retry","attempt":1,"error_status":null}"#);
        let ApiSignal::Retry(r) = s else { panic!() };
        assert_eq!(r.class, ApiErrorClass::Connection);
        assert_eq!(r.retry_at(Utc::now()), None);
    }

    #[test]
    fn rate_limit_signals() {
        let s = signal(
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1796088453,"rateLimitType":"five_hour","utilization":0.97,"isUsingOverage":false,"surpassedThreshold":0.95,"unifiedWindows":{"five_hour":{"utilization":0.97,"resetsAt":1796088453,"surpassedThreshold":0.95},"seven_day":{"utilization":0.52,"resetsAt":1796174853}}}}"#,
        );
        let ApiSignal::RateLimit(r) = &s else {
            panic!()
        };
        assert_eq!(r.state, RateLimitState::AllowedWarning);
        assert_eq!(r.utilization, Some(0.97));
        assert_eq!(r.surpassed_threshold, Some(0.95));
        assert_eq!(r.limit_type.as_deref(), Some("five_hour"));
        assert_eq!(r.using_overage, Some(false));
        assert_eq!(r.windows.len(), 2);
        assert_eq!(r.windows[1].name, "seven_day");
        assert_eq!(r.windows[1].utilization, Some(0.52));
        assert_eq!(r.max_utilization(), Some(0.97));
        assert!(!s.is_rate_limit_hit());
        assert_eq!(
            s.not_before(Utc::now()),
            Utc.timestamp_opt(1796088453, 0).single()
        );
        assert!(s
            .to_string()
            .starts_with("rate limit allowed (warning) (five_hour, 97% used, resets "));

        let s = signal(
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1796088453,"unifiedWindows":{"five_hour":{"utilization":1}}}}"#,
        );
        assert!(s.is_rate_limit_hit());
        let s = signal(
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"weird","utilization":"x"}}"#,
        );
        let ApiSignal::RateLimit(r) = s else { panic!() };
        assert_eq!(r.state, RateLimitState::Other("weird".into()));
        assert_eq!(r.utilization, None);
        assert!(parse_line(r#"{"type":"assistant","message":{}}"#)
            .unwrap()
            .api_signal()
            .is_none());
    }
}
