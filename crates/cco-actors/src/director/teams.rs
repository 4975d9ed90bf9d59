//! The Director's teams: their layout, and which goal each works on.
//!
//! Pure bookkeeping (the actor shell in `mod.rs` performs the merges and messages): the
//! layout of teams and workers from the config ([`layout`]), goals handed to idle teams one at
//! a time ([`Teams::dispatch`]), and when the Director re-plans ([`Teams::all_idle`]).

use std::collections::VecDeque;

use cco_protocol::TeamGoal;

use crate::board::PlanState;

/// One team: its lead, branch and workers, and its goal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Team {
    /// The lead's agent id (`em-<n>`, or `coordinator`).
    pub(crate) lead: String,
    pub(crate) name: String,
    /// The branch its tasks merge into (`cco/<team>/team`, or the base branch in flat mode).
    pub(crate) branch: String,
    pub(crate) worker_ids: Vec<String>,
    /// Holds a goal (or is merging it).
    pub(crate) busy: bool,
    pub(crate) goal: Option<TeamGoal>,
}

/// The teams of a run: one Coordinator over every worker (flat), or one EM per group of at
/// most `group_size` workers.
pub(crate) fn layout(
    flat: bool,
    worker_count: usize,
    group_size: usize,
    base_branch: &str,
) -> Vec<Team> {
    let worker = |n: usize| format!("worker-{n}");
    if flat {
        return vec![Team {
            lead: "coordinator".into(),
            name: "flat".into(),
            branch: base_branch.to_string(),
            worker_ids: (1..=worker_count).map(worker).collect(),
            // The Coordinator plans by itself: never handed a goal.
            busy: true,
            goal: None,
        }];
    }
    let group = group_size.max(1);
    let mut teams = Vec::new();
    let mut next = 1;
    while next <= worker_count {
        let size = group.min(worker_count + 1 - next);
        let n = teams.len() + 1;
        let name = format!("team-{n}");
        teams.push(Team {
            lead: format!("em-{n}"),
            branch: format!("cco/{name}"),
            name,
            worker_ids: (next..next + size).map(worker).collect(),
            busy: false,
            goal: None,
        });
        next += size;
    }
    teams
}

/// The teams and the goals not handed out yet.
#[derive(Debug, Default)]
pub(crate) struct Teams {
    pub(crate) teams: Vec<Team>,
    pub(crate) goals: VecDeque<TeamGoal>,
    /// What happened so far (for re-planning).
    pub(crate) history: Vec<String>,
}

impl Teams {
    pub(crate) fn new(teams: Vec<Team>) -> Teams {
        Teams {
            teams,
            ..Teams::default()
        }
    }

    pub(crate) fn slot_of(&self, name: &str) -> Option<usize> {
        self.teams.iter().position(|t| t.name == name)
    }

    /// Hands pending goals to idle teams whose lead is up (`up(slot)`), in order; returns
    /// `(slot, goal)` for each.
    pub(crate) fn dispatch(&mut self, up: impl Fn(usize) -> bool) -> Vec<(usize, TeamGoal)> {
        let mut handed = Vec::new();
        for (slot, team) in self.teams.iter_mut().enumerate() {
            if team.busy || !up(slot) {
                continue;
            }
            let Some(goal) = self.goals.pop_front() else {
                break;
            };
            team.busy = true;
            team.goal = Some(goal.clone());
            handed.push((slot, goal));
        }
        handed
    }

    /// No team holds a goal and none is pending: time to re-plan.
    pub(crate) fn all_idle(&self) -> bool {
        self.goals.is_empty() && self.teams.iter().all(|t| !t.busy)
    }

    /// The team is done with its goal (merged, failed, or given up).
    pub(crate) fn free(&mut self, name: &str) {
        if let Some(team) = self.teams.iter_mut().find(|t| t.name == name) {
            team.busy = false;
            team.goal = None;
        }
    }

    /// The planning state to journal.
    pub(crate) fn plan_state(&self) -> PlanState {
        PlanState {
            pending_goals: self.goals.iter().cloned().collect(),
            team_goals: self
                .teams
                .iter()
                .filter_map(|t| t.goal.clone().map(|g| (t.name.clone(), g)))
                .collect(),
            history: self.history.clone(),
        }
    }

    /// Resume: the journaled planning state. Returns whether there was any goal.
    pub(crate) fn restore(&mut self, plan: PlanState) -> bool {
        self.goals = plan.pending_goals.into_iter().collect();
        self.history = plan.history;
        let mut any = !self.goals.is_empty();
        for team in &mut self.teams {
            if let Some(goal) = plan.team_goals.get(&team.name) {
                team.goal = Some(goal.clone());
                team.busy = true;
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(name: &str) -> TeamGoal {
        TeamGoal {
            name: name.into(),
            goal: format!("{name} goal"),
        }
    }

    #[test]
    fn flat_mode_has_one_coordinator_over_every_worker_on_the_base_branch() {
        let teams = layout(true, 3, 4, "main");
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0].lead, "coordinator");
        assert_eq!(teams[0].branch, "main");
        assert_eq!(teams[0].worker_ids, ["worker-1", "worker-2", "worker-3"]);
        assert!(teams[0].busy);
    }

    #[test]
    fn hierarchy_mode_groups_workers_under_ems_with_stable_numbering() {
        let teams = layout(false, 7, 3, "main");
        let shape: Vec<(&str, &str, usize)> = teams
            .iter()
            .map(|t| (t.lead.as_str(), t.branch.as_str(), t.worker_ids.len()))
            .collect();
        assert_eq!(
            shape,
            [
                ("em-1", "cco/team-1", 3),
                ("em-2", "cco/team-2", 3),
                ("em-3", "cco/team-3", 1)
            ]
        );
        assert_eq!(teams[2].worker_ids, ["worker-7"]);
    }

    #[test]
    fn goals_go_to_idle_teams_whose_lead_is_up_one_each() {
        let mut teams = Teams::new(layout(false, 6, 2, "main"));
        teams.goals.extend([goal("a"), goal("b")]);
        // em-1's lead is down (restarting): it gets nothing.
        let handed = teams.dispatch(|slot| slot != 0);
        let names: Vec<(usize, &str)> = handed.iter().map(|(s, g)| (*s, g.name.as_str())).collect();
        assert_eq!(names, [(1, "a"), (2, "b")]);
        assert!(!teams.all_idle());
        teams.free("team-2");
        teams.free("team-3");
        assert!(teams.all_idle());
        // The journaled plan brings goals back to their teams.
        teams.goals.push_back(goal("c"));
        teams.teams[1].goal = Some(goal("b"));
        let plan = teams.plan_state();
        let mut resumed = Teams::new(layout(false, 6, 2, "main"));
        assert!(resumed.restore(plan));
        assert!(resumed.teams[1].busy);
        assert_eq!(resumed.goals.len(), 1);
    }
}
