//! Listing and recognising the checkouts of the clone, read from git's own files
//! (`gitrepository-layout(5)`) when the layout is the plain one, from git otherwise.

use std::path::{Path, PathBuf};

use super::*;
use crate::GitError;

/// The branch a worktree's `HEAD` file names: `Some(None)` when detached, `None` when git
/// should be asked (a symbolic ref to something else than a branch, an unknown format).
pub(super) fn branch_of(head: &Path) -> Option<Option<String>> {
    let text = std::fs::read_to_string(head).ok()?;
    let text = text.trim_end_matches('\n');
    if let Some(r) = text.strip_prefix("ref: ") {
        let b = r.strip_prefix("refs/heads/")?;
        (!b.is_empty() && b != ".invalid").then(|| Some(b.to_string()))
    } else if is_object_id(text) {
        Some(None)
    } else {
        None
    }
}

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone)]
pub(super) struct WorktreeEntry {
    pub path: PathBuf,
    pub branch: Option<String>,
}

impl GitRepo {
    /// The worktrees of the repository (main one first), like `git worktree list`.
    pub(super) async fn worktrees(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        if let Some(list) = self.worktrees_from_files() {
            return Ok(list);
        }
        self.worktrees_from_git().await
    }

    /// The worktree list read the way git reads it (`gitrepository-layout(5)`:
    /// `$GIT_COMMON_DIR/HEAD`, `worktrees/<id>/gitdir` and `worktrees/<id>/HEAD`) without
    /// spawning git. `None` (ask git) whenever the layout is not the plain files one.
    pub(super) fn worktrees_from_files(&self) -> Option<Vec<WorktreeEntry>> {
        let common = self.repo_dir.join(".git");
        if !common.is_dir() || common.join("reftable").exists() {
            return None;
        }
        let main_path = std::fs::canonicalize(&self.repo_dir).ok()?;
        let mut list = vec![WorktreeEntry {
            path: main_path,
            branch: branch_of(&common.join("HEAD"))?,
        }];
        let dir = common.join("worktrees");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(list),
            Err(_) => return None,
        };
        let mut linked = Vec::new();
        for entry in entries {
            let git_dir = entry.ok()?.path();
            if !git_dir.is_dir() {
                continue;
            }
            let gitdir = std::fs::read_to_string(git_dir.join("gitdir")).ok()?;
            let dotgit = PathBuf::from(gitdir.trim_end_matches(['\n', '\r']));
            if !dotgit.is_absolute() || dotgit.file_name() != Some(".git".as_ref()) {
                return None;
            }
            linked.push(WorktreeEntry {
                path: dotgit.parent()?.to_path_buf(),
                branch: branch_of(&git_dir.join("HEAD"))?,
            });
        }
        linked.sort_by(|a, b| a.path.cmp(&b.path));
        list.extend(linked);
        Some(list)
    }

    /// The worktrees with `branch` checked out. Read from the files, only each worktree's
    /// `HEAD` first (this runs after every merge, and a run has two worktrees per worker);
    /// git is asked when the layout is not the plain files one.
    pub(super) async fn worktrees_on(&self, branch: &str) -> Result<Vec<WorktreeEntry>, GitError> {
        let common = self.repo_dir.join(".git");
        let want = format!("ref: refs/heads/{branch}");
        let plain = common.is_dir() && !common.join("reftable").exists();
        let dir = common.join("worktrees");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) if plain => Some(entries),
            Err(e) if plain && e.kind() == std::io::ErrorKind::NotFound => None,
            _ => {
                let all = self.worktrees().await?;
                return Ok(all
                    .into_iter()
                    .filter(|e| e.branch.as_deref() == Some(branch))
                    .collect());
            }
        };
        let mut heads = vec![common.join("HEAD")];
        heads.extend(
            entries
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("HEAD")),
        );
        let named = heads.iter().any(|head| {
            std::fs::read_to_string(head).is_ok_and(|t| t.trim_end_matches('\n') == want)
        });
        if !named {
            return Ok(Vec::new());
        }
        // Rare: someone checked the branch out. The full listing says where.
        let all = self.worktrees().await?;
        Ok(all
            .into_iter()
            .filter(|e| e.branch.as_deref() == Some(branch))
            .collect())
    }

    /// The entry of one linked worktree (canonical path `want`) read from its own files:
    /// `<want>/.git` names `$GIT_COMMON_DIR/worktrees/<id>`, whose `gitdir` points back.
    /// `None` (list them all) whenever anything is not the plain files layout.
    pub(super) fn worktree_from_files(&self, want: &Path) -> Option<WorktreeEntry> {
        let common = self.repo_dir.join(".git");
        if !common.is_dir() || common.join("reftable").exists() {
            return None;
        }
        let dotgit = std::fs::read_to_string(want.join(".git")).ok()?;
        let git_dir = PathBuf::from(
            dotgit
                .strip_prefix("gitdir: ")?
                .trim_end_matches(['\n', '\r']),
        );
        let git_dir = std::fs::canonicalize(want.join(git_dir)).ok()?;
        if git_dir.parent()? != std::fs::canonicalize(common.join("worktrees")).ok()? {
            return None;
        }
        let back = std::fs::read_to_string(git_dir.join("gitdir")).ok()?;
        let back = PathBuf::from(back.trim_end_matches(['\n', '\r']));
        if back.file_name() != Some(".git".as_ref())
            || std::fs::canonicalize(back.parent()?).ok()? != want
        {
            return None;
        }
        Some(WorktreeEntry {
            path: want.to_path_buf(),
            branch: branch_of(&git_dir.join("HEAD"))?,
        })
    }

    pub(super) async fn worktrees_from_git(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        let out = self
            .git("worktree", &self.repo_dir)
            .args(["worktree", "list", "--porcelain"])
            .run()
            .await?;
        let mut list = Vec::new();
        for block in out.split("\n\n") {
            let mut path = None;
            let mut branch = None;
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = Some(PathBuf::from(p));
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = Some(b.to_string());
                }
            }
            if let Some(path) = path {
                list.push(WorktreeEntry { path, branch });
            }
        }
        Ok(list)
    }

    /// The entry of `worktree` if it is a linked worktree of our repository; refuses anything
    /// else (never operate on the user's own checkout).
    pub(super) async fn our_worktree(&self, worktree: &Path) -> Result<WorktreeEntry, GitError> {
        let want =
            std::fs::canonicalize(worktree).map_err(|e| GitError::io("worktree", worktree, e))?;
        let repo = std::fs::canonicalize(&self.repo_dir).unwrap_or_else(|_| self.repo_dir.clone());
        if want != repo {
            if let Some(entry) = self.worktree_from_files(&want) {
                return Ok(entry);
            }
        }
        for e in self.worktrees().await? {
            let p = std::fs::canonicalize(&e.path).unwrap_or_else(|_| e.path.clone());
            if p == want && p != repo {
                return Ok(e);
            }
        }
        Err(GitError::invalid(
            "worktree",
            format!(
                "{} is not a worktree of {}",
                worktree.display(),
                self.repo_dir.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn worktree_list_from_files_matches_git() {
        let tmp = cco_testkit::temp_dir();
        let src = cco_testkit::init_repo(&tmp.path().join("src"));
        let repo =
            GitRepo::new(GitConfig::new(tmp.path().join("ws"), src.to_string_lossy())).unwrap();
        repo.setup().await.unwrap();
        // Linked worktrees of the clone (what integration worktrees are): one on a branch,
        // one detached, one on the base branch.
        let wt = |name: &str, extra: &[&str]| {
            let p = tmp.path().join(name);
            let mut args = vec!["worktree", "add", "-q"];
            args.extend(extra);
            let ps = p.to_string_lossy().into_owned();
            args.push(&ps);
            args.push("main");
            cco_testkit::git(repo.repo_dir(), &args);
        };
        wt("w1", &["-b", "cco/flat/w1"]);
        wt("w2", &["--detach"]);
        let on_main = tmp.path().join("on main");
        cco_testkit::git(
            repo.repo_dir(),
            &["worktree", "add", "-q", &on_main.to_string_lossy(), "main"],
        );
        let canon = |list: Vec<WorktreeEntry>| -> Vec<(PathBuf, Option<String>)> {
            let mut v: Vec<_> = list
                .into_iter()
                .map(|e| (std::fs::canonicalize(&e.path).unwrap(), e.branch))
                .collect();
            v.sort();
            v
        };
        let files = repo.worktrees_from_files().expect("plain layout");
        let files = canon(files);
        assert_eq!(files.len(), 4);
        assert_eq!(files, canon(repo.worktrees_from_git().await.unwrap()));
        assert!(files.contains(&(
            std::fs::canonicalize(&on_main).unwrap(),
            Some("main".into())
        )));
    }
}
