//! Every parser of what git prints about agents' work, and every check of names and paths
//! agents choose, takes any input without a panic, and the checks keep their promises on
//! it: a deterministic sweep of generated inputs made of the pieces those parsers look at
//! (markers, separators, quoting, hunk headers, multi-byte characters, NUL and control
//! characters). Added after a committed line with a multi-byte character at a conflict
//! marker's seventh byte panicked the content check.

use std::path::Component;

use super::bundle::parse_header;
use super::capture::parse_status;
use super::diff::{cut, parse_numstat_z_then_stat};
use super::integrity::parse_raw;
use crate::checks::{self, LogMarks};
use crate::sanitize::*;
use cco_testkit::Sweep;

/// Up to `max` pieces.
fn text(g: &mut Sweep, max: usize) -> String {
    g.text(PIECES, max)
}

const PIECES: &[&str] = &[
    "<",
    "<<<<<<<",
    "<<<<<<",
    ">>>>>>>",
    ">>>>>>",
    "=======",
    "======",
    "|||||||",
    " ",
    "\n",
    "\t",
    "\r",
    "\0",
    "\u{1}",
    "\u{1b}",
    ":",
    "+",
    "-",
    "@",
    "@@",
    "@@@",
    " -1,2 +3,4 ",
    "+0",
    "+x,",
    "é",
    "😀",
    "日本",
    "\u{202e}",
    "a",
    "Z",
    "0",
    "9",
    "/",
    "//",
    ".",
    "..",
    ".git",
    ".GIT",
    ".lock",
    "@{",
    "~",
    "^",
    "*",
    "?",
    "[",
    "\\",
    "\"",
    "\\303\\251",
    "\\",
    "diff --git a/x b/x\n",
    "--- a/x\n",
    "+++ b/x\n",
    "+++ ",
    "@@ -1 +1 @@\n",
    "\u{1}cco-commit-0000000000000007 ",
    "\u{1}cco-end-0000000000000007",
    "\u{1}cco-end",
    "0123456789abcdef0123456789abcdef01234567",
    " 100644",
    " 120000",
    " 160000",
    " A",
    " D",
    " M",
    "R100",
    "?? ",
    "UU ",
    "A  ",
    "-\t-\t",
    "12\t3\t",
    "sk-ant-",
    "ghp_",
    "AKIA",
    "-----BEGIN",
    "# v2 git bundle\n",
    "# v3 git bundle\n",
    "@object-format=sha1\n",
    "\n\n",
    "PACK",
];

#[test]
fn parsers_of_what_git_prints_about_agents_work_never_panic() {
    let mut g = Sweep::new(0x9e37_79b9_7f4a_7c15);
    let known = vec!["sk-ant-known-secret-value".to_string()];
    for _ in 0..20_000 {
        let out = text(&mut g, 60);
        let marks = LogMarks::with_nonce(7);
        let (added, messages) = checks::parse_patch(&out, &marks);
        let _ = checks::leftover_markers(&added);
        let _ = checks::marker_blocks(&added);
        let _ = checks::in_both(&added, &added);
        for line in &added {
            let _ = crate::secrets::find(&line.text, &known);
        }
        for m in &messages {
            let _ = crate::secrets::find(&m.text, &known);
        }
        let _ = checks::without_messages(&out, &marks);
        let _ = checks::parse_diff(&out);
        let _ = checks::unquote(&out);
        for e in parse_raw(&out) {
            let _ = checks::git_path_problem(&e.path);
            let _ = checks::symlink_problem(&e.path, &e.new_sha);
            let _ = e.new_mode.len() + e.status.len_utf8();
        }
        let _ = checks::local_submodule_url(&out);
        let _ = parse_status(&out);
        let _ = crate::read::parse_numstat(&out);
        let _ = parse_numstat_z_then_stat(&out);
        let _ = parse_header(out.as_bytes());
        let max = g.below(out.len() + 2);
        let short = cut(&out, max);
        assert!(
            short == out || short.len() <= max + 60,
            "cut to {max}: {} bytes",
            short.len()
        );
    }
}

#[test]
fn names_and_paths_agents_propose_come_out_valid_or_refused() {
    let mut g = Sweep::new(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let proposed = text(&mut g, 40);
        let one = single_component(&proposed);
        assert!(
            branch_name_problem(&one).is_none() && !one.contains('/') && one.len() <= 64,
            "{proposed:?} -> {one:?}"
        );
        let slug = slugify(&proposed);
        assert!(
            !slug.is_empty()
                && slug.len() <= 60
                && slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !slug.starts_with('-')
                && !slug.ends_with('-'),
            "{proposed:?} -> {slug:?}"
        );
        let s = sanitize_branch_component(&proposed);
        assert!(
            branch_name_problem(&s.name).is_none(),
            "{proposed:?} -> {s:?}"
        );
        let _ = ref_name_problem(&proposed);
        let _ = is_secret_path(&proposed, &[]);
        if let Ok(path) = validate_relative_path(&proposed) {
            assert!(
                path.components().all(|c| match c {
                    Component::Normal(n) => !n.to_string_lossy().eq_ignore_ascii_case(".git"),
                    _ => false,
                }),
                "{proposed:?} -> {path:?}"
            );
        }
    }
}
