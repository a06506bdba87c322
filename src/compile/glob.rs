//! Action, resource and role patterns, compiled once.
//!
//! Cerbos matches these with gobwas/glob using `:` as the separator, and
//! reads a lone `*` as `**`: `view:*` matches `view:public` but not
//! `view:a:b`, while `*` matches everything. globset provides the matching;
//! it only knows `/` as a separator, so both sides are translated (`:` to
//! `/`, and any literal `/` to a character that cannot occur in a name).

use std::sync::Arc;

use globset::{Glob, GlobMatcher};

/// A compiled pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `*` (or `**`): matches anything.
    Any,
    /// No glob characters: plain equality.
    Literal(Box<str>),
    /// Anything else. Shared: policy sets repeat the same few patterns, and
    /// building a matcher (a regex automaton) is the costly part.
    Glob(Arc<GlobMatcher>),
}

const SLASH_STAND_IN: char = '\u{1}';

fn translate(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ':' => '/',
            '/' => SLASH_STAND_IN,
            c => c,
        })
        .collect()
}

impl Pattern {
    /// Compiles a pattern, or explains why it is not a valid glob.
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        if pattern == "*" || pattern == "**" {
            return Ok(Pattern::Any);
        }
        if !pattern.contains(['*', '?', '[', '{', '\\']) {
            return Ok(Pattern::Literal(pattern.into()));
        }
        // gobwas' `**` crosses separators wherever it appears; globset only
        // treats it so next to a separator, so such a pattern is matched
        // without separators.
        let crosses_separators = pattern.contains("**");
        let translated = translate(&pattern.replace("**", "*"));
        Glob::new(&translated)
            .and_then(|_| {
                globset::GlobBuilder::new(&translated)
                    .literal_separator(!crosses_separators)
                    .backslash_escape(true)
                    .build()
            })
            .map(|glob| Pattern::Glob(Arc::new(glob.compile_matcher())))
            .map_err(|err| format!("invalid pattern {pattern:?}: {}", err.kind()))
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Literal(literal) => **literal == *value,
            Pattern::Glob(matcher) if value.contains([':', '/']) => {
                matcher.is_match(translate(value))
            }
            Pattern::Glob(matcher) => matcher.is_match(value),
        }
    }

    /// Whether this is the match-anything pattern.
    pub fn is_any(&self) -> bool {
        matches!(self, Pattern::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(value)
    }

    #[test]
    fn star_alone_matches_everything() {
        assert!(matches("*", "view"));
        assert!(matches("*", "view:public:all"));
    }

    #[test]
    fn star_stays_within_a_segment() {
        assert!(matches("view:*", "view:public"));
        assert!(!matches("view:*", "view:public:all"));
        assert!(!matches("view:*", "view"));
        assert!(matches("*:public", "view:public"));
        assert!(matches("a:*:c", "a:b:c"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(matches("view:**", "view:public:all"));
        assert!(matches("view**", "view:public"));
    }

    #[test]
    fn other_glob_syntax() {
        assert!(matches("v?ew", "view"));
        assert!(matches("{view,edit}", "edit"));
        assert!(matches("[a-c]at", "bat"));
        assert!(!matches("[a-c]at", "rat"));
    }

    #[test]
    fn literals_and_slashes() {
        assert!(matches("documents/view", "documents/view"));
        assert!(matches("doc*/view", "docs/view"));
        assert!(!matches("view", "views"));
    }

    #[test]
    fn invalid_glob_is_an_error() {
        assert!(Pattern::new("[unclosed").is_err());
    }
}
