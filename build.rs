//! Build metadata for `GET /api/server_info`: the commit and the build date.
//!
//! Both are only reported when known for sure. The commit comes from
//! `VERDICT_COMMIT` (set by CI) or `git rev-parse HEAD`; the build date from
//! `VERDICT_BUILD_DATE` or the reproducible-builds `SOURCE_DATE_EPOCH`.
//! Otherwise the value is `unknown`: the time this script last ran would not
//! be the time the binary was built, since Cargo does not rerun it for
//! source changes.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["VERDICT_COMMIT", "VERDICT_BUILD_DATE", "SOURCE_DATE_EPOCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let commit = env("VERDICT_COMMIT").or_else(git_commit);
    let date = env("VERDICT_BUILD_DATE").or_else(|| {
        env("SOURCE_DATE_EPOCH")
            .and_then(|s| s.parse::<i64>().ok())
            .map(rfc3339)
    });
    println!(
        "cargo:rustc-env=VERDICT_INFO_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=VERDICT_INFO_BUILD_DATE={}",
        date.as_deref().unwrap_or("unknown")
    );
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "HEAD"])?;
    // Rerun when HEAD moves: a checkout changes HEAD, a commit changes the ref.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watch(&Path::new(&dir).join("HEAD"));
    }
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        let dir = Path::new(&dir);
        watch(&dir.join("refs").join("heads"));
        watch(&dir.join("packed-refs"));
    }
    Some(commit)
}

fn watch(path: &Path) {
    // A missing path would make Cargo rerun this script on every build.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}
