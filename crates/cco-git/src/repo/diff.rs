//! Summaries (commits, files, counts, stat) and logs for reviews and reports.

use super::*;
use crate::names::*;
use crate::GitError;

/// Splits `git diff --numstat -z --stat` output into (files, insertions, deletions, stat).
/// A numstat record is `<added>\t<deleted>\t<path>\0`, or for a rename/copy
/// `<added>\t<deleted>\t\0<old>\0<new>\0` (the file is `<new>`, as `--name-only` lists it);
/// binary files count `-`. The stat text follows the last record.
pub(super) fn parse_numstat_z_then_stat(out: &str) -> Option<(Vec<String>, u64, u64, String)> {
    let (mut files, mut ins, mut del) = (Vec::new(), 0u64, 0u64);
    let mut rest = out;
    while !rest.is_empty() && !rest.starts_with(' ') {
        let (added, r) = rest.split_once('\t')?;
        let (deleted, r) = r.split_once('\t')?;
        let num = |n: &str| -> Option<u64> {
            if n == "-" {
                Some(0)
            } else {
                n.parse().ok()
            }
        };
        ins += num(added)?;
        del += num(deleted)?;
        let (path, r) = r.split_once('\0')?;
        rest = if path.is_empty() {
            let (_old, r) = r.split_once('\0')?;
            let (new, r) = r.split_once('\0')?;
            files.push(new.to_string());
            r
        } else {
            files.push(path.to_string());
            r
        };
    }
    Some((files, ins, del, rest.to_string()))
}

/// At most this much of each side's patch goes into a resolution review (the reviewer can
/// run the diff itself for the rest).
const MAX_RESOLUTION_PATCH: usize = 16 * 1024;

/// The first `max` bytes of `patch` (on a line boundary), saying when some was cut.
pub(super) fn cut(patch: &str, max: usize) -> String {
    if patch.len() <= max {
        return patch.to_string();
    }
    let mut end = max;
    while !patch.is_char_boundary(end) {
        end -= 1;
    }
    let end = patch[..end].rfind('\n').map_or(end, |i| i + 1);
    format!(
        "{}... ({} more bytes of diff not shown)\n",
        &patch[..end],
        patch.len() - end
    )
}

impl GitRepo {
    /// What `head` adds over `base` (commits `base..head`, changes since their merge base).
    pub async fn diff_summary(&self, base: &str, head: &str) -> Result<DiffSummary, GitError> {
        self.refresh_agent_branch(base).await?;
        self.refresh_agent_branch(head).await?;
        let repo = &self.repo_dir;
        // Local branches and full ref names are used as they are ([`direct_ref`]); anything
        // else, or a name that does not resolve so, is resolved first.
        let log_of = |range: String| async move {
            let args = ["log", "--format=%H%x1f%s", "--end-of-options", &range];
            let out = self.git("log", repo).args(args).output().await?;
            Ok::<_, GitError>(out.success().then_some(out.stdout))
        };
        let fast = match (direct_ref(base), direct_ref(head)) {
            // A shared branch is what cco wrote there (see `expected_tip`), not its ref.
            (Some(b), Some(h)) if self.expected_tip(base).is_none() => {
                log_of(format!("{b}..{h}")).await?.map(|log| (b, h, log))
            }
            _ => None,
        };
        let (b, h, log) = match fast {
            Some(found) => found,
            None => {
                let resolved = self.resolve_branchish_many(repo, &[base, head]).await?;
                let (b, h) = (resolved[0].clone(), resolved[1].clone());
                let range = format!("{b}..{h}");
                let log = self
                    .git("log", repo)
                    .args(["log", "--format=%H%x1f%s", &range])
                    .run()
                    .await?;
                (b, h, log)
            }
        };
        let three = format!("{b}...{h}");
        let commits = log
            .lines()
            .filter_map(|l| l.split_once('\x1f'))
            .map(|(sha, subject)| (sha.to_string(), subject.to_string()))
            .collect();
        // One diff for files, counts and the stat: `--numstat -z` records first, then the
        // `--stat` text (each of its lines starts with a space).
        let out = self
            .git("diff", repo)
            .args(["diff", "--numstat", "-z", "--stat", &three])
            .run()
            .await?;
        let (files, insertions, deletions, stat) =
            parse_numstat_z_then_stat(&out).ok_or_else(|| {
                GitError::invalid("diff", "unexpected `diff --numstat -z --stat` output")
            })?;
        Ok(DiffSummary {
            commits,
            files,
            insertions,
            deletions,
            stat,
        })
    }

    /// The conflict resolution `head` ends with, for its review: the newest merge commit on
    /// `head`'s first-parent chain that `target` does not hold, and the diff of `head` (the
    /// resolved work) against each of that merge's two parents: a side whose change the
    /// resolution dropped shows it removed there. `None` when there is no such merge.
    pub async fn resolution_diff(
        &self,
        target: &str,
        head: &str,
    ) -> Result<Option<ResolutionDiff>, GitError> {
        let repo = &self.repo_dir;
        let resolved = self.resolve_branchish_many(repo, &[target, head]).await?;
        let (t, h) = (resolved[0].clone(), resolved[1].clone());
        let merges = self
            .git("rev-list", repo)
            .args([
                "rev-list",
                "--first-parent",
                "--merges",
                "--parents",
                "-n1",
                &h,
                "--not",
                &t,
            ])
            .run()
            .await?;
        let ids: Vec<&str> = merges.split_whitespace().collect();
        let [merge, first, second, ..] = ids[..] else {
            return Ok(None);
        };
        let mut sides = Vec::new();
        // The files both sides changed since they split: the conflict's candidates.
        let base = self
            .git("merge-base", repo)
            .args(["merge-base", first, second])
            .output()
            .await?;
        let base = base.success().then(|| base.stdout.trim().to_string());
        let mut names = Vec::new();
        for parent in [first, second] {
            let stat = self
                .git("diff", repo)
                .args(["diff", "--stat", "--no-color", "--no-ext-diff", parent, &h])
                .run()
                .await?;
            let patch = self
                .git("diff", repo)
                .args([
                    "diff",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "-U3",
                    parent,
                    &h,
                ])
                .run()
                .await?;
            if let Some(base) = &base {
                let files = self
                    .git("diff", repo)
                    .args(["diff", "--name-only", "-z", "--no-renames", base, parent])
                    .run()
                    .await?;
                names.push(nul_list(&files));
            }
            sides.push(ParentDiff {
                commit: parent.to_string(),
                diff: format!(
                    "{}
{}",
                    stat.trim_end(),
                    cut(&patch, MAX_RESOLUTION_PATCH)
                ),
            });
        }
        let files = match &names[..] {
            [a, b] => a.iter().filter(|f| b.contains(f)).cloned().collect(),
            _ => Vec::new(),
        };
        let second_side = sides.pop();
        let first_side = sides.pop();
        let (Some(first_side), Some(second_side)) = (first_side, second_side) else {
            return Ok(None);
        };
        Ok(Some(ResolutionDiff {
            merge_commit: merge.to_string(),
            head: h,
            parents: [first_side, second_side],
            files,
        }))
    }

    /// The commit that brought `source` into `target`: the first (oldest) commit on
    /// `target`'s first-parent chain that contains `source` (the merge of a task, or `source`
    /// itself when it is `target`). `None` when `target` does not contain `source`.
    pub async fn merged_by(&self, target: &str, source: &str) -> Result<Option<String>, GitError> {
        let repo = &self.repo_dir;
        let resolved = self.resolve_branchish_many(repo, &[target, source]).await?;
        let (t, s) = (resolved[0].clone(), resolved[1].clone());
        if !self.is_ancestor(repo, &s, &t).await? {
            return Ok(None);
        }
        // Descendants of `source` that `target` holds, and `target`'s own first-parent chain
        // back to where it met `source`: the oldest commit of the chain among them merged it.
        let range = format!("{s}..{t}");
        let descendants = self
            .git("rev-list", repo)
            .args(["rev-list", "--ancestry-path", &range])
            .run()
            .await?;
        let chain = self
            .git("rev-list", repo)
            .args(["rev-list", "--first-parent", &range])
            .run()
            .await?;
        let descendants: std::collections::HashSet<&str> = descendants.lines().collect();
        let merged = chain
            .lines()
            .take_while(|c| descendants.contains(c))
            .last()
            .map(str::to_string);
        Ok(Some(merged.unwrap_or(s)))
    }

    pub async fn log_graph(&self, branch: &str, max: usize) -> Result<String, GitError> {
        self.refresh_agent_branch(branch).await?;
        let sha = self.resolve_branchish(branch).await?;
        let n = format!("-n{}", max.max(1));
        self.git("log", &self.repo_dir)
            .args(["log", "--graph", "--oneline", "--decorate", &n, &sha])
            .run()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_z_then_stat() {
        let out = "-\t-\tbin.dat\x000\t0\t\0f\0g \u{e9}.txt\x001\t2\ttab\tname\0 bin.dat | Bin\n 3 files changed\n";
        let (files, ins, del, stat) = parse_numstat_z_then_stat(out).unwrap();
        assert_eq!(files, vec!["bin.dat", "g \u{e9}.txt", "tab\tname"]);
        assert_eq!((ins, del), (1, 2));
        assert_eq!(stat, " bin.dat | Bin\n 3 files changed\n");
        assert_eq!(parse_numstat_z_then_stat("").unwrap().0.len(), 0);
        assert!(parse_numstat_z_then_stat("garbage").is_none());
    }
}
