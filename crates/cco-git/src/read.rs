//! Read-only views of a run's clone (`<workspace>/repo`) for reports and the dashboard: what a
//! task ref adds over its target, as a file list and a patch.
//!
//! A [`RepoReader`] moves nothing and writes nothing (`--no-optional-locks`: not even the
//! index's stat cache), so it runs beside the GitActor, outside its queue: a person looking at
//! a diff never delays a merge, and a finished run's repository can be read when no GitActor
//! exists. It uses the crate's process runner (own process group, timeout) and runs nothing
//! the repository's configuration could name — agents can write that configuration from their
//! worktrees: no hooks (`core.hooksPath=/dev/null`), no fsmonitor, no external diff drivers or
//! textconv filters, no signature checks (which would run `gpg.program`), no pager, no colour.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cmd::{self, Spec};
use crate::GitError;

/// One file a patch changes: lines added and deleted (`None` for a binary file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub added: Option<u64>,
    pub deleted: Option<u64>,
}

/// What `head` adds since it forked from `base` (`git diff base...head`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// The commits `base..head`, `(sha, subject)`, newest first.
    pub commits: Vec<(String, String)>,
    /// Every file changed, in git's order.
    pub files: Vec<FileChange>,
    /// The unified diff of the files that fit in the budget (in the order of `files`).
    pub text: String,
    /// Files left out of `text` because the patch would have been longer than the budget.
    pub omitted: Vec<String>,
}

/// Read-only git commands on one repository.
#[derive(Debug, Clone)]
pub struct RepoReader {
    repo_dir: PathBuf,
    timeout: Duration,
}

/// Options that keep git from running anything the repository's configuration names.
const HARDENED: &[&str] = &[
    "--no-pager",
    "--no-optional-locks",
    "--literal-pathspecs",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "diff.external=",
    "-c",
    "log.showSignature=false",
    "-c",
    "color.ui=false",
];

impl RepoReader {
    /// The clone of the run whose workspace is `workspace` (`<workspace>/repo`).
    pub fn for_workspace(workspace: &Path) -> RepoReader {
        RepoReader::new(workspace.join("repo"))
    }

    /// The repository at `repo_dir`.
    pub fn new(repo_dir: impl Into<PathBuf>) -> RepoReader {
        RepoReader {
            repo_dir: repo_dir.into(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn repo_dir(&self) -> &Path {
        &self.repo_dir
    }

    /// Whether a repository is there (a finished run's workspace may have been removed).
    pub fn exists(&self) -> bool {
        self.repo_dir.join("HEAD").is_file() || self.repo_dir.join(".git").exists()
    }

    async fn git(&self, op: &str, args: &[&str]) -> Result<String, GitError> {
        let args: Vec<String> = HARDENED.iter().chain(args).map(|s| s.to_string()).collect();
        let out = cmd::run(Spec {
            op,
            program: "git",
            args: args.clone(),
            dir: &self.repo_dir,
            envs: vec![("GIT_OPTIONAL_LOCKS".into(), "0".into())],
            timeout: self.timeout,
            stdin: None,
        })
        .await?;
        Ok(cmd::check(op, &args, &self.repo_dir, out)?.stdout)
    }

    /// The commit `rev` names (`None` when it names none). `rev` is a ref or an expression
    /// such as `<sha>^1`; never an option.
    pub async fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        if rev.is_empty() || rev.starts_with('-') {
            return Err(GitError::invalid(
                "resolve",
                format!("bad revision {rev:?}"),
            ));
        }
        let spec = format!("{rev}^{{commit}}");
        match self
            .git(
                "rev-parse",
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    &spec,
                ],
            )
            .await
        {
            Ok(sha) => Ok(Some(sha.trim().to_string()).filter(|s| !s.is_empty())),
            Err(GitError::Command { code: Some(1), .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// What `head` adds since it forked from `base`: its commits, every file it changes, and
    /// the patch of as many files (in order) as fit in `max_lines` changed lines. Both
    /// revisions must resolve ([`GitError::NotFound`] otherwise).
    pub async fn patch(&self, base: &str, head: &str, max_lines: u64) -> Result<Patch, GitError> {
        let mut shas = Vec::new();
        for rev in [base, head] {
            match self.resolve(rev).await? {
                Some(sha) => shas.push(sha),
                None => return Err(GitError::NotFound { what: rev.into() }),
            }
        }
        let (b, h) = (&shas[0], &shas[1]);
        let range = format!("{b}..{h}");
        let log = self
            .git(
                "log",
                &["log", "--no-show-signature", "--format=%H%x1f%s", &range],
            )
            .await?;
        let commits = log
            .lines()
            .filter_map(|l| l.split_once('\x1f'))
            .map(|(sha, subject)| (sha.to_string(), subject.to_string()))
            .collect();
        let three = format!("{b}...{h}");
        let diff_args = ["--no-ext-diff", "--no-textconv", "--no-color", "-M"];
        let mut numstat = vec!["diff", "--numstat", "-z"];
        numstat.extend(diff_args);
        numstat.push(&three);
        let files = parse_numstat(&self.git("diff", &numstat).await?);
        let mut budget = max_lines;
        let mut shown = Vec::new();
        let mut omitted = Vec::new();
        for file in &files {
            let lines = file.added.unwrap_or(0) + file.deleted.unwrap_or(0);
            if lines <= budget {
                budget -= lines;
                shown.push(file.path.as_str());
            } else {
                omitted.push(file.path.clone());
            }
        }
        let text = if shown.is_empty() {
            String::new()
        } else {
            let mut args = vec!["diff"];
            args.extend(diff_args);
            args.extend([three.as_str(), "--"]);
            args.extend(shown);
            self.git("diff", &args).await?
        };
        Ok(Patch {
            commits,
            files,
            text,
            omitted,
        })
    }
}

/// `git diff --numstat -z` records: `<added>\t<deleted>\t<path>\0`, or for a rename
/// `<added>\t<deleted>\t\0<old>\0<new>\0`; a binary file counts `-`.
fn parse_numstat(out: &str) -> Vec<FileChange> {
    let mut files = Vec::new();
    let mut rest = out;
    while let Some((added, r)) = rest.split_once('\t') {
        let Some((deleted, r)) = r.split_once('\t') else {
            break;
        };
        let Some((path, r)) = r.split_once('\0') else {
            break;
        };
        let (path, r) = if path.is_empty() {
            let Some((_old, r)) = r.split_once('\0') else {
                break;
            };
            match r.split_once('\0') {
                Some((new, r)) => (new, r),
                None => break,
            }
        } else {
            (path, r)
        };
        files.push(FileChange {
            path: path.to_string(),
            added: added.parse().ok(),
            deleted: deleted.parse().ok(),
        });
        rest = r;
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_records_with_renames_and_binaries_parse() {
        let out = "3\t1\ta.txt\0-\t-\timg.png\0\x30\t0\t\0old.txt\0new.txt\0";
        let files = parse_numstat(out);
        assert_eq!(
            files,
            vec![
                FileChange {
                    path: "a.txt".into(),
                    added: Some(3),
                    deleted: Some(1)
                },
                FileChange {
                    path: "img.png".into(),
                    added: None,
                    deleted: None
                },
                FileChange {
                    path: "new.txt".into(),
                    added: Some(0),
                    deleted: Some(0)
                },
            ]
        );
        assert!(parse_numstat("").is_empty());
        assert!(parse_numstat("garbage").is_empty());
    }
}
