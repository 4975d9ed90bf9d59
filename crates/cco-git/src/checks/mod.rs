//! Pure checks of what agents' commits add (no IO): added lines parsed from `git diff -U0`
//! / `git log -p -U0 --cc` output, conflict markers, secret values and key shapes; in
//! `tree.rs`, paths git must never let into a tree, symlink targets that leave the
//! repository and submodules that point to this machine.

mod tree;

pub(crate) use tree::*;

use crate::types::FileLine;

/// One line a diff adds: its file (path in the new tree), line number there, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddedLine {
    pub path: String,
    pub line: u64,
    pub text: String,
    /// The commit whose diff added it (`log -p` input), empty for a plain diff.
    pub commit: String,
}

/// A commit message found in `log` output, with its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub commit: String,
    /// How many parents the commit has.
    pub parents: usize,
    /// Author and committer: `name <email> name <email>`.
    pub ident: String,
    pub text: String,
}

/// The lines that open each commit (its id and parents) and close its message in one
/// `git log` read ([`LogMarks::format`]). They carry a nonce drawn for that read: a commit
/// message, written before, cannot hold them, so it can neither end itself early (hiding
/// the rest of it from the secret scan) nor make its lines read as patch or raw lines.
#[derive(Debug, Clone)]
pub(crate) struct LogMarks {
    nonce: u64,
    commit: String,
    ident: String,
    end: String,
}

impl LogMarks {
    /// Marks with a nonce no one can know in advance (std's randomly keyed hasher).
    pub(crate) fn new() -> LogMarks {
        use std::hash::BuildHasher;
        let nonce = std::hash::RandomState::new().hash_one(crate::names::unique_suffix());
        LogMarks::with_nonce(nonce)
    }

    /// Marks with a chosen nonce (for output without commit messages, and tests).
    pub(crate) fn with_nonce(nonce: u64) -> LogMarks {
        LogMarks {
            nonce,
            commit: format!("\u{1}cco-commit-{nonce:016x} "),
            ident: format!("\u{1}cco-ident-{nonce:016x} "),
            end: format!("\u{1}cco-end-{nonce:016x}"),
        }
    }

    /// The `--format` that makes [`parse_patch`] see each commit's id and message.
    pub(crate) fn format(&self) -> String {
        format!(
            "--format=%x01cco-commit-{n:016x} %H %P%n%x01cco-ident-{n:016x} %an <%ae> %cn <%ce>%n%B%n%x01cco-end-{n:016x}",
            n = self.nonce
        )
    }
}

/// The added lines of a plain diff (no commit messages in it).
pub(crate) fn parse_diff(out: &str) -> Vec<AddedLine> {
    parse_patch(out, &LogMarks::with_nonce(0)).0
}

/// Undoes git's C-style quoting of a path in a diff header (`"a/\303\251 b"`).
pub(crate) fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut bytes = Vec::new();
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'a') => bytes.push(7),
            Some(b'b') => bytes.push(8),
            Some(b'f') => bytes.push(12),
            Some(b'r') => bytes.push(b'\r'),
            Some(b'v') => bytes.push(11),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = it.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        it.next();
                    }
                }
                bytes.push(v as u8);
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The new-side start line of a hunk header (`@@ -a,b +c,d @@`, `@@@ -a -b +c @@@`).
fn hunk_start(header: &str) -> Option<u64> {
    let plus = header.split_whitespace().find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

/// Added lines (and commit messages, for `log` output made with [`LogMarks::format`]) of a
/// `-U0` patch. Combined diffs (`--cc`) count a line as added only when it is new against
/// every parent (all its columns are `+`).
pub(crate) fn parse_patch(out: &str, marks: &LogMarks) -> (Vec<AddedLine>, Vec<Message>) {
    let mut added = Vec::new();
    let mut messages = Vec::new();
    let mut commit = String::new();
    let mut parents = 0usize;
    let mut path: Option<String> = None;
    let mut line = 0u64;
    let mut columns = 1usize;
    let mut in_message: Option<String> = None;
    let mut ident = String::new();
    for raw in out.split('\n') {
        if let Some(msg) = in_message.as_mut() {
            if raw == marks.end {
                messages.push(Message {
                    commit: commit.clone(),
                    parents,
                    ident: std::mem::take(&mut ident),
                    text: std::mem::take(msg),
                });
                in_message = None;
            } else if let Some(who) = raw.strip_prefix(marks.ident.as_str()) {
                ident = who.to_string();
            } else {
                msg.push_str(raw);
                msg.push('\n');
            }
            continue;
        }
        if let Some(ids) = raw.strip_prefix(marks.commit.as_str()) {
            let mut ids = ids.split_whitespace();
            commit = ids.next().unwrap_or_default().to_string();
            parents = ids.count();
            in_message = Some(String::new());
            path = None;
            continue;
        }
        if raw.starts_with("diff --git ") || raw.starts_with("diff --cc ") {
            path = None;
            columns = if raw.starts_with("diff --cc ") { 2 } else { 1 };
            continue;
        }
        if let Some(p) = raw.strip_prefix("+++ ") {
            path = if p == "/dev/null" {
                None
            } else {
                let p = unquote(p);
                Some(p.strip_prefix("b/").map(str::to_string).unwrap_or(p))
            };
            continue;
        }
        if raw.starts_with("@@") {
            let ats = raw.chars().take_while(|c| *c == '@').count();
            columns = ats.saturating_sub(1).max(1);
            line = hunk_start(raw).unwrap_or(0);
            continue;
        }
        let Some(p) = &path else {
            continue;
        };
        // The columns are ASCII (`+`, `-`, ` `) in what git prints; a line they do not start
        // is no patch line.
        if raw.len() < columns || !raw.is_char_boundary(columns) {
            continue;
        }
        let (cols, text) = raw.split_at(columns);
        if cols.chars().all(|c| c == '+') {
            added.push(AddedLine {
                path: p.clone(),
                line,
                text: text.to_string(),
                commit: commit.clone(),
            });
            line += 1;
        } else if !cols.contains('-') {
            line += 1;
        }
    }
    (added, messages)
}

/// `git log` output without its commit headers and messages (what is left: raw and patch
/// lines), so nothing an agent writes in a message reads as a raw or diff line.
pub(crate) fn without_messages(out: &str, marks: &LogMarks) -> String {
    let mut keep = String::with_capacity(out.len());
    let mut in_message = false;
    for line in out.split('\n') {
        if line.starts_with(marks.commit.as_str()) {
            in_message = true;
        } else if in_message {
            in_message = line != marks.end;
        } else {
            keep.push_str(line);
            keep.push('\n');
        }
    }
    keep
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Start,
    Base,
    Middle,
    End,
}

/// The conflict marker `line` is (7 characters, then a space or the end of the line; the
/// middle one alone on its line).
fn marker(line: &str) -> Option<Marker> {
    let line = line.trim_end_matches('\r');
    // By bytes: the markers are ASCII, the rest of the line is whatever an agent wrote (a
    // multi-byte character may straddle byte 7).
    let bytes = line.as_bytes();
    let is = |c: u8| {
        bytes.len() >= 7
            && bytes[..7].iter().all(|&x| x == c)
            && (bytes.len() == 7 || bytes[7] == b' ')
    };
    if is(b'<') {
        Some(Marker::Start)
    } else if is(b'>') {
        Some(Marker::End)
    } else if is(b'|') {
        Some(Marker::Base)
    } else if line == "=======" {
        Some(Marker::Middle)
    } else {
        None
    }
}

/// Leftover markers among `added`: start, base and end markers, and middle markers in a file
/// that also has one of those (a lone `=======` is a Markdown underline).
pub(crate) fn leftover_markers(added: &[AddedLine]) -> Vec<FileLine> {
    let strong: std::collections::BTreeSet<&str> = added
        .iter()
        .filter(|a| {
            matches!(
                marker(&a.text),
                Some(Marker::Start | Marker::Base | Marker::End)
            )
        })
        .map(|a| a.path.as_str())
        .collect();
    let mut out: Vec<FileLine> = added
        .iter()
        .filter(|a| match marker(&a.text) {
            Some(Marker::Middle) => strong.contains(a.path.as_str()),
            Some(_) => true,
            None => false,
        })
        .map(|a| FileLine::new(&a.path, a.line))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Complete conflict blocks (`<<<<<<< ` … `=======` … `>>>>>>> ` in this order, in one file)
/// among `added`; each reported at its start line.
pub(crate) fn marker_blocks(added: &[AddedLine]) -> Vec<FileLine> {
    let mut out = Vec::new();
    let mut state: Option<(&str, u64, bool)> = None;
    for a in added {
        if state.is_some_and(|(p, _, _)| p != a.path) {
            state = None;
        }
        match marker(&a.text) {
            Some(Marker::Start) => state = Some((&a.path, a.line, false)),
            Some(Marker::Middle) => {
                if let Some((_, _, mid)) = state.as_mut() {
                    *mid = true;
                }
            }
            Some(Marker::End) => {
                if let Some((p, start, true)) = state {
                    out.push(FileLine::new(p, start));
                }
                state = None;
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where `(path, line)` is in `a` and in `b` (lines new against both parents of a merge).
pub(crate) fn in_both(a: &[AddedLine], b: &[AddedLine]) -> Vec<AddedLine> {
    let keys: std::collections::BTreeSet<(&str, u64)> =
        b.iter().map(|l| (l.path.as_str(), l.line)).collect();
    a.iter()
        .filter(|l| keys.contains(&(l.path.as_str(), l.line)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(added: &[AddedLine]) -> Vec<(String, u64, String)> {
        added
            .iter()
            .map(|a| (a.path.clone(), a.line, a.text.clone()))
            .collect()
    }

    #[test]
    fn each_read_has_marks_of_its_own() {
        let (a, b) = (LogMarks::new(), LogMarks::new());
        assert_ne!(a.format(), b.format());
        assert!(a.format().starts_with("--format=%x01cco-commit-"));
        // A message holding another read's end mark (or the plain one) stays a message.
        let out = format!(
            "{}abc p1\nsubject\n\x01cco-end\n{}\nsk\n{}\n",
            a.commit, b.end, a.end
        );
        let (_, messages) = parse_patch(&out, &a);
        assert_eq!(messages.len(), 1);
        assert!(messages[0].text.contains("sk"), "{messages:?}");
    }

    #[test]
    fn added_lines_of_plain_and_combined_patches() {
        let marks = LogMarks::with_nonce(7);
        let out = "\u{1}cco-commit-0000000000000007 abc p1\n\u{1}cco-ident-0000000000000007 A <a@x> C <c@x>\nsubject\n\nbody\n\n\u{1}cco-end-0000000000000007\n\
diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -2,0 +3,2 @@\n+one\n+two\n@@ -9 +11 @@ ctx\n-old\n+new\n\
diff --git \"a/\\303\\251 t\" \"b/\\303\\251 t\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/\\303\\251 t\"\n@@ -0,0 +1 @@\n+hé\n\
diff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n\
\u{1}cco-commit-0000000000000007 def p1 p2\nmerge\n\u{1}cco-end-0000000000000007\n\
diff --cc m.txt\nindex 1,2..3\n--- a/m.txt\n+++ b/m.txt\n@@@ -1,1 -1,1 +1,3 @@@\n++<<<<<<< HEAD\n +ours\n+ theirs\n++=======\n";
        let (added, messages) = parse_patch(out, &marks);
        assert_eq!(
            lines(&added),
            vec![
                ("x.txt".into(), 3, "one".into()),
                ("x.txt".into(), 4, "two".into()),
                ("x.txt".into(), 11, "new".into()),
                ("é t".into(), 1, "hé".into()),
                ("m.txt".into(), 1, "<<<<<<< HEAD".into()),
                ("m.txt".into(), 4, "=======".into()),
            ]
        );
        assert_eq!(added[0].commit, "abc");
        assert_eq!(added[4].commit, "def");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].text, "subject\n\nbody\n\n");
        assert_eq!(messages[0].ident, "A <a@x> C <c@x>");
        assert_eq!((messages[0].parents, messages[1].parents), (1, 2));
        let rest = without_messages(out, &marks);
        assert!(!rest.contains("subject") && rest.contains("+one"));
    }

    fn add(path: &str, line: u64, text: &str) -> AddedLine {
        AddedLine {
            path: path.into(),
            line,
            text: text.into(),
            commit: String::new(),
        }
    }

    #[test]
    fn markers_and_blocks() {
        let a = vec![
            add("a", 1, "<<<<<<< HEAD"),
            add("a", 2, "x"),
            add("a", 3, "======="),
            add("a", 4, ">>>>>>> 1234"),
            add("README.md", 2, "======="),
            add("b", 1, "<<<<<<<<<< not a marker"),
            add("c", 5, ">>>>>>> only an end"),
        ];
        assert_eq!(marker_blocks(&a), vec![FileLine::new("a", 1)]);
        assert_eq!(
            leftover_markers(&a),
            vec![
                FileLine::new("a", 1),
                FileLine::new("a", 3),
                FileLine::new("a", 4),
                FileLine::new("c", 5),
            ]
        );
        // A block split over two files is no block.
        let split = vec![
            add("a", 1, "<<<<<<< HEAD"),
            add("b", 1, "======="),
            add("b", 2, ">>>>>>> x"),
        ];
        assert!(marker_blocks(&split).is_empty());
    }

    /// Added lines are an agent's bytes: a multi-byte character where a marker's seventh
    /// character would be is no marker (and no panic).
    #[test]
    fn lines_with_multibyte_characters_near_a_marker_are_no_markers() {
        let a = vec![
            add("a", 1, "<<<<<<é"),
            add("a", 2, "======é"),
            add("a", 3, ">>>>>>😀 x"),
            add("a", 4, "é<<<<<<"),
            add("a", 5, "<<<<<<<é"),
        ];
        assert!(marker_blocks(&a).is_empty());
        assert!(leftover_markers(&a).is_empty());
    }
}
