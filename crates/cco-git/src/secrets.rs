//! The secret scanner: every secret value cco knows (API keys, env values of key entries, an
//! OAuth token: [`crate::GitConfig::secrets`]) and well-known key shapes, looked for in the
//! lines and messages agents' commits add. A finding names where, never the value.

/// Values shorter than this are not scanned for (they would match ordinary text).
pub const MIN_SECRET_LEN: usize = 8;

/// What kind of secret `text` contains, if any: one of `known` (verbatim), or a well-known
/// key shape.
pub(crate) fn find(text: &str, known: &[String]) -> Option<&'static str> {
    if known
        .iter()
        .any(|k| k.len() >= MIN_SECRET_LEN && text.contains(k.as_str()))
    {
        return Some("a secret value cco was given (an API key or token of this run)");
    }
    key_shape(text)
}

fn token_len(s: &str, extra: &[u8]) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || extra.contains(b))
        .count()
}

/// A well-known credential shape in `text`.
fn key_shape(text: &str) -> Option<&'static str> {
    const SHAPES: &[(&str, usize, &[u8], &str)] = &[
        ("sk-ant-", 20, b"-_", "an Anthropic API key or token"),
        ("ghp_", 36, b"", "a GitHub token"),
        ("gho_", 36, b"", "a GitHub token"),
        ("ghu_", 36, b"", "a GitHub token"),
        ("ghs_", 36, b"", "a GitHub token"),
        ("ghr_", 36, b"", "a GitHub token"),
        ("github_pat_", 22, b"_", "a GitHub token"),
        ("xoxb-", 10, b"-", "a Slack token"),
        ("xoxp-", 10, b"-", "a Slack token"),
        ("AKIA", 16, b"", "an AWS access key id"),
    ];
    for (prefix, min, extra, what) in SHAPES {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before_ok = i == 0
                || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                || prefix.ends_with(['-', '_']);
            let after = &rest[i + prefix.len()..];
            if before_ok && token_len(after, extra) >= *min {
                return Some(what);
            }
            rest = &rest[i + prefix.len()..];
        }
    }
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_shapes() {
        let known = vec!["s3cr3t-value-123".to_string(), "short".to_string()];
        assert!(find("KEY=s3cr3t-value-123", &known).is_some());
        assert!(
            find("a short word", &known).is_none(),
            "short values are ignored"
        );
        assert_eq!(
            find(
                "ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv_wx",
                &[]
            ),
            Some("an Anthropic API key or token")
        );
        assert!(find("prefix sk-ant- then nothing", &[]).is_none());
        assert!(find("token ghp_0123456789abcdefghijklmnopqrstuvwxyz", &[]).is_some());
        assert!(find("AKIAIOSFODNN7EXAMPLE", &[]).is_some());
        assert!(find("MAKIAIOSFODNN7EXAMPLEX is a word", &[]).is_none());
        assert!(find("-----BEGIN OPENSSH PRIVATE KEY-----", &[]).is_some());
        assert!(find("fn main() { println!(\"hello\"); }", &[]).is_none());
    }
}
