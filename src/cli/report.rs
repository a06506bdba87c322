//! The reports of `bootstrap compile`: readable text, JSON and JUnit XML.

use std::fmt::Write as _;

use serde::Serialize;

use super::verify::{Detail, Details, Outcome, OutputProblem, SuiteResult, TestResults};

/// One policy error, with its position when known.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Store-relative file, empty when the error is not about one file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// The whole error as printed, `file:line:col: message`.
    pub error: String,
}

/// Everything `bootstrap compile` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompileReport {
    /// The policy folder.
    pub directory: String,
    /// Whether the policy set compiled.
    pub compiled: bool,
    /// Policies compiled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<usize>,
    /// Rules compiled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<usize>,
    /// Distinct CEL expressions compiled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expressions: Option<usize>,
    /// Every error of the set, as printed lines.
    pub errors: Vec<String>,
    /// The same errors with their positions.
    pub problems: Vec<Problem>,
    /// Test suite results; absent when the set did not compile or tests were skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_results: Option<TestResults>,
}

impl CompileReport {
    /// Whether the command should fail.
    pub fn failed(&self) -> bool {
        !self.compiled || self.test_results.as_ref().is_some_and(TestResults::failed)
    }
}

/// The readable report.
pub fn text(report: &CompileReport) -> String {
    let mut out = String::new();
    if !report.compiled {
        let _ = writeln!(
            out,
            "{}: the policy set does not compile ({} error{})",
            report.directory,
            report.errors.len(),
            plural(report.errors.len())
        );
        for error in &report.errors {
            let _ = writeln!(out, "  {error}");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{}: {} policies, {} rules, {} expressions compiled",
        report.directory,
        report.policies.unwrap_or(0),
        report.rules.unwrap_or(0),
        report.expressions.unwrap_or(0)
    );
    let Some(results) = &report.test_results else {
        return out;
    };
    if results.suites.is_empty() {
        let _ = writeln!(out, "No test suites (*_test.yaml) found");
        return out;
    }
    let _ = writeln!(out, "Test results");
    for suite in &results.suites {
        suite_text(&mut out, suite);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} test{} executed{}",
        results.summary.tests_count,
        plural(results.summary.tests_count as usize),
        tallies(&results.summary.result_counts)
    );
    out
}

fn suite_text(out: &mut String, suite: &SuiteResult) {
    let status = match suite.summary.overall_result {
        Outcome::Errored if suite.error.is_some() => " [ERROR]".to_string(),
        Outcome::Skipped if suite.skip_reason.is_some() => match suite.skip_reason.as_deref() {
            Some("") | None => " [SKIPPED]".to_string(),
            Some(reason) => format!(" [SKIPPED] {reason}"),
        },
        _ => tallies(&suite.summary.result_counts),
    };
    let _ = writeln!(out, "  {} ({}){status}", suite.name, suite.file);
    if let Some(error) = &suite.error {
        for line in error.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    for case in &suite.test_cases {
        for principal in &case.principals {
            for resource in &principal.resources {
                for action in &resource.actions {
                    if let Some(line) = problem_text(&action.details) {
                        let _ = writeln!(
                            out,
                            "    {} › {} › {} › {} [{}] {line}",
                            case.name,
                            principal.name,
                            resource.name,
                            action.name,
                            action.details.result.label()
                        );
                    }
                }
            }
        }
    }
}

fn problem_text(details: &Details) -> Option<String> {
    match &details.detail {
        Detail::Failure {
            expected,
            actual,
            outputs,
        } if outputs.is_empty() => Some(format!(
            "expected: {}, actual: {}",
            effect_name(*expected),
            effect_name(*actual)
        )),
        Detail::Failure { outputs, .. } => Some(
            outputs
                .iter()
                .map(|o| match &o.problem {
                    OutputProblem::Missing { expected } => {
                        format!("output {}: expected {expected}, actual: MISSING", o.src)
                    }
                    OutputProblem::Mismatched { actual, expected } => {
                        format!("output {}: expected {expected}, actual {actual}", o.src)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Detail::Error(message) => Some(message.clone()),
        _ => None,
    }
}

fn effect_name(effect: crate::engine::Effect) -> &'static str {
    match effect {
        crate::engine::Effect::Allow => "EFFECT_ALLOW",
        crate::engine::Effect::Deny => "EFFECT_DENY",
    }
}

fn tallies(counts: &[super::verify::Tally]) -> String {
    counts
        .iter()
        .map(|t| format!(" [{} {}]", t.count, t.result.label()))
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The JSON report (one document).
pub fn json(report: &CompileReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The JUnit XML report. Policy errors become failed test cases of a
/// `Policy validation` suite, so CI shows them like test failures.
pub fn junit(report: &CompileReport) -> String {
    let mut suites = String::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    if !report.compiled {
        let count = report.problems.len();
        tests += count;
        failures += count;
        let _ = writeln!(
            suites,
            "  <testsuite name=\"Policy validation\" file=\"{}\" tests=\"{count}\" failures=\"{count}\" errors=\"0\" skipped=\"0\">",
            escape(&report.directory)
        );
        for problem in &report.problems {
            let name = if problem.file.is_empty() {
                "policy set".to_string()
            } else {
                location(problem)
            };
            let _ = writeln!(
                suites,
                "    <testcase name=\"{}\" classname=\"compile\" file=\"{}\">\n      <failure type=\"COMPILE_ERROR\" message=\"{}\">{}</failure>\n    </testcase>",
                escape(&name),
                escape(&problem.file),
                escape(&problem.error),
                escape(&problem.error)
            );
        }
        let _ = writeln!(suites, "  </testsuite>");
    }
    if let Some(results) = &report.test_results {
        for suite in &results.suites {
            let counts = suite_junit(&mut suites, suite);
            tests += counts.0;
            failures += counts.1;
            errors += counts.2;
            skipped += counts.3;
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bootstrap compile {}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n{suites}</testsuites>\n",
        escape(&report.directory)
    )
}

fn location(problem: &Problem) -> String {
    match (problem.line, problem.column) {
        (0, _) => problem.file.clone(),
        (line, 0) => format!("{}:{line}", problem.file),
        (line, column) => format!("{}:{line}:{column}", problem.file),
    }
}

/// Writes one `<testsuite>`; returns (tests, failures, errors, skipped).
fn suite_junit(out: &mut String, suite: &SuiteResult) -> (usize, usize, usize, usize) {
    let mut cases = String::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let mut suite_level = String::new();
    if let Some(error) = &suite.error {
        errors += 1;
        let _ = writeln!(
            suite_level,
            "    <error type=\"RESULT_ERRORED\" message=\"{}\">{}</error>",
            escape(first_line(error)),
            escape(error)
        );
    }
    if suite.summary.overall_result == Outcome::Skipped && suite.skip_reason.is_some() {
        skipped += 1;
        let _ = writeln!(
            suite_level,
            "    <skipped message=\"{}\"/>",
            escape(suite.skip_reason.as_deref().unwrap_or(""))
        );
    }
    for case in &suite.test_cases {
        for principal in &case.principals {
            for resource in &principal.resources {
                for action in &resource.actions {
                    tests += 1;
                    let _ = writeln!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{}.{}.{}\" file=\"{}\">",
                        escape(&case.name),
                        escape(&principal.name),
                        escape(&resource.name),
                        escape(&action.name),
                        escape(&suite.file)
                    );
                    let _ = writeln!(
                        cases,
                        "      <properties>\n        <property name=\"principal\" value=\"{}\"/>\n        <property name=\"resource\" value=\"{}\"/>\n        <property name=\"action\" value=\"{}\"/>\n      </properties>",
                        escape(&principal.name),
                        escape(&resource.name),
                        escape(&action.name)
                    );
                    match &action.details.detail {
                        Detail::Failure { outputs, .. } => {
                            failures += 1;
                            let message = if outputs.is_empty() {
                                "Effect expectation unsatisfied"
                            } else {
                                "Output expectation unsatisfied"
                            };
                            let body = problem_text(&action.details).unwrap_or_default();
                            let _ = writeln!(
                                cases,
                                "      <failure type=\"RESULT_FAILED\" message=\"{message}\">{}</failure>",
                                escape(&body)
                            );
                        }
                        Detail::Error(message) => {
                            errors += 1;
                            let _ = writeln!(
                                cases,
                                "      <error type=\"RESULT_ERRORED\" message=\"{}\">{}</error>",
                                escape(first_line(message)),
                                escape(message)
                            );
                        }
                        Detail::SkipReason(reason) => {
                            skipped += 1;
                            let reason = if reason.is_empty() {
                                "This test was skipped"
                            } else {
                                reason
                            };
                            let _ =
                                writeln!(cases, "      <skipped message=\"{}\"/>", escape(reason));
                        }
                        Detail::Success { .. } => {}
                    }
                    let _ = writeln!(cases, "    </testcase>");
                }
            }
        }
    }
    let description = if suite.description.is_empty() {
        String::new()
    } else {
        format!(" description=\"{}\"", escape(&suite.description))
    };
    let _ = write!(
        out,
        "  <testsuite name=\"{}\" file=\"{}\"{description} tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n{suite_level}{cases}  </testsuite>\n",
        escape(&suite.name),
        escape(&suite.file)
    );
    (tests, failures, errors, skipped)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 forbids.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping() {
        assert_eq!(
            escape("a<b & \"c\"\n\u{1}"),
            "a&lt;b &amp; &quot;c&quot;&#10;"
        );
    }

    #[test]
    fn junit_lists_policy_errors_as_failures() {
        let report = CompileReport {
            directory: "p".to_string(),
            compiled: false,
            policies: None,
            rules: None,
            expressions: None,
            errors: vec!["a.yaml:3:5: bad <thing>".to_string()],
            problems: vec![Problem {
                file: "a.yaml".to_string(),
                line: 3,
                column: 5,
                error: "a.yaml:3:5: bad <thing>".to_string(),
            }],
            test_results: None,
        };
        let xml = junit(&report);
        assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"a.yaml:3:5\""), "{xml}");
        assert!(xml.contains("bad &lt;thing&gt;"), "{xml}");
        assert!(report.failed());
    }
}
