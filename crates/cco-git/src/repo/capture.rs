//! Committing what an agent left uncommitted (secret files never), freezing a finished turn
//! in its task ref, and snapshots of a checkout's full state.

use std::path::Path;

use super::*;
use crate::sanitize::{is_secret_path, single_component};
use crate::GitError;

impl GitRepo {
    /// `git add -A` into the current index of `dir` (or `index` if given), then unstages every
    /// secret file the add (or an agent's `git add -f`) staged.
    pub(super) async fn stage_all(
        &self,
        agent: &AgentRepo,
        index: Option<&str>,
    ) -> Result<Vec<String>, GitError> {
        let envs: Vec<(&str, &str)> = index
            .map(|i| vec![("GIT_INDEX_FILE", i)])
            .unwrap_or_default();
        self.agent_git("add", agent)
            .args(["add", "-A"])
            .envs(&envs)
            .run()
            .await?;
        let added = self
            .agent_git("diff", agent)
            .args([
                "diff",
                "--cached",
                "--name-only",
                "--no-renames",
                "--diff-filter=A",
                "-z",
                "HEAD",
            ])
            .envs(&envs)
            .run()
            .await?;
        let secrets: Vec<String> = nul_list(&added)
            .into_iter()
            .filter(|p| is_secret_path(p, &self.env_rel))
            .collect();
        if !secrets.is_empty() {
            tracing::warn!(dir = %agent.path.display(), files = ?secrets, "unstaging secret files");
            let mut args = vec!["rm", "--cached", "-q", "--ignore-unmatch", "--"];
            args.extend(secrets.iter().map(String::as_str));
            self.agent_git("rm", agent)
                .args(&args)
                .envs(&envs)
                .run()
                .await?;
        }
        Ok(secrets)
    }

    /// Commits everything the agent left uncommitted (secret files excluded). `None` when
    /// there was nothing to commit. cco's clone keeps a copy of the agent's branch (fetched)
    /// so the commit outlives the agent's repository.
    pub async fn commit_all(
        &self,
        worktree: &Path,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let agent = self.our_agent(worktree)?;
        let committed = self.commit_agent(&agent, message).await?.0;
        if let (Some(commit), Some(branch)) = (&committed, &agent.branch) {
            self.fetch_from_agent(&agent, commit, Some(&format!("refs/heads/{branch}")))
                .await?;
        }
        Ok(committed)
    }

    /// [`GitRepo::commit_all`] in a checked agent repository, without the copy; also says
    /// whether it was dirty (anything staged, changed or untracked, or a merge in progress).
    pub(super) async fn commit_agent(
        &self,
        agent: &AgentRepo,
        message: &str,
    ) -> Result<(Option<String>, bool), GitError> {
        let (committed, dirty, _) = self.commit_agent_leaving(agent, message).await?;
        Ok((committed, dirty))
    }

    /// [`GitRepo::commit_agent`]; also says whether untracked files are left behind (secret
    /// files it did not commit).
    async fn commit_agent_leaving(
        &self,
        agent: &AgentRepo,
        message: &str,
    ) -> Result<(Option<String>, bool, bool), GitError> {
        // One `status` (every untracked file listed) tells whether there is anything to
        // commit, whether conflicts are unresolved and which secret files `add -A` would
        // stage; then `add -A`, unstaging those, and `commit`.
        let status = self
            .agent_git("status", agent)
            .args([
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignore-submodules=none",
            ])
            .run()
            .await?;
        let merging = agent.git_dir.join("MERGE_HEAD").exists();
        let entries = parse_status(&status);
        if entries.is_empty() && !merging {
            return Ok((None, false, false));
        }
        // `add -A` would mark conflicted files resolved, markers and all.
        let unmerged: Vec<String> = entries
            .iter()
            .filter(|e| e.unmerged())
            .map(|e| e.path.clone())
            .collect();
        if !unmerged.is_empty() {
            return Err(GitError::UnresolvedConflicts {
                path: agent.path.clone(),
                files: unmerged,
            });
        }
        let (secrets, work): (Vec<&StatusEntry>, Vec<&StatusEntry>) = entries
            .iter()
            .partition(|e| e.adds() && is_secret_path(&e.path, &self.env_rel));
        self.agent_git("add", agent)
            .args(["add", "-A"])
            .run()
            .await?;
        if !secrets.is_empty() {
            let paths: Vec<&str> = secrets.iter().map(|e| e.path.as_str()).collect();
            tracing::warn!(dir = %agent.path.display(), files = ?paths, "unstaging secret files");
            let mut args = vec!["rm", "--cached", "-q", "--ignore-unmatch", "--"];
            args.extend(paths);
            self.agent_git("rm", agent).args(&args).run().await?;
        }
        let left = !secrets.is_empty();
        if work.is_empty() && !merging {
            return Ok((None, true, left));
        }
        let msg = if message.trim().is_empty() {
            "cco: commit work"
        } else {
            message
        };
        let out = self
            .agent_git("commit", agent)
            .args(["commit", "-q", "--no-verify", "-m", msg])
            .output()
            .await?;
        if !out.success() {
            // Changes `add` does not stage (a submodule's own work tree): nothing to commit.
            if out.stdout.contains("nothing to commit") || out.stdout.contains("nothing added") {
                return Ok((None, true, true));
            }
            return Err(out.error());
        }
        let head = match read_head(&agent.git_dir) {
            Some(head) => head,
            None => self.resolve_required(agent, "HEAD").await?,
        };
        Ok((Some(head), true, left))
    }

    /// Freezes a worker's finished turn and frees its repository for the next task, in one
    /// op: commits what the agent left uncommitted (as [`GitRepo::commit_all`]), fetches the
    /// agent's HEAD into `task_ref` ([`GitRepo::fetch_task_result`]), then resets the agent's
    /// repository to the tip of `target` ("parks" it). The work stays reachable from
    /// `task_ref` for review and merge.
    ///
    /// A repository whose HEAD is already in `target` (nothing done, or already parked: a
    /// capture repeated after a restart) leaves `task_ref` as it was. Unresolved conflicts are
    /// an error and leave the repository untouched (use [`GitRepo::sync_worktree`], which
    /// snapshots).
    pub async fn capture_task(
        &self,
        worktree: &Path,
        message: &str,
        task_ref: &str,
        target: &str,
    ) -> Result<CaptureOutcome, GitError> {
        check_task_ref(task_ref)?;
        let agent = self.our_agent(worktree)?;
        let before = read_head(&agent.git_dir);
        let (committed, _, leftovers) = self.commit_agent_leaving(&agent, message).await?;
        let tip = self.resolve_branchish(target).await?;
        // HEAD when it holds commits the target does not (in topological order the first
        // commit of `HEAD ^tip` is HEAD itself), nothing when the target contains it. When
        // cco's commit is the only one on the parked tip, that is its commit.
        let new_head = match (&committed, &before) {
            (Some(commit), Some(before)) if *before == tip => Some(commit.clone()),
            _ => {
                let not_in_target = self
                    .agent_git("rev-list", &agent)
                    .args(["rev-list", "--topo-order", "-n1", "HEAD", "--not", &tip])
                    .run()
                    .await?;
                Some(not_in_target.trim().to_string()).filter(|h| !h.is_empty())
            }
        };
        let new_work = new_head.is_some();
        let task_commit = match new_head {
            Some(head) => {
                // Copied without a ref, checked, then frozen: refused work never gets a
                // ref in cco's clone, and the agent's repository keeps it for a revision.
                // A commit cco's clone holds already (a turn that ran on another host came
                // back into it, checked, before its local repository was put at it) needs
                // no copy: objects enter cco's clone only checked and complete.
                if !self.has_loose_object(&head) {
                    self.copy_from_agent(&agent, &head, &tip).await?;
                }
                self.check_commits(&tip, &head).await?;
                self.vet(&head);
                self.git("update-ref", &self.repo_dir)
                    .args(["update-ref", "-m", "cco: capture task", task_ref, &head])
                    .run()
                    .await?;
                Some(head)
            }
            None => self.resolve(&self.repo_dir, task_ref).await?,
        };
        // Everything not in `target` is now in `task_ref` (or was already in `target`).
        self.agent_git("reset", &agent)
            .args(["reset", "-q", "--hard", &tip])
            .run()
            .await?;
        if leftovers {
            // Untracked files that were not committed (secret files): nothing else is left.
            self.agent_git("clean", &agent)
                .args(["clean", "-fdq"])
                .run()
                .await?;
        }
        Ok(CaptureOutcome {
            committed,
            task_commit,
            moved: new_work,
        })
    }

    /// The one way an agent's work reaches cco's clone: fetches `commit` (and the objects it
    /// needs that cco lacks) from the agent repository at `worktree` and points `task_ref`
    /// at it. cco's clone runs the fetch; what runs in the agent's repository is a pinned
    /// `upload-pack` that runs no hook and reads no agent-named driver, and every object
    /// received is checked (`fsck`) before the ref moves. A remote host's repository will be
    /// fetched through the same seam.
    pub async fn fetch_task_result(
        &self,
        worktree: &Path,
        commit: &str,
        task_ref: &str,
    ) -> Result<(), GitError> {
        check_task_ref(task_ref)?;
        let agent = self.our_agent(worktree)?;
        self.fetch_from_agent(&agent, commit, Some(task_ref)).await
    }

    /// `git fetch <agent> +<commit>:<into>` run by cco's clone (see
    /// [`GitRepo::fetch_task_result`]); without `into`, only the objects.
    pub(super) async fn fetch_from_agent(
        &self,
        agent: &AgentRepo,
        commit: &str,
        into: Option<&str>,
    ) -> Result<(), GitError> {
        check_object_id("fetch_task_result", commit)?;
        let upload_pack = crate::harden::upload_pack_command(
            &self.config().git_program.to_string_lossy(),
            self.hardening(),
        );
        let spec = match into {
            Some(into) => format!("+{commit}:{into}"),
            None => commit.to_string(),
        };
        let from = agent.git_dir.to_string_lossy().into_owned();
        self.checked_fetch(&from, &spec, Some(&upload_pack), commit)
            .await
    }

    /// `git fetch <from> <spec>` run by cco's clone with the hardening of every fetch of
    /// foreign objects: only the local file transport, every object received checked (`fsck`,
    /// a `.git`-like path an error), no tags, no submodules. `from` is an agent repository
    /// (then `upload_pack` is the pinned one to run there) or a bundle file; an `fsck`
    /// failure becomes the [`Refusal`](crate::Refusal) of `commit`.
    pub(super) async fn checked_fetch(
        &self,
        from: &str,
        spec: &str,
        upload_pack: Option<&str>,
        commit: &str,
    ) -> Result<(), GitError> {
        let upload_pack = upload_pack.map(|u| format!("--upload-pack={u}"));
        let mut args = vec![
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
        ];
        args.extend(upload_pack.as_deref());
        args.extend(["--", from, spec]);
        let out = self
            .git("fetch", &self.repo_dir)
            .pre(crate::harden::agent_fetch_overrides())
            .args(args)
            .output()
            .await?;
        fsck_checked(out, commit)
    }

    /// Records the worktree's full state (HEAD + tracked changes + untracked, non-excluded
    /// files) as `refs/cco/snapshots/<worker-id>/<timestamp>`. Without `force`, only when the
    /// worktree is dirty. The real index and working tree are not touched.
    pub async fn snapshot(
        &self,
        worktree: &Path,
        worker_id: &str,
        force: bool,
    ) -> Result<Option<String>, GitError> {
        let agent = self.our_agent(worktree)?;
        let agent = &agent;
        let head = self.resolve_required(agent, "HEAD").await?;
        let index = format!("{}/cco-snapshot.index", agent.git_dir.display());
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_str())];
        let tree = async {
            self.agent_git("read-tree", agent)
                .args(["read-tree", "HEAD"])
                .envs(&env)
                .run()
                .await?;
            self.stage_all(agent, Some(&index)).await?;
            Ok::<_, GitError>(
                self.agent_git("write-tree", agent)
                    .args(["write-tree"])
                    .envs(&env)
                    .run()
                    .await?
                    .trim()
                    .to_string(),
            )
        }
        .await;
        let _ = std::fs::remove_file(&index);
        let tree = tree?;
        let head_tree = self
            .agent_git("rev-parse", agent)
            .args(["rev-parse", "HEAD^{tree}"])
            .run()
            .await?
            .trim()
            .to_string();
        if tree == head_tree && !force {
            return Ok(None);
        }
        let id = single_component(worker_id);
        let ts = timestamp();
        let msg = format!("cco snapshot of {id} at {ts}");
        let commit = self
            .agent_git("commit-tree", agent)
            .args(["commit-tree", &tree, "-p", &head, "-m", &msg])
            .run()
            .await?
            .trim()
            .to_string();
        let mut name = format!("refs/cco/snapshots/{id}/{ts}");
        let mut n = 1;
        while self.resolve(&self.repo_dir, &name).await?.is_some() {
            name = format!("refs/cco/snapshots/{id}/{ts}-{n}");
            n += 1;
        }
        self.fetch_from_agent(agent, &commit, Some(&name)).await?;
        tracing::info!(worktree = %worktree.display(), snapshot = %name, "worktree state snapshotted");
        Ok(Some(name))
    }
}

/// Task refs live under `refs/cco/tasks/` and are valid ref names.
fn check_task_ref(task_ref: &str) -> Result<(), GitError> {
    check_ref_under("capture_task", "refs/cco/tasks/", "a task ref", task_ref)
}

/// The outcome of a git process that received foreign objects with `fsck` checks (a fetch, an
/// unpack): success, the [`Refusal`](crate::Refusal) of `commit` its `fsck` failure stands
/// for, or git's own error.
pub(super) fn fsck_checked(out: crate::cmd::Output, commit: &str) -> Result<(), GitError> {
    if out.success() {
        return Ok(());
    }
    Err(match fsck_refusal(&out.stderr, commit) {
        Some(refusal) => GitError::Refused(refusal),
        None => out.error(),
    })
}

/// The refusal an `fsck` failure of a fetch from an agent stands for (objects git itself
/// calls malformed: a `.git` tree entry, a dangerous `.gitmodules`, ...).
fn fsck_refusal(stderr: &str, commit: &str) -> Option<crate::error::Refusal> {
    use crate::error::Refusal;
    let line = stderr.lines().find(|l| l.starts_with("error: object "))?;
    let rest = line.strip_prefix("error: object ")?;
    let (_, rest) = rest.split_once(": ")?;
    let (id, text) = rest.split_once(": ").unwrap_or((rest, ""));
    Some(match id {
        "hasDotgit" | "hasDotdot" | "fullPathname" => Refusal::GitPath {
            commit: commit.to_string(),
            path: format!("a tree entry git refuses ({id}: {text})"),
        },
        _ => Refusal::Malformed {
            commit: commit.to_string(),
            problem: format!("{id}: {text}"),
        },
    })
}

/// One entry of `git status --porcelain=v1 -z`.
#[derive(Debug)]
pub(super) struct StatusEntry {
    pub xy: [u8; 2],
    pub path: String,
}

impl StatusEntry {
    /// An unmerged path (`DD AU UD UA DU AA UU`).
    fn unmerged(&self) -> bool {
        matches!(
            &self.xy,
            b"DD" | b"AU" | b"UD" | b"UA" | b"DU" | b"AA" | b"UU"
        )
    }

    /// `add -A` (or the agent's own `git add`) makes it a new file in the commit.
    fn adds(&self) -> bool {
        &self.xy == b"??" || self.xy[0] == b'A'
    }
}

/// Parses `git status --porcelain=v1 -z` (`XY path`, renames and copies followed by their
/// old path as a field of its own).
pub(super) fn parse_status(out: &str) -> Vec<StatusEntry> {
    let mut entries = Vec::new();
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(f) = fields.next() {
        let b = f.as_bytes();
        // `XY ` is ASCII in what git prints; anything else is no entry.
        if b.len() < 4 || !b[..3].is_ascii() {
            continue;
        }
        let xy = [b[0], b[1]];
        if matches!(xy[0], b'R' | b'C') {
            fields.next();
        }
        entries.push(StatusEntry {
            xy,
            path: f[3..].to_string(),
        });
    }
    entries
}

/// The commit `HEAD` names, read from the files of `git_dir` (`HEAD` naming a loose ref);
/// `None` when that is not the layout (ask git).
pub(super) fn read_head(git_dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let name = head.trim_end().strip_prefix("ref: ")?;
    if !name.starts_with("refs/heads/") || name.contains("..") {
        return None;
    }
    let id = std::fs::read_to_string(git_dir.join(name)).ok()?;
    let id = id.trim_end();
    is_object_id(id).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_entries() {
        let out = "?? new file\0R  b.txt\0a.txt\0UU c.txt\0A  .env\0 M d\0";
        let e = parse_status(out);
        let got: Vec<(&[u8], &str, bool, bool)> = e
            .iter()
            .map(|e| (&e.xy[..], e.path.as_str(), e.unmerged(), e.adds()))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"??"[..], "new file", false, true),
                (&b"R "[..], "b.txt", false, false),
                (&b"UU"[..], "c.txt", true, false),
                (&b"A "[..], ".env", false, true),
                (&b" M"[..], "d", false, false),
            ]
        );
    }
}
