//! Integrity gates: shared branches (base and team) only move onto checked commits.
//!
//! - Expected tips: the commit cco last wrote to each shared branch. Before every merge and
//!   push the branch must still hold it; a branch moved behind cco's back has its foreign
//!   commits kept in `refs/cco/foreign/<branch>/<time>`, is put back, and the op fails with
//!   [`GitError::BranchMoved`]. The tips are exposed for the journal
//!   ([`GitRepo::expected_tips`], [`GitRepo::restore_expected_tips`]).
//! - Content checks ([`GitRepo::check_commits`]): what a range of agents' commits adds must
//!   hold no secret file, no path inside a `.git` directory, no symlink leaving the repository, no submodule
//!   pointing to a local path, no complete conflict-marker block, and no secret (known values
//!   and key shapes, in added lines and commit messages). Run at capture and before every
//!   merge of commits not already checked.
//! - Stale `*.lock` files in cco's repositories ([`GitRepo::remove_stale_locks`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::checks;
use crate::error::{Refusal, SecretFinding};
use crate::sanitize::is_secret_path;
use crate::GitError;

/// At most this many secret findings are reported (the rest are the same mistake).
const MAX_FINDINGS: usize = 20;

/// One entry of `git diff --raw` (no renames): modes, new blob, status, path.
#[derive(Debug)]
pub(super) struct RawEntry {
    pub(super) new_mode: String,
    pub(super) new_sha: String,
    pub(super) status: char,
    pub(super) path: String,
}

pub(super) fn parse_raw(out: &str) -> Vec<RawEntry> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(':')?;
            let (meta, path) = rest.split_once('\t')?;
            let f: Vec<&str> = meta.split(' ').collect();
            if f.len() < 5 {
                return None;
            }
            Some(RawEntry {
                new_mode: f[1].to_string(),
                new_sha: f[3].to_string(),
                status: f[4].chars().next()?,
                path: checks::unquote(path),
            })
        })
        .collect()
}

impl GitRepo {
    /// The commit cco last wrote to each shared branch (base, run and team branches).
    pub fn expected_tips(&self) -> BTreeMap<String, String> {
        self.tips.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Restores the expected tips a journal kept (call before the first merge of a resumed
    /// run; setup adopts only branches not known here).
    pub fn restore_expected_tips(&self, tips: BTreeMap<String, String>) {
        if let Ok(mut t) = self.tips.lock() {
            t.extend(tips);
        }
    }

    /// A resumed run: cco's own merges into shared branch `branch` that landed after the
    /// journal last recorded its tip (cco died between the move and the journal write) are
    /// adopted, so they are not taken for foreign commits. Adopted only when every commit
    /// between the expected tip and the branch is, on the first-parent chain, a merge whose
    /// second parent is one of `sources` (the task refs of the journal's unfinished tasks,
    /// the team or base branches it merges): exactly what cco was doing. Anything else is
    /// left for the guard of the next merge. Returns whether the branch was adopted.
    pub async fn adopt_unrecorded_merges(
        &self,
        branch: &str,
        sources: &[String],
    ) -> Result<bool, GitError> {
        let Some(expected) = self.expected_tip(branch) else {
            return Ok(false);
        };
        let repo = &self.repo_dir;
        let Some(actual) = self.resolve(repo, &format!("refs/heads/{branch}")).await? else {
            return Ok(false);
        };
        if actual == expected {
            return Ok(false);
        }
        let range = format!("{expected}..{actual}");
        let chain = self
            .git("rev-list", repo)
            .args(["rev-list", "--first-parent", "--parents", &range])
            .run()
            .await?;
        let mut wanted = std::collections::HashSet::new();
        for source in sources {
            if let Some(id) = self.resolve(repo, source).await? {
                wanted.insert(id);
            }
        }
        // Newest first: each commit's first parent is the next line's commit, the last one's
        // is the expected tip.
        let lines: Vec<Vec<&str>> = chain.lines().map(|l| l.split(' ').collect()).collect();
        let ours = !lines.is_empty()
            && lines.iter().enumerate().all(|(i, ids)| {
                let first_parent = lines.get(i + 1).map_or(expected.as_str(), |n| n[0]);
                ids.len() == 3 && ids[1] == first_parent && wanted.contains(ids[2])
            });
        if ours {
            tracing::info!(%branch, %expected, %actual, "adopted cco's own merges the journal had not recorded");
            self.expect(branch, &actual);
        }
        Ok(ours)
    }

    /// Records that cco wrote `sha` to shared branch `branch`.
    pub(super) fn expect(&self, branch: &str, sha: &str) {
        if let Ok(mut t) = self.tips.lock() {
            t.insert(branch.to_string(), sha.to_string());
        }
    }

    /// Adopts the current tip of a shared branch cco has no record of (a resumed run whose
    /// journal kept none).
    pub(super) fn adopt(&self, branch: &str, sha: &str) {
        if let Ok(mut t) = self.tips.lock() {
            t.entry(branch.to_string()).or_insert_with(|| {
                tracing::info!(%branch, %sha, "shared branch adopted at its current tip");
                sha.to_string()
            });
        }
    }

    /// Commits of `head` not in the target were checked at capture (and `head` has not
    /// changed since: commit ids name their whole history).
    pub(super) fn is_vetted(&self, head: &str) -> bool {
        self.vetted.lock().is_ok_and(|v| v.contains(head))
    }

    pub(super) fn vet(&self, head: &str) {
        if let Ok(mut v) = self.vetted.lock() {
            v.insert(head.to_string());
        }
    }

    pub(super) fn is_shared(&self, branch: &str) -> bool {
        self.tips.lock().is_ok_and(|t| t.contains_key(branch))
    }

    /// Fails when shared branch `branch` (now at `actual`) no longer holds the commit cco last
    /// wrote: its foreign commits are kept in a snapshot ref and the branch is put back.
    pub(super) async fn guard_shared(&self, branch: &str, actual: &str) -> Result<(), GitError> {
        let Some(expected) = self.tips.lock().ok().and_then(|t| t.get(branch).cloned()) else {
            return Ok(());
        };
        if expected == actual {
            return Ok(());
        }
        let repo = &self.repo_dir;
        let foreign = self
            .git("rev-list", repo)
            .args(["rev-list", "-n20", actual, "--not", &expected])
            .output()
            .await?;
        let commits: Vec<String> = foreign.stdout.lines().map(str::to_string).collect();
        let kept = format!(
            "refs/cco/foreign/{}/{}",
            crate::sanitize::slugify(branch),
            timestamp()
        );
        let kept_in = self
            .git("update-ref", repo)
            .args(["update-ref", &kept, actual])
            .output()
            .await?
            .success()
            .then_some(kept);
        let full = format!("refs/heads/{branch}");
        let restored = self
            .git("update-ref", repo)
            .args([
                "update-ref",
                "-m",
                "cco: restore a branch moved behind cco's back",
                &full,
                &expected,
                actual,
            ])
            .output()
            .await?
            .success();
        tracing::error!(%branch, %expected, found = %actual, ?commits, ?kept_in, restored, "shared branch moved behind cco's back");
        Err(GitError::BranchMoved {
            branch: branch.to_string(),
            expected,
            found: actual.to_string(),
            commits,
            kept_in,
            restored,
        })
    }

    /// Checks what the commits of `head` not in `base` add (see the module docs). `Ok` when
    /// nothing is wrong; [`GitError::Refused`] naming where (never a secret value).
    /// A patch over [`GitConfig::max_check_bytes`](crate::GitConfig) is the agent's to fix:
    /// a refusal, not a git failure.
    fn too_large_to_check(&self, error: GitError) -> GitError {
        match error {
            GitError::OutputTooLarge { limit, .. } => {
                GitError::Refused(crate::Refusal::TooLarge { limit })
            }
            other => other,
        }
    }

    pub async fn check_commits(&self, base: &str, head: &str) -> Result<(), GitError> {
        let repo = &self.repo_dir;
        let range = format!("{base}..{head}");
        let marks = checks::LogMarks::new();
        // Every commit's own additions, message, paths and modes (history reaches the
        // branch, not only the final tree). `--text`: a binary file's bytes are scanned too
        // (as lines), so a key in a binary file is found as in any other.
        let log = self
            .git("log", repo)
            .args([
                "log",
                "--raw",
                "--no-abbrev",
                "-p",
                "--text",
                "-U0",
                "--cc",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--no-renames",
                "--submodule=short",
                &marks.format(),
                "--end-of-options",
                &range,
            ])
            .max_stdout(self.cfg.max_check_bytes)
            .run()
            .await
            .map_err(|e| self.too_large_to_check(e))?;
        let (added, messages) = checks::parse_patch(&log, &marks);
        // Every commit's paths, modes and blobs (its raw lines: the log without messages).
        let history = parse_raw(&checks::without_messages(&log, &marks));
        let names: Vec<&str> = history
            .iter()
            .filter(|e| e.status != 'D')
            .map(|e| e.path.as_str())
            .collect();
        self.check_secrets(&added, &messages, &names, head)?;
        // The change as a whole (from the merge base): paths, modes and blobs, and the
        // conflict-marker blocks it adds. One ordinary commit on the merge base (the usual
        // task) is its own whole change.
        let single = messages.len() == 1 && messages[0].parents == 1;
        let (entries, whole_added) = if single {
            (history, added)
        } else {
            let three = format!("{base}...{head}");
            let whole = self
                .git("diff", repo)
                .args([
                    "diff",
                    "--raw",
                    "--no-abbrev",
                    "-p",
                    "-U0",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "--no-renames",
                    "--submodule=short",
                    "--end-of-options",
                    &three,
                ])
                .max_stdout(self.cfg.max_check_bytes)
                .run()
                .await
                .map_err(|e| self.too_large_to_check(e))?;
            (parse_raw(&whole), checks::parse_diff(&whole))
        };
        let mut symlinks = Vec::new();
        let mut submodules = false;
        for e in entries.iter().filter(|e| e.status != 'D') {
            if e.status == 'A' && is_secret_path(&e.path, &self.env_rel) {
                return Err(GitError::SecretFile {
                    op: "merge".into(),
                    branch: head.to_string(),
                    path: e.path.clone(),
                });
            }
            if checks::git_path_problem(&e.path).is_some() {
                return Err(GitError::Refused(Refusal::GitPath {
                    commit: head.to_string(),
                    path: e.path.clone(),
                }));
            }
            match e.new_mode.as_str() {
                "120000" => symlinks.push((e.path.clone(), e.new_sha.clone())),
                "160000" => submodules = true,
                _ => {}
            }
            if e.path == ".gitmodules" || e.path.ends_with("/.gitmodules") {
                submodules = true;
            }
        }
        if !symlinks.is_empty() {
            self.check_symlinks(head, &symlinks).await?;
        }
        if submodules {
            self.check_submodules(head).await?;
        }
        let blocks = checks::marker_blocks(&whole_added);
        if !blocks.is_empty() {
            return Err(GitError::Refused(Refusal::ConflictMarkers { at: blocks }));
        }
        Ok(())
    }

    /// Secret values and key shapes in added lines and commit messages.
    /// Secrets in what the commits up to `head` add: their lines, messages, authors and
    /// committers, and the names of the files they add or change (`names`).
    fn check_secrets(
        &self,
        added: &[checks::AddedLine],
        messages: &[checks::Message],
        names: &[&str],
        head: &str,
    ) -> Result<(), GitError> {
        let known = self.config().secrets.values();
        let mut findings = Vec::new();
        let mut found = |text: &str, commit: &str, place: &str| {
            if let Some(what) = crate::secrets::find(text, known) {
                findings.push(SecretFinding {
                    commit: commit.to_string(),
                    at: None,
                    what: format!("{what} in {place}"),
                });
            }
        };
        for m in messages {
            found(&m.text, &m.commit, "the message");
            found(&m.ident, &m.commit, "the author or committer");
        }
        for path in names {
            found(path, head, "a file name");
        }
        for a in added {
            if findings.len() >= MAX_FINDINGS {
                break;
            }
            if let Some(what) = crate::secrets::find(&a.text, known) {
                findings.push(SecretFinding {
                    commit: a.commit.clone(),
                    at: Some(FileLine::new(&a.path, a.line)),
                    what: what.to_string(),
                });
            }
        }
        if findings.is_empty() {
            return Ok(());
        }
        findings.truncate(MAX_FINDINGS);
        Err(GitError::Refused(Refusal::Secret { findings }))
    }

    /// The symlinks the change adds or alters (`changed`: path and blob) must stay inside the
    /// repository, and so must every symlink of `head`'s tree that reaches outside through
    /// one of them once the tree's links are followed (a new `l -> .` turns an old `m -> l/..`
    /// into a link to the parent directory). Two git processes, only for a change that
    /// touches symlinks.
    async fn check_symlinks(
        &self,
        head: &str,
        changed: &[(String, String)],
    ) -> Result<(), GitError> {
        let listing = self
            .git("ls-tree", &self.repo_dir)
            .args([
                "ls-tree",
                "-r",
                "-z",
                "--full-tree",
                "--end-of-options",
                head,
            ])
            .run()
            .await?;
        let mut links: Vec<(String, String)> = listing
            .split('\0')
            .filter_map(|entry| {
                let (meta, path) = entry.split_once('\t')?;
                let mut meta = meta.split(' ');
                (meta.next()? == "120000").then_some(())?;
                let sha = meta.nth(1)?;
                Some((path.to_string(), sha.to_string()))
            })
            .collect();
        // A changed link is in the tree; when git's listing and the change disagree, both count.
        for link in changed {
            if !links.iter().any(|(p, _)| p == &link.0) {
                links.push(link.clone());
            }
        }
        let mut input = String::new();
        for (_, sha) in &links {
            input.push_str(sha);
            input.push('\n');
        }
        let out = self
            .git("cat-file", &self.repo_dir)
            .args(["cat-file", "--batch"])
            .stdin(input.as_bytes())
            .run()
            .await?;
        // "<sha> blob <size>\n<content>\n" per link.
        let mut targets = std::collections::HashMap::new();
        let mut rest = out.as_str();
        for (path, _) in &links {
            let Some((header, body)) = rest.split_once('\n') else {
                break;
            };
            let size: usize = header
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            targets.insert(path.clone(), body.get(..size).unwrap_or(body).to_string());
            rest = body.get(size + 1..).unwrap_or("");
        }
        let refuse = |path: &str, reason: &str| {
            Err(GitError::Refused(Refusal::Symlink {
                path: path.to_string(),
                reason: reason.to_string(),
            }))
        };
        for (path, _) in changed {
            let target = targets.get(path).map(String::as_str).unwrap_or_default();
            if let Some(reason) = checks::symlink_problem(path, target) {
                return refuse(path, reason);
            }
        }
        // Links of the project that led outside before the change stay its own business;
        // one the change adds, or alters, on the way out is refused.
        let mut paths: Vec<&String> = targets.keys().collect();
        paths.sort();
        for path in paths {
            if let Some(escape) = checks::symlink_escape(path, &targets) {
                if escape
                    .through
                    .iter()
                    .any(|p| changed.iter().any(|(c, _)| c == p))
                {
                    return refuse(path, escape.reason);
                }
            }
        }
        Ok(())
    }

    async fn check_submodules(&self, head: &str) -> Result<(), GitError> {
        let blob = format!("{head}:.gitmodules");
        let out = self
            .git("config", &self.repo_dir)
            .args(["config", "-z", "--blob", &blob, "--list"])
            .output()
            .await?;
        if !out.success() {
            return Ok(());
        }
        let local_remote = checks::source_is_local(&self.config().source);
        for item in nul_list(&out.stdout) {
            let (key, value) = item.split_once('\n').unwrap_or((item.as_str(), ""));
            if key.starts_with("submodule.")
                && key.ends_with(".url")
                && (checks::local_submodule_url(value)
                    || (local_remote && checks::relative_submodule_url(value)))
            {
                let name = &key["submodule.".len()..key.len() - ".url".len()];
                return Err(GitError::Refused(Refusal::LocalSubmodule {
                    path: name.to_string(),
                }));
            }
        }
        Ok(())
    }

    /// Removes every `*.lock` file in cco's repositories (the clone, its integration
    /// worktrees and the agents' repositories), logging each. Call only while holding the
    /// run's lock with no agent running: then every such lock is stale.
    pub fn remove_stale_locks(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.repo_dir.join(".git")];
        if let Ok(entries) = std::fs::read_dir(self.config().workspace.join("worktrees")) {
            dirs.extend(entries.flatten().map(|e| e.path().join(".git")));
        }
        let mut removed = Vec::new();
        for d in dirs {
            if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                remove_locks_in(&d, &mut removed);
            }
        }
        removed
    }
}

fn remove_locks_in(dir: &Path, removed: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else {
            continue;
        };
        if ft.is_dir() {
            if e.file_name() != "objects" {
                remove_locks_in(&p, removed);
            }
        } else if p.extension().is_some_and(|x| x == "lock") {
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    tracing::warn!(lock = %p.display(), "removed stale git lock");
                    removed.push(p);
                }
                Err(error) => {
                    tracing::warn!(lock = %p.display(), %error, "could not remove stale git lock")
                }
            }
        }
    }
}
