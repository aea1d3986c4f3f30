//! Loads that run in the background while a test does something else
//! (wrk, a curl loop), and what they report.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::host::{Netns, Process};

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

/// curl in a loop in the background, one new connection per request, each
/// result stamped with the time it started: for watching what clients saw
/// across an event.
#[derive(Debug)]
pub struct CurlLoop {
    process: Process,
    output: PathBuf,
    stop: PathBuf,
}

/// One request of a [`CurlLoop`], with the span of time its packets were
/// sent in: the loop stamps the time before it starts curl and after curl
/// exits (starting a process on a busy machine can take longer than the
/// request itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Before curl started, in milliseconds since the Unix epoch (see
    /// [`unix_millis`]).
    pub at: u64,
    /// After curl exited, in the same milliseconds.
    pub ended: u64,
    /// The response body, or `FAILED` and curl's complaint.
    pub result: String,
}

impl CurlLoop {
    /// Starts requesting `url` from `netns` until [`CurlLoop::finish`];
    /// files go to `dir`. Requests time out after a second.
    pub fn start(netns: &Netns, dir: &Path, url: &str) -> CurlLoop {
        let output = dir.join("curl-loop.txt");
        let stop = dir.join("curl-loop.stop");
        let script = format!(
            "while [ ! -e {stop} ]; do at=$(date +%s%3N); \
             out=$(curl -sS --max-time 1 -H 'Connection: close' {url} 2>&1) \
             || out=\"FAILED $out\"; echo \"$at $(date +%s%3N) $out\"; done > {output}",
            stop = stop.display(),
            output = output.display()
        );
        let mut command = netns.command("sh");
        command.args(["-c", &script]);
        CurlLoop {
            process: Process::spawn(command),
            output,
            stop,
        }
    }

    /// Stops the loop; every request it made, in order.
    pub fn finish(mut self) -> Vec<Attempt> {
        std::fs::write(&self.stop, b"").unwrap_or_else(|error| panic!("{error}"));
        self.process.wait(Duration::from_secs(5));
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (at, rest) = line.split_once(' ')?;
                let (ended, result) = rest.split_once(' ')?;
                Some(Attempt {
                    at: at.parse().ok()?,
                    ended: ended.parse().ok()?,
                    result: result.to_owned(),
                })
            })
            .collect()
    }
}

/// Now, in milliseconds since the Unix epoch, as `date +%s%3N` prints it.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
