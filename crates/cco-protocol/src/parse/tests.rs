//! Tests of parsing and validation.

use super::*;
use crate::schema::{DirectorPlan, ReviewDecision, TaskPlan, TaskSpec, TeamGoal};

fn tasks(text: &str) -> Vec<TaskSpec> {
    match parse_task_plan(text).unwrap().value {
        TaskPlan::Continue { tasks } => tasks,
        other => panic!("expected continue, got {other:?}"),
    }
}

fn problems(r: Result<Parsed<TaskPlan>, PlanError>) -> Vec<String> {
    match r {
        Err(PlanError::Validation { problems, .. }) => problems,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

// ---- finding the JSON ----

#[test]
fn bare_json() {
    let t = tasks(r#"{"status":"continue","tasks":[{"id":"t1","title":"A"}]}"#);
    assert_eq!(t, vec![TaskSpec::new("t1", "A")]);
}

#[test]
fn fenced_json_with_and_without_language() {
    for fence in ["```json", "```", "```JSON"] {
        let text = format!("Plan below.\n{fence}\n{{\"status\":\"continue\",\"tasks\":[{{\"id\":\"t1\",\"title\":\"A\"}}]}}\n```\nThanks!");
        assert_eq!(tasks(&text).len(), 1, "{fence}");
    }
}

#[test]
fn json_in_prose_with_braces_and_strings() {
    let text = r#"I looked at {the code} and "quotes {". Final:
{"status":"continue","tasks":[{"id":"t1","title":"Handle } and { in strings \" ok","description":"x"}]} done."#;
    let t = tasks(text);
    assert_eq!(t[0].title, "Handle } and { in strings \" ok");
}

#[test]
fn picks_first_snippet_with_expected_shape() {
    let text = r#"Example of a file: {"name": "x"}. Not JSON: {oops}.
Review format reminder {"decision":"approve"}.
{"status":"continue","tasks":[{"id":"first","title":"A"}]}
{"status":"continue","tasks":[{"id":"second","title":"B"}]}"#;
    assert_eq!(tasks(text)[0].id, "first");
}

#[test]
fn code_blocks_and_deep_junk_before_the_plan() {
    let deep = format!("{}{}", "{\"a\":".repeat(300), "}".repeat(300));
    let text = format!(
        "```rust\nfn main() {{ let x = {{ 1 }}; if x {{ }} }}\n```\n{deep}\n{{\"status\":\"continue\",\"tasks\":[{{\"id\":\"t1\",\"title\":\"A\"}}]}}"
    );
    assert_eq!(tasks(&text)[0].id, "t1");
}

#[test]
fn nested_plan_inside_wrapper_object() {
    let t = tasks(r#"{"answer":{"status":"continue","tasks":[{"id":"t1","title":"A"}]}}"#);
    assert_eq!(t[0].id, "t1");
}

#[test]
fn double_encoded_answer() {
    let inner = r#"{"decision":"approve","notes":"fine"}"#;
    let text = serde_json::to_string(inner).unwrap();
    assert_eq!(
        parse_review(&text).unwrap().value,
        ReviewDecision::Approve {
            notes: "fine".into()
        }
    );
}

#[test]
fn unknown_fields_tolerated() {
    let p = parse_director_plan(
        r#"{"status":"continue","confidence":0.9,"summary":"s","teams":[{"name":"parser","goal":"g","size":3}]}"#,
    )
    .unwrap();
    assert_eq!(
        p.value,
        DirectorPlan::Continue {
            summary: "s".into(),
            teams: vec![TeamGoal {
                name: "parser".into(),
                goal: "g".into()
            }]
        }
    );
}

#[test]
fn status_spelling_is_normalised() {
    let p = parse_task_plan(r#"{"status":" Complete ","reason":"all done"}"#).unwrap();
    assert_eq!(
        p.value,
        TaskPlan::Complete {
            reason: "all done".into()
        }
    );
    let r = parse_review(r#"{"decision":"Changes-Requested","feedback":"fix"}"#).unwrap();
    assert_eq!(
        r.value,
        ReviewDecision::Revise {
            feedback: "fix".into()
        }
    );
}

#[test]
fn complete_without_reason_is_ok() {
    assert_eq!(
        parse_task_plan(r#"{"status":"complete"}"#).unwrap().value,
        TaskPlan::Complete {
            reason: String::new()
        }
    );
    assert_eq!(
        parse_director_plan(r#"{"status":"complete"}"#)
            .unwrap()
            .value,
        DirectorPlan::Complete {
            reason: String::new()
        }
    );
}

// ---- errors ----

#[test]
fn no_json() {
    let e = parse_task_plan("I could not decide, sorry.").unwrap_err();
    assert!(
        matches!(e, PlanError::NoJson { ref excerpt, kind: PlanKind::Task } if excerpt.contains("sorry"))
    );
    assert!(matches!(
        parse_task_plan("").unwrap_err(),
        PlanError::NoJson { .. }
    ));
    // Braces in prose that are not JSON and do not mention the tag: still "no JSON".
    assert!(matches!(
        parse_task_plan("use {x} here").unwrap_err(),
        PlanError::NoJson { .. }
    ));
}

#[test]
fn invalid_json_trailing_comma() {
    let e = parse_task_plan(
        r#"```json
{"status":"continue","tasks":[{"id":"t1","title":"A"},]}
```"#,
    )
    .unwrap_err();
    match &e {
        PlanError::InvalidJson { error, excerpt, .. } => {
            assert!(
                error.contains("trailing comma") || error.contains("expected value"),
                "{error}"
            );
            assert!(excerpt.contains("\"t1\""), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_json_is_invalid_json() {
    let e = parse_task_plan(r#"{"status":"continue","tasks":[{"id":"t1","title":"A"#).unwrap_err();
    assert!(
        matches!(e, PlanError::InvalidJson { ref error, .. } if error.contains("EOF")),
        "{e:?}"
    );
}

#[test]
fn schema_errors() {
    let e = parse_task_plan(r#"{"status":"maybe","tasks":[]}"#).unwrap_err();
    assert!(
        matches!(e, PlanError::Schema { ref error, .. } if error.contains("maybe")),
        "{e:?}"
    );
    let e = parse_task_plan(r#"{"tasks":[{"id":"t1","title":"A"}]}"#).unwrap_err();
    assert!(
        matches!(e, PlanError::Schema { ref error, .. } if error.contains("\"status\"")),
        "{e:?}"
    );
    let e = parse_task_plan(r#"{"status":"continue","tasks":"do everything"}"#).unwrap_err();
    assert!(matches!(e, PlanError::Schema { .. }), "{e:?}");
    let e = parse_review(r#"{"decision":"approve","notes":{"a":1}}"#).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::Schema {
                kind: PlanKind::Review,
                ..
            }
        ),
        "{e:?}"
    );
    let e = parse_review(r#"{"decision":42}"#).unwrap_err();
    assert!(matches!(e, PlanError::Schema { .. }), "{e:?}");
}

#[test]
fn wrong_document_kind_is_schema_error() {
    // A director plan where a review was expected.
    let e = parse_review(r#"{"status":"complete"}"#).unwrap_err();
    assert!(
        matches!(e, PlanError::Schema { ref error, .. } if error.contains("\"decision\"")),
        "{e:?}"
    );
}

// ---- director validation ----

#[test]
fn director_validation() {
    let e = parse_director_plan(r#"{"status":"continue","teams":[]}"#).unwrap_err();
    assert!(
        matches!(e, PlanError::Validation { ref problems, .. } if problems[0].contains("\"teams\" is empty"))
    );

    let e = parse_director_plan(
        r#"{"status":"continue","teams":[{"name":"","goal":"g"},{"name":"a","goal":" "},{"name":"Parser","goal":"g"},{"name":"parser","goal":"g"}]}"#,
    )
    .unwrap_err();
    let PlanError::Validation { problems, .. } = e else {
        panic!()
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("team #1 has an empty name"));
    assert!(problems[1].contains("\"a\" has an empty \"goal\""));
    assert!(problems[2].contains("\"Parser\" and \"parser\" are the same after normalisation"));

    let many: Vec<String> = (0..51)
        .map(|i| format!(r#"{{"name":"t{i}","goal":"g"}}"#))
        .collect();
    let e = parse_director_plan(&format!(
        r#"{{"status":"continue","teams":[{}]}}"#,
        many.join(",")
    ))
    .unwrap_err();
    assert!(e.to_string().contains("too many teams: 51"));

    let p =
        parse_director_plan(r#"{"status":"continue","teams":[{"name":"HTTP API!","goal":"g"}]}"#)
            .unwrap();
    let DirectorPlan::Continue { teams, .. } = p.value else {
        panic!()
    };
    assert_eq!(teams[0].name, "http-api");
    assert_eq!(p.warnings.len(), 1);
}

// ---- task validation ----

#[test]
fn continue_needs_tasks() {
    let p = problems(parse_task_plan(r#"{"status":"continue"}"#));
    assert!(p[0].contains("\"tasks\" is empty or missing"));
}

#[test]
fn ids_are_slugged_and_original_kept_in_title() {
    let p = parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"Lexer Tokens","title":"Write lexer"},{"id":"T2","title":"Use it","depends_on":["Lexer Tokens"]}]}"#,
    )
    .unwrap();
    let TaskPlan::Continue { tasks } = p.value else {
        panic!()
    };
    assert_eq!(tasks[0].id, "lexer-tokens");
    assert_eq!(tasks[0].title, "Write lexer (id: Lexer Tokens)");
    assert_eq!(tasks[1].id, "t2");
    assert_eq!(tasks[1].depends_on, vec!["lexer-tokens"]);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn id_rules() {
    let long = "x".repeat(65);
    let p = problems(parse_task_plan(&format!(
        r#"{{"status":"continue","tasks":[{{"id":"","title":"a"}},{{"id":"!!!","title":"b"}},{{"id":"{long}","title":"c"}},{{"id":"t1","title":"d"}},{{"id":"t1","title":"e"}},{{"id":"T1","title":"f"}}]}}"#
    )));
    assert_eq!(p.len(), 5, "{p:?}");
    assert!(p[0].contains("task #1 has an empty id"));
    assert!(p[1].contains("no letters or digits"));
    assert!(p[2].contains("longer than 64"));
    assert!(p[3].contains("duplicate task id: \"t1\""));
    assert!(
        p[4].contains("\"t1\" and \"T1\" are the same after normalisation to \"t1\""),
        "{p:?}"
    );
    // Exactly 64 is fine.
    let ok = "y".repeat(64);
    assert_eq!(
        tasks(&format!(
            r#"{{"status":"continue","tasks":[{{"id":"{ok}","title":"a"}}]}}"#
        ))[0]
            .id,
        ok
    );
}

#[test]
fn title_rules() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"t1","title":" "}]}"#,
    ));
    assert!(p[0].contains("empty \"title\""));
    let p = parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"t1","description":"Do the thing\nin detail"}]}"#,
    )
    .unwrap();
    let TaskPlan::Continue { tasks } = p.value else {
        panic!()
    };
    assert_eq!(tasks[0].title, "Do the thing");
    assert_eq!(tasks[0].description, "Do the thing\nin detail");
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn task_cap() {
    let many: Vec<String> = (0..201)
        .map(|i| format!(r#"{{"id":"t{i}","title":"x"}}"#))
        .collect();
    let p = problems(parse_task_plan(&format!(
        r#"{{"status":"continue","tasks":[{}]}}"#,
        many.join(",")
    )));
    assert!(p
        .iter()
        .any(|p| p.contains("too many tasks: 201 (at most 200)")));
    let many: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id":"t{i}","title":"x"}}"#))
        .collect();
    assert_eq!(
        tasks(&format!(
            r#"{{"status":"continue","tasks":[{}]}}"#,
            many.join(",")
        ))
        .len(),
        200
    );
}

#[test]
fn unknown_dependency() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"t1","title":"a","depends_on":["t9"]}]}"#,
    ));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("task \"t1\": \"depends_on\" names \"t9\""),
        "{p:?}"
    );
    assert!(p[0].contains("ids: t1"));
}

#[test]
fn dependency_on_invalid_id_reports_only_the_id() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"???","title":"a"},{"id":"t2","title":"b","depends_on":["???"]}]}"#,
    ));
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn dependencies_dedupe_and_resolve_by_slug() {
    let t = tasks(
        r#"{"status":"continue","tasks":[{"id":"t0","title":"a"},{"id":"t1","title":"b","depends_on":["t0","T0"," t0 "]}]}"#,
    );
    assert_eq!(t[1].depends_on, vec!["t0"]);
}

#[test]
fn cycles_are_named() {
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[
            {"id":"a","title":"a"},
            {"id":"b","title":"b","depends_on":["c"]},
            {"id":"c","title":"c","depends_on":["d","a"]},
            {"id":"d","title":"d","depends_on":["b"]}]}"#,
    ));
    assert_eq!(p, vec!["\"depends_on\" has a cycle: b -> c -> d -> b"]);
    let p = problems(parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["a"]}]}"#,
    ));
    assert_eq!(p, vec!["\"depends_on\" has a cycle: a -> a"]);
}

#[test]
fn diamond_is_not_a_cycle() {
    let t = tasks(
        r#"{"status":"continue","tasks":[{"id":"a","title":"a"},{"id":"b","title":"b","depends_on":["a"]},
        {"id":"c","title":"c","depends_on":["a"]},{"id":"d","title":"d","depends_on":["b","c"]}]}"#,
    );
    assert_eq!(t.len(), 4);
}

#[test]
fn long_dependency_chain_is_fine() {
    let many: Vec<String> = (0..200)
        .map(|i| {
            if i == 0 {
                r#"{"id":"t0","title":"x"}"#.to_string()
            } else {
                format!(r#"{{"id":"t{i}","title":"x","depends_on":["t{}"]}}"#, i - 1)
            }
        })
        .collect();
    assert_eq!(
        tasks(&format!(
            r#"{{"status":"continue","tasks":[{}]}}"#,
            many.join(",")
        ))
        .len(),
        200
    );
}

#[test]
fn unsafe_files_dropped_with_warnings() {
    let p = parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"t1","title":"a","files":["src/a.rs","./src/b.rs","/etc/passwd","../x","a/../../y",".git/config","sub/.GIT/hooks/x","C:\\win","~/x","","src\\c.rs","src/a.rs"]}]}"#,
    )
    .unwrap();
    let TaskPlan::Continue { tasks } = p.value else {
        panic!()
    };
    assert_eq!(tasks[0].files, vec!["src/a.rs", "src/b.rs", "src/c.rs"]);
    assert_eq!(p.warnings.len(), 8, "{:?}", p.warnings);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("/etc/passwd") && w.contains("absolute")));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains(".git/config") && w.contains(".git")));
}

#[test]
fn sanitize_path_cases() {
    assert_eq!(sanitize_path("a//b/./c"), Ok("a/b/c".into()));
    assert_eq!(sanitize_path(".gitignore"), Ok(".gitignore".into()));
    assert!(sanitize_path("./").is_err());
    assert!(sanitize_path("a\0b").is_err());
}

#[test]
fn slugify_cases() {
    assert_eq!(slugify("Hello World"), "hello-world");
    assert_eq!(slugify("--a--b--"), "a-b");
    assert_eq!(slugify("ÄÖÜ"), "");
    assert_eq!(slugify("t1"), "t1");
}

// ---- review ----

#[test]
fn review_paths() {
    assert_eq!(
        parse_review(r#"{"decision":"approve"}"#).unwrap().value,
        ReviewDecision::Approve {
            notes: String::new()
        }
    );
    assert_eq!(
        parse_review("LGTM.\n```json\n{\"decision\": \"approved\", \"notes\": \" nice \"}\n```")
            .unwrap()
            .value,
        ReviewDecision::Approve {
            notes: "nice".into()
        }
    );
    assert_eq!(
        parse_review(r#"{"decision":"revise","feedback":"add tests"}"#)
            .unwrap()
            .value,
        ReviewDecision::Revise {
            feedback: "add tests".into()
        }
    );
    let e = parse_review(r#"{"decision":"revise"}"#).unwrap_err();
    assert!(
        matches!(e, PlanError::Validation { ref problems, .. } if problems[0].contains("\"feedback\" is empty"))
    );
    assert!(matches!(
        parse_review(r#"{"decision":"maybe"}"#).unwrap_err(),
        PlanError::Schema { .. }
    ));
}

// ---- repair prompt ----

#[test]
fn repair_prompts_quote_error_and_schema() {
    let cases = [
        parse_task_plan("no idea").unwrap_err(),
        parse_task_plan(r#"{"status":"continue","tasks":[,]}"#).unwrap_err(),
        parse_director_plan(r#"{"status":"later"}"#).unwrap_err(),
        parse_task_plan(
            r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["zz"]}]}"#,
        )
        .unwrap_err(),
        parse_review(r#"{"decision":"revise"}"#).unwrap_err(),
    ];
    for e in cases {
        let p = e.repair_prompt();
        assert!(p.starts_with("[cco:repair]\n[cco-ref:repair/"), "{p}");
        match &e {
            PlanError::Validation { problems, .. } => {
                assert!(
                    problems.iter().all(|x| p.contains(&format!("\n- {x}"))),
                    "{p}"
                )
            }
            other => assert!(p.contains(&other.to_string()), "{p}"),
        }
        assert!(p.contains(e.kind().schema()), "{p}");
        assert!(p.contains("ONLY one JSON object"));
        assert!(!p.contains("{{"), "{p}");
    }
    let p = parse_task_plan(
        r#"{"status":"continue","tasks":[{"id":"a","title":"a","depends_on":["zz"]}]}"#,
    )
    .unwrap_err()
    .repair_prompt();
    assert!(
        p.contains("\n- task \"a\": \"depends_on\" names \"zz\""),
        "{p}"
    );
    assert!(p.contains("[cco-ref:repair/task-plan]"));
}

// ---- robustness ----

#[test]
fn never_panics_on_adversarial_input() {
    let deep_open = "{".repeat(100_000);
    let deep_balanced = format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let deep_array = format!(
        "{{\"status\":\"continue\",\"tasks\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let many_small = "{}".repeat(50_000);
    let quotes = "\"{".repeat(20_000);
    let backslashes = format!("{{\"status\":\"{}", "\\".repeat(10_001));
    let big_valid_with_error = format!(
        r#"{{"status":"continue","tasks":[{{"id":"t1","title":"{}"}}],}}"#,
        "x".repeat(1_000_000)
    );
    let inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        "{".into(),
        "}".into(),
        "}{".into(),
        "{{}}".into(),
        "{\"".into(),
        "{\"\\".into(),
        "\"".into(),
        "\\".into(),
        "`".into(),
        "```".into(),
        "````json\n{\n````".into(),
        "```json".into(),
        "``` {\"status\":\"complete\"".into(),
        "null".into(),
        "[]".into(),
        "[{\"status\":\"complete\"}]".into(),
        "\"just a string\"".into(),
        "\"{\\\"status\\\":\\\"nope\\\"}\"".into(),
        "{\"status\":null}".into(),
        "{\"status\":\"continue\",\"tasks\":[null]}".into(),
        "{\"status\":\"continue\",\"tasks\":[1,2]}".into(),
        "{\"status\":\"continue\",\"teams\":[{\"name\":[],\"goal\":{}}]}".into(),
        "{\"status\":\"continue\",\"tasks\":[{\"id\":\"é\u{0}\u{200b}🦀\",\"title\":\"🦀\"}]}".into(),
        "{\"decision\":\"\u{feff}approve\"}".into(),
        "日本語 {\"status\":\"complete\",\"reason\":\"完了\"} 🦀".into(),
        "\u{feff}{\"status\":\"complete\"}".into(),
        "{\"status\":\"continue\",\"tasks\":[{\"id\":\"a\",\"title\":\"a\",\"files\":[\"\u{0}\",\"\\\\\\\\server\\\\x\",\"..\"]}]}".into(),
        "{\"a\":1e999999}".into(),
        "{\"status\":\"complete\",\"reason\":\"\\ud800\"}".into(),
        deep_open,
        deep_balanced,
        deep_array,
        many_small,
        quotes,
        backslashes,
        big_valid_with_error,
        "{\"status\":\"complete\"}".repeat(10_000),
    ];
    let start = std::time::Instant::now();
    for input in &inputs {
        for cut in [input.len(), input.len() / 2, input.len() / 3] {
            let mut cut = cut;
            while !input.is_char_boundary(cut) {
                cut -= 1;
            }
            let s = &input[..cut];
            let results = [
                parse_director_plan(s).map(|_| ()),
                parse_task_plan(s).map(|_| ()),
                parse_review(s).map(|_| ()),
            ];
            for r in results {
                if let Err(e) = r {
                    let _ = e.repair_prompt();
                }
            }
        }
    }
    assert!(
        start.elapsed().as_secs() < 60,
        "too slow: {:?}",
        start.elapsed()
    );
    // Spot checks.
    assert!(parse_task_plan("{\"status\":\"complete\"}").is_ok());
    assert!(parse_task_plan("[{\"status\":\"complete\"}]").is_ok());
    assert!(parse_task_plan("\u{feff}{\"status\":\"complete\"}").is_ok());
    assert!(parse_director_plan("日本語 {\"status\":\"complete\",\"reason\":\"完了\"} 🦀").is_ok());
}
