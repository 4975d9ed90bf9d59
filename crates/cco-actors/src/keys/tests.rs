//! Unit tests of the credential pool: rotation, benches, auth modes, admission.

use super::*;
use cco_config::parse_api_keys;
use std::path::Path;

fn keys() -> Vec<ApiKey> {
    parse_api_keys(
        r#"[{"name":"a","apiKey":"sk-ant-aaaaaaaaaaaa"},{"name":"b","apiKey":"sk-ant-bbbbbbbbbbbb"}]"#,
        Path::new("api-keys.json"),
    )
    .expect("valid keys")
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn name(pool: &KeyPool, now: DateTime<Utc>) -> String {
    pool.acquire(now).expect("a credential").name().to_string()
}

fn status(state: RateLimitState, utilization: f64, resets_at: DateTime<Utc>) -> RateLimitStatus {
    RateLimitStatus {
        state,
        resets_at: Some(resets_at),
        utilization: Some(utilization),
        limit_type: Some("five_hour".into()),
        surpassed_threshold: None,
        using_overage: None,
        windows: Vec::new(),
    }
}

#[test]
fn keys_first_rotates_benches_falls_back_to_the_login_and_returns_to_keys_at_their_reset() {
    let pool = KeyPool::new(AuthMode::ApiKeysFirst, keys(), true, 0.9);
    let now = Utc::now();
    assert_eq!(name(&pool, now), "a");
    assert_eq!(name(&pool, now), "b");
    pool.bench("a", now + secs(30));
    assert_eq!(name(&pool, now), "b");
    assert_eq!(name(&pool, now), "b");
    pool.bench("b", now + secs(10));
    assert_eq!(name(&pool, now), "oauth");
    // b's reset passed: back to the keys.
    assert_eq!(name(&pool, now + secs(11)), "b");
}

#[test]
fn keys_first_without_a_working_login_pauses_instead() {
    let pool = KeyPool::new(AuthMode::ApiKeysFirst, keys(), false, 0.9);
    let now = Utc::now();
    pool.bench("a", now + secs(30));
    pool.bench("b", now + secs(10));
    assert_eq!(pool.acquire(now).unwrap_err().until, now + secs(10));
}

#[test]
fn keys_only_pauses_until_the_earliest_reset_and_recovers() {
    let pool = KeyPool::new(AuthMode::ApiKeysOnly, keys(), true, 0.9);
    let now = Utc::now();
    pool.bench("a", now + secs(30));
    pool.bench("b", now + secs(10));
    let err = pool.acquire(now).unwrap_err();
    assert_eq!(err.until, now + secs(10));
    assert_eq!(name(&pool, now + secs(11)), "b");
    assert_eq!(pool.benched(), vec![("a".to_string(), now + secs(30))]);
}

#[test]
fn oauth_uses_the_login_then_the_keys_while_it_is_limited_then_the_login_again() {
    let pool = KeyPool::new(AuthMode::Oauth, keys(), false, 0.9);
    let now = Utc::now();
    assert!(matches!(pool.acquire(now), Ok(Credential::Oauth)));
    pool.bench("oauth", now + secs(5));
    assert_eq!(name(&pool, now), "a");
    assert_eq!(name(&pool, now), "b");
    assert_eq!(name(&pool, now + secs(6)), "oauth");
    // Without keys, a limited login pauses new starts until its reset.
    let alone = KeyPool::new(AuthMode::Oauth, Vec::new(), true, 0.9);
    alone.bench("oauth", now + secs(5));
    assert_eq!(alone.acquire(now).unwrap_err().until, now + secs(5));
}

#[test]
fn a_credential_without_headroom_gets_no_new_process_while_another_has_some() {
    let pool = KeyPool::new(AuthMode::ApiKeysOnly, keys(), false, 0.9);
    let now = Utc::now();
    let reset = now + secs(3600);
    assert!(pool.observe(
        "a",
        &status(RateLimitState::AllowedWarning, 0.8, reset),
        now
    ));
    for _ in 0..3 {
        assert_eq!(name(&pool, now), "b");
    }
    // Utilization above the threshold counts as a warning too, even when "allowed".
    assert!(pool.observe("b", &status(RateLimitState::Allowed, 0.93, reset), now));
    // No headroom anywhere: the warned credentials are still allowed.
    assert!(pool.acquire(now).is_ok());
    // Below the threshold again: headroom.
    assert!(!pool.observe("b", &status(RateLimitState::Allowed, 0.5, reset), now));
    assert_eq!(name(&pool, now), "b");
    let lines = pool.statuses(now);
    assert_eq!(lines[0].state, CredentialState::Warning);
    assert_eq!(lines[0].until, Some(reset));
    assert_eq!(lines[0].utilization, Some(0.8));
    assert_eq!(lines[1].state, CredentialState::Ready);
    // The warning ends at its reset.
    assert_eq!(name(&pool, reset + secs(1)), "a");
    assert_eq!(
        pool.statuses(reset + secs(1))[0].state,
        CredentialState::Ready
    );
}

#[test]
fn statuses_name_benched_credentials_with_their_reset_and_the_fallback() {
    let pool = KeyPool::new(AuthMode::Oauth, keys(), false, 0.9);
    let now = Utc::now();
    pool.bench("oauth", now + secs(60));
    let lines = pool.statuses(now);
    assert_eq!(lines.len(), 3);
    assert!(lines[0].login && !lines[0].fallback);
    assert_eq!(lines[0].state, CredentialState::Limited);
    assert_eq!(lines[0].until, Some(now + secs(60)));
    assert!(lines[1].fallback && !lines[1].login);
}

#[test]
fn key_env_carries_the_secret_only_in_the_environment() {
    let cred = Credential::Key(keys().remove(0));
    assert_eq!(
        cred.env(),
        vec![(
            "ANTHROPIC_API_KEY".to_string(),
            "sk-ant-aaaaaaaaaaaa".to_string()
        )]
    );
    assert!(!format!("{cred:?}").contains("sk-ant-aaaa"));
}
