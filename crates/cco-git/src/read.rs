//! Read-only views of a run's clone (`<workspace>/repo`) for reports and the dashboard: what a
//! task ref adds over its target, as a file list and a patch.
//!
//! A [`RepoReader`] moves nothing and writes nothing (`--no-optional-locks`: not even the
//! index's stat cache), so it runs beside the GitActor, outside its lanes: a person looking at
//! a diff never delays a merge, and a finished run's repository can be read when no GitActor
//! exists. Its commands are built by the crate's one command builder (`git.rs`), with its
//! hardening (`harden.rs`: no hooks, no agent-writable global or system config, agent-named
//! drivers neutralised), plus what a read for people needs: no external diff program, no
//! textconv, no signature checks, no colour.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{GitConfig, GitError, GitRepo};

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

/// Read-only git commands on a run's clone.
#[derive(Debug)]
pub struct RepoReader {
    repo: GitRepo,
}

/// Global options of every read, on top of the builder's hardening.
const READ_ONLY: &[&str] = &[
    "--no-optional-locks",
    "--literal-pathspecs",
    "-c",
    "diff.external=",
    "-c",
    "log.showSignature=false",
    "-c",
    "color.ui=false",
];

/// The most patch text read for one [`RepoReader::patch`] (a line budget does not bound it:
/// one line of a minified file can be megabytes).
pub const MAX_PATCH_BYTES: u64 = 16 * 1024 * 1024;

/// The most files whose patch is shown (their names go on git's command line).
const MAX_SHOWN_FILES: usize = 500;

/// Options of every diff: no program runs, no colour, renames found.
const DIFF: &[&str] = &["--no-ext-diff", "--no-textconv", "--no-color", "-M"];

impl RepoReader {
    /// The clone of the run whose workspace is `workspace` (`<workspace>/repo`).
    pub fn for_workspace(workspace: &Path) -> Result<RepoReader, GitError> {
        let repo = GitRepo::new(GitConfig::new(workspace, String::new()))?;
        Ok(RepoReader { repo })
    }

    pub fn repo_dir(&self) -> &Path {
        self.repo.repo_dir()
    }

    /// Whether a repository is there (a finished run's workspace may have been removed).
    pub fn exists(&self) -> bool {
        let dir = self.repo_dir();
        dir.join("HEAD").is_file() || dir.join(".git").exists()
    }

    async fn git(&self, op: &str, args: &[&str]) -> Result<String, GitError> {
        self.repo
            .git(op, self.repo.repo_dir())
            .pre(READ_ONLY)
            .args(args)
            .envs(&[("GIT_OPTIONAL_LOCKS", "0")])
            .run()
            .await
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
        let out = self
            .repo
            .git("rev-parse", self.repo.repo_dir())
            .pre(READ_ONLY)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ])
            .output()
            .await?;
        match out.code {
            Some(0) => Ok(Some(out.stdout.trim().to_string()).filter(|s| !s.is_empty())),
            Some(1) => Ok(None),
            _ => Err(out.error()),
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
        let mut numstat = vec!["diff", "--numstat", "-z"];
        numstat.extend(DIFF);
        numstat.push(&three);
        let files = parse_numstat(&self.git("diff", &numstat).await?);
        let mut budget = max_lines;
        let mut shown = Vec::new();
        let mut omitted = Vec::new();
        for file in &files {
            let lines = file.added.unwrap_or(0) + file.deleted.unwrap_or(0);
            if lines <= budget && shown.len() < MAX_SHOWN_FILES {
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
            args.extend(DIFF);
            args.extend([three.as_str(), "--"]);
            args.extend(shown.iter().copied());
            let read = self
                .repo
                .git("diff", self.repo.repo_dir())
                .pre(READ_ONLY)
                .args(&args)
                .envs(&[("GIT_OPTIONAL_LOCKS", "0")])
                .max_stdout(MAX_PATCH_BYTES)
                .run()
                .await;
            match read {
                Ok(text) => text,
                // Too long to show: the files are listed, their patch is not.
                Err(GitError::OutputTooLarge { .. }) => {
                    omitted = files.iter().map(|f| f.path.clone()).collect();
                    String::new()
                }
                Err(e) => return Err(e),
            }
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
pub(crate) fn parse_numstat(out: &str) -> Vec<FileChange> {
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
