//! Copying an agent's objects into cco's clone (or a node's store) without a fetch: a thin
//! pack made by `pack-objects` in the agent's repository, read by `unpack-objects --strict`
//! (or `index-pack --strict`) here. Two processes where a fetch runs six (fetch, `sh`,
//! upload-pack, pack-objects, unpack-objects and the connectivity walk), with the same
//! checks: every object as a fetch with `fsckObjects` checks it, and the pack complete on top
//! of what this repository has, or nothing is written. A bundle's pack (see `bundle`) goes
//! through [`GitRepo::unpack_checked`] too.

use std::path::{Path, PathBuf};

use super::capture::fsck_checked;
use super::*;
use crate::names::unique_suffix;
use crate::GitError;

impl GitRepo {
    /// The objects of `commit` that are not reachable from `have` (a commit cco's clone
    /// has: the task's target tip), copied from the agent's repository into cco's clone:
    /// what a fetch of `commit` does, in two processes instead of six (fetch, `sh`,
    /// upload-pack, pack-objects, unpack-objects and the connectivity walk): a pack made by
    /// [`GitRepo::pack_from_agent`], read by [`GitRepo::unpack_checked`]. An `fsck` failure
    /// becomes the [`Refusal`](crate::Refusal) of `commit`.
    pub(super) async fn copy_from_agent(
        &self,
        agent: &AgentRepo,
        commit: &str,
        have: &str,
    ) -> Result<(), GitError> {
        let pack = self.pack_from_agent(agent, commit, &[have]).await?;
        self.unpack_checked(&pack.0, 0, commit).await
    }

    /// A thin pack of the objects of `commit` not reachable from `basis` (commits cco's
    /// clone has), written by `pack-objects` in the agent's repository (hardened as every
    /// command there) to a file in cco's git dir, removed when the value is dropped.
    pub(super) async fn pack_from_agent(
        &self,
        agent: &AgentRepo,
        commit: &str,
        basis: &[&str],
    ) -> Result<TempFile, GitError> {
        for id in std::iter::once(&commit).chain(basis) {
            check_object_id("pack_from_agent", id)?;
        }
        let pack = TempFile(
            self.repo_dir
                .join(".git")
                .join(format!("cco-incoming-{}.pack", unique_suffix())),
        );
        let mut revs = format!("{commit}\n");
        for id in basis {
            revs.push_str(&format!("^{id}\n"));
        }
        self.agent_git("pack-objects", agent)
            .args(["pack-objects", "--revs", "--thin", "--stdout", "-q"])
            .stdin(revs.as_bytes())
            .stdout_file(&pack.0)
            .run()
            .await?;
        Ok(pack)
    }

    /// Reads the pack at byte `offset` of file `file` into cco's clone with
    /// `unpack-objects --strict` (or, for 100 objects or more, `index-pack --strict`, as a
    /// fetch would): every object is checked as a fetch with `fsckObjects` checks it (a
    /// `.git`-like path an error), and the pack must be complete on top of what cco has, or
    /// nothing is written. An `fsck` failure becomes the [`Refusal`](crate::Refusal) of
    /// `commit`.
    pub(super) async fn unpack_checked(
        &self,
        file: &Path,
        offset: u64,
        commit: &str,
    ) -> Result<(), GitError> {
        let count = pack_object_count(file, offset)?;
        let strict = "--strict=hasDotgit=error,hasDotdot=error,fullPathname=error";
        let args: &[&str] = if count < 100 {
            &["unpack-objects", "-q", strict]
        } else {
            &["index-pack", "--stdin", "--fix-thin", strict]
        };
        let out = self
            .git("unpack-objects", &self.repo_dir)
            .args(args)
            .stdin_file_at(file, offset)
            .output()
            .await?;
        fsck_checked(out, commit)
    }
}

/// The number of objects the pack at byte `offset` of `file` says it holds (its header:
/// `PACK`, version, count).
fn pack_object_count(file: &Path, offset: u64) -> Result<u32, GitError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut header = [0u8; 12];
    std::fs::File::open(file)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut header)
        })
        .map_err(|e| GitError::io("unpack-objects", file, e))?;
    if &header[..4] != b"PACK" {
        return Err(GitError::invalid(
            "unpack-objects",
            format!("{} holds no pack at byte {offset}", file.display()),
        ));
    }
    Ok(u32::from_be_bytes([
        header[8], header[9], header[10], header[11],
    ]))
}

/// A file removed when this value is dropped (a pack on its way into a repository).
pub(super) struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
