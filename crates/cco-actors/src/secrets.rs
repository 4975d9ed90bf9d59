//! Secret values cco knows besides the config's keys: the login cco copies into every agent's
//! config dir (the tokens of the user's `.credentials.json`), and the credential variables of
//! cco's own environment, which every agent inherits. Together with the config's keys they
//! feed both guards: the redactor of logs, transcripts and prompts, and cco-git's scanner,
//! which keeps commits holding one from every shared ref.

use std::path::Path;

use cco_config::{AuthMode, LoadedConfig, Secret};

/// Credential variables of cco's environment that agents inherit.
const ENV_CREDENTIALS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// `(name, value)` of every secret of the run's surroundings (see the module docs).
pub(crate) fn ambient(config: &LoadedConfig) -> Vec<(String, Secret)> {
    let mut found: Vec<(String, Secret)> = ENV_CREDENTIALS
        .iter()
        .filter_map(|name| {
            let value = std::env::var(name).ok()?;
            Some((format!("env.{name}"), Secret::new(value)))
        })
        .collect();
    // The login is copied into agents' config dirs unless only API keys are used.
    if !matches!(config.config.auth_mode, AuthMode::ApiKeysOnly) {
        if let Some(dir) = crate::auth::user_config_dir() {
            found.extend(login_tokens(&dir.join(".credentials.json")));
        }
    }
    found
}

/// The tokens of a Claude Code login file (`{"claudeAiOauth": {"accessToken": ..,
/// "refreshToken": ..}}`): every string under a key naming a token or a secret, at any depth.
fn login_tokens(path: &Path) -> Vec<(String, Secret)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect(&value, "", &mut found);
    found
}

fn collect(value: &serde_json::Value, key: &str, found: &mut Vec<(String, Secret)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect(v, k, found);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect(v, key, found);
            }
        }
        serde_json::Value::String(s) => {
            let k = key.to_ascii_lowercase();
            if k.contains("token") || k.contains("secret") || k.contains("key") {
                found.push((format!("login.{key}"), Secret::new(s.clone())));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_of_a_login_file_is_found_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".credentials.json");
        std::fs::write(
            &path,
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-aaaaaaaa","refreshToken":"sk-ant-ort01-bbbbbbbb","expiresAt":1760000000000,"scopes":["user:inference"],"subscriptionType":"max"}}"#,
        )
        .unwrap();
        let mut values: Vec<String> = login_tokens(&path)
            .into_iter()
            .map(|(_, s)| s.expose().to_string())
            .collect();
        values.sort();
        assert_eq!(values, ["sk-ant-oat01-aaaaaaaa", "sk-ant-ort01-bbbbbbbb"]);
        assert!(login_tokens(&dir.path().join("missing.json")).is_empty());
    }
}
