//! Git bundles: how commits travel between cco's clone and a repository on another host
//! (issue 15), with no shared file system and no git server.
//!
//! - The head sends a worker's start commit to a node as a bundle relative to what that node
//!   already has ([`GitRepo::create_bundle`]); the node fetches it into its store
//!   ([`GitRepo::fetch_bundle`]) and its agent repository borrows the objects from there.
//! - The node sends the turn's commits back with [`GitRepo::bundle_agent_result`]: one
//!   `pack-objects` in the agent's repository gives the pack that is both copied into the
//!   node's store (checked) and written, behind a header cco writes, as the bundle. The head
//!   reads that bundle with [`GitRepo::fetch_bundle`] through the same checks as a local
//!   agent's work (every object checked as `fsckObjects` checks it, the pack complete on top
//!   of what cco has), then points the worker's local repository at the commit
//!   ([`GitRepo::adopt_remote_result`]): the capture, review and merge that follow are the
//!   ones of a local turn, with the content checks of [`GitRepo::check_commits`].
//! - A node keeps its store with [`GitRepo::init_store`]: `<workspace>/repo` made by `git
//!   init` instead of a clone.
//!
//! A bundle is input: cco reads its header itself (format v2, or v3 naming only its object
//! format; anything else is an error), a ref name must be valid and under `refs/`, and only
//! the commit the caller expects gets a ref.

use std::path::Path;

use super::*;
use crate::names::unique_suffix;
use crate::sanitize::ref_name_problem;
use crate::GitError;

/// Where a worker's local repository stands before its turn runs on another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStart {
    /// The commit the turn starts from (the repository's HEAD).
    pub head: String,
    /// The commit being merged into it when a conflict resolution is under way (MERGE_HEAD).
    pub merging: Option<String>,
}

impl GitRepo {
    /// A node's store: `<workspace>/repo` created with `git init` (no template, no checkout)
    /// when it does not exist, with the secret excludes and cco's commit identity. Agent
    /// repositories are then created in it with [`GitRepo::create_worktree`] from commits
    /// fetched with [`GitRepo::fetch_bundle`].
    pub async fn init_store(&self) -> Result<(), GitError> {
        let ws = &self.cfg.workspace;
        std::fs::create_dir_all(ws).map_err(|e| GitError::io("init_store", ws, e))?;
        if !self.repo_dir.join(".git").is_dir() {
            let dir = self.repo_dir.to_string_lossy().into_owned();
            self.git("init", ws)
                .args(["init", "-q", "--template=", "--", &dir])
                .run()
                .await?;
        }
        self.write_excludes(&self.repo_dir.join(".git"))?;
        self.resolve_identity().await
    }

    /// Writes a bundle of `tips` (commits of cco's clone / the store) to `out`, leaving out
    /// what `basis` already holds (commits the other side has; unknown ones are ignored).
    /// `None` when the other side needs nothing (every tip is in the basis). Returns the
    /// bundle's size in bytes.
    pub async fn create_bundle(
        &self,
        tips: &[String],
        basis: &[String],
        out: &Path,
    ) -> Result<Option<u64>, GitError> {
        for id in tips.iter().chain(basis) {
            check_object_id("create_bundle", id)?;
        }
        // The usual case of a start commit the other side was sent (or made) before: no
        // process at all.
        if tips.iter().all(|tip| basis.contains(tip)) {
            return Ok(None);
        }
        // A bundle names its tips by refs: temporary ones, unique to this bundle.
        let tag = unique_suffix();
        let names: Vec<String> = (0..tips.len())
            .map(|i| format!("refs/cco/bundle/{tag}/{i}"))
            .collect();
        let mut create = String::new();
        for (name, tip) in names.iter().zip(tips) {
            create.push_str(&format!("create {name} {tip}\n"));
        }
        self.git("update-ref", &self.repo_dir)
            .args(["update-ref", "--stdin"])
            .stdin(create.as_bytes())
            .run()
            .await?;
        let made = self.bundle_of(&names, tips, basis, out).await;
        // The temporary refs are loose files cco just wrote: removed without a process.
        let _ = std::fs::remove_dir_all(
            self.repo_dir
                .join(".git")
                .join("refs")
                .join("cco")
                .join("bundle")
                .join(&tag),
        );
        if !made? {
            return Ok(None);
        }
        let size = std::fs::metadata(out)
            .map_err(|e| GitError::io("create_bundle", out, e))?
            .len();
        Ok(Some(size))
    }

    /// `git bundle create` of the refs `names` (pointing at `tips`) without what `basis` holds;
    /// false when there is nothing new. The bundle is tried first (the usual case: one
    /// process); only when git refuses it does a `rev-list` tell an empty bundle from a basis
    /// commit this repository lacks (then the bundle is made without a basis).
    async fn bundle_of(
        &self,
        names: &[String],
        tips: &[String],
        basis: &[String],
        out: &Path,
    ) -> Result<bool, GitError> {
        let create = |basis: &[String]| {
            let mut args = vec![
                "bundle".to_string(),
                "create".into(),
                "-q".into(),
                out.to_string_lossy().into_owned(),
            ];
            args.extend(names.iter().cloned());
            if !basis.is_empty() {
                args.push("--not".into());
                args.extend(basis.iter().cloned());
            }
            async move {
                self.git("bundle", &self.repo_dir)
                    .args(&args)
                    .output()
                    .await
            }
        };
        let first = create(basis).await?;
        if first.success() {
            return Ok(true);
        }
        let new = |basis: &[String]| {
            let mut args: Vec<String> = vec!["rev-list".into(), "-n1".into()];
            args.extend(tips.iter().cloned());
            if !basis.is_empty() {
                args.push("--not".into());
                args.extend(basis.iter().cloned());
            }
            async move {
                self.git("rev-list", &self.repo_dir)
                    .args(&args)
                    .output()
                    .await
            }
        };
        let with_basis = new(basis).await?;
        if with_basis.success() {
            if with_basis.stdout.trim().is_empty() {
                return Ok(false);
            }
            // Something new, and git still refused: its own error.
            return first.check().map(|_| true);
        }
        // A basis commit is unknown here: everything.
        if new(&[]).await?.check()?.stdout.trim().is_empty() {
            return Ok(false);
        }
        create(&[]).await?.check().map(|_| true)
    }

    /// Fetches `commit` from the bundle file `bundle` into ref `into` of cco's clone (the
    /// store on a node): the bundle must name `commit` under a valid ref, its prerequisites
    /// must be here, and every object received is checked as a fetch with `fsckObjects`
    /// checks it. cco reads the bundle's header itself and gives its pack to
    /// `unpack-objects --strict` (one process, where `list-heads` and a fetch run four).
    pub async fn fetch_bundle(
        &self,
        bundle: &Path,
        commit: &str,
        into: &str,
    ) -> Result<(), GitError> {
        check_object_id("fetch_bundle", commit)?;
        check_ref_under("fetch_bundle", "refs/cco/", "a cco ref", into)?;
        let header = read_header(bundle)?;
        if !header
            .refs
            .iter()
            .any(|(id, name)| id.as_str() == commit && ref_name_problem(name).is_none())
        {
            return Err(GitError::invalid(
                "fetch_bundle",
                format!("the bundle does not hold commit {commit} under a ref"),
            ));
        }
        if let Err(e) = self.unpack_checked(bundle, header.pack_at, commit).await {
            // A pack that builds on commits not here: say which.
            let mut missing = Vec::new();
            for id in &header.prerequisites {
                if !self.has_commit(id).await? {
                    missing.push(id.as_str());
                }
            }
            if !missing.is_empty() {
                return Err(GitError::NotFound {
                    what: format!(
                        "the commits the bundle builds on (prerequisite {} missing)",
                        missing.join(", ")
                    ),
                });
            }
            return Err(e);
        }
        // The ref protects the objects; git checks that the commit is here.
        self.git("update-ref", &self.repo_dir)
            .args(["update-ref", "-m", "cco: bundle", into, commit])
            .run()
            .await?;
        Ok(())
    }

    /// The commits of an agent's turn on a node, on their way to the head: `commit` and what
    /// it needs beyond `basis` (the turn's start and, for a conflict resolution, the commit
    /// being merged: commits this store has) are copied from the agent repository at
    /// `worktree` into the store (checked as every copy of an agent's objects, kept under
    /// `into`) and written to `out` as a bundle (format v2) with `basis` as its
    /// prerequisites. The pack `pack-objects` made is the bundle's pack: two git processes
    /// and an `update-ref`, where a fetch into the store and `git bundle create` run about
    /// eight. Returns the bundle's size in bytes.
    pub async fn bundle_agent_result(
        &self,
        worktree: &Path,
        commit: &str,
        basis: &[String],
        into: &str,
        out: &Path,
    ) -> Result<u64, GitError> {
        check_object_id("bundle_agent_result", commit)?;
        for id in basis {
            check_object_id("bundle_agent_result", id)?;
        }
        check_ref_under("bundle_agent_result", "refs/cco/", "a cco ref", into)?;
        let agent = self.our_agent(worktree)?;
        let basis_refs: Vec<&str> = basis.iter().map(String::as_str).collect();
        let pack = self.pack_from_agent(&agent, commit, &basis_refs).await?;
        self.unpack_checked(&pack.0, 0, commit).await?;
        self.git("update-ref", &self.repo_dir)
            .args(["update-ref", "-m", "cco: turn result", into, commit])
            .run()
            .await?;
        write_bundle(out, basis, commit, &pack.0)
            .map_err(|e| GitError::io("bundle_agent_result", out, e))
    }

    /// After a turn on a node: commits what the agent left uncommitted (secret files never),
    /// as [`GitRepo::commit_all`] does but without its copy into the store (the result's
    /// copy is [`GitRepo::bundle_agent_result`]'s), and returns the commit the repository is
    /// at. Nothing left: HEAD, read from its files where it can be.
    pub async fn commit_turn(&self, worktree: &Path, message: &str) -> Result<String, GitError> {
        let agent = self.our_agent(worktree)?;
        if let Some(commit) = self.commit_agent(&agent, message).await?.0 {
            return Ok(commit);
        }
        if let Some(head) = super::capture::read_head(&agent.git_dir) {
            return Ok(head);
        }
        Ok(self.head_and_merge_head(&agent).await?.0)
    }

    /// Where the agent repository at `worktree` stands before its turn moves to another
    /// host: uncommitted work is committed first (as [`GitRepo::commit_all`]) so it travels
    /// with the start commit; a merge under way stays (its other parent is `merging`).
    pub async fn remote_start(&self, worktree: &Path) -> Result<RemoteStart, GitError> {
        let agent = self.our_agent(worktree)?;
        let merging = agent.git_dir.join("MERGE_HEAD").exists();
        if !merging && self.is_dirty(&agent).await? {
            self.commit_all(
                worktree,
                "cco: work in progress before the turn moved to another host",
            )
            .await?;
        }
        let (head, merging) = self.head_and_merge_head(&agent).await?;
        Ok(RemoteStart { head, merging })
    }

    /// Puts the agent repository at `worktree` at `commit` (fetched from another host's
    /// bundle): a merge under way is aborted (the commit holds its resolution), the work
    /// tree is reset and cleaned. This repository only mirrors the other host's, so nothing
    /// here is work of its own to keep.
    pub async fn adopt_remote_result(&self, worktree: &Path, commit: &str) -> Result<(), GitError> {
        check_object_id("adopt_remote_result", commit)?;
        let agent = self.our_agent(worktree)?;
        if agent.git_dir.join("MERGE_HEAD").exists() {
            self.agent_git("merge", &agent)
                .args(["merge", "--abort"])
                .run()
                .await?;
        }
        // No agent works here (its turns run on the other host): nothing untracked to clean.
        self.agent_git("reset", &agent)
            .args(["reset", "-q", "--hard", commit])
            .run()
            .await?;
        Ok(())
    }

    /// Puts the agent repository at `worktree` at `commit`, discarding what is there (a
    /// merge under way, changes, untracked files that are not excluded; ignored ones such as
    /// build caches stay): a node's repository of a worker before its next turn, whose
    /// previous turn went back to the head already. Three git processes at most.
    pub async fn reset_agent_repo(&self, worktree: &Path, commit: &str) -> Result<(), GitError> {
        self.adopt_remote_result(worktree, commit).await?;
        let agent = self.our_agent(worktree)?;
        self.agent_git("clean", &agent)
            .args(["clean", "-fdq"])
            .run()
            .await?;
        Ok(())
    }
}

/// What a bundle's header says: the commits it builds on, the refs it holds and where its
/// pack starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Header {
    prerequisites: Vec<String>,
    refs: Vec<(String, String)>,
    pack_at: u64,
}

/// The most a bundle's header may take (a bundle of cco names one or two refs).
const MAX_HEADER: usize = 1 << 20;

/// Reads the header of the bundle file `path` (`gitformat-bundle`: v2, or v3 with the
/// `object-format` capability only). The file is input from another host: anything else is
/// an error, not a guess.
fn read_header(path: &Path) -> Result<Header, GitError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| GitError::io("fetch_bundle", path, e))?;
    let mut head = Vec::new();
    file.take(MAX_HEADER as u64)
        .read_to_end(&mut head)
        .map_err(|e| GitError::io("fetch_bundle", path, e))?;
    parse_header(&head).map_err(|why| {
        GitError::invalid(
            "fetch_bundle",
            format!("{} is not a bundle cco reads: {why}", path.display()),
        )
    })
}

pub(super) fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let mut at = 0usize;
    let mut line = || next_line(bytes, &mut at);
    let v3 = match line()? {
        "# v2 git bundle" => false,
        "# v3 git bundle" => true,
        other => return Err(format!("unknown signature {other:?}")),
    };
    let mut header = Header {
        prerequisites: Vec::new(),
        refs: Vec::new(),
        pack_at: 0,
    };
    loop {
        let l = line()?;
        if l.is_empty() {
            break;
        }
        if let Some(cap) = l.strip_prefix('@') {
            if !v3 || !matches!(cap, "object-format=sha1" | "object-format=sha256") {
                return Err(format!("unsupported capability {cap:?}"));
            }
        } else if let Some(rest) = l.strip_prefix('-') {
            let id = rest.split(' ').next().unwrap_or_default();
            if !is_object_id(id) {
                return Err(format!("bad prerequisite {l:?}"));
            }
            header.prerequisites.push(id.to_string());
        } else {
            match l.split_once(' ') {
                Some((id, name)) if is_object_id(id) && name.starts_with("refs/") => {
                    header.refs.push((id.to_string(), name.to_string()))
                }
                _ => return Err(format!("bad ref line {l:?}")),
            }
        }
    }
    header.pack_at = at as u64;
    Ok(header)
}

fn next_line<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a str, String> {
    let rest = &bytes[*at..];
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("the header does not end")?;
    *at += end + 1;
    std::str::from_utf8(&rest[..end]).map_err(|_| "a header line is not UTF-8".to_string())
}

/// Writes a v2 bundle to `out`: `prerequisites`, one ref (`refs/cco/result`) at `tip`, and
/// the pack in file `pack` (thin against the prerequisites, as `git bundle create` makes
/// it). Returns the bundle's size.
fn write_bundle(
    out: &Path,
    prerequisites: &[String],
    tip: &str,
    pack: &Path,
) -> std::io::Result<u64> {
    use std::io::Write;
    let mut header = String::from("# v2 git bundle\n");
    for id in prerequisites {
        header.push_str(&format!("-{id}\n"));
    }
    header.push_str(&format!("{tip} refs/cco/result\n\n"));
    let mut file = std::fs::File::create(out)?;
    file.write_all(header.as_bytes())?;
    let copied = std::io::copy(&mut std::fs::File::open(pack)?, &mut file)?;
    file.flush()?;
    Ok(header.len() as u64 + copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn a_v2_header_gives_prerequisites_refs_and_where_the_pack_starts() {
        let text = format!("# v2 git bundle\n-{A} a subject\n-{B}\n{A} refs/heads/x\n\nPACK...");
        let h = parse_header(text.as_bytes()).unwrap();
        assert_eq!(h.prerequisites, vec![A.to_string(), B.to_string()]);
        assert_eq!(h.refs, vec![(A.to_string(), "refs/heads/x".to_string())]);
        assert_eq!(&text.as_bytes()[h.pack_at as usize..], b"PACK...");
    }

    #[test]
    fn a_v3_header_may_name_its_object_format_and_nothing_else() {
        let ok = format!("# v3 git bundle\n@object-format=sha1\n{A} refs/cco/result\n\n");
        assert_eq!(parse_header(ok.as_bytes()).unwrap().refs.len(), 1);
        let filtered = format!("# v3 git bundle\n@filter=blob:none\n{A} refs/x\n\n");
        assert!(parse_header(filtered.as_bytes())
            .unwrap_err()
            .contains("capability"));
        let v2_cap = format!("# v2 git bundle\n@object-format=sha1\n{A} refs/x\n\n");
        assert!(parse_header(v2_cap.as_bytes()).is_err());
    }

    #[test]
    fn a_header_that_is_not_one_is_an_error() {
        for bad in [
            "PACK".to_string(),
            "# v9 git bundle\n\n".to_string(),
            format!("# v2 git bundle\n{A} refs/x\n"),
            format!("# v2 git bundle\n{A}\n\n"),
            format!("# v2 git bundle\n{A} HEAD\n\n"),
            format!("# v2 git bundle\n-xyz\n{A} refs/x\n\n"),
            "# v2 git bundle\nnot-an-id refs/x\n\n".to_string(),
        ] {
            assert!(parse_header(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_header(b"# v2 git bundle\n\xff\xfe refs/x\n\n").is_err());
    }

    #[test]
    fn a_written_bundle_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("p.pack");
        std::fs::write(&pack, b"PACK\0\0\0\x02\0\0\0\0").unwrap();
        let out = dir.path().join("b.bundle");
        let size = write_bundle(&out, &[A.to_string()], B, &pack).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(size, bytes.len() as u64);
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.prerequisites, vec![A.to_string()]);
        assert_eq!(h.refs, vec![(B.to_string(), "refs/cco/result".to_string())]);
        assert_eq!(&bytes[h.pack_at as usize..], std::fs::read(&pack).unwrap());
    }
}
