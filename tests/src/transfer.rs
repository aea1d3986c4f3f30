//! A long download through rvsd: it starts, shows up as one more active
//! connection of a real server, and must arrive whole however the service
//! is changed while it runs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::host::Process;
use crate::lab::{Lab, big_file_sha256, sha256};
use crate::plan::{Family, endpoint, url};
use crate::rvsd::real_server_rows;
use crate::{BIG_FILE_BYTES, wait_until};

/// A rate-limited download of `/big.bin` (8 MiB/s: about 6 s) from the
/// VIP, port 80, into the lab's directory.
#[derive(Debug)]
pub struct Transfer {
    curl: Process,
    /// The index (in [`Lab::rips`]) of the real server carrying it.
    pub carrier: usize,
    output: PathBuf,
}

impl Transfer {
    /// Starts the download into the file `name` of the lab's directory
    /// and returns once `rvsadm -Ln` counts it as an active connection
    /// (a real server's ActiveConn went up).
    pub fn start(lab: &Lab, family: Family, name: &str) -> Transfer {
        let before = real_server_rows(&lab.rvsadm_ok("-Ln"));
        let output = lab.dir().join(name);
        let mut command = lab.client.command("curl");
        command
            .args(["-sS", "--max-time", "120", "--limit-rate", "8M", "-o"])
            .arg(&output)
            .arg(url(lab.vip(family), 80, "/big.bin"))
            .stdout(Stdio::null());
        let curl = Process::spawn(command);
        let mut address = None;
        let started = wait_until(Duration::from_secs(10), || {
            address = real_server_rows(&lab.rvsadm_ok("-Ln"))
                .into_iter()
                .find(|row| {
                    before
                        .iter()
                        .find(|b| b.address == row.address)
                        .is_none_or(|b| row.active > b.active)
                })
                .map(|row| row.address);
            address.is_some()
        });
        assert!(
            started,
            "the transfer never became an active connection\n{}",
            lab.log_tail()
        );
        let address = address.unwrap_or_default();
        let carrier = lab
            .rips(family)
            .iter()
            .position(|&rip| endpoint(rip, 80) == address)
            .unwrap_or_else(|| panic!("unknown real server {address}"));
        Transfer {
            curl,
            carrier,
            output,
        }
    }

    /// Waits for the download to end and checks that it is complete and
    /// unchanged (size and SHA-256).
    pub fn finish(mut self, lab: &Lab) {
        let status = self.curl.wait(Duration::from_secs(120));
        assert!(
            status.is_some_and(|status| status.success()),
            "the transfer failed or did not finish (curl: {status:?})\n{}",
            lab.log_tail()
        );
        let bytes = std::fs::metadata(&self.output).map_or(0, |m| m.len());
        assert_eq!(
            bytes,
            BIG_FILE_BYTES as u64,
            "transfer incomplete\n{}",
            lab.log_tail()
        );
        assert_eq!(
            sha256(&self.output),
            big_file_sha256(lab),
            "transfer corrupted"
        );
    }
}
