//! The `--json-schema` check of the `StructuredOutput` tool: a JSON Schema validator for the
//! keywords cco's schemas use, with the real CLI's messages.
//!
//! The real CLI validates with ajv (first error only) and answers an invalid call with
//! `Output does not match required schema: <instancePath>: <ajv message>` (see
//! `json_schema_invalid_then_valid.jsonl`). This module reproduces exactly that, for this
//! subset of draft-07: `type`, `enum`, `const`, `properties`, `required`,
//! `additionalProperties`, `items` (one schema), `minItems`, `maxItems`, `minLength`,
//! `maxLength`, `minimum`, `maximum`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`,
//! plus the annotations (`title`, `description`, `default`, `examples`, `$schema`,
//! `$comment`). A schema using anything else (`$ref`, `pattern`, `format`, ...) is refused
//! up front ([`check_supported`]) so a test can never pass on a check that did not happen.
//!
//! Why not a validator crate: fake-claude is linked into the shipped `cco` binary (`cco
//! __fake-claude`, the offline demo) and built by every test harness; `jsonschema` and `boon`
//! bring a regex engine, URL/IDNA tables and about 25 crates for features these schemas do not
//! use, and their messages differ from ajv's, which the fake must match.

use serde_json::{Map, Value};

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$comment",
];
const KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
];

/// `Err` names the first keyword this validator does not check (with its schema path).
pub fn check_supported(schema: &Value) -> Result<(), String> {
    walk_supported(schema, "#")
}

fn walk_supported(schema: &Value, at: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(obj) => obj,
        _ => return Err(format!("{at} is not a schema (an object or a boolean)")),
    };
    for (key, sub) in obj {
        if ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(format!(
                "keyword \"{key}\" at {at} is not supported by fake-claude's schema check"
            ));
        }
        match (key.as_str(), sub) {
            ("properties", Value::Object(props)) => {
                for (name, p) in props {
                    walk_supported(p, &format!("{at}/properties/{name}"))?;
                }
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                for (i, s) in items.iter().enumerate() {
                    walk_supported(s, &format!("{at}/{key}/{i}"))?;
                }
            }
            ("items" | "additionalProperties" | "not" | "if" | "then" | "else", s) => {
                walk_supported(s, &format!("{at}/{key}"))?
            }
            _ => {}
        }
    }
    Ok(())
}

/// The first error (ajv's default), as the CLI prints it after
/// `Output does not match required schema: `; `None` when `instance` is valid.
pub fn first_error(schema: &Value, instance: &Value) -> Option<String> {
    let (path, message) = check(schema, instance, "")?;
    Some(if path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    })
}

type Failure = Option<(String, String)>;

fn fail(path: &str, message: impl Into<String>) -> Failure {
    Some((path.to_string(), message.into()))
}

fn check(schema: &Value, v: &Value, path: &str) -> Failure {
    let s = match schema {
        Value::Bool(true) => return None,
        Value::Bool(false) => return fail(path, "boolean schema is false"),
        Value::Object(s) => s,
        _ => return None,
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| has_type(v, t)) {
            return fail(path, format!("must be {}", types.join(",")));
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(v) {
            return fail(
                path,
                format!(
                    "must be equal to one of the allowed values: {}",
                    Value::Array(allowed.clone())
                ),
            );
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return fail(path, "must be equal to constant");
        }
    }
    match v {
        Value::Object(obj) => {
            if let Some(failure) = check_object(s, obj, path) {
                return failure;
            }
        }
        Value::Array(items) => {
            let n = items.len();
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if (n as u64) < min {
                    return fail(path, format!("must NOT have fewer than {min} items"));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if n as u64 > max {
                    return fail(path, format!("must NOT have more than {max} items"));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    if let Some(f) = check(item_schema, item, &format!("{path}/{i}")) {
                        return Some(f);
                    }
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if n < min {
                    return fail(path, format!("must NOT have fewer than {min} characters"));
                }
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if n > max {
                    return fail(path, format!("must NOT have more than {max} characters"));
                }
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    return fail(path, format!("must be >= {}", s["minimum"]));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    return fail(path, format!("must be <= {}", s["maximum"]));
                }
            }
        }
        _ => {}
    }
    check_combinators(s, v, path)
}

/// `None` when the object passes `required`, `properties` and `additionalProperties`; the
/// `Some(failure)` to return otherwise.
fn check_object(s: &Map<String, Value>, obj: &Map<String, Value>, path: &str) -> Option<Failure> {
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                return Some(fail(path, format!("must have required property '{name}'")));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (name, value) in obj {
        let sub_path = format!("{path}/{}", pointer_escape(name));
        match props.and_then(|p| p.get(name)) {
            Some(p) => {
                if let Some(f) = check(p, value, &sub_path) {
                    return Some(Some(f));
                }
            }
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Some(fail(path, "must NOT have additional properties"))
                }
                Some(extra @ Value::Object(_)) => {
                    if let Some(f) = check(extra, value, &sub_path) {
                        return Some(Some(f));
                    }
                }
                _ => {}
            },
        }
    }
    None
}

fn check_combinators(s: &Map<String, Value>, v: &Value, path: &str) -> Failure {
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            if let Some(f) = check(sub, v, path) {
                return Some(f);
            }
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        if !any.iter().any(|sub| check(sub, v, path).is_none()) {
            return fail(path, "must match a schema in anyOf");
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        if one
            .iter()
            .filter(|sub| check(sub, v, path).is_none())
            .count()
            != 1
        {
            return fail(path, "must match exactly one schema in oneOf");
        }
    }
    if let Some(not) = s.get("not") {
        if check(not, v, path).is_none() {
            return fail(path, "must NOT be valid");
        }
    }
    if let Some(cond) = s.get("if") {
        let branch = if check(cond, v, path).is_none() {
            s.get("then")
        } else {
            s.get("else")
        };
        // ajv reports the branch's own error first; the CLI shows only the first.
        if let Some(f) = branch.and_then(|b| check(b, v, path)) {
            return Some(f);
        }
    }
    None
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// JSON Pointer escaping of one path segment (`~` → `~0`, `/` → `~1`).
fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["continue", "complete"]},
                "tasks": {"type": "array", "minItems": 1, "maxItems": 2,
                          "items": {"type": "object", "required": ["id"],
                                    "properties": {"id": {"type": "string", "minLength": 1}}}},
                "n": {"type": "integer", "minimum": 0, "maximum": 9}
            },
            "required": ["status"],
            "if": {"properties": {"status": {"const": "continue"}}, "required": ["status"]},
            "then": {"required": ["tasks"]}
        })
    }

    #[test]
    fn messages_are_ajvs() {
        let s = schema();
        assert_eq!(first_error(&s, &json!({"status": "complete"})), None);
        assert_eq!(
            first_error(&s, &json!({"status": "maybe"})).unwrap(),
            r#"/status: must be equal to one of the allowed values: ["continue","complete"]"#
        );
        assert_eq!(
            first_error(&s, &json!({})).unwrap(),
            "must have required property 'status'"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "continue"})).unwrap(),
            "must have required property 'tasks'"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "continue", "tasks": []})).unwrap(),
            "/tasks: must NOT have fewer than 1 items"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "continue", "tasks": [{"id": ""}]})).unwrap(),
            "/tasks/0/id: must NOT have fewer than 1 characters"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "continue", "tasks": [{}]})).unwrap(),
            "/tasks/0: must have required property 'id'"
        );
        assert_eq!(
            first_error(&s, &json!({"status": 3})).unwrap(),
            "/status: must be string"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "complete", "n": 1.5})).unwrap(),
            "/n: must be integer"
        );
        assert_eq!(
            first_error(&s, &json!({"status": "complete", "n": 10})).unwrap(),
            "/n: must be <= 9"
        );
        assert_eq!(first_error(&s, &json!([1])).unwrap(), "must be object");
        let closed =
            json!({"type": "object", "additionalProperties": false, "properties": {"a": {}}});
        assert_eq!(
            first_error(&closed, &json!({"a": 1, "b": 2})).unwrap(),
            "must NOT have additional properties"
        );
        let any = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert_eq!(first_error(&any, &json!(null)), None);
        assert_eq!(
            first_error(&any, &json!(1)).unwrap(),
            "must match a schema in anyOf"
        );
    }

    #[test]
    fn unsupported_keywords_are_refused() {
        assert!(check_supported(&schema()).is_ok());
        let e = check_supported(&json!({"properties": {"a": {"pattern": "^x"}}})).unwrap_err();
        assert!(e.contains("\"pattern\" at #/properties/a"), "{e}");
        assert!(check_supported(&json!({"$ref": "#/definitions/x"})).is_err());
        assert!(check_supported(&json!(3)).is_err());
    }
}
