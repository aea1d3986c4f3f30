//! wrk as a load that runs in the background while a test does something
//! else, and what it reports.

use std::path::PathBuf;
use std::process::{Child, Stdio};

use crate::host::Netns;

/// wrk running in a namespace; its report goes to a file.
#[derive(Debug)]
pub struct Wrk {
    child: Child,
    report: PathBuf,
}

/// What wrk reported at the end of its run.
#[derive(Debug)]
pub struct WrkReport {
    pub requests: u64,
    /// The lines that name errors: socket errors (connect, read, write,
    /// timeout) and non-2xx responses.
    pub errors: Vec<String>,
    /// The whole report, for failure messages.
    pub text: String,
}

impl Wrk {
    /// Starts `wrk ARGS URL` in `netns`, its report written to `report`.
    pub fn start(netns: &Netns, report: PathBuf, args: &[&str], url: &str) -> Wrk {
        let file = std::fs::File::create(&report)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", report.display()));
        let child = netns
            .command("wrk")
            .args(args)
            .arg(url)
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run wrk: {error}"));
        Wrk { child, report }
    }

    /// Waits for wrk to end; panics if it failed or reported no count.
    pub fn finish(mut self) -> WrkReport {
        let status = self.child.wait().expect("wrk ran");
        let text = std::fs::read_to_string(&self.report).unwrap_or_default();
        assert!(status.success(), "wrk failed:\n{text}");
        let requests = text
            .lines()
            .find_map(|line| line.trim().split_once(" requests in "))
            .and_then(|(count, _)| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no request count in wrk's report:\n{text}"));
        let errors = text
            .lines()
            .filter(|line| line.contains("Socket errors") || line.contains("Non-2xx"))
            .map(str::to_owned)
            .collect();
        WrkReport {
            requests,
            errors,
            text,
        }
    }
}
