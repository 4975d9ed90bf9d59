//! Finding JSON objects in an agent's free-form answer.
//!
//! The answer may be bare JSON, a fenced block (```` ```json ```` or plain ```` ``` ````), or
//! JSON surrounded by prose. Rather than trusting fences, [`Scanner`] finds every balanced
//! `{...}` span in text order, skipping braces inside JSON strings (with `\` escapes). Fences
//! need no special case: their content is found like any other object.
//!
//! The work is bounded so that no input (deep nesting, thousands of stray braces) can make
//! parsing slow: the match of every `{` is memoised, and a step budget caps the total scan.

use std::collections::HashMap;

/// Total bytes the scanner may step over for one answer.
const SCAN_BUDGET: usize = 64 << 20;

/// Finds the balanced `{...}` span starting at a given `{`.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    /// `{` offset -> offset of its matching `}` (None: never closed).
    memo: HashMap<usize, Option<usize>>,
    budget: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner {
            bytes: text.as_bytes(),
            memo: HashMap::new(),
            budget: SCAN_BUDGET,
        }
    }

    /// True once the step budget is used up: stop looking for more candidates.
    pub(crate) fn exhausted(&self) -> bool {
        self.budget == 0
    }

    /// Offset of the next `{` at or after `from`.
    pub(crate) fn next_open(&self, from: usize) -> Option<usize> {
        self.bytes
            .get(from..)?
            .iter()
            .position(|&b| b == b'{')
            .map(|i| from + i)
    }

    /// Offset of the `}` closing the `{` at `start`, reading as if a JSON value started there
    /// (so braces inside strings do not count). `None` if it never closes.
    ///
    /// Every `{` seen outside a string on the way gets its match memoised: a scan started at
    /// such a `{` would follow exactly the same path, so repeated starts cost nothing.
    pub(crate) fn close_of(&mut self, start: usize) -> Option<usize> {
        debug_assert_eq!(self.bytes.get(start), Some(&b'{'));
        if let Some(&m) = self.memo.get(&start) {
            return m;
        }
        let mut stack: Vec<usize> = Vec::new();
        let mut in_string = false;
        let mut escaped = false;
        for i in start..self.bytes.len() {
            if self.budget == 0 {
                // Out of budget: report "not closed" without memoising anything wrong.
                return None;
            }
            self.budget -= 1;
            let b = self.bytes[i];
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' => stack.push(i),
                b'}' => {
                    if let Some(open) = stack.pop() {
                        self.memo.insert(open, Some(i));
                        if stack.is_empty() {
                            return Some(i);
                        }
                    }
                }
                _ => {}
            }
        }
        for open in stack {
            self.memo.insert(open, None);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        let mut s = Scanner::new(text);
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(start) = s.next_open(pos) {
            match s.close_of(start) {
                Some(end) => {
                    out.push(&text[start..=end]);
                    pos = end + 1;
                }
                None => pos = start + 1,
            }
        }
        out
    }

    #[test]
    fn finds_top_level_objects_in_order() {
        assert_eq!(
            spans(r#"a {"x":1} b {"y":{"z":2}} c"#),
            vec![r#"{"x":1}"#, r#"{"y":{"z":2}}"#]
        );
    }

    #[test]
    fn braces_in_strings_and_escapes() {
        let t = r#"{"a":"} { \" }","b":"\\"} tail"#;
        assert_eq!(spans(t), vec![r#"{"a":"} { \" }","b":"\\"}"#]);
    }

    #[test]
    fn unclosed_prefix_does_not_hide_later_object() {
        assert_eq!(
            spans(r#"use { like this, then {"ok":true}"#),
            vec![r#"{"ok":true}"#]
        );
    }

    #[test]
    fn deep_unclosed_nesting_is_fast() {
        let t = "{".repeat(200_000);
        let start = std::time::Instant::now();
        assert!(spans(&t).is_empty());
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn memo_matches_fresh_scan() {
        let t = r#"{ {"a":1} {"b":"}"} "#;
        let mut s = Scanner::new(t);
        assert_eq!(s.close_of(0), None);
        let inner = t.find(r#"{"b""#).unwrap();
        let fresh = Scanner::new(t).close_of(inner);
        assert_eq!(s.close_of(inner), fresh);
        assert_eq!(&t[inner..=fresh.unwrap()], r#"{"b":"}"}"#);
    }
}
