//! Summaries (commits, files, counts, stat) and logs for reviews and reports.

use super::*;
use crate::names::*;
use crate::GitError;

/// Splits `git diff --numstat -z --stat` output into (files, insertions, deletions, stat).
/// A numstat record is `<added>\t<deleted>\t<path>\0`, or for a rename/copy
/// `<added>\t<deleted>\t\0<old>\0<new>\0` (the file is `<new>`, as `--name-only` lists it);
/// binary files count `-`. The stat text follows the last record.
fn parse_numstat_z_then_stat(out: &str) -> Option<(Vec<String>, u64, u64, String)> {
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
            (Some(b), Some(h)) => log_of(format!("{b}..{h}")).await?.map(|log| (b, h, log)),
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
