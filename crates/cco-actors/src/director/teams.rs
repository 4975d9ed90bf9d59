//! The Director's teams: their layout, their names, and which goal each works on.
//!
//! Pure bookkeeping (the actor shell in `mod.rs` performs the merges and messages): the
//! layout of team slots and workers from the config ([`layout`]), goals handed to idle teams
//! one at a time ([`Teams::dispatch`]), and when the Director re-plans ([`Teams::all_idle`]).
//!
//! In hierarchy mode a team is named by the Director: a slot without a name takes the name
//! of the first goal it gets (its `teams[].name`, slugged), which then names its branch
//! (`cco/<team>/team`), its EM (`em-<team>`), its workers' branches and its log lines.
//! `team-<n>` only when the goal's name is empty or another team has it already.

use std::collections::VecDeque;

use cco_protocol::TeamGoal;

use crate::board::PlanState;

/// One team: its lead, branch and workers, and its goal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Team {
    /// The lead's agent id (`em-<team>`, or `coordinator`); empty until the team is named.
    pub(crate) lead: String,
    /// The team's name; empty until its first goal names it.
    pub(crate) name: String,
    /// The branch its tasks merge into (`cco/<team>/team`, or the base branch in flat mode);
    /// empty until the branch exists.
    pub(crate) branch: String,
    pub(crate) worker_ids: Vec<String>,
    /// Holds a goal (or is merging it).
    pub(crate) busy: bool,
    pub(crate) goal: Option<TeamGoal>,
}

impl Team {
    pub(crate) fn is_named(&self) -> bool {
        !self.name.is_empty()
    }
}

/// The lead of team `name` in hierarchy mode.
pub(crate) fn em_id(name: &str) -> String {
    format!("em-{name}")
}

/// The team slots of a run: one Coordinator over every worker (flat), or one EM slot per
/// group of at most `group_size` workers, each named later by its first goal.
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
            name: crate::FLAT_TEAM.into(),
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
        teams.push(Team {
            lead: String::new(),
            name: String::new(),
            branch: String::new(),
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
        self.teams
            .iter()
            .position(|t| t.is_named() && t.name == name)
    }

    /// Names the slot (and its lead) `name`.
    pub(crate) fn name_slot(&mut self, slot: usize, name: String) {
        if let Some(team) = self.teams.get_mut(slot) {
            team.lead = em_id(&name);
            team.name = name;
        }
    }

    /// The name a team takes from `goal`: the goal's name as a slug, unless it is empty or
    /// another team has it; then `team-<slot + 1>` (made unique as well).
    pub(crate) fn name_for(&self, slot: usize, goal: &TeamGoal) -> String {
        let taken = |name: &str| self.teams.iter().any(|t| t.name == name);
        let slug = cco_protocol::slugify(&goal.name);
        if !slug.is_empty() && !taken(&slug) {
            return slug;
        }
        let fallback = format!("team-{}", slot + 1);
        let mut name = fallback.clone();
        let mut n = 2;
        while taken(&name) {
            name = format!("{fallback}-{n}");
            n += 1;
        }
        name
    }

    /// Hands pending goals to idle teams in slot order: a named team whose lead is up
    /// (`up(slot)`), or a slot not named yet, which takes the goal's name. Returns
    /// `(slot, goal)` for each (the caller starts the lead of a newly named slot).
    pub(crate) fn dispatch(&mut self, up: impl Fn(usize) -> bool) -> Vec<(usize, TeamGoal)> {
        let mut handed = Vec::new();
        for slot in 0..self.teams.len() {
            let team = &self.teams[slot];
            if team.busy || (team.is_named() && !up(slot)) {
                continue;
            }
            let Some(goal) = self.goals.pop_front() else {
                break;
            };
            if !self.teams[slot].is_named() {
                let name = self.name_for(slot, &goal);
                self.name_slot(slot, name);
            }
            let team = &mut self.teams[slot];
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
            team_names: self.teams.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// Resume: the journaled planning state and team names (hierarchy mode). Returns whether
    /// there was any goal or named team.
    pub(crate) fn restore(&mut self, plan: PlanState) -> bool {
        self.goals = plan.pending_goals.into_iter().collect();
        self.history = plan.history;
        let mut any = !self.goals.is_empty();
        for (slot, name) in plan.team_names.into_iter().enumerate() {
            if !name.is_empty() && slot < self.teams.len() {
                self.name_slot(slot, name);
                any = true;
            }
        }
        // Journals of a cco that numbered its teams: `team-<n>` is slot n - 1.
        for name in plan.team_goals.keys() {
            let numbered = name
                .strip_prefix("team-")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(slot) = numbered.and_then(|n| n.checked_sub(1)) {
                if self.slot_of(name).is_none()
                    && self.teams.get(slot).is_some_and(|t| !t.is_named())
                {
                    self.name_slot(slot, name.clone());
                }
            }
        }
        for team in &mut self.teams {
            if let Some(goal) = plan.team_goals.get(&team.name).filter(|_| team.is_named()) {
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
    fn hierarchy_mode_groups_workers_in_slots_named_by_their_first_goal() {
        let mut teams = Teams::new(layout(false, 7, 3, "main"));
        let sizes: Vec<usize> = teams.teams.iter().map(|t| t.worker_ids.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(teams.teams.iter().all(|t| !t.is_named()));
        assert_eq!(teams.teams[2].worker_ids, ["worker-7"]);
        teams
            .goals
            .extend([goal("parser"), goal("Parser"), goal("")]);
        let handed = teams.dispatch(|_| true);
        assert_eq!(handed.len(), 3);
        let names: Vec<(&str, &str)> = teams
            .teams
            .iter()
            .map(|t| (t.name.as_str(), t.lead.as_str()))
            .collect();
        // A duplicate after slugging, and an empty name, get the slot's number.
        assert_eq!(
            names,
            [
                ("parser", "em-parser"),
                ("team-2", "em-team-2"),
                ("team-3", "em-team-3")
            ]
        );
    }

    #[test]
    fn a_team_keeps_its_name_for_later_goals_and_a_numbered_name_stays_unique() {
        let mut teams = Teams::new(layout(false, 4, 2, "main"));
        teams.goals.extend([goal("team-2"), goal("lexer")]);
        teams.dispatch(|_| true);
        assert_eq!(teams.teams[0].name, "team-2");
        assert_eq!(teams.teams[1].name, "lexer");
        teams.free("team-2");
        teams.goals.push_back(goal("docs"));
        let handed = teams.dispatch(|_| true);
        assert_eq!(handed[0].0, 0);
        assert_eq!(teams.teams[0].name, "team-2", "named by its first goal");
        let mut other = Teams::new(layout(false, 4, 2, "main"));
        other.teams[0].name = "team-2".into();
        assert_eq!(other.name_for(1, &goal("")), "team-2-2");
    }

    #[test]
    fn goals_go_to_idle_teams_whose_lead_is_up_one_each() {
        let mut teams = Teams::new(layout(false, 6, 2, "main"));
        teams.goals.extend([goal("a"), goal("b"), goal("c")]);
        teams.dispatch(|_| true);
        teams.free("a");
        teams.free("b");
        teams.free("c");
        teams.goals.extend([goal("d"), goal("e")]);
        // Team a's lead is down (restarting): it gets nothing.
        let handed = teams.dispatch(|slot| slot != 0);
        let names: Vec<(usize, &str)> = handed.iter().map(|(s, g)| (*s, g.name.as_str())).collect();
        assert_eq!(names, [(1, "d"), (2, "e")]);
        assert!(!teams.all_idle());
        teams.free("b");
        teams.free("c");
        assert!(teams.all_idle());
        // The journaled plan brings names and goals back to their teams.
        teams.goals.push_back(goal("f"));
        teams.teams[1].goal = Some(goal("d"));
        teams.teams[1].busy = true;
        let plan = teams.plan_state();
        let mut resumed = Teams::new(layout(false, 6, 2, "main"));
        assert!(resumed.restore(plan));
        assert_eq!(resumed.teams[1].name, "b");
        assert_eq!(resumed.teams[1].lead, "em-b");
        assert!(resumed.teams[1].busy);
        assert_eq!(resumed.goals.len(), 1);
    }

    #[test]
    fn a_journal_of_numbered_teams_is_restored_to_its_slots() {
        let mut plan = PlanState::default();
        plan.team_goals.insert("team-2".into(), goal("x"));
        let mut teams = Teams::new(layout(false, 4, 2, "main"));
        assert!(teams.restore(plan));
        assert_eq!(teams.teams[1].name, "team-2");
        assert!(teams.teams[1].busy);
        assert!(!teams.teams[0].is_named());
    }
}
