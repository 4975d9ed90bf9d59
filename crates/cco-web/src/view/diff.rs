//! A task's patch as HTML: its commits, the files it changes (with counts, linked to their
//! part of the patch), and the patch itself, line by line.

use maud::{html, Markup};

use super::{short, Ctx};

/// Lines of one file's part of the patch shown at most.
const MAX_FILE_LINES: usize = 3000;

pub(super) fn render(ctx: &Ctx<'_>, patch: Option<&Result<cco_git::Patch, String>>) -> Markup {
    let body = match patch {
        None => html! { p.empty { "No work captured yet." } },
        Some(Err(error)) => html! { p.empty { "The patch cannot be shown: " (ctx.clean(error)) } },
        Some(Ok(patch)) if patch.files.is_empty() => {
            html! { p.empty { "No changes (nothing committed, or already in the target)." } }
        }
        Some(Ok(patch)) => {
            let text = ctx.clean(&patch.text);
            let parts = split_files(&text);
            html! {
                @if !patch.commits.is_empty() {
                    h3 { "Commits" }
                    ul.commits {
                        @for (sha, subject) in &patch.commits {
                            li { span.mono { (short(sha)) } " " (ctx.clean(subject)) }
                        }
                    }
                }
                h3 { "Files" }
                table.files {
                    tbody {
                        @for (n, file) in patch.files.iter().enumerate() {
                            tr {
                                td.mono {
                                    @if patch.omitted.contains(&file.path) { (ctx.clean(&file.path)) " (too long to show)" }
                                    @else { a href=(format!("#file-{n}")) { (ctx.clean(&file.path)) } }
                                }
                                @match (file.added, file.deleted) {
                                    (Some(a), Some(d)) => { td.num.add { "+" (a) } td.num.del { "-" (d) } },
                                    _ => { td colspan="2" { "binary" } },
                                }
                            }
                        }
                    }
                }
                @for (n, file) in patch.files.iter().enumerate() {
                    @if let Some(lines) = parts.iter().find(|(path, _)| *path == ctx.clean(&file.path)).map(|(_, l)| l) {
                        div.file id=(format!("file-{n}")) {
                            div.file-name { (ctx.clean(&file.path)) }
                            pre.patch {
                                @for line in lines.iter().take(MAX_FILE_LINES) {
                                    span class=(line_class(line)) { (line) "\n" }
                                }
                                @if lines.len() > MAX_FILE_LINES { span.meta { "… " (lines.len() - MAX_FILE_LINES) " more lines" } }
                            }
                        }
                    }
                }
            }
        }
    };
    html! {
        section.diff {
            h2 { "Changes" }
            (body)
        }
    }
}

fn line_class(line: &str) -> &'static str {
    if line.starts_with("+++") || line.starts_with("---") {
        "meta"
    } else if line.starts_with('+') {
        "add"
    } else if line.starts_with('-') {
        "del"
    } else if line.starts_with("@@") {
        "hunk"
    } else {
        "ctx"
    }
}

/// The patch cut at its `diff --git` lines: (the file's new path, its lines after the header).
fn split_files(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut files: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("diff --git ") {
            let path = header
                .rsplit_once(" b/")
                .map(|(_, b)| b.to_string())
                .unwrap_or_else(|| header.to_string());
            files.push((path, Vec::new()));
        } else if let Some((_, lines)) = files.last_mut() {
            if !(line.starts_with("index ") && lines.is_empty()) {
                lines.push(line);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_splits_into_files_by_their_new_path() {
        let text = "diff --git a/x.txt b/x.txt\nindex 1..2 100644\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/dir/y z.sh b/dir/y z.sh\nnew file mode 100644\n+echo\n";
        let files = split_files(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "x.txt");
        assert_eq!(
            files[0].1,
            ["--- a/x.txt", "+++ b/x.txt", "@@ -1 +1 @@", "-a", "+b"]
        );
        assert_eq!(files[1].0, "dir/y z.sh");
        assert_eq!(line_class("+b"), "add");
        assert_eq!(line_class("+++ b/x"), "meta");
        assert_eq!(line_class("@@ -1 +1 @@"), "hunk");
    }
}
