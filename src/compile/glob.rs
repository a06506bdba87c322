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
    /// Plain text then one `*` (`view:*`, `res_*`): the text, then anything
    /// within its segment. Policies mostly use this form, and testing a
    /// prefix spares a regex search per rule and action.
    Prefix(Box<str>),
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
        const GLOB_SYNTAX: [char; 5] = ['*', '?', '[', '{', '\\'];
        if !pattern.contains(GLOB_SYNTAX) {
            return Ok(Pattern::Literal(pattern.into()));
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            if !prefix.contains(GLOB_SYNTAX) {
                return Ok(Pattern::Prefix(prefix.into()));
            }
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
            // `*` does not cross a `:`; a `/` is no separator in a name.
            Pattern::Prefix(prefix) => value
                .strip_prefix(&**prefix)
                .is_some_and(|rest| !rest.contains(':')),
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
    fn a_trailing_star_matches_as_globset_does() {
        let values = [
            "",
            "view",
            "view:",
            "view:public",
            "view:public:all",
            "view:a/b",
            "viewer",
            "res_",
            "res_0001",
            "res_a:b",
            "res/x",
            "doc:",
            "x:view:public",
        ];
        for pattern in ["view:*", "view*", "res_*", "doc:*", "a/b:*"] {
            let prefix = Pattern::new(pattern).unwrap();
            assert!(matches!(prefix, Pattern::Prefix(_)), "{pattern}");
            let translated = translate(pattern);
            let glob = globset::GlobBuilder::new(&translated)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .unwrap()
                .compile_matcher();
            for value in values {
                assert_eq!(
                    prefix.matches(value),
                    glob.is_match(translate(value)),
                    "{pattern} against {value:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_glob_is_an_error() {
        assert!(Pattern::new("[unclosed").is_err());
    }
}
