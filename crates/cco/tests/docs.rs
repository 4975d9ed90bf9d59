//! docs/embedding.md shows the embedding example as it is, and the example uses only the
//! facade.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure with a message

use std::path::Path;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(relative)).unwrap()
}

#[test]
fn the_embedding_guide_shows_the_example_as_it_is() {
    let example = read("examples/embed.rs");
    let guide = read("../../docs/embedding.md");
    assert!(
        guide.contains(&format!("```rust\n{example}```")),
        "docs/embedding.md must show crates/cco/examples/embed.rs verbatim"
    );
}

#[test]
fn the_example_uses_only_the_facade() {
    let example = read("examples/embed.rs");
    for internal in [
        "cco_actors",
        "cco_config",
        "cco_git",
        "cco_claude",
        "cco_protocol",
    ] {
        assert!(!example.contains(internal), "the example names {internal}");
    }
    assert!(example.contains("use cco::"));
}
