//! Names cco gives branches and refs: team and worker branches, task refs, and the unique
//! part of temporary names.

use crate::sanitize::{ref_name_problem, single_component};

/// Branch of team `team` (hierarchy mode). Not `cco/<team>`: git cannot hold both the ref
/// `cco/<team>` and the worker refs `cco/<team>/<worker>` (file/directory conflict).
pub fn team_branch(team: &str) -> String {
    format!("cco/{}/team", single_component(team))
}

/// Branch of a worker: `cco/<team>/<worker-id>` (flat mode: team `flat`). A worker named
/// `team` becomes `team-worker` so it cannot collide with [`team_branch`].
pub fn worker_branch(team: &str, worker_id: &str) -> String {
    let w = single_component(worker_id);
    let w = if w == "team" {
        "team-worker".to_string()
    } else {
        w
    };
    format!("cco/{}/{}", single_component(team), w)
}

/// The frozen ref of a task's work: `refs/cco/tasks/<run>/<team>/<task-id>`. A worker's
/// finished turn is captured here (see [`crate::GitRepo::capture_task`]) so the worker can take its
/// next task while this one is reviewed and merged. Per run, so a task id reused by a later
/// run in the same workspace never sees an earlier run's work. Outside `refs/heads/`: not a
/// branch anyone checks out, but kept (and fetchable) like one. Every component is at most
/// 64 bytes (the protocol's longest id and team name fit as they are; longer ones, e.g. a
/// deduplicated `<id>-2`, keep a prefix and get a hash suffix).
pub fn task_ref(run: &str, team: &str, task_id: &str) -> String {
    format!(
        "refs/cco/tasks/{}/{}/{}",
        single_component(run),
        single_component(team),
        single_component(task_id)
    )
}

/// `name` as a full ref name git can use without resolving it first: a full ref (`refs/...`)
/// as it is, a valid branch name as `refs/heads/<name>`. `None` for anything else (ids,
/// `main~1`): resolve those. Only for ops that run one at a time (the GitActor's): nothing can
/// move the ref between two commands of the op.
pub(crate) fn direct_ref(name: &str) -> Option<String> {
    if ref_name_problem(name).is_some() {
        None
    } else if name.starts_with("refs/") {
        Some(name.to_string())
    } else {
        Some(format!("refs/heads/{name}"))
    }
}

/// A part of a temporary name (a ref, a file, a folder) no other one has: this process's id,
/// the time to the microsecond (so a later process with the same id differs too) and a
/// counter (so two names of one microsecond differ).
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%d%H%M%S%6f"),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
