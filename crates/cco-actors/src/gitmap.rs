//! Maps configuration types onto cco-git's own input types.

use cco_config::{Config, LoadedConfig, MergeStrategy};

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

/// The secret values cco-git's scanner refuses in commits: every API key, and the values of
/// key entries' variables except the ones that name where to connect (`*_URL`, `*_HOST`,
/// `*_PORT`), which are not secret and may well appear in code.
/// Also the login token cco copies into agents' config dirs and the credential variables of
/// cco's environment (`ambient`: see `crate::secrets`).
pub fn secret_values(
    config: &LoadedConfig,
    ambient: &[(String, cco_config::Secret)],
) -> cco_git::SecretValues {
    let not_secret = |name: &str| {
        let n = name.to_ascii_uppercase();
        n.ends_with("_URL") || n.ends_with("_HOST") || n.ends_with("_PORT")
    };
    let keys = config.api_keys.iter().flat_map(|key| {
        key.env_vars()
            .into_iter()
            .filter(|(name, _)| !not_secret(name))
            .map(|(_, value)| value)
    });
    let around = ambient.iter().map(|(_, s)| s.expose().to_string());
    cco_git::SecretValues::new(keys.chain(around))
}
