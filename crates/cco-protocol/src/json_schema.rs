//! JSON Schemas of the three documents, for the CLI's `--json-schema` (structured output).
//!
//! They are derived from the serde types with `schemars` (the deserialisation contract, so the
//! field names, the tag values and the field types are the parser's own), then shaped for the
//! CLI:
//!
//! - **One object at the top.** The tool `input_schema` the CLI builds from the schema must be
//!   an object; the Messages API refuses `oneOf`/`anyOf`/`allOf` at its top level. A tagged
//!   enum (`oneOf` of one object per variant) is therefore flattened: the tag becomes an
//!   `enum` of the variant names, the other properties are merged, and each variant's own
//!   requirements become an `if`/`then`/`else` chain on the tag.
//! - **Self-contained, draft-07.** Subschemas are inlined (no `$ref`), there is no `$schema`
//!   key (the CLI's validator uses its default draft), and `default` values are dropped (a
//!   required field with a default would read as optional).
//!
//! What the schema demands is a subset of what the parser accepts: the lenient parser and the
//! repair loop stay the fallback for CLIs without `--json-schema`.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::schema::{DirectorPlan, PlanKind, ReviewDecision, TaskPlan};

impl PlanKind {
    /// The JSON Schema of this document for `--json-schema` (see the module docs).
    pub fn json_schema(self) -> Value {
        match self {
            PlanKind::Director => schema_for::<DirectorPlan>(self),
            PlanKind::Task => schema_for::<TaskPlan>(self),
            PlanKind::Review => schema_for::<ReviewDecision>(self),
        }
    }

    /// [`PlanKind::json_schema`] as compact JSON text: the value of `--json-schema`.
    pub fn json_schema_arg(self) -> String {
        self.json_schema().to_string()
    }
}

fn schema_for<T: JsonSchema>(kind: PlanKind) -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = Value::from(schema);
    strip(&mut value);
    let mut out = flatten_tagged(value, kind.tag_key());
    if let Some(obj) = out.as_object_mut() {
        obj.insert("title".into(), json!(title(kind)));
        obj.insert(
            "description".into(),
            json!(format!("The {kind} cco expects as your answer.")),
        );
    }
    out
}

fn title(kind: PlanKind) -> &'static str {
    match kind {
        PlanKind::Director => "DirectorPlan",
        PlanKind::Task => "TaskPlan",
        PlanKind::Review => "ReviewDecision",
    }
}

/// Removes `$schema`, `title`, `definitions` and every `default` from a schema and its
/// subschemas (property *names* such as `title` are kept).
fn strip(v: &mut Value) {
    let Value::Object(obj) = v else {
        return;
    };
    for key in ["$schema", "title", "default", "definitions", "$defs"] {
        obj.remove(key);
    }
    for (key, sub) in obj.iter_mut() {
        match (key.as_str(), sub) {
            ("properties", Value::Object(props)) => props.values_mut().for_each(strip),
            (_, Value::Array(items)) => items.iter_mut().for_each(strip),
            (_, sub @ Value::Object(_)) => strip(sub),
            _ => {}
        }
    }
}

/// Turns `{"oneOf": [variant objects tagged by a const `tag`]}` into one object schema (see
/// the module docs). A schema of another shape is returned as it is.
fn flatten_tagged(schema: Value, tag: &str) -> Value {
    let Value::Object(mut root) = schema else {
        return schema;
    };
    let Some(Value::Array(variants)) = root.remove("oneOf") else {
        return Value::Object(root);
    };
    let mut names = Vec::new();
    let mut merged: Map<String, Value> = Map::new();
    let mut conflicting: Vec<String> = Vec::new();
    let mut branches: Vec<(Value, Map<String, Value>, Vec<Value>)> = Vec::new();
    for variant in &variants {
        let props = variant["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some(name) = props.get(tag).and_then(|t| t.get("const")).cloned() else {
            // Not a tagged variant: leave the schema alone.
            root.insert("oneOf".into(), Value::Array(variants));
            return Value::Object(root);
        };
        names.push(name.clone());
        let mut own = props.clone();
        own.remove(tag);
        for (key, prop) in &own {
            match merged.get(key) {
                None => {
                    merged.insert(key.clone(), prop.clone());
                }
                Some(existing) if existing == prop => {}
                Some(_) => conflicting.push(key.clone()),
            }
        }
        let required: Vec<Value> = variant["required"]
            .as_array()
            .map(|r| r.iter().filter(|n| *n != tag).cloned().collect())
            .unwrap_or_default();
        branches.push((name, own, required));
    }
    // A property whose schema differs between variants is only checked in its variant.
    for key in &conflicting {
        let description = merged[key.as_str()].get("description").cloned();
        let mut any = Map::new();
        if let Some(d) = description {
            any.insert("description".into(), d);
        }
        merged.insert(key.clone(), Value::Object(any));
    }
    // The branches keep only what the merged properties do not already check.
    for (_, own, _) in &mut branches {
        own.retain(|key, _| conflicting.contains(key));
    }
    let mut properties = Map::new();
    properties.insert(tag.into(), json!({"type": "string", "enum": names}));
    properties.extend(merged);

    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), json!([tag]));
    if let Some(chain) = conditions(tag, &branches) {
        out.extend(chain);
    }
    Value::Object(out)
}

/// `if tag == v1 then {v1's rules} else (if tag == v2 then ... )`, only for variants with
/// rules of their own.
fn conditions(
    tag: &str,
    branches: &[(Value, Map<String, Value>, Vec<Value>)],
) -> Option<Map<String, Value>> {
    let mut chain: Option<Map<String, Value>> = None;
    for (name, props, required) in branches.iter().rev() {
        if required.is_empty() {
            continue;
        }
        let mut then = Map::new();
        if !props.is_empty() {
            then.insert("properties".into(), Value::Object(props.clone()));
        }
        then.insert("required".into(), Value::Array(required.clone()));
        let mut node = Map::new();
        node.insert(
            "if".into(),
            json!({"properties": {tag: {"const": name}}, "required": [tag]}),
        );
        node.insert("then".into(), Value::Object(then));
        if let Some(rest) = chain.take() {
            node.insert("else".into(), Value::Object(rest));
        }
        chain = Some(node);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{TaskSpec, TeamGoal};

    fn all() -> [PlanKind; 3] {
        [PlanKind::Director, PlanKind::Task, PlanKind::Review]
    }

    /// The tag values of a type, read from its serialisations: the schema must offer exactly
    /// these.
    fn tags(kind: PlanKind) -> Vec<Value> {
        let docs: Vec<Value> = match kind {
            PlanKind::Director => vec![
                serde_json::to_value(DirectorPlan::Continue {
                    summary: String::new(),
                    teams: vec![],
                })
                .unwrap(),
                serde_json::to_value(DirectorPlan::Complete {
                    reason: String::new(),
                })
                .unwrap(),
            ],
            PlanKind::Task => vec![
                serde_json::to_value(TaskPlan::Continue { tasks: vec![] }).unwrap(),
                serde_json::to_value(TaskPlan::Complete {
                    reason: String::new(),
                })
                .unwrap(),
            ],
            PlanKind::Review => vec![
                serde_json::to_value(ReviewDecision::Approve {
                    notes: String::new(),
                })
                .unwrap(),
                serde_json::to_value(ReviewDecision::Revise {
                    feedback: String::new(),
                })
                .unwrap(),
            ],
        };
        docs.iter().map(|d| d[kind.tag_key()].clone()).collect()
    }

    #[test]
    fn one_object_at_the_top_without_refs_or_defaults() {
        for kind in all() {
            let schema = kind.json_schema();
            let text = schema.to_string();
            assert_eq!(schema["type"], "object", "{kind}: {text}");
            for banned in ["oneOf", "anyOf", "allOf"] {
                assert!(schema.get(banned).is_none(), "{kind}: {banned} at the top");
            }
            for banned in ["$ref", "\"default\"", "$schema", "definitions"] {
                assert!(!text.contains(banned), "{kind}: {banned} in {text}");
            }
            assert_eq!(schema["required"], json!([kind.tag_key()]));
            assert_eq!(
                schema["properties"][kind.tag_key()]["enum"],
                Value::Array(tags(kind)),
                "{kind}: the tag values are the serde ones"
            );
            assert_eq!(kind.json_schema_arg(), text);
        }
    }

    #[test]
    fn variant_rules_are_conditional_on_the_tag() {
        let task = PlanKind::Task.json_schema();
        assert_eq!(task["if"]["properties"]["status"]["const"], "continue");
        assert_eq!(task["then"]["required"], json!(["tasks"]));
        let tasks = &task["properties"]["tasks"];
        assert_eq!(tasks["minItems"], 1);
        assert_eq!(tasks["maxItems"], crate::MAX_TASKS);
        let item = &tasks["items"];
        assert_eq!(item["type"], "object");
        assert_eq!(item["required"], json!(["id", "title"]));
        for field in [
            "id",
            "title",
            "description",
            "files",
            "acceptance",
            "depends_on",
        ] {
            assert!(item["properties"].get(field).is_some(), "{field}");
        }
        assert_eq!(item["properties"]["files"]["items"]["type"], "string");
        assert!(task["properties"]["reason"]["type"] == "string");

        let director = PlanKind::Director.json_schema();
        let teams = &director["properties"]["teams"];
        assert_eq!(teams["maxItems"], crate::MAX_TEAMS);
        assert_eq!(teams["items"]["required"], json!(["name", "goal"]));

        let review = PlanKind::Review.json_schema();
        assert_eq!(review["if"]["properties"]["decision"]["const"], "revise");
        assert_eq!(review["then"]["required"], json!(["feedback"]));
        assert_eq!(review["properties"]["feedback"]["minLength"], 1);
        assert!(review["then"].get("properties").is_none());
        assert!(review.get("else").is_none());
    }

    #[test]
    fn every_field_of_the_types_is_in_the_schema() {
        // Serialised documents name every field; the schema must know each of them.
        let task = serde_json::to_value(TaskSpec::new("t1", "x")).unwrap();
        let schema = PlanKind::Task.json_schema();
        let item = &schema["properties"]["tasks"]["items"]["properties"];
        for key in task.as_object().unwrap().keys() {
            assert!(
                item.get(key).is_some(),
                "task field {key} missing from the schema"
            );
        }
        let team = serde_json::to_value(TeamGoal {
            name: "a".into(),
            goal: "b".into(),
        })
        .unwrap();
        let schema = PlanKind::Director.json_schema();
        let item = &schema["properties"]["teams"]["items"]["properties"];
        for key in team.as_object().unwrap().keys() {
            assert!(item.get(key).is_some(), "team field {key} missing");
        }
        assert!(schema["properties"].get("summary").is_some());
        assert!(schema["properties"].get("reason").is_some());
    }

    #[test]
    fn a_schema_without_oneof_is_left_alone() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(flatten_tagged(s.clone(), "status"), s);
        let untagged = json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
        assert_eq!(flatten_tagged(untagged.clone(), "status"), untagged);
    }
}
