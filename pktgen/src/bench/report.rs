//! The benchmark's outputs: the table (stdout), every run's raw figures
//! (JSON) and the table as a chart (SVG).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::harness::median;
use super::{Case, Forwarder, Metric, Mode, Options, Run};

/// One row of the table: medians over the pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub case: String,
    pub metric: Metric,
    pub reference: Forwarder,
    pub rvsd: Option<f64>,
    pub reference_figure: Option<f64>,
    /// Median of the per-pair ratios rvsd / reference.
    pub ratio: Option<f64>,
    pub pair_ratios: Vec<f64>,
    pub rvsd_loss: Option<f64>,
    pub rvsd_p50_ns: Option<u64>,
    pub rvsd_p99_ns: Option<u64>,
    pub rvsd_cycles_per_packet: Option<f64>,
    pub reference_cycles_per_packet: Option<f64>,
    /// rvsd's workers in this case.
    pub workers: u16,
    /// Median over rvsd's runs of packets handed from one worker to
    /// another per packet transmitted.
    pub rvsd_hand_offs_per_packet: Option<f64>,
    /// Median over rvsd's runs of packets dropped on full hand-off rings.
    pub rvsd_hand_off_drops: Option<u64>,
    /// With several workers: the same case with one worker, and rvsd's
    /// figure over that case's (medians of this run).
    pub one_worker_case: Option<String>,
    pub one_worker_ratio: Option<f64>,
    pub failures: Vec<String>,
}

/// Everything a benchmark run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub mode: Mode,
    pub pairs: usize,
    pub duration_s: f64,
    pub tsc_hz: u64,
    pub cpu: String,
    pub rows: Vec<Row>,
    pub runs: Vec<Run>,
}

impl Report {
    pub(super) fn new(options: &Options, tsc_hz: u64, cases: Vec<Case>, runs: Vec<Run>) -> Report {
        let mut rows: Vec<Row> = cases.iter().map(|case| row(case, &runs)).collect();
        let figures: Vec<(String, Option<f64>)> = rows
            .iter()
            .map(|row| (row.case.clone(), row.rvsd))
            .collect();
        for row in &mut rows {
            let base = row.one_worker_case.as_ref().and_then(|name| {
                figures
                    .iter()
                    .find(|(case, _)| case == name)
                    .and_then(|(_, figure)| *figure)
            });
            row.one_worker_ratio = row
                .rvsd
                .zip(base)
                .and_then(|(figure, base)| (base > 0.0).then_some(figure / base));
        }
        Report {
            mode: options.mode,
            pairs: options.pairs,
            duration_s: options.duration.as_secs_f64(),
            tsc_hz,
            cpu: cpu_model(),
            rows,
            runs,
        }
    }

    /// Whether every run carried traffic.
    pub fn all_ok(&self) -> bool {
        self.runs.iter().all(Run::ok)
    }

    /// The table, as printed and pasted into BENCHMARKS.md (Markdown).
    pub fn table(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "| case | rvsd | reference | ratio (per-pair median) | rvsd loss | rvsd latency p50 / p99 | rvsd cycles/pkt | reference cycles/pkt |"
        );
        let _ = writeln!(text, "|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let unit = match row.metric {
                Metric::Mpps => "Mpps",
                Metric::MillionConnections => "M conn/s",
            };
            let figure = |value: Option<f64>| {
                value.map_or_else(|| "failed".to_owned(), |v| format!("{v:.3} {unit}"))
            };
            let reference = match row.reference {
                Forwarder::Testpmd => "testpmd",
                Forwarder::Kernel => "kernel",
                Forwarder::Rvsd => "rvsd",
            };
            let latency = match (row.rvsd_p50_ns, row.rvsd_p99_ns) {
                (Some(p50), Some(p99)) => {
                    format!("{:.1} / {:.1} µs", p50 as f64 / 1e3, p99 as f64 / 1e3)
                }
                _ => "–".to_owned(),
            };
            let cycles =
                |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                text,
                "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
                row.case,
                figure(row.rvsd),
                reference,
                figure(row.reference_figure),
                row.ratio
                    .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}")),
                row.rvsd_loss
                    .map_or_else(|| "–".to_owned(), |l| format!("{:.2} %", l * 100.0)),
                latency,
                cycles(row.rvsd_cycles_per_packet),
                cycles(row.reference_cycles_per_packet),
            );
        }
        text
    }

    /// Lines that go under the table: for each case with several workers,
    /// its figure against one worker's and the hand-off rate.
    pub fn notes(&self) -> String {
        let mut text = String::new();
        for row in self.rows.iter().filter(|row| row.workers > 1) {
            let ratio = match (&row.one_worker_case, row.one_worker_ratio) {
                _ if row.rvsd.is_none() => "rvsd failed".to_owned(),
                (Some(base), Some(ratio)) => format!("{ratio:.2} of \"{base}\""),
                (Some(base), None) => format!("\"{base}\" not measured in this run"),
                (None, _) => "no 1-worker case".to_owned(),
            };
            let hand_offs = row.rvsd_hand_offs_per_packet.map_or_else(
                || "hand-offs unknown".to_owned(),
                |rate| format!("{rate:.3} hand-offs per forwarded packet"),
            );
            let drops = row.rvsd_hand_off_drops.map_or_else(String::new, |drops| {
                format!(", {drops} dropped on full hand-off rings")
            });
            let _ = writeln!(
                text,
                "{}: {} workers, {ratio}; {hand_offs}{drops}",
                row.case, row.workers
            );
        }
        text
    }
}

fn row(case: &Case, runs: &[Run]) -> Row {
    let of = |forwarder: Forwarder| -> Vec<&Run> {
        runs.iter()
            .filter(|run| run.case == case.name && run.forwarder == forwarder)
            .collect()
    };
    let (ours, theirs) = (of(Forwarder::Rvsd), of(case.reference()));
    let med = |runs: &[&Run], pick: &dyn Fn(&Run) -> Option<f64>| {
        let mut values: Vec<f64> = runs.iter().filter_map(|run| pick(run)).collect();
        median(&mut values)
    };
    let pair_ratios: Vec<f64> = ours
        .iter()
        .filter_map(|run| {
            let reference = theirs.iter().find(|other| other.pair == run.pair)?;
            let (a, b) = (run.figure?, reference.figure?);
            (b > 0.0).then_some(a / b)
        })
        .collect();
    let mut ratios = pair_ratios.clone();
    let latency = |pick: &dyn Fn(&Run) -> Option<u64>| {
        med(&ours, &|run| pick(run).map(|ns| ns as f64)).map(|ns| ns as u64)
    };
    Row {
        case: case.name.to_owned(),
        metric: case.metric,
        reference: case.reference(),
        rvsd: med(&ours, &|run| run.figure),
        reference_figure: med(&theirs, &|run| run.figure),
        ratio: median(&mut ratios),
        pair_ratios,
        rvsd_loss: med(&ours, &|run| run.loss_ratio),
        rvsd_p50_ns: latency(&|run| run.p50_ns),
        rvsd_p99_ns: latency(&|run| run.p99_ns),
        rvsd_cycles_per_packet: med(&ours, &|run| run.cycles_per_packet),
        reference_cycles_per_packet: med(&theirs, &|run| run.cycles_per_packet),
        workers: case.workers,
        rvsd_hand_offs_per_packet: med(&ours, &|run| run.hand_offs_per_packet),
        rvsd_hand_off_drops: med(&ours, &|run| run.hand_off_drops.map(|d| d as f64))
            .map(|drops| drops as u64),
        one_worker_case: case.one_worker().map(|base| base.name.to_owned()),
        one_worker_ratio: None,
        failures: runs
            .iter()
            .filter(|run| run.case == case.name)
            .filter_map(|run| {
                run.error
                    .as_ref()
                    .map(|e| format!("{:?}: {e}", run.forwarder))
            })
            .collect(),
    }
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Writes `bench.json` and `bench.svg` into `dir`; returns their paths.
pub fn write_outputs(report: &Report, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = dir.join("bench.json");
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    let svg = dir.join("bench.svg");
    fs::write(&svg, chart(report)).map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok((json, svg))
}

/// A horizontal bar chart: per case, rvsd's and the reference's figure,
/// each bar labelled with its value, the ratio at the right.
fn chart(report: &Report) -> String {
    const LABEL: f64 = 300.0;
    const PLOT: f64 = 520.0;
    const ROW: f64 = 46.0;
    const BAR: f64 = 16.0;
    let width = LABEL + PLOT + 140.0;
    let height = 70.0 + ROW * report.rows.len() as f64 + 30.0;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">rvsd against the reference, same run (medians; {mode:?} mode, {pairs} pair(s) of {duration:.1} s)</text>
<text x="10" y="42" fill="#555555">{cpu}. Bars scale per row; blue: rvsd, grey: testpmd or the kernel</text>
"##,
        mode = report.mode,
        pairs = report.pairs,
        duration = report.duration_s,
        cpu = escape(&report.cpu),
    );
    for (i, row) in report.rows.iter().enumerate() {
        let top = 60.0 + ROW * i as f64;
        let scale = row
            .rvsd
            .unwrap_or(0.0)
            .max(row.reference_figure.unwrap_or(0.0));
        let unit = match row.metric {
            Metric::Mpps => "Mpps",
            Metric::MillionConnections => "M conn/s",
        };
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{}">{}</text>"#,
            top + BAR + 4.0,
            escape(&row.case)
        );
        for (j, (value, color, who)) in [
            (row.rvsd, "#2b6cb0", "rvsd"),
            (
                row.reference_figure,
                "#999999",
                reference_name(row.reference),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let y = top + j as f64 * (BAR + 2.0);
            let length = match value {
                Some(v) if scale > 0.0 => v / scale * PLOT,
                _ => 0.0,
            };
            let label =
                value.map_or_else(|| "failed".to_owned(), |v| format!("{who} {v:.3} {unit}"));
            let _ = writeln!(
                svg,
                r#"<rect x="{LABEL}" y="{y}" width="{length:.1}" height="{BAR}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{label}</text>"#,
                LABEL + length + 4.0,
                y + BAR - 4.0
            );
        }
        if let Some(ratio) = row.ratio {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-weight="bold">×{ratio:.2}</text>"#,
                LABEL + PLOT + 80.0,
                top + BAR + 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn reference_name(forwarder: Forwarder) -> &'static str {
    match forwarder {
        Forwarder::Testpmd => "testpmd",
        Forwarder::Kernel => "kernel",
        Forwarder::Rvsd => "rvsd",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
