//! Secrets and their redaction.
//!
//! A [`Secret`] can be read only through [`Secret::expose`]; every other way of looking at it
//! (`Debug`, `Display`, `Serialize`) prints `[REDACTED]`, so a stray `{:?}` of a config struct or
//! a serialized snapshot can never leak a key. [`Redactor`] scrubs free text (logs, claude
//! output, error messages) of known secret values and of anything shaped like an Anthropic key.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `Debug`, `Display` and `Serialize` print instead of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Prefix of Anthropic API keys; text containing it is redacted even when the key is unknown.
const ANTHROPIC_KEY_PREFIX: &str = "sk-ant-";

/// Secrets shorter than this are not redacted by value: replacing every "abc" in a log would
/// destroy the log while protecting nothing worth protecting.
pub const MIN_REDACTED_LEN: usize = 8;

/// A secret string (an API key, an auth token).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value. Call this only where the value leaves the process on purpose
    /// (the environment of a child `claude`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Replaces secret values in text with `[REDACTED:<name>]`.
///
/// Matching is a single left-to-right pass that prefers the longest known secret at each
/// position, so one secret that contains another is replaced whole and replacement markers are
/// never re-scanned.
#[derive(Clone, Default)]
pub struct Redactor {
    /// (marker, value), longest value first.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Builds a redactor from `(name, secret)` pairs. Values shorter than
    /// [`MIN_REDACTED_LEN`] are ignored.
    pub fn new<I, N, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = (N, S)>,
        N: Into<String>,
        S: Into<Secret>,
    {
        let mut list: Vec<(String, String)> = secrets
            .into_iter()
            .map(|(name, secret)| (name.into(), secret.into()))
            .filter(|(_, secret)| secret.expose().len() >= MIN_REDACTED_LEN)
            .map(|(name, secret)| (format!("[REDACTED:{name}]"), secret.0))
            .collect();
        list.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
        list.dedup_by(|a, b| a.1 == b.1);
        Redactor { secrets: list }
    }

    /// A redactor for every secret of every key (an `apiKey`, each `env` and `envOverrides`
    /// value).
    pub fn from_keys(keys: &[crate::ApiKey]) -> Self {
        Redactor::new(Self::key_secrets(keys))
    }

    /// `(name, secret)` pairs of every secret of `keys`, for [`Redactor::new`].
    pub fn key_secrets(keys: &[crate::ApiKey]) -> impl Iterator<Item = (String, Secret)> + '_ {
        keys.iter().flat_map(|key| {
            key.secrets()
                .map(|secret| (key.name.clone(), secret.clone()))
                .collect::<Vec<_>>()
        })
    }

    /// Number of secret values this redactor knows (besides the `sk-ant-` pattern).
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret replaced by `[REDACTED:<name>]` and every unknown
    /// `sk-ant-…` key by `[REDACTED]`. Borrows when there is nothing to replace.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.needs_redaction(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(ch) = rest.chars().next() {
            if let Some((marker, value)) = self
                .secrets
                .iter()
                .find(|(_, v)| rest.starts_with(v.as_str()))
            {
                out.push_str(marker);
                rest = &rest[value.len()..];
                continue;
            }
            if let Some(len) = anthropic_key_len(rest) {
                out.push_str(REDACTED);
                rest = &rest[len..];
                continue;
            }
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        Cow::Owned(out)
    }

    fn needs_redaction(&self, text: &str) -> bool {
        let mut search = text;
        while let Some(at) = search.find(ANTHROPIC_KEY_PREFIX) {
            if anthropic_key_len(&search[at..]).is_some() {
                return true;
            }
            search = &search[at + ANTHROPIC_KEY_PREFIX.len()..];
        }
        self.secrets
            .iter()
            .any(|(_, value)| text.contains(value.as_str()))
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Length of the `sk-ant-…` key at the start of `text`, if there is one.
fn anthropic_key_len(text: &str) -> Option<usize> {
    let tail = text.strip_prefix(ANTHROPIC_KEY_PREFIX)?;
    let body = tail
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    (body > 0).then_some(ANTHROPIC_KEY_PREFIX.len() + body)
}

/// Redacts only `sk-ant-…` shaped keys; used on text that may hold secrets this crate never
/// parsed successfully (e.g. a field name inside a malformed api-keys.json).
pub(crate) fn redact_key_shapes(text: &str) -> Cow<'_, str> {
    Redactor::default().redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_serialize_hide_the_value() {
        let s = Secret::new("sk-ant-api03-very-secret");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "sk-ant-api03-very-secret");
        let back: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back.expose(), "abc");
    }

    #[test]
    fn redacts_known_values_by_name() {
        let r = Redactor::new([("main", "supersecretvalue1"), ("short", "abc")]);
        assert_eq!(r.len(), 1);
        let out = r.redact("token=supersecretvalue1; other=abc supersecretvalue1");
        assert_eq!(out, "token=[REDACTED:main]; other=abc [REDACTED:main]");
    }

    #[test]
    fn prefers_longest_secret() {
        let r = Redactor::new([("short", "abcdefgh"), ("long", "abcdefghijkl")]);
        assert_eq!(
            r.redact("x abcdefghijkl y abcdefgh"),
            "x [REDACTED:long] y [REDACTED:short]"
        );
    }

    #[test]
    fn redacts_unknown_anthropic_keys() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("key: sk-ant-api03-AbC_d-9 end"),
            "key: [REDACTED] end"
        );
        // A bare prefix is not a key.
        assert!(matches!(r.redact("sk-ant- nothing"), Cow::Borrowed(_)));
        assert_eq!(r.redact("sk-ant- then sk-ant-x"), "sk-ant- then [REDACTED]");
    }

    #[test]
    fn borrows_clean_text_and_handles_unicode() {
        let r = Redactor::new([("k", "geheimnis-12345")]);
        assert!(matches!(r.redact("nothing here ✓"), Cow::Borrowed(_)));
        assert_eq!(r.redact("✓geheimnis-12345✓"), "✓[REDACTED:k]✓");
        assert!(!format!("{r:?}").contains("geheimnis"));
    }
}
