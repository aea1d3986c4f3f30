//! The programs the labs' real servers run: nginx (HTTP), dnsmasq (DNS over
//! UDP) and, in TUN labs, the userspace IP-in-IP decapsulator.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::host::{Netns, Process, quiet};
use crate::{BIG_FILE_BYTES, UDP_PORT, WHOAMI, wait_until};

/// The file whose presence makes a real server's `/health` answer 500.
pub(crate) const UNHEALTHY: &str = "unhealthy";

/// Starts nginx in `rs` on ports 80 and 8080 (IPv4 and IPv6, any address),
/// serving from `root`: `/` (a page naming the server), `/big.bin` (a hard
/// link to `big_file`), the same under `/slow/` at 512 KiB/s (transfers
/// that last), `/whoami`, which answers `NAME CLIENT-ADDRESS CLIENT-PORT`
/// (the source the server saw), and `/health`, which answers 200, or 500
/// while the file [`UNHEALTHY`] exists in `root`. Starting again in the
/// same root serves the same files.
pub(crate) fn start_nginx(rs: &Netns, root: &Path, name: &str, big_file: &Path) -> Process {
    fs::create_dir_all(root.join("html")).unwrap_or_else(|error| panic!("{error}"));
    fs::write(root.join("html/index.html"), format!("{name}\n"))
        .unwrap_or_else(|error| panic!("{error}"));
    let link = root.join("html/big.bin");
    if !link.exists() {
        fs::hard_link(big_file, &link)
            .unwrap_or_else(|error| panic!("cannot link {}: {error}", big_file.display()));
    }
    let config = format!(
        r#"daemon off;
master_process off;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    keepalive_requests 1000000;
    server {{
        listen 80;
        listen 8080;
        listen [::]:80;
        listen [::]:8080;
        root {root}/html;
        location = /whoami {{
            default_type text/plain;
            return 200 "{name} $remote_addr $remote_port\n";
        }}
        location = /health {{
            default_type text/plain;
            if (-f {root}/{UNHEALTHY}) {{
                return 500 "{name} unhealthy\n";
            }}
            return 200 "{name} healthy\n";
        }}
        location /slow/ {{
            limit_rate 512k;
            alias {root}/html/;
        }}
    }}
}}
"#,
        root = root.display()
    );
    let config_path = root.join("nginx.conf");
    fs::write(&config_path, config).unwrap_or_else(|error| panic!("{error}"));
    let mut command = rs.command("nginx");
    command.args([
        "-c",
        &config_path.to_string_lossy(),
        "-p",
        &root.to_string_lossy(),
    ]);
    let mut nginx = Process::spawn(quiet(command));
    let started = wait_until(Duration::from_secs(10), || {
        rs.sh("curl -s -o /dev/null http://127.0.0.1/")
            .status
            .success()
    });
    if !started {
        let errors = fs::read_to_string(root.join("error.log")).unwrap_or_default();
        panic!(
            "nginx did not start in {} (running: {}): {errors}",
            rs.name,
            nginx.running()
        );
    }
    nginx
}

/// Starts dnsmasq in `rs` as a UDP server on `addresses` (the first is
/// used to check that it answers): it answers the TXT record `WHOAMI` with
/// `name`, and nothing else.
pub(crate) fn start_dnsmasq(rs: &Netns, addresses: &[IpAddr], root: &Path, name: &str) -> Process {
    let mut command = rs.command("dnsmasq");
    command.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        &format!("--port={UDP_PORT}"),
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--user=root",
        &format!("--txt-record={WHOAMI},{name}"),
        &format!("--pid-file={}", root.join("dnsmasq.pid").display()),
    ]);
    for address in addresses {
        command.arg(format!("--listen-address={address}"));
    }
    let dnsmasq = Process::spawn(quiet(command));
    let query = format!(
        "dig +short +tries=1 +time=1 @{} -p {UDP_PORT} TXT {WHOAMI}",
        addresses[0]
    );
    let started = wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&rs.sh(&query).stdout).contains(name)
    });
    assert!(started, "dnsmasq did not start in {}", rs.name);
    dnsmasq
}

/// Starts the lab's userspace IP-in-IP endpoint (`rvs-ipip`) in `host` on
/// the TUN device `tun`, which must exist and be up: `decap` on a real
/// server, `encap` with the real servers' addresses on a reference
/// director. Its messages go to `log`. Returns once it holds the device.
pub(crate) fn start_ipip(host: &Netns, tun: &str, arguments: &[String], log: &Path) -> Process {
    let log_file = fs::File::create(log).unwrap_or_else(|error| panic!("{error}"));
    let mut command = quiet(host.command(&crate::own_binary("rvs-ipip").to_string_lossy()));
    command.args(arguments).stderr(log_file);
    let mut ipip = Process::spawn(command);
    // A TUN device has a carrier while a process holds it.
    let attached = wait_until(Duration::from_secs(10), || {
        !ipip.running()
            || host
                .sh(&format!("grep -qx 1 /sys/class/net/{tun}/carrier"))
                .status
                .success()
    });
    assert!(
        attached && ipip.running(),
        "rvs-ipip {} did not start in {}: {}",
        arguments.join(" "),
        host.name,
        fs::read_to_string(log).unwrap_or_default()
    );
    ipip
}

/// Writes the same pseudo-random `BIG_FILE_BYTES` to `path` on every run,
/// so a transfer's checksum does not depend on which server sent it.
pub(crate) fn write_big_file(path: &Path) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::with_capacity(BIG_FILE_BYTES);
    while data.len() < BIG_FILE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    fs::write(path, data)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}
