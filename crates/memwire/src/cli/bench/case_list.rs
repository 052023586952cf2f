//! What `bench rpc` and `bench store` share: each times a fixed list of cases one after the
//! other, every case within one [`Budget`] ([`RunArgs`]), and prints one row per case in a
//! table of timings, under it its notes, the machine and the targets ([`table`], [`text`]).

use std::path::PathBuf;

use anyhow::{Result, ensure};
use comfy_table::{CellAlignment, Table, presets};

use super::measure::Budget;
use super::report::{Row, machine_line, show_ns};
use super::targets::{Check, titled};
use super::transport::write_out;

/// The options of a case list, flattened into each command's `Args`. Their help speaks of
/// samples; a command that counts something else (calls) rewords it with
/// `#[command(mut_arg(..))]`, so `--help` says what is timed.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// A short run: at most 10 000 samples and about 0.35 s per case.
    #[arg(long)]
    quick: bool,
    /// Also write the rows as a JSON array to FILE (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Samples timed per case, at most (default 100 000; 10 000 with --quick). Each case also
    /// stops at its time budget.
    #[arg(long, value_name = "N")]
    iters: Option<u64>,
}

impl RunArgs {
    /// Each case's budget; `--iters 0` is refused.
    pub(crate) fn budget(&self) -> Result<Budget> {
        ensure!(self.iters != Some(0), "--iters must be at least 1");
        Ok(Budget::one_at_a_time(self.quick, self.iters))
    }

    pub(crate) fn quick(&self) -> bool {
        self.quick
    }

    /// Whether the JSON goes to stdout (`--json -`), in place of the text.
    pub(crate) fn json_to_stdout(&self) -> bool {
        self.json.as_ref().is_some_and(|p| p.as_os_str() == "-")
    }

    /// Writes `rows` as `--json` says, and `text` to stdout unless the JSON goes there.
    pub(crate) fn write_out(&self, rows: &[Row], text: impl FnOnce() -> String) -> Result<()> {
        write_out(self.json.as_deref(), rows, text)
    }
}

/// The table of a case list: SUITE, CASE, SIZE (`-` where it is 0), P50, P99, P99.9, MAX, the
/// command's own columns `more` (a row's cells from `cells`), then SAMPLES; the figures from
/// P50 on right-aligned.
pub(crate) fn table(rows: &[Row], more: &[&str], cells: impl Fn(&Row) -> Vec<String>) -> Table {
    let mut header = vec!["SUITE", "CASE", "SIZE", "P50", "P99", "P99.9", "MAX"];
    header.extend_from_slice(more);
    header.push("SAMPLES");
    let columns = header.len();
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(header);
    for r in rows {
        let mut row = vec![
            r.suite.as_str().to_owned(),
            r.case.to_owned(),
            if r.size > 0 {
                crate::cli::units::show_size(r.size as u64)
            } else {
                "-".to_owned()
            },
            show_ns(r.rtt_p50_ns as f64),
            show_ns(r.rtt_p99_ns as f64),
            show_ns(r.rtt_p999_ns as f64),
            show_ns(r.rtt_max_ns as f64),
        ];
        row.extend(cells(r));
        row.push(r.samples.to_string());
        table.add_row(row);
    }
    for col in 3..columns {
        right_align(&mut table, col);
    }
    table
}

/// Right-aligns column `col` of `table`.
pub(crate) fn right_align(table: &mut Table, col: usize) {
    if let Some(c) = table.column_mut(col) {
        c.set_cell_alignment(CellAlignment::Right);
    }
}

/// What a case list prints: its `table`, its `notes`, the machine, then `checks` under `title`.
pub(crate) fn text(
    table: &Table,
    notes: &str,
    rows: &[Row],
    checks: &[Check],
    title: &str,
) -> String {
    let mut out = table.to_string();
    out.push_str(notes);
    out.push_str(&machine_line(rows));
    out.push_str(&titled(checks, title));
    out
}
