//! Maps configuration types onto cco-git's own input types.

use cco_config::{Config, MergeStrategy};

pub fn strategy(strategy: MergeStrategy) -> cco_git::MergeStrategy {
    match strategy {
        MergeStrategy::Agent => cco_git::MergeStrategy::Agent,
        MergeStrategy::Ours => cco_git::MergeStrategy::Ours,
        MergeStrategy::Theirs => cco_git::MergeStrategy::Theirs,
        MergeStrategy::Union => cco_git::MergeStrategy::Union,
        MergeStrategy::Skip => cco_git::MergeStrategy::Skip,
        MergeStrategy::Fail => cco_git::MergeStrategy::Fail,
    }
}

pub fn clone_options(config: &Config) -> cco_git::CloneOptions {
    cco_git::CloneOptions {
        depth: config.git_clone_options.depth,
        single_branch: config.git_clone_options.single_branch,
        no_submodules: config.git_clone_options.no_submodules,
    }
}
