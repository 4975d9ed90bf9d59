//! Builders for the stream-json events, shaped like the real transcripts in
//! `tests/fixtures/claude-stream-json/`. Top-level keys are written in the fixtures' order
//! (serde_json's default map is sorted, and enabling `preserve_order` would change it for the
//! whole workspace), so each event is built from an ordered field list.

use serde_json::{json, Value};

pub const VERSION: &str = "2.1.331";

/// Per-session facts shared by all events.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub session_id: String,
    pub cwd: String,
    pub model: String,
    pub permission_mode: String,
    pub tools: Vec<String>,
    pub api_key_source: String,
}

/// `{"k1":v1,"k2":v2,...}` in the given order.
pub fn ordered(fields: &[(&str, Value)]) -> String {
    let mut s = String::with_capacity(256);
    s.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Value::from(*k).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `msg_<24 hex>`-style ids like the fixtures' `msg_mock_...`.
pub fn prefixed_id(prefix: &str, len: usize) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..len.min(hex.len())])
}

pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// All tools of the real CLI's init event, in its order.
pub const ALL_TOOLS: &[&str] = &[
    "Task",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "ListAgents",
    "Monitor",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskStop",
    "ToolSearch",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
];

/// The init event's tools: [`ALL_TOOLS`], with `StructuredOutput` after `Skill` (where the
/// `--json-schema` fixtures list it) when the run has a schema.
pub fn tools(structured_output: bool) -> Vec<&'static str> {
    let mut tools = ALL_TOOLS.to_vec();
    if structured_output {
        let at = tools
            .iter()
            .position(|t| *t == "Skill")
            .map_or(tools.len(), |i| i + 1);
        tools.insert(at, "StructuredOutput");
    }
    tools
}

pub fn init(c: &Ctx) -> String {
    let commands = json!([
        "code-review",
        "verify",
        "debug",
        "simplify",
        "compact",
        "context",
        "init",
        "model",
        "usage"
    ]);
    ordered(&[
        ("type", json!("system")),
        ("subtype", json!("init")),
        ("cwd", json!(c.cwd)),
        ("session_id", json!(c.session_id)),
        ("tools", json!(c.tools)),
        ("mcp_servers", json!([])),
        ("model", json!(c.model)),
        ("permissionMode", json!(c.permission_mode)),
        ("slash_commands", commands),
        ("terminal_slash_commands", json!([])),
        ("apiKeySource", json!(c.api_key_source)),
        ("claude_code_version", json!(VERSION)),
        ("output_style", json!("default")),
        (
            "agents",
            json!(["claude", "Explore", "general-purpose", "Plan"]),
        ),
        ("skills", json!([])),
        ("plugins", json!([])),
        ("capabilities", json!([])),
        ("analytics_disabled", json!(true)),
        ("product_feedback_disabled", json!(true)),
        ("served_by_anthropic", json!(false)),
        ("uuid", json!(uuid())),
        ("sandbox_enabled", json!(false)),
        ("memory_paths", json!({ "auto": c.cwd })),
        ("original_cwd", json!(c.cwd)),
        ("additional_directories", json!([])),
        ("fast_mode_state", json!("off")),
        ("fast_mode_disabled_reason", json!("sdk_opt_in_required")),
        ("per_turn_effort_active", json!(true)),
        ("ultrathink_available", json!(false)),
        ("ultrathink_typed_raises", json!(false)),
        ("view_mode", json!("default")),
    ])
}

fn usage(input: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// The parts of an assistant event around its single content block.
fn assistant_fields(
    c: &Ctx,
    msg_id: &str,
    request_id: &str,
    input_tokens: u64,
) -> (String, String) {
    // Split around the content so big_line can stream the text without building it.
    let head = format!(
        r#"{{"type":"assistant","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":["#,
        json!(msg_id),
        json!(c.model)
    );
    let tail = format!(
        r#"],"stop_reason":null,"stop_sequence":null,"usage":{},"context_management":null}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{},"request_id":{}}}"#,
        usage(input_tokens),
        json!(c.session_id),
        json!(uuid()),
        json!(timestamp()),
        json!(request_id)
    );
    (head, tail)
}

/// An assistant event holding one content block.
pub fn assistant(
    c: &Ctx,
    msg_id: &str,
    request_id: &str,
    input_tokens: u64,
    block: Value,
) -> String {
    let (head, tail) = assistant_fields(c, msg_id, request_id, input_tokens);
    format!("{head}{block}{tail}")
}

/// (prefix, suffix) of an assistant text event whose text is to be streamed in between.
pub fn assistant_text_frame(c: &Ctx, msg_id: &str, request_id: &str) -> (String, String) {
    let (head, tail) = assistant_fields(c, msg_id, request_id, 2000);
    (
        format!(r#"{head}{{"type":"text","text":""#),
        format!(r#""}}{tail}"#),
    )
}

pub fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

pub fn tool_use_block(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// The `user` event carrying a tool result. `is_error: None` omits the field (as the real CLI
/// does for Write/Edit results).
pub fn tool_result(
    c: &Ctx,
    tool_use_id: &str,
    content: &str,
    is_error: Option<bool>,
    tool_use_result: Value,
) -> String {
    let mut block = json!({"tool_use_id": tool_use_id, "type": "tool_result", "content": content});
    if let Some(e) = is_error {
        block["is_error"] = json!(e);
    }
    ordered(&[
        ("type", json!("user")),
        ("message", json!({"role": "user", "content": [block]})),
        ("parent_tool_use_id", Value::Null),
        ("session_id", json!(c.session_id)),
        ("uuid", json!(uuid())),
        ("timestamp", json!(timestamp())),
        ("tool_use_result", tool_use_result),
        (
            "tool_result_meta",
            json!([{"id": tool_use_id, "permission_decision": {"decision": "accept", "source": "config", "reason_type": "mode"}}]),
        ),
    ])
}

/// A plain user text message (the SIGINT transcript's "[Request interrupted by user]").
pub fn user_text(c: &Ctx, text: &str) -> String {
    ordered(&[
        ("type", json!("user")),
        (
            "message",
            json!({"role": "user", "content": [{"type": "text", "text": text}]}),
        ),
        ("parent_tool_use_id", Value::Null),
        ("session_id", json!(c.session_id)),
        ("uuid", json!(uuid())),
        ("timestamp", json!(timestamp())),
    ])
}

pub fn vcs_commit(c: &Ctx, branch: &str) -> String {
    ordered(&[
        ("type", json!("system")),
        ("subtype", json!("vcs_state_changed")),
        ("kind", json!("commit")),
        ("branch", json!(branch)),
        ("cwd", json!(c.cwd)),
        ("uuid", json!(uuid())),
        ("session_id", json!(c.session_id)),
    ])
}

/// Which API failure is being simulated.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status; `None` for a connection error (no response).
    pub status: Option<u16>,
    /// `error` of api_retry events ("rate_limit" / "overloaded" / ...).
    pub retry_error: &'static str,
    /// `error` of the synthetic assistant message ("rate_limit" / "server_error" / ...).
    pub message_error: &'static str,
    /// `api_error_type` ("rate_limit_error" / "overloaded_error" / ...).
    pub error_type: Option<&'static str>,
    pub text: String,
    /// Unix seconds of the reset, for a usage limit.
    pub resets_at: Option<u64>,
    /// A subscription usage limit (`rejected` rate_limit_event): the result also carries
    /// `api_error: "usage_limit_reached"`, as `rate_limit_event_oauth_warning_then_rejected.jsonl`.
    pub usage_limit: bool,
}

/// The failure the real CLI reports for `status` (`None`: connection error). 429 and 529 are
/// measured (fixtures); other 5xx and connection errors follow the same shape (assumed).
pub fn api_error(status: Option<u16>) -> ApiError {
    let (retry_error, message_error, error_type, text) = match status {
        Some(429) => (
            "rate_limit",
            "rate_limit",
            Some("rate_limit_error"),
            "API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit (fake-claude)".to_string(),
        ),
        Some(529) => (
            "overloaded",
            "server_error",
            Some("overloaded_error"),
            "API Error: 529 Overloaded (fake-claude). This is a server-side issue, usually temporary — try again in a moment.".to_string(),
        ),
        Some(s @ 500..=599) => (
            "server_error",
            "server_error",
            Some("api_error"),
            format!("API Error: {s} Internal server error (fake-claude). This is a server-side issue, usually temporary — try again in a moment."),
        ),
        Some(s) => (
            "unknown",
            "unknown",
            Some("invalid_request_error"),
            format!("API Error: {s} (fake-claude)"),
        ),
        None => (
            "connection_error",
            "unknown",
            None,
            "API Error: Connection error. (fake-claude)".to_string(),
        ),
    };
    ApiError {
        status,
        retry_error,
        message_error,
        error_type,
        text,
        resets_at: None,
        usage_limit: false,
    }
}

/// `retry_delay_ms` of attempt `attempt` when the script gives none: the CLI's backoff
/// (0.5 s doubling, capped).
pub fn default_retry_delay_ms(attempt: u32) -> u64 {
    500 * (1u64 << attempt.min(6))
}

pub fn api_retry(c: &Ctx, e: &ApiError, attempt: u32, max_retries: u32, delay_ms: u64) -> String {
    ordered(&[
        ("type", json!("system")),
        ("subtype", json!("api_retry")),
        ("attempt", json!(attempt)),
        ("max_retries", json!(max_retries)),
        ("retry_delay_ms", json!(delay_ms)),
        ("error_status", json!(e.status)),
        ("error", json!(e.retry_error)),
        ("session_id", json!(c.session_id)),
        ("uuid", json!(uuid())),
    ])
}

pub fn rate_limit_rejected(c: &Ctx, resets_at: u64) -> String {
    ordered(&[
        ("type", json!("rate_limit_event")),
        (
            "rate_limit_info",
            json!({"status": "rejected", "resetsAt": resets_at, "rateLimitType": "five_hour"}),
        ),
        ("uuid", json!(uuid())),
        ("session_id", json!(c.session_id)),
    ])
}

/// A `rate_limit_event` shaped like the OAuth fixtures.
pub fn rate_limit_event(c: &Ctx, info: Value) -> String {
    ordered(&[
        ("type", json!("rate_limit_event")),
        ("rate_limit_info", info),
        ("uuid", json!(uuid())),
        ("session_id", json!(c.session_id)),
    ])
}

/// The `"model":"<synthetic>"` assistant message the CLI emits after giving up on the API.
pub fn api_error_message(c: &Ctx, e: &ApiError) -> String {
    let message = json!({
        "diagnostics": null, "id": uuid(), "container": null, "model": "<synthetic>", "role": "assistant",
        "stop_details": null, "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
        "usage": {"output_tokens_details": null, "input_tokens": 0, "output_tokens": 0,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                  "service_tier": null, "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                  "inference_geo": null, "iterations": null, "speed": null, "fallback_credit": null},
        "content": [{"type": "text", "text": e.text}],
        "context_management": null
    });
    let mut fields = vec![
        ("type", json!("assistant")),
        ("message", message),
        ("parent_tool_use_id", Value::Null),
        ("session_id", json!(c.session_id)),
        ("uuid", json!(uuid())),
        ("timestamp", json!(timestamp())),
        ("error", json!(e.message_error)),
        ("request_id", json!(prefixed_id("req_fake_", 20))),
        ("is_api_error_message", json!(true)),
        ("api_error_status", json!(e.status)),
    ];
    if e.usage_limit {
        fields.push(("api_error", json!("usage_limit_reached")));
        fields.push((
            "api_error_params",
            json!({"rate_limit_info": {"status": "rejected", "resetsAt": e.resets_at,
                   "rateLimitType": "five_hour", "isUsingOverage": false}}),
        ));
    }
    fields.push(("api_error_type", json!(e.error_type)));
    ordered(&fields)
}

/// How a turn ended: selects the `result` event's shape.
#[derive(Debug, Clone)]
pub enum Ending {
    /// `subtype:"success"`; `is_error` from the rule. With `--json-schema`, `structured` is
    /// the validated `StructuredOutput` input: `result` is its JSON text and the result
    /// carries `structured_output` (as `json_schema_structured_output.jsonl`).
    Success {
        text: String,
        is_error: bool,
        structured: Option<Value>,
    },
    /// API failure after retries: `subtype:"success"`, `is_error:true`, `terminal_reason:"api_error"`.
    Api { error: ApiError },
    /// `error_max_turns`.
    MaxTurns { limit: u32 },
    /// SIGINT: `error_during_execution`, `terminal_reason:"aborted_streaming"`.
    Aborted,
    /// `--json-schema`, but no valid `StructuredOutput` call even after the enforce message:
    /// `error_max_structured_output_retries` (the Agent SDK's subtype; not measured).
    NoStructuredOutput { attempts: u32 },
}

impl Ending {
    pub fn is_error(&self) -> bool {
        match self {
            Ending::Success { is_error, .. } => *is_error,
            _ => true,
        }
    }

    /// What `--output-format text` prints.
    pub fn text(&self) -> String {
        match self {
            Ending::Success { text, .. } => text.clone(),
            Ending::Api { error } => error.text.clone(),
            Ending::MaxTurns { limit } => format!("Error: Reached max turns ({limit})"),
            Ending::Aborted => String::new(),
            Ending::NoStructuredOutput { .. } => {
                "Error: Failed to provide valid structured output".to_string()
            }
        }
    }
}

/// The final `result` event. `cost` is the process's cumulative cost (as the real CLI reports
/// it across the turns of an `--input-format stream-json` session).
pub fn result(c: &Ctx, ending: &Ending, num_turns: u32, cost: f64, duration_ms: u64) -> String {
    let zero_usage = json!({"output_tokens_details": {"thinking_tokens": 0}, "input_tokens": 0,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}, "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "", "iterations": [], "speed": "standard", "fallback_credit": null});
    let spent = matches!(
        ending,
        Ending::Success { .. } | Ending::MaxTurns { .. } | Ending::NoStructuredOutput { .. }
    );
    let (input, output) = if spent {
        (2200 * num_turns as u64, 40 * num_turns as u64)
    } else {
        (0, 0)
    };
    let mut usage = zero_usage;
    usage["input_tokens"] = json!(input);
    usage["output_tokens"] = json!(output);
    let model_usage = if spent {
        json!({ c.model.clone(): {"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0, "webSearchRequests": 0, "costUSD": cost, "contextWindow": 1000000,
            "maxOutputTokens": 128000, "thinkingTokens": 0, "cacheCreationEphemeral5mInputTokens": 0,
            "cacheCreationEphemeral1hInputTokens": 0, "canonicalModel": c.model, "provider": "firstParty",
            "costBasis": "list"}})
    } else {
        json!({})
    };
    let (stop_reason, terminal_reason, subtype) = match ending {
        Ending::Success {
            structured: Some(_),
            ..
        } => (json!("tool_use"), "completed", "success"),
        Ending::Success { .. } => (json!("end_turn"), "completed", "success"),
        Ending::NoStructuredOutput { .. } => (
            json!("end_turn"),
            "completed",
            "error_max_structured_output_retries",
        ),
        Ending::Api { .. } => (json!("stop_sequence"), "api_error", "success"),
        Ending::MaxTurns { .. } => (json!("tool_use"), "max_turns", "error_max_turns"),
        Ending::Aborted => (Value::Null, "aborted_streaming", "error_during_execution"),
    };
    let api_ms = if spent { 30 * num_turns as u64 } else { 0 };
    let mut f: Vec<(&str, Value)> = vec![
        ("duration_api_ms", json!(api_ms)),
        ("stop_reason", stop_reason),
        ("session_id", json!(c.session_id)),
        ("total_cost_usd", json!(cost)),
        ("usage", usage),
        ("modelUsage", model_usage.clone()),
        ("permission_denials", json!([])),
        ("terminal_reason", json!(terminal_reason)),
        ("fast_mode_state", json!("off")),
        ("fast_mode_disabled_reason", json!("sdk_opt_in_required")),
        (
            "subagent_stats",
            json!({"spawned": 0, "requested": {"background": 0, "foreground": 0, "unset": 0},
                "started_in_background": 0, "max_depth": 0, "spawned_by_subagents": 0, "completed": 0,
                "failed": 0, "killed": {"parent": 0, "user": 0, "system": 0},
                "refused": {"depth_limit": 0, "concurrency_limit": 0, "budget": 0}, "by_type": {}}),
        ),
        ("safety_stops", json!(0)),
        ("is_error", json!(ending.is_error())),
        ("num_turns", json!(num_turns)),
        ("subtype", json!(subtype)),
    ];
    // Field presence follows the fixtures: success/api results carry `api_error_status` and
    // `result`; max-turns and aborted results carry `errors` instead.
    match ending {
        Ending::Success {
            text, structured, ..
        } => {
            f.push(("api_error_status", Value::Null));
            f.push(("result", json!(text)));
            if let Some(v) = structured {
                f.push(("structured_output", v.clone()));
            }
            f.push(("ttft_ms", json!(25)));
        }
        Ending::NoStructuredOutput { attempts } => {
            f.push((
                "errors",
                json!([format!(
                    "Failed to provide valid structured output after {attempts} attempts"
                )]),
            ));
        }
        Ending::Api { error } => {
            if error.usage_limit {
                f.push(("api_error", json!("usage_limit_reached")));
            }
            f.push(("api_error_status", json!(error.status)));
            f.push(("api_error_type", json!(error.error_type)));
            f.push(("result", json!(error.text)));
        }
        Ending::MaxTurns { limit } => {
            f.push((
                "errors",
                json!([format!("Reached maximum number of turns ({limit})")]),
            ));
        }
        Ending::Aborted => {
            f.push((
                "errors",
                json!(["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]),
            ));
        }
    }
    f.push(("type", json!("result")));
    f.push(("duration_ms", json!(duration_ms)));
    f.push(("uuid", json!(uuid())));
    if let Ending::Success { .. } = ending {
        f.push(("ttft_stream_ms", json!(24)));
        f.push(("time_to_request_ms", json!(20)));
        f.push(("first_content_frame_ms", json!(25)));
    }
    f.push(("queued_turn_count", json!(0)));
    f.push(("result_index", json!(0)));
    f.push(("model_usage_since_last_result", model_usage));
    ordered(&f)
}
