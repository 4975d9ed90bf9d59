//! The skeleton of an agent's `.git`: what `git init --template=` writes (`HEAD`, `config`,
//! the empty `objects/` and `refs/` folders), made by git once per run and copied for every
//! new agent repository. A run starts a hundred or more agent repositories in its first
//! seconds; copying a handful of small files is a fraction of a millisecond where a
//! `git init` (and the `git config` that checks the new config for drivers) are processes.
//!
//! The skeleton is git's own output on the workspace's file system, so what git probes there
//! (`core.filemode`, symlinks, case) holds for every copy. It is used only when it is what cco
//! expects (a files-backend repository whose `HEAD` names the branch it was made on);
//! otherwise every agent repository is made by `git init`, as before.

use std::path::{Path, PathBuf};

use super::GitRepo;

/// The branch the skeleton is made on; its `HEAD` is rewritten for each copy.
const SKELETON_BRANCH: &str = "cco-skeleton";

/// A `.git` folder read into memory.
#[derive(Debug, Clone)]
pub(crate) struct Skeleton {
    /// Folders, relative, parents first.
    dirs: Vec<PathBuf>,
    /// Files other than `HEAD`, relative, with their content.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// The driver overrides of its config (see `harden.rs`): none, unless the user's git
    /// writes some into every new repository's config.
    pub(crate) overrides: Vec<String>,
}

impl Skeleton {
    /// Reads the `.git` folder `git_dir` made by `git init --template=` on
    /// [`SKELETON_BRANCH`]; `None` when it is not what a copy may be made of.
    fn read(git_dir: &Path) -> Option<Skeleton> {
        let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
        if head.trim_end() != format!("ref: refs/heads/{SKELETON_BRANCH}") {
            return None;
        }
        let mut skeleton = Skeleton {
            dirs: Vec::new(),
            files: Vec::new(),
            overrides: Vec::new(),
        };
        let mut todo = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(git_dir.join(&rel))
                .ok()?
                .collect::<Result<_, _>>()
                .ok()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let rel = rel.join(entry.file_name());
                let kind = entry.file_type().ok()?;
                if kind.is_dir() {
                    skeleton.dirs.push(rel.clone());
                    todo.push(rel);
                } else if kind.is_file() {
                    if rel == Path::new("HEAD") {
                        continue;
                    }
                    let content = std::fs::read(git_dir.join(&rel)).ok()?;
                    skeleton.files.push((rel, content));
                } else {
                    return None;
                }
            }
        }
        // What git needs to see a repository at all (`HEAD`, read above, `objects/`, `refs/`).
        for needed in ["objects", "refs"] {
            if !skeleton.dirs.iter().any(|d| d == Path::new(needed)) {
                return None;
            }
        }
        // Another ref storage than loose files and `packed-refs`: HEAD would not be enough.
        let config = skeleton
            .files
            .iter()
            .find(|(p, _)| p == Path::new("config"))
            .map(|(_, c)| String::from_utf8_lossy(c).to_ascii_lowercase())?;
        if config.contains("refstorage") || skeleton.dirs.iter().any(|d| d == Path::new("reftable"))
        {
            return None;
        }
        Some(skeleton)
    }

    /// Writes a copy at `git_dir` (which must not exist) with `HEAD` on `branch` and `extra`
    /// appended to its config.
    pub(crate) fn write(&self, git_dir: &Path, branch: &str, extra: &str) -> std::io::Result<()> {
        std::fs::create_dir(git_dir)?;
        for dir in &self.dirs {
            std::fs::create_dir(git_dir.join(dir))?;
        }
        for (rel, content) in &self.files {
            let mut content = content.clone();
            if rel == Path::new("config") {
                content.extend_from_slice(extra.as_bytes());
            }
            std::fs::write(git_dir.join(rel), content)?;
        }
        std::fs::write(git_dir.join("HEAD"), format!("ref: refs/heads/{branch}\n"))
    }
}

impl GitRepo {
    /// The run's skeleton, made by git the first time it is asked for (`None`: agent
    /// repositories are made by `git init`, see the module doc). Agent repositories are
    /// made side by side: one of them makes the skeleton, the others wait for it (two
    /// makers in one folder would read each other's half-made or half-removed `.git`).
    pub(super) async fn skeleton(&self, root: &Path) -> Option<Skeleton> {
        self.skeleton
            .get_or_init(|| async {
                let made = self.make_skeleton(root).await;
                if made.is_none() {
                    tracing::info!(
                        "agent repositories are made by `git init` (no skeleton to copy)"
                    );
                }
                made
            })
            .await
            .clone()
    }

    async fn make_skeleton(&self, root: &Path) -> Option<Skeleton> {
        // Hidden, and never a name an agent gets (agent ids are slugs).
        // One folder per maker: two `GitRepo`s of one process (a node serves several runs)
        // never share one.
        let dir = root.join(format!(".skeleton-{}", crate::names::unique_suffix()));
        let p = dir.to_string_lossy().into_owned();
        let initial = format!("--initial-branch={SKELETON_BRANCH}");
        let made = self
            .git("init", root)
            .args(["init", "-q", "--template=", &initial, "--", &p])
            .run()
            .await;
        let git_dir = dir.join(".git");
        let mut skeleton = made.ok().and_then(|_| Skeleton::read(&git_dir));
        if let Some(s) = skeleton.as_mut() {
            match self.driver_overrides(&git_dir).await {
                Ok(overrides) => s.overrides = overrides,
                Err(_) => skeleton = None,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        skeleton
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skeleton_is_copied_with_its_head_on_the_branch_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = std::process::Command::new("git")
            .args(["init", "-q", "--template=", "--initial-branch=cco-skeleton"])
            .arg(&src)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        let skeleton = Skeleton::read(&src.join(".git")).expect("git's own init is a skeleton");
        assert!(skeleton.dirs.iter().any(|d| d == Path::new("refs/heads")));
        let copy = tmp.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        skeleton
            .write(&copy.join(".git"), "cco/team/w1", "[user]\n\tname = x\n")
            .unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&copy)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(
            git(&["symbolic-ref", "HEAD"]).trim(),
            "refs/heads/cco/team/w1"
        );
        assert_eq!(git(&["config", "user.name"]).trim(), "x");
        assert_eq!(git(&["rev-parse", "--is-inside-work-tree"]).trim(), "true");
        // A second copy at the same place is refused, not merged into the first.
        assert!(skeleton.write(&copy.join(".git"), "b", "").is_err());
    }

    #[test]
    fn a_repository_that_is_not_a_plain_init_is_no_skeleton() {
        let tmp = tempfile::tempdir().unwrap();
        let git_dir = tmp.path().join(".git");
        std::fs::create_dir_all(git_dir.join("refs/heads")).unwrap();
        std::fs::write(git_dir.join("config"), "[core]\n").unwrap();
        std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert!(Skeleton::read(&git_dir).is_none(), "HEAD on another branch");
        std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/cco-skeleton\n").unwrap();
        assert!(
            Skeleton::read(&git_dir).is_none(),
            "no objects/: git sees no repository"
        );
        std::fs::create_dir_all(git_dir.join("objects")).unwrap();
        assert!(Skeleton::read(&git_dir).is_some());
        std::fs::write(
            git_dir.join("config"),
            "[extensions]\n\trefStorage = reftable\n",
        )
        .unwrap();
        assert!(Skeleton::read(&git_dir).is_none(), "reftable");
    }
}
