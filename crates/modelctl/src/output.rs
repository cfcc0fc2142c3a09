//! What modelctl prints: aligned tables, RFC 3339 times, rounded metrics,
//! JSON, progress, and failures in plain words.

use std::fmt::Write as _;

use model_persistence::persistence;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `println!` for what a command prints on stdout, quiet on a closed pipe:
/// `modelctl card B | head -c 300` ends when `head` has read enough, as Unix
/// tools do (exit 0, nothing on stderr), where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes to stdout. A reader that went away (a broken pipe) ends the
/// process quietly with exit 0: everything it wanted was written. Any other
/// failure to write is reported and exits 1.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("modelctl: could not write to stdout: {e}");
        std::process::exit(1);
    }
}

/// A failure to report: the message, already in plain words. Exit code 1.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(persistence::error_chain(&e))
    }
}

/// The result of a command.
pub(crate) type Outcome = Result<(), Failure>;

/// `at` as RFC 3339 in UTC to the second, as in `2026-11-25T07:28:03Z`.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// A metric value for people: four decimals, trailing zeros dropped
/// (`0.927`, not `0.9269999861717224`); non-finite values as `NaN`, `inf`.
pub(crate) fn metric(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json(value: &impl serde::Serialize) -> Outcome {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// What a command prints: text for people or JSON for scripts (`--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

impl Format {
    pub(crate) fn json_if(flag: bool) -> Self {
        if flag {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// When a progress bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressBar {
    /// Only when stderr is a terminal.
    OnTerminal,
    /// Always (`--progress`).
    Always,
}

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table whose columns are as wide as their widest cell, whatever the values.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&self.columns[i].0))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), w)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let last = i + 1 == self.columns.len();
                let _ = match (align, last) {
                    (Align::Left, true) => write!(line, "{cell}"),
                    (Align::Left, false) => write!(line, "{cell:<w$}  "),
                    (Align::Right, true) => write!(line, "{cell:>w$}"),
                    (Align::Right, false) => write!(line, "{cell:>w$}  "),
                };
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) {
        write_stdout(format_args!("{}", self.render()));
    }
}

/// A progress bar on stderr, drawn only for terminals (or with `--progress`).
pub(crate) struct Progress {
    label: String,
    shown: bool,
    last_percent: Option<u64>,
}

impl Progress {
    pub(crate) fn new(label: impl Into<String>, when: ProgressBar) -> Self {
        use std::io::IsTerminal;
        Progress {
            label: label.into(),
            shown: when == ProgressBar::Always || std::io::stderr().is_terminal(),
            last_percent: None,
        }
    }

    pub(crate) fn update(&mut self, done: u64, total: u64) {
        if !self.shown {
            return;
        }
        let percent = (done.saturating_mul(100)).checked_div(total).unwrap_or(100).min(100);
        if self.last_percent == Some(percent) {
            return;
        }
        self.last_percent = Some(percent);
        let filled = (percent / 5) as usize;
        eprint!(
            "\r{} [{}{}] {percent:>3}% {:.1}/{:.1} MiB",
            self.label,
            "#".repeat(filled),
            ".".repeat(20 - filled),
            done as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
        if percent == 100 {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_print_rounded() {
        assert_eq!(metric(0.9269999861717224), "0.927");
        assert_eq!(metric(0.5), "0.5");
        assert_eq!(metric(1.0), "1");
        assert_eq!(metric(-0.00001), "0");
        assert_eq!(metric(12345.678901), "12345.6789");
        assert_eq!(metric(f64::NAN), "NaN");
    }

    #[test]
    fn times_are_rfc3339_utc_seconds() {
        let at = time::macros::datetime!(2026-11-25 07:28:03.123456 UTC);
        assert_eq!(rfc3339(at), "2026-11-25T07:28:03Z");
    }

    #[test]
    fn tables_stay_aligned_whatever_the_values() {
        let mut t = Table::new(&[("version", Align::Left), ("bytes", Align::Right), ("note", Align::Left)]);
        t.row(vec!["1.0.0".into(), "12".into(), "short".into()]);
        t.row(vec!["10.200.3000-rc.1".into(), "123456789012".into(), "x".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        let col = |line: &str, needle: &str| line.find(needle).expect("cell");
        // Right-aligned numbers end in the same column; the third column starts in one.
        assert_eq!(col(lines[1], "12") + 2, col(lines[2], "123456789012") + 12);
        assert_eq!(col(lines[1], "short"), col(lines[2], " x") + 1);
        assert_eq!(col(lines[0], "note"), col(lines[1], "short"));
    }
}
