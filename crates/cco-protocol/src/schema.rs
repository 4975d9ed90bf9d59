//! The three JSON documents agents answer with, as serde types.
//!
//! Deserialisation is lenient where agents are sloppy in harmless ways (unknown fields are
//! ignored, optional fields may be missing or `null`, ids may be numbers, `acceptance` may be a
//! list); everything that matters is checked afterwards by [`crate::parse`].

use std::fmt;

use schemars::JsonSchema;
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Director's answer (hierarchy mode): the teams to run next, or "done".
///
/// ```json
/// {"status":"continue","summary":"...","teams":[{"name":"parser","goal":"..."}]}
/// {"status":"complete","reason":"..."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum DirectorPlan {
    /// More work: one goal per team.
    #[schemars(transform = require_teams)]
    Continue {
        /// The state of the project and the plan, one paragraph.
        #[serde(default, deserialize_with = "lenient_text")]
        summary: String,
        /// One goal per team (non-empty after validation).
        #[serde(default, deserialize_with = "lenient_list")]
        #[schemars(length(min = 1, max = 50))]
        teams: Vec<TeamGoal>,
    },
    /// The direction is met.
    #[serde(alias = "completed", alias = "done")]
    Complete {
        /// Why the direction is met.
        #[serde(default, deserialize_with = "lenient_text")]
        reason: String,
    },
}

/// One team of a [`DirectorPlan`]: its name (a slug after validation) and its goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_name_goal)]
#[schemars(description = "One team: its name and its goal.")]
pub struct TeamGoal {
    /// A short team slug, e.g. `parser`: lowercase ASCII letters, digits and '-', unique, at
    /// most 64 characters (`[a-z0-9-]{1,64}` after validation).
    #[serde(default, deserialize_with = "scalar_text")]
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the team must achieve and how to verify it (non-empty after validation).
    #[serde(default, deserialize_with = "lenient_text")]
    #[schemars(length(min = 1))]
    pub goal: String,
}

/// A task planner's answer: an EM for its goal, or the flat Coordinator for the whole project.
///
/// ```json
/// {"status":"continue","tasks":[{"id":"t1","title":"...","description":"...",
///   "files":["src/a.rs"],"acceptance":"...","depends_on":["t0"]}]}
/// {"status":"complete","reason":"..."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TaskPlan {
    /// Tasks to run.
    #[schemars(transform = require_tasks)]
    Continue {
        /// The tasks (non-empty after validation).
        #[serde(default, deserialize_with = "lenient_list")]
        #[schemars(length(min = 1, max = 200))]
        tasks: Vec<TaskSpec>,
    },
    /// The goal (or the whole direction) is met.
    #[serde(alias = "completed", alias = "done")]
    Complete {
        /// Why the goal is met.
        #[serde(default, deserialize_with = "lenient_text")]
        reason: String,
    },
}

/// One worker task.
///
/// Only `id` and `title` are required; `description` defaults to the title, `files`,
/// `acceptance` and `depends_on` to empty. After validation `id` and every `depends_on` entry
/// are slugs (`[a-z0-9-]{1,64}`), `depends_on` names tasks of the same plan without a cycle, and
/// `files` holds only relative paths inside the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "TaskSpecWire")]
#[schemars(description = "One worker task: only id and title are required.")]
pub struct TaskSpec {
    pub id: String,
    pub title: String,
    pub description: String,
    pub files: Vec<String>,
    pub acceptance: String,
    pub depends_on: Vec<String>,
}

impl TaskSpec {
    /// A task with only an id and a title (description = title, everything else empty).
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        let title = title.into();
        TaskSpec {
            id: id.into(),
            description: title.clone(),
            title,
            files: Vec::new(),
            acceptance: String::new(),
            depends_on: Vec::new(),
        }
    }
}

/// What agents may send for a [`TaskSpec`] (its schema is the task's schema).
#[derive(Deserialize, JsonSchema)]
#[schemars(transform = require_id_title)]
struct TaskSpecWire {
    /// A short task slug, e.g. `t1` or `lexer-tokens`: lowercase ASCII letters, digits and
    /// '-', unique in the plan, at most 64 characters.
    #[serde(default, deserialize_with = "scalar_text")]
    #[schemars(length(min = 1))]
    id: String,
    /// A short title.
    #[serde(default, deserialize_with = "lenient_text")]
    #[schemars(length(min = 1))]
    title: String,
    /// What to do, precisely.
    #[serde(default, deserialize_with = "lenient_text")]
    description: String,
    /// Paths relative to the repository root that the task will likely touch.
    #[serde(default, deserialize_with = "lenient_list")]
    files: Vec<String>,
    /// How to verify that it is done.
    #[serde(default, deserialize_with = "lenient_text")]
    acceptance: String,
    /// Ids of tasks of this plan that must be merged first (no cycles).
    #[serde(default, deserialize_with = "lenient_id_list")]
    depends_on: Vec<String>,
}

impl From<TaskSpecWire> for TaskSpec {
    fn from(w: TaskSpecWire) -> Self {
        let description = if w.description.trim().is_empty() {
            w.title.clone()
        } else {
            w.description
        };
        TaskSpec {
            id: w.id,
            title: w.title,
            description,
            files: w.files,
            acceptance: w.acceptance,
            depends_on: w.depends_on,
        }
    }
}

/// The EM's (or flat Coordinator's) verdict on a finished task.
///
/// ```json
/// {"decision":"approve","notes":"..."}
/// {"decision":"revise","feedback":"..."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum ReviewDecision {
    /// Merge it.
    #[serde(alias = "approved", alias = "accept", alias = "accepted")]
    Approve {
        /// Optional remarks.
        #[serde(default, deserialize_with = "lenient_text")]
        notes: String,
    },
    /// Send it back to the worker.
    #[serde(
        alias = "revision",
        alias = "request_changes",
        alias = "changes_requested"
    )]
    #[schemars(transform = require_feedback)]
    Revise {
        /// What must change, concretely (non-empty).
        #[serde(default, deserialize_with = "lenient_text")]
        #[schemars(length(min = 1))]
        feedback: String,
    },
}

/// Which of the three documents is expected; carried by [`crate::PlanError`] so that
/// [`crate::PlanError::repair_prompt`] can quote the right schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanKind {
    /// [`DirectorPlan`].
    Director,
    /// [`TaskPlan`].
    Task,
    /// [`ReviewDecision`].
    Review,
}

impl PlanKind {
    /// The field that tells the variants apart (`status` or `decision`).
    pub fn tag_key(self) -> &'static str {
        match self {
            PlanKind::Director | PlanKind::Task => "status",
            PlanKind::Review => "decision",
        }
    }

    /// The schema as shown to agents (in prompts and repair prompts).
    pub fn schema(self) -> &'static str {
        match self {
            PlanKind::Director => DIRECTOR_SCHEMA,
            PlanKind::Task => TASK_SCHEMA,
            PlanKind::Review => REVIEW_SCHEMA,
        }
    }

    /// Short name used in messages: `director plan`, `task plan`, `review decision`.
    pub fn name(self) -> &'static str {
        match self {
            PlanKind::Director => "director plan",
            PlanKind::Task => "task plan",
            PlanKind::Review => "review decision",
        }
    }
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const DIRECTOR_SCHEMA: &str = r#"{"status":"continue","summary":"<the state of the project and the plan, one paragraph>","teams":[{"name":"<short team slug, e.g. parser>","goal":"<what this team must achieve and how to verify it>"}]}
or, when the direction is fully met:
{"status":"complete","reason":"<why the direction is met>"}
Rules: "teams" non-empty (at most 50); team names unique, at most 64 characters, lowercase letters, digits and '-'."#;

const TASK_SCHEMA: &str = r#"{"status":"continue","tasks":[{"id":"t1","title":"<short title>","description":"<what to do, precisely>","files":["<relative/path/likely/touched.rs>"],"acceptance":"<how to verify it is done>","depends_on":["<ids of tasks in this plan that must be merged first>"]}]}
or, when the goal is fully met:
{"status":"complete","reason":"<why the goal is met>"}
Rules: "tasks" non-empty (at most 200); ids unique, at most 64 characters, lowercase letters, digits and '-'; "description", "files", "acceptance" and "depends_on" are optional; "depends_on" may only name ids of this plan and must not form a cycle; "files" are relative paths inside the repository."#;

const REVIEW_SCHEMA: &str = r#"{"decision":"approve","notes":"<optional remarks>"}
or, to send the work back to the worker:
{"decision":"revise","feedback":"<what must change, concretely>"}
Rules: "feedback" must not be empty when revising."#;

/// Makes `names` required properties of an object schema. The lenient deserialisers give
/// every field a default, so the derive alone marks none required; the schema sent to the CLI
/// asks for what the validation needs.
fn require(schema: &mut schemars::Schema, names: &[&str]) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let required = obj
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = required {
        for name in names {
            if !list.iter().any(|v| v == name) {
                list.push(Value::from(*name));
            }
        }
    }
}

/// Schemars transforms (plain paths: attribute expressions need syn's "full" feature).
macro_rules! requirements {
    ($($name:ident: [$($field:literal),+];)+) => {$(
        fn $name(schema: &mut schemars::Schema) {
            require(schema, &[$($field),+]);
        }
    )+};
}

requirements! {
    require_teams: ["teams"];
    require_name_goal: ["name", "goal"];
    require_tasks: ["tasks"];
    require_id_title: ["id", "title"];
    require_feedback: ["feedback"];
}

// ---- lenient field deserialisers (all go through serde_json::Value) ----

/// String, or number/bool (stringified), or null (empty). Anything else is an error.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(D::Error::custom(format!(
            "expected a string, found {}",
            type_name(&other)
        ))),
    }
}

/// Like [`scalar_text`], and a list of those is joined with newlines.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(scalar_text(item).map_err(D::Error::custom)?);
            }
            Ok(parts.join("\n"))
        }
        other => scalar_text(other).map_err(D::Error::custom),
    }
}

/// A list; `null` is empty and a single element stands for a list of one.
fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| T::deserialize(v).map_err(D::Error::custom))
            .collect(),
        one => Ok(vec![T::deserialize(one).map_err(D::Error::custom)?]),
    }
}

/// A list of ids: strings or numbers; `null` is empty, a single id is a list of one.
fn lenient_id_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        one => vec![one],
    };
    items
        .into_iter()
        .map(|v| scalar_text(v).map_err(D::Error::custom))
        .collect()
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let d = DirectorPlan::Continue {
            summary: "s".into(),
            teams: vec![TeamGoal {
                name: "parser".into(),
                goal: "g".into(),
            }],
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({"status":"continue","summary":"s","teams":[{"name":"parser","goal":"g"}]})
        );
        assert_eq!(serde_json::from_value::<DirectorPlan>(v).unwrap(), d);

        let t = TaskPlan::Continue {
            tasks: vec![TaskSpec {
                id: "t1".into(),
                title: "T".into(),
                description: "D".into(),
                files: vec!["src/a.rs".into()],
                acceptance: "A".into(),
                depends_on: vec!["t0".into()],
            }],
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TaskPlan>(&s).unwrap(), t);

        for r in [
            ReviewDecision::Approve { notes: "n".into() },
            ReviewDecision::Revise {
                feedback: "f".into(),
            },
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<ReviewDecision>(&s).unwrap(), r);
        }
        let c = serde_json::to_value(TaskPlan::Complete { reason: "r".into() }).unwrap();
        assert_eq!(c, json!({"status":"complete","reason":"r"}));
    }

    #[test]
    fn task_defaults_and_leniency() {
        let t: TaskSpec = serde_json::from_value(json!({"id": 7, "title": "Do it", "files": null,
            "acceptance": ["builds", "tests pass"], "depends_on": 3, "extra": {"x": 1}}))
        .unwrap();
        assert_eq!(t.id, "7");
        assert_eq!(t.description, "Do it");
        assert!(t.files.is_empty());
        assert_eq!(t.acceptance, "builds\ntests pass");
        assert_eq!(t.depends_on, vec!["3"]);
        assert_eq!(TaskSpec::new("a", "b").description, "b");
    }

    #[test]
    fn complete_without_reason() {
        let p: TaskPlan = serde_json::from_str(r#"{"status":"complete"}"#).unwrap();
        assert_eq!(
            p,
            TaskPlan::Complete {
                reason: String::new()
            }
        );
        let p: DirectorPlan = serde_json::from_str(r#"{"status":"done"}"#).unwrap();
        assert_eq!(
            p,
            DirectorPlan::Complete {
                reason: String::new()
            }
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(serde_json::from_value::<TaskSpec>(json!({"id": {"a": 1}, "title": "x"})).is_err());
        assert!(serde_json::from_value::<DirectorPlan>(json!({"status": "maybe"})).is_err());
    }
}
