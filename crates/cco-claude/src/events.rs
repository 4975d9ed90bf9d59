//! Typed stream-json events of the `claude` CLI (`--output-format stream-json --verbose`).
//!
//! Tolerance rules (the CLI adds event types and fields between versions):
//! - unknown fields are ignored everywhere;
//! - optional fields may be missing or `null`;
//! - an unknown top-level `type` becomes [`StreamEvent::Unknown`], an unknown `system`
//!   subtype [`SystemEvent::Other`], an unknown content block [`ContentBlock::Unknown`];
//! - a line that is not a JSON object, or has no string `type`, is a [`ParseError`].
//!
//! [`parse_line`] deserializes straight into the typed structs. The top-level `type` is read
//! from the line's prefix when the line starts with `{"type":"…"` (the CLI's usual layout),
//! otherwise by a cheap probe pass that skips every other field without allocating; the
//! event itself is then deserialized once, directly into its struct (no `serde_json::Value`
//! detour, no buffering of the whole object as serde's internally tagged enums would do).

use std::borrow::Cow;

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One line of stream-json output.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `{"type":"system", "subtype": …}`
    System(SystemEvent),
    /// `{"type":"assistant"}`: one event per content block of a model message.
    Assistant(AssistantEvent),
    /// `{"type":"user"}`: tool results (and interruption notices).
    User(UserEvent),
    /// `{"type":"rate_limit_event"}`
    RateLimit(RateLimitEvent),
    /// `{"type":"result"}`: the end of a turn.
    Result(ResultEvent),
    /// Any other `type`; the rest of the line was valid JSON and is ignored.
    Unknown { type_name: String },
}

impl StreamEvent {
    /// The `type` string of this event as it appeared on the wire.
    pub fn type_name(&self) -> &str {
        match self {
            StreamEvent::System(_) => "system",
            StreamEvent::Assistant(_) => "assistant",
            StreamEvent::User(_) => "user",
            StreamEvent::RateLimit(_) => "rate_limit_event",
            StreamEvent::Result(_) => "result",
            StreamEvent::Unknown { type_name } => type_name,
        }
    }

    /// The `session_id` carried by the event, when it has one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            StreamEvent::System(s) => s.session_id(),
            StreamEvent::Assistant(a) => a.session_id.as_deref(),
            StreamEvent::User(u) => u.session_id.as_deref(),
            StreamEvent::RateLimit(r) => r.session_id.as_deref(),
            StreamEvent::Result(r) => r.session_id.as_deref(),
            StreamEvent::Unknown { .. } => None,
        }
    }
}

/// `type: "system"` events, by `subtype`.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemEvent {
    Init(InitEvent),
    ApiRetry(ApiRetryEvent),
    /// Any other subtype (e.g. `vcs_state_changed`); the subtype is kept, `""` when missing.
    Other {
        subtype: String,
        session_id: Option<String>,
    },
}

impl SystemEvent {
    pub fn session_id(&self) -> Option<&str> {
        match self {
            SystemEvent::Init(i) => i.session_id.as_deref(),
            SystemEvent::ApiRetry(r) => r.session_id.as_deref(),
            SystemEvent::Other { session_id, .. } => session_id.as_deref(),
        }
    }
}

/// `system/init`: the first event of every turn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InitEvent {
    pub session_id: Option<String>,
    pub cwd: Option<String>,
    pub model: Option<String>,
    pub tools: Vec<String>,
    pub permission_mode: Option<String>,
    pub api_key_source: Option<String>,
    pub claude_code_version: Option<String>,
}

/// `system/api_retry`: the CLI is retrying an API call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiRetryEvent {
    pub session_id: Option<String>,
    pub attempt: Option<u64>,
    pub max_retries: Option<u64>,
    pub retry_delay_ms: Option<u64>,
    pub error_status: Option<u16>,
    /// The error as a string (non-string JSON values are kept as their JSON text).
    pub error: Option<String>,
}

/// Token usage (of a message or of a whole run).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Usage {
    #[serde(deserialize_with = "lenient_u64")]
    pub input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub output_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub cache_read_input_tokens: Option<u64>,
}

/// `type: "assistant"`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct AssistantEvent {
    pub message: Message,
    pub session_id: Option<String>,
    pub parent_tool_use_id: Option<String>,
    /// Set on the synthetic message the CLI emits after an API failure (e.g. `"rate_limit"`).
    #[serde(deserialize_with = "lenient_string")]
    pub error: Option<String>,
    pub is_api_error_message: Option<bool>,
    #[serde(deserialize_with = "lenient_u16")]
    pub api_error_status: Option<u16>,
    pub api_error_type: Option<String>,
}

/// `type: "user"`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct UserEvent {
    pub message: Message,
    pub session_id: Option<String>,
    pub parent_tool_use_id: Option<String>,
}

/// The `message` of an assistant or user event.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    pub id: Option<String>,
    pub role: Option<String>,
    pub model: Option<String>,
    /// A plain string content is read as one [`ContentBlock::Text`].
    #[serde(deserialize_with = "content_blocks")]
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub usage: Usage,
}

/// One block of a message's `content`.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// `content` is a string or an array of blocks: kept as JSON.
    ToolResult {
        tool_use_id: String,
        content: Value,
        is_error: bool,
    },
    Thinking {
        thinking: String,
    },
    Unknown {
        type_name: String,
    },
}

/// Flat form of a content block: one pass over the object, then [`From`] picks the variant.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBlock {
    #[serde(rename = "type")]
    ty: Option<String>,
    text: Option<String>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
    tool_use_id: Option<String>,
    content: Option<Value>,
    is_error: Option<bool>,
    thinking: Option<String>,
}

impl From<RawBlock> for ContentBlock {
    fn from(raw: RawBlock) -> Self {
        match raw.ty.as_deref() {
            Some("text") => ContentBlock::Text {
                text: raw.text.unwrap_or_default(),
            },
            Some("tool_use") => ContentBlock::ToolUse {
                id: raw.id.unwrap_or_default(),
                name: raw.name.unwrap_or_default(),
                input: raw.input.unwrap_or(Value::Null),
            },
            Some("tool_result") => ContentBlock::ToolResult {
                tool_use_id: raw.tool_use_id.unwrap_or_default(),
                content: raw.content.unwrap_or(Value::Null),
                is_error: raw.is_error.unwrap_or(false),
            },
            Some("thinking") => ContentBlock::Thinking {
                thinking: raw.thinking.unwrap_or_default(),
            },
            _ => ContentBlock::Unknown {
                type_name: raw.ty.unwrap_or_default(),
            },
        }
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawBlock::deserialize(d).map(ContentBlock::from)
    }
}

/// `type: "rate_limit_event"`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RateLimitEvent {
    pub rate_limit_info: RateLimitInfo,
    pub session_id: Option<String>,
}

impl RateLimitEvent {
    /// Only `rejected` blocks; `allowed` / `allowed_warning` are informational.
    pub fn is_rejected(&self) -> bool {
        self.rate_limit_info.status.as_deref() == Some("rejected")
    }
}

/// `rate_limit_info` of a `rate_limit_event` (subscription logins only; see
/// `docs/claude-cli-facts.md`). Read it through [`crate::ApiSignal`] for typed values.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RateLimitInfo {
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: Option<String>,
    /// Unix seconds (`resetsAt`).
    #[serde(alias = "resetsAt", deserialize_with = "lenient_i64")]
    pub resets_at: Option<i64>,
    /// The window that decided the status, e.g. `five_hour` (`rateLimitType`).
    #[serde(alias = "rateLimitType")]
    pub rate_limit_type: Option<String>,
    /// 0.0 ..= 1.0 of that window used.
    #[serde(deserialize_with = "lenient_f64")]
    pub utilization: Option<f64>,
    /// The warning threshold that utilization passed (`surpassedThreshold`).
    #[serde(alias = "surpassedThreshold", deserialize_with = "lenient_f64")]
    pub surpassed_threshold: Option<f64>,
    #[serde(alias = "isUsingOverage", deserialize_with = "lenient_bool")]
    pub is_using_overage: Option<bool>,
    /// Every window by name (`five_hour`, `seven_day`, ...) (`unifiedWindows`).
    #[serde(alias = "unifiedWindows", deserialize_with = "null_as_default")]
    pub unified_windows: std::collections::BTreeMap<String, RateLimitWindow>,
}

/// One window of [`RateLimitInfo::unified_windows`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RateLimitWindow {
    #[serde(deserialize_with = "lenient_f64")]
    pub utilization: Option<f64>,
    #[serde(alias = "resetsAt", deserialize_with = "lenient_i64")]
    pub resets_at: Option<i64>,
    #[serde(alias = "surpassedThreshold", deserialize_with = "lenient_f64")]
    pub surpassed_threshold: Option<f64>,
}

/// `type: "result"`: the end of a turn. Judge it by `is_error`, never by `subtype`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ResultEvent {
    pub subtype: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub is_error: bool,
    #[serde(deserialize_with = "lenient_string")]
    pub result: Option<String>,
    #[serde(deserialize_with = "string_list")]
    pub errors: Vec<String>,
    pub session_id: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub num_turns: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub duration_ms: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub duration_api_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    #[serde(deserialize_with = "null_as_default")]
    pub usage: Usage,
    pub terminal_reason: Option<String>,
    pub stop_reason: Option<String>,
    #[serde(deserialize_with = "lenient_u16")]
    pub api_error_status: Option<u16>,
    pub api_error_type: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub permission_denials: Vec<Value>,
    /// With `--json-schema`: the document the model gave through the `StructuredOutput`
    /// tool (already checked against the schema by the CLI).
    pub structured_output: Option<Value>,
}

/// Why a line is not an event.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("JSON object without a string \"type\" field")]
    MissingType,
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parses one stdout line (without its newline) into an event.
pub fn parse_line(line: &str) -> Result<StreamEvent, ParseError> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Err(ParseError::NotAnObject);
    }
    let probed;
    let type_name: &str = match fast_type(trimmed) {
        Some(t) => t,
        None => {
            probed = serde_json::from_str::<TypeProbe<'_>>(line)?
                .ty
                .ok_or(ParseError::MissingType)?;
            &probed
        }
    };
    Ok(match type_name {
        "system" => StreamEvent::System(serde_json::from_str::<RawSystem>(line)?.into()),
        "assistant" => StreamEvent::Assistant(serde_json::from_str(line)?),
        "user" => StreamEvent::User(serde_json::from_str(line)?),
        "rate_limit_event" => StreamEvent::RateLimit(serde_json::from_str(line)?),
        "result" => StreamEvent::Result(serde_json::from_str(line)?),
        other => {
            // Still require valid JSON (a truncated unknown event is malformed).
            serde_json::from_str::<IgnoredAny>(line)?;
            StreamEvent::Unknown {
                type_name: other.to_owned(),
            }
        }
    })
}

/// `{"type":"<plain ascii>"` at the start of the line: the type without a parse pass.
fn fast_type(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("{\"type\":\"")?;
    let end = rest.find('"')?;
    let t = &rest[..end];
    // Escapes would need decoding: leave those to the probe.
    (!t.contains('\\')).then_some(t)
}

#[derive(Deserialize)]
struct TypeProbe<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
}

/// Every field of the known system subtypes; [`From`] picks the variant by `subtype`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSystem {
    subtype: Option<String>,
    session_id: Option<String>,
    // init
    cwd: Option<String>,
    model: Option<String>,
    #[serde(deserialize_with = "string_list")]
    tools: Vec<String>,
    #[serde(rename = "permissionMode", alias = "permission_mode")]
    permission_mode: Option<String>,
    #[serde(rename = "apiKeySource", alias = "api_key_source")]
    api_key_source: Option<String>,
    claude_code_version: Option<String>,
    // api_retry
    #[serde(deserialize_with = "lenient_u64")]
    attempt: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    max_retries: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    retry_delay_ms: Option<u64>,
    #[serde(deserialize_with = "lenient_u16")]
    error_status: Option<u16>,
    #[serde(deserialize_with = "lenient_string")]
    error: Option<String>,
}

impl From<RawSystem> for SystemEvent {
    fn from(r: RawSystem) -> Self {
        match r.subtype.as_deref() {
            Some("init") => SystemEvent::Init(InitEvent {
                session_id: r.session_id,
                cwd: r.cwd,
                model: r.model,
                tools: r.tools,
                permission_mode: r.permission_mode,
                api_key_source: r.api_key_source,
                claude_code_version: r.claude_code_version,
            }),
            Some("api_retry") => SystemEvent::ApiRetry(ApiRetryEvent {
                session_id: r.session_id,
                attempt: r.attempt,
                max_retries: r.max_retries,
                retry_delay_ms: r.retry_delay_ms,
                error_status: r.error_status,
                error: r.error,
            }),
            _ => SystemEvent::Other {
                subtype: r.subtype.unwrap_or_default(),
                session_id: r.session_id,
            },
        }
    }
}

// ---- lenient field helpers -------------------------------------------------------------

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A number in any JSON form (int, float, numeric string) → Some; null, other shapes or
/// out-of-range values → None. A visitor, not an untagged enum: nothing is buffered.
fn loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i128>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(i128::from(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(i128::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(v.is_finite().then_some(v as i128))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f as i128))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(loose(d)?.and_then(|n| u64::try_from(n).ok()))
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(loose(d)?.and_then(|n| i64::try_from(n).ok()))
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite()))
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    })
}

fn lenient_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Ok(loose(d)?.and_then(|n| u16::try_from(n).ok()))
}

/// A string; other JSON values are kept as their JSON text; null → None.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// An array of strings; non-string items are kept as their JSON text; null → empty.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
}

/// Message content: an array of blocks, or a plain string (one text block), or null.
fn content_blocks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContentBlock>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ContentBlock>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of content blocks or a string")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(a.size_hint().unwrap_or(1).min(64));
            while let Some(block) = a.next_element::<ContentBlock>()? {
                out.push(block);
            }
            Ok(out)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![ContentBlock::Text { text: v.to_owned() }])
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(vec![ContentBlock::Text { text: v }])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}
