//! `memwire bench transport`: every case at every size and payload mode, then the table.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use indicatif::{ProgressBar, ProgressStyle};

use super::case::{self, Case, Payload};
use super::measure::{Budget, Measured, measure};
use super::pin;
use super::report::{self, Machine, Row};
use super::targets;
use crate::cli::units::parse_size;

/// Measure message passing between two processes.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A short run: at most 10 000 round trips and about 0.35 s per row (≤ 30 s in all).
    #[arg(long)]
    quick: bool,
    /// Also write the rows as a JSON array to FILE (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Message sizes, comma-separated (units allowed: 64KiB).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_size,
        default_value = "8,64,4096,65536,1048576",
    )]
    sizes: Vec<u64>,
    /// Round trips timed per row, at most (default 100 000; 10 000 with --quick). Each row also
    /// stops at its time budget.
    #[arg(long, value_name = "N")]
    iters: Option<u64>,
    /// Only these cases, comma-separated (default: all: spin, block, floor-spin, touch-floor,
    /// floor-futex, unix-socket, pipe). "× FLOOR" needs floor-spin in the run.
    #[arg(long, value_delimiter = ',', value_name = "CASES")]
    cases: Vec<String>,
}

impl Args {
    fn budget(&self) -> Budget {
        if self.quick {
            Budget {
                iters: self.iters.unwrap_or(10_000),
                echo_time: Duration::from_millis(350),
                stream_time: Duration::from_millis(150),
            }
        } else {
            Budget {
                iters: self.iters.unwrap_or(100_000),
                echo_time: Duration::from_secs(3),
                stream_time: Duration::from_secs(1),
            }
        }
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    ensure!(
        args.sizes.iter().all(|&s| s >= 1),
        "sizes must be at least 1 byte"
    );
    ensure!(args.iters != Some(0), "--iters must be at least 1");
    let sizes: Vec<usize> = args
        .sizes
        .iter()
        .map(|&s| usize::try_from(s).context("size too large for this machine"))
        .collect::<Result<_>>()?;
    let cases: Vec<&'static dyn Case> = if args.cases.is_empty() {
        case::all().to_vec()
    } else {
        let chosen = args
            .cases
            .iter()
            .map(|name| case::by_name(name))
            .collect::<Result<Vec<_>>>()?;
        // In the usual order, whatever the order given.
        case::all()
            .iter()
            .copied()
            .filter(|c| chosen.iter().any(|k| k.name() == c.name()))
            .collect()
    };
    let budget = args.budget();
    let machine = Machine::detect(pin::place);
    let peer_cpu = machine.peer_cpu;
    let plan: Vec<(usize, &'static dyn Case, Payload)> = sizes
        .iter()
        .flat_map(|&size| {
            cases
                .iter()
                .flat_map(move |&c| c.payloads().iter().map(move |&p| (size, c, p)))
        })
        .collect();
    let bar = progress(plan.len() as u64);
    let mut rows: Vec<Row> = Vec::with_capacity(plan.len());
    for (size, case, payload) in plan {
        bar.set_message(format!("{} {size} B {}", case.name(), payload.as_str()));
        let measured = measure(case, size, payload, &budget, peer_cpu)?;
        rows.push(row(case, size, payload, &measured, &machine));
        bar.inc(1);
    }
    bar.finish_and_clear();
    set_x_floor(&mut rows);
    output(args, &rows)
}

/// A bar on stderr while the runs go, none when stderr is not a terminal.
pub(crate) fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn row(case: &dyn Case, size: usize, payload: Payload, m: &Measured, machine: &Machine) -> Row {
    let samples = m.rtt.len();
    let one_way_mean_ns = m.total_ns as f64 / (2 * samples.max(1)) as f64;
    let (msgs_per_s, throughput_from) = match m.stream {
        Some((n, t)) if !t.is_zero() => (n as f64 / t.as_secs_f64(), "stream"),
        _ => (1e9 / one_way_mean_ns, "round_trip"),
    };
    Row {
        suite: case.suite(),
        case: case.name(),
        size,
        payload,
        samples,
        rtt_p50_ns: m.rtt.value_at_quantile(0.5),
        rtt_p99_ns: m.rtt.value_at_quantile(0.99),
        rtt_p999_ns: m.rtt.value_at_quantile(0.999),
        rtt_max_ns: m.rtt.max(),
        one_way_mean_ns,
        msgs_per_s,
        gb_per_s: case.moves_payload().then(|| msgs_per_s * size as f64 / 1e9),
        throughput_from,
        wake_syscalls_per_msg: m.wake_syscalls_per_msg,
        x_floor: m
            .floor_spin_p50_ns
            .filter(|&f| f > 0)
            .map(|f| m.rtt.value_at_quantile(0.5) as f64 / f as f64),
        floor_spin_p50_ns: m.floor_spin_p50_ns,
        touch_floor_p50_ns: m.touch_floor_p50_ns,
        transport_spin_p50_ns: None,
        floor_futex_p50_ns: m.floor_futex_p50_ns,
        x_floor_futex: m
            .floor_futex_p50_ns
            .filter(|&f| f > 0)
            .map(|f| m.rtt.value_at_quantile(0.5) as f64 / f as f64),
        machine: machine.clone(),
    }
}

/// Fills in "× floor" where the row has no interleaved floor of its own: its p50 over
/// floor-spin's p50 at the same size.
fn set_x_floor(rows: &mut [Row]) {
    let floors: Vec<(usize, u64)> = rows
        .iter()
        .filter(|r| r.case == "floor-spin")
        .map(|r| (r.size, r.rtt_p50_ns))
        .collect();
    for r in rows.iter_mut().filter(|r| r.x_floor.is_none()) {
        if let Some(&(_, floor)) = floors.iter().find(|(s, _)| *s == r.size) {
            r.x_floor = (floor > 0).then(|| r.rtt_p50_ns as f64 / floor as f64);
        }
    }
}

fn output(args: &Args, rows: &[Row]) -> Result<()> {
    write_out(args.json.as_deref(), rows, || {
        format!(
            "{}{}",
            report::table(rows),
            targets::section(&targets::check(rows))
        )
    })
}

/// Writes `rows` as JSON to `json` if given (`-`: to stdout, instead of the text), and the
/// text to stdout otherwise.
pub(crate) fn write_out(
    json: Option<&Path>,
    rows: &[Row],
    text: impl FnOnce() -> String,
) -> Result<()> {
    let to_stdout = json.is_some_and(|p| p.as_os_str() == "-");
    let mut out = std::io::stdout().lock();
    if let Some(path) = json.filter(|_| !to_stdout) {
        let json = serde_json::to_vec_pretty(rows)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if to_stdout {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", text())?;
    }
    out.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::case::Suite;
    use crate::cli::bench::report::sample_row;

    #[test]
    fn x_floor_keeps_an_interleaved_floor_and_else_takes_the_floor_row() {
        let row = |case, p50| {
            sample_row(
                Suite::Transport,
                case,
                8,
                Payload::Untouched,
                p50,
                1.0,
                "stream",
            )
        };
        let mut spin = row("spin", 300);
        spin.floor_spin_p50_ns = Some(200);
        spin.x_floor = Some(1.5);
        let mut rows = [spin, row("unix-socket", 20_000), row("floor-spin", 100)];
        set_x_floor(&mut rows);
        assert_eq!(rows[0].x_floor, Some(1.5));
        assert_eq!(rows[1].x_floor, Some(200.0));
        assert_eq!(rows[2].x_floor, Some(1.0));
    }
}
