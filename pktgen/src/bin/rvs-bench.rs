//! rvs-bench: measures rvsd against dpdk-testpmd and the kernel on this
//! machine (see `rvs-bench --help` and the `rvs_pktgen::bench` docs).
//! scripts/bench.sh builds the binaries, reserves hugepages and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rvs_pktgen::bench::{self, Binaries, Mode, Options, Run};

/// Runs every benchmark case against rvsd and, in the same run on the same
/// ports and cores, against the reference (dpdk-testpmd io or 5tswap, or
/// the kernel's nftables DNAT), interleaved reference/rvsd per pair. Prints
/// the table, writes every run's figures as JSON and the table as an SVG
/// chart. Needs root, hugepages and release binaries (scripts/bench.sh
/// sees to all three).
#[derive(Debug, Parser)]
#[command(name = "rvs-bench", version)]
struct Args {
    /// One pair of 2 s runs per case, a subset of the cases: under 2
    /// minutes.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// About a second per run, flows capped at 10 000; checks only that
    /// every run carried traffic and produced a well-formed summary, and
    /// exits non-zero otherwise.
    #[arg(long)]
    smoke: bool,
    /// Pairs (reference, rvsd) per case; default 3 (1 with --quick/--smoke).
    #[arg(long)]
    pairs: Option<usize>,
    /// Seconds of measurement per run.
    #[arg(long)]
    duration: Option<f64>,
    /// Only the cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Where rvs-pktgen, rvsd and rvsadm are; default: this program's directory.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where to write bench.json, bench.svg and the runs' logs.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mode = if args.smoke {
        Mode::Smoke
    } else if args.quick {
        Mode::Quick
    } else {
        Mode::Full
    };
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_default()
    });
    let binaries = Binaries::in_dir(&bin_dir);
    let missing = bench::check_prerequisites(&binaries);
    if !missing.is_empty() {
        eprintln!("rvs-bench: missing prerequisites:");
        for prerequisite in &missing {
            eprintln!("  - {}", prerequisite.0);
        }
        return ExitCode::FAILURE;
    }
    let mut options = Options::for_mode(mode, binaries, args.out.clone());
    if let Some(pairs) = args.pairs {
        options.pairs = pairs.max(1);
    }
    if let Some(seconds) = args.duration {
        match Duration::try_from_secs_f64(seconds) {
            Ok(duration) => options.duration = duration,
            Err(_) => {
                eprintln!("rvs-bench: --duration {seconds}: not a duration");
                return ExitCode::FAILURE;
            }
        }
    }
    options.filter = args.filter.clone();
    let report = bench::run_all(&options, report_run);
    println!();
    println!(
        "rvsd against the reference, same run ({:?} mode, {} pair(s) of {:.1} s, medians); CPU: {}",
        report.mode, report.pairs, report.duration_s, report.cpu
    );
    println!("{}", report.table());
    let notes = report.notes();
    if !notes.is_empty() {
        println!("{notes}");
    }
    for row in &report.rows {
        for failure in &row.failures {
            println!("failed: {}: {}", row.case, first_line(failure));
        }
    }
    match bench::write_outputs(&report, &options.out_dir) {
        Ok((json, svg)) => {
            println!("raw figures: {}", json.display());
            println!("chart:       {}", svg.display());
            println!("run logs:    {}", options.out_dir.join("runs").display());
        }
        Err(error) => {
            eprintln!("rvs-bench: {error}");
            return ExitCode::FAILURE;
        }
    }
    if mode == Mode::Smoke && !report.all_ok() {
        eprintln!("rvs-bench: smoke run failed: a run carried no traffic or produced no summary");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn report_run(run: &Run) {
    match (&run.error, run.figure) {
        (Some(error), _) => eprintln!(
            "rvs-bench: {} / {:?} pair {}: FAILED: {}",
            run.case,
            run.forwarder,
            run.pair,
            first_line(error)
        ),
        (None, figure) => eprintln!(
            "rvs-bench: {} / {:?} pair {}: {:.3}",
            run.case,
            run.forwarder,
            run.pair,
            figure.unwrap_or(0.0)
        ),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
