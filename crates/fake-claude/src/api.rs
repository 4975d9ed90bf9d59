//! Steps that play the API and the CLI around it: failing requests with the CLI's retries
//! (`rate_limit`, `overloaded`, `api_error`), `rate_limit_event`s, and the `StructuredOutput`
//! tool of `--json-schema` runs.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{self, Ending};
use crate::out;
use crate::play::{render, Player};
use crate::schema_check;
use crate::script::{ApiFailure, RateLimitEventStep};

impl Player<'_> {
    /// `retries` `api_retry` events, each followed by a real wait of its delay when `wait` is
    /// set (a SIGTERM still ends the process at once). Then either the API recovers (`None`:
    /// the turn goes on) or the CLI gives up: for a 429 with `rejected_resets_at` a `rejected`
    /// rate_limit_event, then the synthetic error message and the error result (exit 1).
    pub(crate) fn api_failure(
        &self,
        error: events::ApiError,
        f: &ApiFailure,
        rejected_resets_at: Option<u64>,
    ) -> Option<Ending> {
        for attempt in 1..=f.retries {
            let delay = f
                .retry_delay_ms
                .unwrap_or_else(|| events::default_retry_delay_ms(attempt));
            out::lock().event(events::api_retry(
                self.ctx(),
                &error,
                attempt,
                f.retries,
                delay,
            ));
            if f.wait {
                std::thread::sleep(Duration::from_millis(delay));
            }
        }
        if f.recover {
            return None;
        }
        let mut o = out::lock();
        if let Some(at) = rejected_resets_at {
            o.event(events::rate_limit_rejected(self.ctx(), at));
        }
        o.event(events::api_error_message(self.ctx(), &error));
        Some(Ending::Api { error })
    }

    /// A `rate_limit_event` shaped like the OAuth fixtures. `rejected` ends the turn at once
    /// (no retries), with the usage-limit message and result of
    /// `rate_limit_event_oauth_warning_then_rejected.jsonl`.
    pub(crate) fn rate_limit_event(&self, e: &RateLimitEventStep) -> Option<Ending> {
        let resets_at = chrono::Utc::now().timestamp().max(0) as u64 + e.resets_in_secs;
        let rejected = e.status == "rejected";
        let utilization = e.utilization.unwrap_or(if rejected { 1.0 } else { 0.5 });
        let mut window = json!({"utilization": utilization, "resetsAt": resets_at});
        if let Some(t) = e.surpassed_threshold {
            window["surpassedThreshold"] = json!(t);
        }
        let mut windows = serde_json::Map::new();
        windows.insert(e.rate_limit_type.clone(), window);
        if let Some(u) = e.seven_day_utilization {
            windows.insert(
                "seven_day".into(),
                json!({"utilization": u, "resetsAt": resets_at + 6 * 24 * 3600}),
            );
        }
        let mut info = json!({"status": e.status, "resetsAt": resets_at,
            "rateLimitType": e.rate_limit_type});
        if !rejected {
            info["utilization"] = json!(utilization);
        }
        info["isUsingOverage"] = json!(false);
        if let Some(t) = e.surpassed_threshold {
            info["surpassedThreshold"] = json!(t);
        }
        info["unifiedWindows"] = Value::Object(windows);
        let mut o = out::lock();
        o.event(events::rate_limit_event(self.ctx(), info));
        if !rejected {
            return None;
        }
        let reset = chrono::DateTime::from_timestamp(resets_at as i64, 0)
            .map(|t| t.format("%-I:%M%P (UTC)").to_string())
            .unwrap_or_default();
        let mut error = events::api_error(Some(429));
        error.text = format!("You've hit your 5-hour limit · resets {reset}");
        error.resets_at = Some(resets_at);
        error.usage_limit = true;
        o.event(events::api_error_message(self.ctx(), &error));
        Some(Ending::Api { error })
    }

    /// A `StructuredOutput` tool call. With `--json-schema` the input is checked like the real
    /// CLI does: valid → `Structured output provided successfully` (and it becomes the
    /// result's `structured_output`); invalid → an `is_error` tool_result naming the schema
    /// path, and the turn goes on. Without `--json-schema` the tool does not exist.
    pub(crate) fn structured_output(&mut self, input: &Value) {
        let input = render_strings(input, self);
        let id = events::prefixed_id("toolu_fake_", 20);
        self.emit_block(events::tool_use_block(
            &id,
            "StructuredOutput",
            input.clone(),
        ));
        self.structured_calls += 1;
        let (content, is_error, tool_use_result) = match &self.env.schema {
            None => {
                let msg = "Error: No such tool available: StructuredOutput. StructuredOutput is not available in this session.";
                (
                    format!("<tool_use_error>{msg}</tool_use_error>"),
                    Some(true),
                    json!(msg),
                )
            }
            Some(schema) => match schema_check::first_error(schema, &input) {
                None => {
                    self.structured = Some(input);
                    let ok = "Structured output provided successfully";
                    (ok.to_string(), None, json!(ok))
                }
                Some(error) => {
                    let msg = format!("Output does not match required schema: {error}");
                    (msg.clone(), Some(true), json!(format!("Error: {msg}")))
                }
            },
        };
        out::lock().event(events::tool_result(
            self.ctx(),
            &id,
            &content,
            is_error,
            tool_use_result,
        ));
        self.next_message();
        self.input_tokens += 110;
    }
}

/// Expands templates in every string of a JSON value (so `{"id": "{{task_id}}"}` works).
fn render_strings(v: &Value, p: &Player) -> Value {
    match v {
        Value::String(s) => Value::String(render(s, &p.vars)),
        Value::Array(items) => Value::Array(items.iter().map(|i| render_strings(i, p)).collect()),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| (k.clone(), render_strings(v, p)))
                .collect(),
        ),
        other => other.clone(),
    }
}
