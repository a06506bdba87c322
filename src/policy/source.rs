//! The text of a policy file, kept to place errors found after parsing.

use std::sync::Arc;

/// A file's name and text.
#[derive(Debug)]
pub struct SourceText {
    /// Store-relative name.
    pub name: Arc<str>,
    /// The whole file.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceText {
    /// Wraps a file's text.
    pub fn new(name: &str, text: String) -> SourceText {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            name: Arc::from(name),
            text,
            line_starts,
        }
    }

    /// 1-based (line, column) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(0, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// Position of the first occurrence of `needle` at or after `from`.
    ///
    /// Multi-line needles (block-scalar CEL) are matched on their first line,
    /// since YAML re-indents the rest.
    pub fn locate(&self, from: usize, needle: &str) -> Option<(usize, usize)> {
        let needle = needle.lines().map(str::trim).find(|l| !l.is_empty())?;
        let haystack = self.text.get(from..)?;
        haystack.find(needle).map(|i| self.position(from + i))
    }

    /// Byte offsets at which the YAML documents of the file start.
    pub fn document_offsets(&self) -> Vec<usize> {
        let mut offsets = vec![0];
        for &start in &self.line_starts[1..] {
            let rest = &self.text[start..];
            let line = rest.lines().next().unwrap_or("");
            if line.trim_end() == "---" || line.starts_with("--- ") {
                offsets.push(start);
            }
        }
        offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let source = SourceText::new("f.yaml", "a: 1\nbb: two\n".to_string());
        assert_eq!(source.position(0), (1, 1));
        assert_eq!(source.position(5), (2, 1));
        assert_eq!(source.position(9), (2, 5));
        assert_eq!(source.locate(0, "two"), Some((2, 5)));
        assert_eq!(source.locate(0, "missing"), None);
    }

    #[test]
    fn multi_line_needles_match_their_first_line() {
        let source = SourceText::new("f.yaml", "expr: |\n  a ==\n  b\n".to_string());
        assert_eq!(source.locate(0, "a ==\nb\n"), Some((2, 3)));
    }

    #[test]
    fn document_markers() {
        let source = SourceText::new("f.yaml", "---\na: 1\n---\nb: 2\n".to_string());
        assert_eq!(source.document_offsets(), vec![0, 9]);
    }
}
