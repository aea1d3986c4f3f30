//! The checks themselves, keepalived's four kinds, with ordinary blocking
//! kernel sockets and a child process:
//!
//! * `tcp` (`TCP_CHECK`): a TCP connection to the real server opens within
//!   `connect_timeout`, and is closed at once.
//! * `http` (`HTTP_GET`): `GET path HTTP/1.1` with `Host` (`virtualhost`,
//!   else the checked address) and `Connection: close`; the status line
//!   must come back, with `status` or else any 2xx, within
//!   `connect_timeout` of the start of the connection (connecting, sending
//!   and reading all count). An HTTP/1.0 answer is as good. Without a
//!   `digest` the body is not read; with one, the whole body is read (by
//!   its `Content-Length`, its chunks, or to the end of the connection)
//!   within the same time, and its MD5 must be the digest.
//! * `https` (`SSL_GET`): the same over TLS, verifying no certificate, as
//!   keepalived does without a CA: the check asks whether the server
//!   answers, not who it is. The handshake's signatures are still checked
//!   against the certificate the server shows. A `virtualhost` that is a
//!   DNS name is also the server name the handshake sends (SNI), so that a
//!   server of several sites shows the right one.
//! * `misc` (`MISC_CHECK`): `/bin/sh -c command`, up when it exits 0
//!   within `connect_timeout`; otherwise it is killed (SIGKILL to its
//!   process group, so that what it started goes too). Nothing is
//!   substituted in the command; it finds the real server in the
//!   environment: `RVS_RS_ADDRESS` (the RIP) and `RVS_RS_PORT` (its port).
//!   Its standard input and outputs are /dev/null.
//!
//! `tcp`, `http` and `https` check `port` when the health check gives one,
//! else the real server's own port.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::config::{HealthCheckConfig, HealthCheckKind};

use super::Stop;
use super::machine::Failure;

/// The longest status line or chunk size line read: real ones are a few
/// dozen bytes.
const MAX_LINE: usize = 1024;
/// The longest response head (status line and headers) read for a digest:
/// real ones are a few hundred bytes, a few KiB with many cookies.
const MAX_HEAD: usize = 64 * 1024;
/// The longest body read for a digest. A health page is small; a larger
/// body is the wrong path (a download, a stream), and reading it at every
/// check would spend the director's bandwidth and CPU on it.
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// The longest pause between two looks at a running command.
const MAX_COMMAND_POLL: Duration = Duration::from_millis(50);

/// One real server's check, run again and again by its checker.
#[derive(Debug)]
pub struct Probe {
    kind: Kind,
    /// RIP and the port checked.
    endpoint: SocketAddr,
    /// The real server as configured (RIP:rport), which `misc` is told.
    real_server: SocketAddr,
    timeout: Duration,
}

#[derive(Debug)]
enum Kind {
    Tcp,
    Http(Http),
    Misc { command: String },
}

/// An `http` or `https` check.
#[derive(Debug)]
struct Http {
    path: String,
    status: Option<u16>,
    /// The `Host` header.
    host: String,
    /// The body's MD5 in hex; `None`: the body is not read.
    digest: Option<String>,
    /// `https`: the TLS client, and the server name it is given.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Probe {
    /// `check` as it applies to `real_server`. The check was validated:
    /// `http`'s path and `misc`'s command are there.
    pub fn new(check: &HealthCheckConfig, real_server: SocketAddr) -> Probe {
        let endpoint = SocketAddr::new(real_server.ip(), check.port.unwrap_or(real_server.port()));
        let http = |tls: bool| {
            let virtualhost = check.virtualhost.as_deref();
            // A name that is no DNS name (an address, a name with a port)
            // is no SNI: the address stands, and no name is sent.
            let server_name = virtualhost
                .and_then(|host| ServerName::try_from(host.to_owned()).ok())
                .unwrap_or_else(|| ServerName::from(endpoint.ip()));
            Kind::Http(Http {
                path: check.path.clone().unwrap_or_else(|| "/".to_owned()),
                status: check.status,
                host: virtualhost.map_or_else(|| address_host(endpoint, tls), str::to_owned),
                digest: check.digest.clone(),
                tls: tls.then(|| (tls_config(), server_name)),
            })
        };
        let kind = match check.kind {
            HealthCheckKind::Tcp => Kind::Tcp,
            HealthCheckKind::Http => http(false),
            HealthCheckKind::Https => http(true),
            HealthCheckKind::Misc => Kind::Misc {
                command: check.command.clone().unwrap_or_default(),
            },
        };
        Probe {
            kind,
            endpoint,
            real_server,
            timeout: Duration::from_secs(u64::from(check.connect_timeout)),
        }
    }

    /// Runs the check once. `stop` cuts a running command short.
    pub fn run(&self, stop: &Stop) -> Result<(), Failure> {
        match &self.kind {
            Kind::Tcp => self.connect().map(drop),
            Kind::Http(http) => {
                let deadline = Instant::now() + self.timeout;
                let mut stream = Bounded {
                    stream: self.connect()?,
                    deadline,
                };
                let Some((config, server_name)) = &http.tls else {
                    return self.get(&mut stream, http);
                };
                let connection = ClientConnection::new(Arc::clone(config), server_name.clone())
                    .map_err(|error| Failure::new(format!("TLS: {error}")))?;
                let mut stream = StreamOwned::new(connection, stream);
                let outcome = self.get(&mut stream, http);
                stream.conn.send_close_notify();
                // The verdict is in; a server that has gone is no matter.
                let _ = stream.flush();
                outcome
            }
            Kind::Misc { command } => self.command(command, stop),
        }
    }

    fn connect(&self) -> Result<TcpStream, Failure> {
        TcpStream::connect_timeout(&self.endpoint, self.timeout).map_err(|e| self.failure(&e))
    }

    /// Sends the GET and reads the status line, and the body when there
    /// is a digest to check.
    fn get(&self, stream: &mut (impl Read + Write), http: &Http) -> Result<(), Failure> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rvsd/{}\r\nConnection: close\r\n\r\n",
            http.path,
            http.host,
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| self.failure(&e))?;
        let mut response = Response {
            probe: self,
            stream,
            buffer: Vec::new(),
            used: 0,
        };
        let status = response.status()?;
        let good = match http.status {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        };
        if !good {
            return Err(Failure::new(format!("HTTP status {status}")));
        }
        let Some(expected) = &http.digest else {
            return Ok(());
        };
        let body = response.head(status)?;
        let digest = response.digest(body)?;
        if digest.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(Failure::new(format!(
                "MD5 digest {digest} is not the expected {expected}"
            )))
        }
    }

    /// Runs `command` with `/bin/sh -c` and waits for it, at most the
    /// timeout, and not once `stop` is set.
    fn command(&self, command: &str, stop: &Stop) -> Result<(), Failure> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env("RVS_RS_ADDRESS", self.real_server.ip().to_string())
            .env("RVS_RS_PORT", self.real_server.port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that killing it kills what it started.
            .process_group(0)
            .spawn()
            .map_err(|error| Failure::new(format!("cannot run /bin/sh: {error}")))?;
        let deadline = Instant::now() + self.timeout;
        // Short pauses first: most checks end in a few milliseconds.
        let mut pause = Duration::from_millis(1);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return exit_verdict(status),
                Ok(None) => {}
                Err(error) => {
                    kill(&mut child);
                    return Err(Failure::new(format!("waiting for the command: {error}")));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                kill(&mut child);
                return Err(Failure::timeout(self.timeout));
            }
            if stop.wait(pause.min(left)) {
                kill(&mut child);
                return Err(Failure::new("stopped"));
            }
            pause = (pause * 2).min(MAX_COMMAND_POLL);
        }
    }

    /// An I/O error as a check's failure.
    fn failure(&self, error: &io::Error) -> Failure {
        match error.kind() {
            // A socket timeout is EAGAIN on Linux.
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::timeout(self.timeout),
            ErrorKind::UnexpectedEof => Failure::new("connection closed without an HTTP response"),
            _ => Failure::new(describe(error)),
        }
    }
}

/// The `Host` header without a virtualhost: the checked address, without
/// the scheme's default port.
fn address_host(endpoint: SocketAddr, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    let ip = match endpoint.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    match endpoint.port() {
        port if port == default_port => ip,
        port => format!("{ip}:{port}"),
    }
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// After this many bytes (`Content-Length`).
    Length(u64),
    /// After its last chunk (`Transfer-Encoding: chunked`).
    Chunked,
    /// With the connection.
    ToEnd,
}

/// A response being read: lines for its head and its chunk sizes, runs
/// of bytes for its body.
struct Response<'a, S> {
    probe: &'a Probe,
    stream: &'a mut S,
    /// What was read and is not used yet: `buffer[used..]`.
    buffer: Vec<u8>,
    used: usize,
}

impl<S: Read> Response<'_, S> {
    /// Reads more of the stream into the buffer; false at its end.
    fn more(&mut self) -> Result<bool, Failure> {
        self.buffer.drain(..self.used);
        self.used = 0;
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.buffer.extend_from_slice(&chunk[..read]);
                    return Ok(true);
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                // A TLS server that closes without its close_notify: the
                // end all the same, which is what ends a body without a
                // length; the callers tell what the end cut short.
                Err(error) if error.kind() == ErrorKind::UnexpectedEof => return Ok(false),
                Err(error) => return Err(self.probe.failure(&error)),
            }
        }
    }

    /// The next line, without its line end; `None` if the stream ends
    /// first. A line of `max` bytes or more is `too_long`.
    fn line(&mut self, max: usize, too_long: &str) -> Result<Option<Vec<u8>>, Failure> {
        let mut searched = 0;
        loop {
            let pending = &self.buffer[self.used..];
            let newline = pending[searched..]
                .iter()
                .position(|&byte| byte == b'\n')
                .map(|at| searched + at);
            match newline {
                Some(end) if end < max => {
                    let line = &pending[..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                    self.used += end + 1;
                    return Ok(Some(line));
                }
                Some(_) => return Err(Failure::new(too_long)),
                None if pending.len() >= max => return Err(Failure::new(too_long)),
                None => searched = pending.len(),
            }
            if !self.more()? {
                return Ok(None);
            }
        }
    }

    /// The code of the status line (`HTTP/1.1 200 OK`).
    fn status(&mut self) -> Result<u16, Failure> {
        let malformed = "malformed HTTP response: no status line";
        match self.line(MAX_LINE, malformed)? {
            Some(line) => status_code(&line).ok_or_else(|| Failure::new(malformed)),
            None if self.buffer.len() == self.used => {
                Err(Failure::new("connection closed without an HTTP response"))
            }
            None => Err(Failure::new(malformed)),
        }
    }

    /// Reads the headers that follow the status line, up to the blank
    /// line, and tells how the body ends.
    fn head(&mut self, status: u16) -> Result<Body, Failure> {
        let too_long = format!("HTTP response head longer than {MAX_HEAD} bytes");
        let mut left = MAX_HEAD;
        let mut length = None;
        let mut chunked = false;
        let mut encoded = false;
        loop {
            let Some(line) = self.line(left, &too_long)? else {
                return Err(Failure::new("connection closed in the HTTP response head"));
            };
            if line.is_empty() {
                break;
            }
            left = left.saturating_sub(line.len() + 2);
            let line = String::from_utf8_lossy(&line);
            let Some((name, value)) = line.split_once(':') else {
                return Err(Failure::new(format!(
                    "malformed HTTP response: header line {line:?}"
                )));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let parsed = value
                    .bytes()
                    .all(|byte| byte.is_ascii_digit())
                    .then(|| value.parse::<u64>().ok())
                    .flatten();
                match parsed {
                    Some(parsed) if length.is_none_or(|length| length == parsed) => {
                        length = Some(parsed);
                    }
                    _ => {
                        return Err(Failure::new(format!(
                            "malformed HTTP response: Content-Length {value:?}"
                        )));
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                // chunked comes last when it is there (RFC 9112, 6.1).
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        // RFC 9112, 6.3: these have no body, whatever their headers say;
        // a transfer coding outranks a length, and other codings than
        // chunked end with the connection.
        Ok(match (status, chunked, encoded, length) {
            (204 | 304, ..) => Body::Length(0),
            (_, true, ..) => Body::Chunked,
            (_, false, true, _) | (_, false, false, None) => Body::ToEnd,
            (_, false, false, Some(length)) => Body::Length(length),
        })
    }

    /// Reads the body and gives its MD5 in lowercase hex.
    fn digest(&mut self, body: Body) -> Result<String, Failure> {
        let mut md5 = Md5::new();
        match body {
            Body::Length(length) => {
                if length > MAX_BODY {
                    return Err(too_large());
                }
                self.feed(&mut md5, length)?;
            }
            Body::Chunked => {
                let mut total = 0u64;
                loop {
                    let malformed = "malformed HTTP response: bad chunk size line";
                    let Some(line) = self.line(MAX_LINE, malformed)? else {
                        return Err(cut_short());
                    };
                    let size = chunk_size(&line).ok_or_else(|| Failure::new(malformed))?;
                    if size == 0 {
                        // The trailer section can follow: the body is whole.
                        break;
                    }
                    total = total.saturating_add(size);
                    if total > MAX_BODY {
                        return Err(too_large());
                    }
                    self.feed(&mut md5, size)?;
                    match self.line(MAX_LINE, malformed)? {
                        Some(end) if end.is_empty() => {}
                        Some(_) => {
                            return Err(Failure::new(
                                "malformed HTTP response: chunk longer than its size",
                            ));
                        }
                        None => return Err(cut_short()),
                    }
                }
            }
            Body::ToEnd => {
                let mut total = 0u64;
                loop {
                    let pending = &self.buffer[self.used..];
                    total += pending.len() as u64;
                    if total > MAX_BODY {
                        return Err(too_large());
                    }
                    md5.update(pending);
                    self.used = self.buffer.len();
                    if !self.more()? {
                        break;
                    }
                }
            }
        }
        Ok(md5
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect())
    }

    /// Feeds the next `length` bytes of the stream to `md5`.
    fn feed(&mut self, md5: &mut Md5, mut length: u64) -> Result<(), Failure> {
        loop {
            let pending = &self.buffer[self.used..];
            let taken =
                usize::try_from(length).map_or(pending.len(), |length| length.min(pending.len()));
            md5.update(&pending[..taken]);
            self.used += taken;
            length -= taken as u64;
            if length == 0 {
                return Ok(());
            }
            if !self.more()? {
                return Err(cut_short());
            }
        }
    }
}

fn too_large() -> Failure {
    Failure::new(format!(
        "HTTP response body larger than {MAX_BODY} bytes, the most read for a digest"
    ))
}

fn cut_short() -> Failure {
    Failure::new("connection closed before the end of the HTTP response body")
}

/// The size of a chunk of a chunked body, from its line (`1a2b` and maybe
/// `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    let size = line.split(';').next()?.trim();
    if size.is_empty() || !size.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// An I/O error in the words of the C library ("connection refused"), or
/// TLS's.
fn describe(error: &io::Error) -> String {
    if let Some(code) = error.raw_os_error() {
        let text = nix::errno::Errno::from_raw(code).desc();
        let mut chars = text.chars();
        return chars
            .next()
            .map(|first| first.to_lowercase().chain(chars).collect())
            .unwrap_or_default();
    }
    match error.get_ref() {
        Some(inner) if inner.is::<rustls::Error>() => format!("TLS: {inner}"),
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    }
}

/// The code of an HTTP/1.x status line.
fn status_code(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn exit_verdict(status: ExitStatus) -> Result<(), Failure> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Failure::new(format!("exit status {code}"))),
        (None, Some(signal)) => Err(Failure::new(format!("killed by signal {signal}"))),
        (None, None) => Err(Failure::new(format!("ended with {status}"))),
    }
}

/// Kills a command's process group and reaps the command.
fn kill(child: &mut Child) {
    // The group's id is the command's pid (`process_group(0)`); pids fit
    // in an i32.
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// A TCP stream whose every read and write ends by one deadline, so that
/// a server that trickles bytes cannot make a check last longer.
#[derive(Debug)]
struct Bounded {
    stream: TcpStream,
    deadline: Instant,
}

impl Bounded {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buffer)
    }
}

impl Write for Bounded {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buffer)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The TLS client of every `https` check: no certificate verification.
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = rustls::crypto::ring::default_provider();
        let algorithms = provider.signature_verification_algorithms;
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                // ring implements every version rustls has: never refused.
                .expect("ring speaks TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
                .with_no_client_auth(),
        )
    });
    Arc::clone(config)
}

/// Takes whatever certificate the server shows (keepalived's SSL_GET
/// without a CA), but checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use super::*;
    use crate::model::OnFailure;

    /// A check of `kind` with keepalived's defaults.
    pub(in crate::daemon) fn check(kind: HealthCheckKind) -> HealthCheckConfig {
        HealthCheckConfig {
            kind,
            port: None,
            path: kind_is_http(kind).then(|| "/".to_owned()),
            status: None,
            virtualhost: None,
            digest: None,
            connect_timeout: 1,
            delay_loop: 1,
            retry: 0,
            retry_delay: 1,
            rise: 1,
            on_failure: OnFailure::Inhibit,
            command: None,
        }
    }

    fn kind_is_http(kind: HealthCheckKind) -> bool {
        matches!(kind, HealthCheckKind::Http | HealthCheckKind::Https)
    }

    fn misc(command: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            command: Some(command.to_owned()),
            ..check(HealthCheckKind::Misc)
        }
    }

    fn probe(check: &HealthCheckConfig, real_server: SocketAddr, timeout: Duration) -> Probe {
        Probe {
            timeout,
            ..Probe::new(check, real_server)
        }
    }

    fn reason(outcome: Result<(), Failure>) -> String {
        outcome.expect_err("the check fails").reason
    }

    /// A port on 127.0.0.1 where nothing listens.
    pub(in crate::daemon) fn refusing_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn tcp_is_up_when_the_connection_opens() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let check = check(HealthCheckKind::Tcp);
        assert_eq!(Probe::new(&check, address).run(&Stop::default()), Ok(()));
        let refused = Probe::new(&check, refusing_port()).run(&Stop::default());
        assert_eq!(reason(refused), "connection refused");
    }

    #[test]
    fn the_check_port_replaces_the_real_servers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = HealthCheckConfig {
            port: Some(port),
            ..check(HealthCheckKind::Tcp)
        };
        let probe = Probe::new(&tcp, refusing_port());
        assert_eq!(probe.endpoint.port(), port);
        assert_eq!(probe.run(&Stop::default()), Ok(()));
    }

    /// The page of `/page`, `/chunked` and `/eof`.
    const PAGE: &[u8] = b"<html>rvs health page</html>\n";
    /// Its MD5, by md5sum.
    const PAGE_MD5: &str = "22573a6bd376a1e7359f8045e56a7409";

    /// A web server that answers `/` with 200, `/fail` with 500, `/old`
    /// in HTTP/1.0, `/garbage` with something else than HTTP, the paths
    /// of [`response`] as it says, and other paths with 404; it sends
    /// every request it reads on `requests`.
    pub(in crate::daemon) struct WebServer {
        pub(in crate::daemon) address: SocketAddr,
        pub(in crate::daemon) requests: mpsc::Receiver<String>,
        _thread: JoinHandle<()>,
    }

    impl WebServer {
        pub(in crate::daemon) fn start() -> WebServer {
            WebServer::start_with(|stream| Box::new(stream))
        }

        /// `wrap` turns each accepted connection into the stream spoken on
        /// (TLS, for `https`).
        fn start_with(
            wrap: impl Fn(TcpStream) -> Box<dyn ReadWrite> + Send + 'static,
        ) -> WebServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap();
            let (sender, requests) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let mut stream = wrap(stream);
                    let Some(request) = read_request(&mut stream) else {
                        continue;
                    };
                    let path = request.split(' ').nth(1).unwrap_or_default().to_owned();
                    let _ = stream.write_all(&response(&path));
                    let _ = stream.flush();
                    if path == "/stall" {
                        // The rest of the body never comes, the connection
                        // stays open a while.
                        std::thread::sleep(Duration::from_millis(600));
                    }
                    if sender.send(request).is_err() {
                        return;
                    }
                }
            });
            WebServer {
                address,
                requests,
                _thread: thread,
            }
        }
    }

    /// The answer to `path`: `/page` with a `Content-Length`, `/chunked`
    /// in chunks (with an extension and a trailer), `/eof` in HTTP/1.0 to
    /// the end of the connection, `/short` ending before its length,
    /// `/stall` not ending, `/huge` announcing one byte more than a digest
    /// reads, `/endless` sending it, `/big-head` with a 70 KiB header.
    fn response(path: &str) -> Vec<u8> {
        let ok = |headers: &str, body: &[u8]| {
            let mut response = format!("HTTP/1.1 200 OK\r\n{headers}\r\n").into_bytes();
            response.extend_from_slice(body);
            response
        };
        let length = |body: &[u8]| format!("Content-Length: {}\r\n", body.len());
        match path {
            "/" => ok(&length(b"ok"), b"ok"),
            "/fail" => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "/old" => b"HTTP/1.0 204 No Content\r\n\r\n".to_vec(),
            "/garbage" => b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(),
            "/page" => ok(&length(PAGE), PAGE),
            "/chunked" => {
                let (first, rest) = PAGE.split_at(6);
                let mut body = format!("{:x}\r\n", first.len()).into_bytes();
                body.extend_from_slice(first);
                body.extend_from_slice(format!("\r\n{:X};name=value\r\n", rest.len()).as_bytes());
                body.extend_from_slice(rest);
                body.extend_from_slice(b"\r\n0\r\nX-Checksum: none\r\n\r\n");
                ok("Transfer-Encoding: chunked\r\n", &body)
            }
            "/eof" => {
                let mut response = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
                response.extend_from_slice(PAGE);
                response
            }
            "/short" => ok("Content-Length: 100\r\n", PAGE),
            "/stall" => ok("Content-Length: 10\r\n", b"12345"),
            "/huge" => ok(&format!("Content-Length: {}\r\n", MAX_BODY + 1), b""),
            "/endless" => {
                let mut response = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
                response.resize(
                    response.len() + usize::try_from(MAX_BODY).unwrap() + 1,
                    b'x',
                );
                response
            }
            "/big-head" => ok(&format!("X-Padding: {}\r\n", "x".repeat(70 * 1024)), b""),
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        }
    }

    pub(in crate::daemon) trait ReadWrite: Read + Write {}
    impl<T: Read + Write> ReadWrite for T {}

    /// The request's head, up to its blank line.
    fn read_request(stream: &mut impl Read) -> Option<String> {
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return None,
            }
        }
        String::from_utf8(request).ok()
    }

    fn http(path: &str, status: Option<u16>) -> HealthCheckConfig {
        HealthCheckConfig {
            path: Some(path.to_owned()),
            status,
            ..check(HealthCheckKind::Http)
        }
    }

    #[test]
    fn http_wants_the_status_or_any_2xx() {
        let server = WebServer::start();
        let run = |path: &str, status| {
            Probe::new(&http(path, status), server.address).run(&Stop::default())
        };
        assert_eq!(run("/", None), Ok(()));
        assert_eq!(run("/old", None), Ok(()), "HTTP/1.0 204");
        assert_eq!(reason(run("/fail", None)), "HTTP status 500");
        assert_eq!(reason(run("/wrong/path", None)), "HTTP status 404");
        assert_eq!(run("/wrong/path", Some(404)), Ok(()));
        assert_eq!(reason(run("/", Some(204))), "HTTP status 200");
        assert_eq!(
            reason(run("/garbage", None)),
            "malformed HTTP response: no status line"
        );
        assert_eq!(
            reason(Probe::new(&http("/", None), refusing_port()).run(&Stop::default())),
            "connection refused"
        );
    }

    #[test]
    fn http_sends_a_get_with_host_and_connection_close() {
        let server = WebServer::start();
        let check = http("/health?full=1", Some(404));
        Probe::new(&check, server.address)
            .run(&Stop::default())
            .unwrap();
        let request = server.requests.recv().unwrap();
        let lines: Vec<&str> = request.split("\r\n").collect();
        assert_eq!(lines[0], "GET /health?full=1 HTTP/1.1");
        assert!(
            lines.contains(&format!("Host: 127.0.0.1:{}", server.address.port()).as_str()),
            "{request}"
        );
        assert!(lines.contains(&"Connection: close"), "{request}");

        let on_80 = Probe::new(&check, "[fd00::11]:80".parse().unwrap());
        assert_eq!(host(&on_80), "[fd00::11]");
        let https = Probe::new(&check_https("/"), "198.18.1.11:443".parse().unwrap());
        assert_eq!(host(&https), "198.18.1.11");
    }

    fn host(probe: &Probe) -> &str {
        match &probe.kind {
            Kind::Http(http) => &http.host,
            other => panic!("not an http check: {other:?}"),
        }
    }

    #[test]
    fn the_virtualhost_is_the_host_header() {
        let server = WebServer::start();
        let check = HealthCheckConfig {
            virtualhost: Some("www.example.com".to_owned()),
            ..http("/", None)
        };
        assert_eq!(
            Probe::new(&check, server.address).run(&Stop::default()),
            Ok(())
        );
        let request = server.requests.recv().unwrap();
        let hosts: Vec<&str> = request
            .split("\r\n")
            .filter(|line| line.starts_with("Host:"))
            .collect();
        assert_eq!(hosts, ["Host: www.example.com"], "{request}");
    }

    fn with_digest(check: HealthCheckConfig, digest: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            digest: Some(digest.to_owned()),
            ..check
        }
    }

    /// The body's MD5 is checked whichever way the body ends; a body
    /// that is not there whole, or too big, fails.
    #[test]
    fn the_digest_is_the_md5_of_the_whole_body() {
        let server = WebServer::start();
        let wrong = "0123456789abcdef0123456789abcdef";
        let run = |path: &str, digest: &str| {
            let check = with_digest(http(path, None), digest);
            Probe::new(&check, server.address).run(&Stop::default())
        };
        for path in ["/page", "/chunked", "/eof"] {
            assert_eq!(run(path, PAGE_MD5), Ok(()), "{path}");
            assert_eq!(
                run(path, &PAGE_MD5.to_uppercase()),
                Ok(()),
                "{path}, in capitals"
            );
            assert_eq!(
                reason(run(path, wrong)),
                format!("MD5 digest {PAGE_MD5} is not the expected {wrong}"),
                "{path}"
            );
        }
        // The status first: a 500's page is not looked at.
        assert_eq!(reason(run("/fail", PAGE_MD5)), "HTTP status 500");
        // The MD5 of no body at all.
        let old = with_digest(http("/old", None), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            Probe::new(&old, server.address).run(&Stop::default()),
            Ok(())
        );
        assert_eq!(
            reason(run("/short", PAGE_MD5)),
            "connection closed before the end of the HTTP response body"
        );
        let too_large = "HTTP response body larger than 16777216 bytes, the most read for a digest";
        assert_eq!(reason(run("/huge", PAGE_MD5)), too_large);
        assert_eq!(reason(run("/endless", PAGE_MD5)), too_large);
        assert_eq!(
            reason(run("/big-head", PAGE_MD5)),
            "HTTP response head longer than 65536 bytes"
        );
    }

    /// Without a digest only the status line is read; with one, the body
    /// is read within the same timeout as the rest.
    #[test]
    fn the_body_is_read_only_for_a_digest() {
        let server = WebServer::start();
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(
            probe(&http("/stall", None), server.address, timeout).run(&Stop::default()),
            Ok(())
        );
        assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
        server.requests.recv().unwrap();
        let check = with_digest(http("/stall", None), PAGE_MD5);
        let started = Instant::now();
        assert_eq!(
            probe(&check, server.address, timeout).run(&Stop::default()),
            Err(Failure::timeout(timeout))
        );
        let took = started.elapsed();
        assert!(took >= timeout && took < timeout * 2, "{took:?}");
    }

    /// A server that never answers (the kernel completes the connection
    /// in the listener's backlog): the check gives up at its timeout,
    /// counted as one.
    #[test]
    fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(300);
        for check in [http("/", None), check_https("/")] {
            let started = Instant::now();
            let failure = probe(&check, address, timeout)
                .run(&Stop::default())
                .unwrap_err();
            let took = started.elapsed();
            assert_eq!(failure, Failure::timeout(timeout), "{:?}", check.kind);
            assert_eq!(failure.reason, "timeout after 300ms");
            assert!(
                took >= timeout && took < timeout * 3,
                "{took:?}, {:?}",
                check.kind
            );
        }
    }

    fn check_https(path: &str) -> HealthCheckConfig {
        HealthCheckConfig {
            path: Some(path.to_owned()),
            ..check(HealthCheckKind::Https)
        }
    }

    /// The web server behind TLS, with the self-signed certificate of
    /// `testdata/`; it sends the server name (SNI) of each connection on
    /// the receiver.
    fn tls_server() -> (WebServer, mpsc::Receiver<Option<String>>) {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let certificate =
            CertificateDer::from_pem_slice(include_bytes!("testdata/cert.pem")).unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/key.pem")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![certificate], key)
                .unwrap(),
        );
        let (names, received) = mpsc::channel();
        let server = WebServer::start_with(move |mut stream| {
            let mut connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            // The handshake first, for the name the client gives in it.
            while connection.is_handshaking() {
                if connection.complete_io(&mut stream).is_err() {
                    break;
                }
            }
            let _ = names.send(connection.server_name().map(str::to_owned));
            Box::new(StreamOwned::new(connection, stream))
        });
        (server, received)
    }

    #[test]
    fn https_is_http_over_tls_without_certificate_verification() {
        let (server, _) = tls_server();
        let run = |path: &str| Probe::new(&check_https(path), server.address).run(&Stop::default());
        assert_eq!(run("/"), Ok(()));
        assert!(
            server
                .requests
                .recv()
                .unwrap()
                .starts_with("GET / HTTP/1.1\r\n")
        );
        assert_eq!(reason(run("/fail")), "HTTP status 500");
        // A server that does not speak TLS: it answers in plain text.
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = plain.local_addr().unwrap();
        let answer = std::thread::spawn(move || {
            let (mut stream, _) = plain.accept().unwrap();
            stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .unwrap();
        });
        let failure = reason(Probe::new(&check_https("/"), address).run(&Stop::default()));
        assert!(failure.starts_with("TLS: "), "{failure}");
        answer.join().unwrap();
    }

    #[test]
    fn misc_is_up_when_the_command_exits_0() {
        let real_server = "198.18.1.11:8080".parse().unwrap();
        let run = |command: &str| Probe::new(&misc(command), real_server).run(&Stop::default());
        assert_eq!(run("true"), Ok(()));
        assert_eq!(reason(run("false")), "exit status 1");
        assert_eq!(reason(run("exit 3")), "exit status 3");
        assert_eq!(reason(run("kill -TERM $$")), "killed by signal 15");
        assert_eq!(
            run(r#"test "$RVS_RS_ADDRESS" = 198.18.1.11 && test "$RVS_RS_PORT" = 8080"#),
            Ok(())
        );
    }

    /// `sleep 5` under a 1 s timeout: killed with what it started, and the
    /// check ends at its timeout.
    #[test]
    fn a_command_that_outlasts_its_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sleep.pid");
        let command = format!("sleep 5 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let failure = Probe::new(&misc(&command), refusing_port())
            .run(&Stop::default())
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(failure, Failure::timeout(Duration::from_secs(1)));
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // SIGKILL takes effect when the process next runs: give it a
        // moment to be gone (reaped as an orphan) or a zombie.
        let stat = format!("/proc/{}/stat", pid.trim());
        let dead = || std::fs::read_to_string(&stat).map_or(true, |stat| stat.contains(") Z "));
        let waited = Instant::now();
        while !dead() && waited.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            dead(),
            "sleep still runs: {:?}",
            std::fs::read_to_string(&stat)
        );
    }

    #[test]
    fn stopping_a_checker_kills_its_command() {
        let stop = Arc::new(Stop::default());
        let stopper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.stop();
            })
        };
        let started = Instant::now();
        let outcome = probe(&misc("sleep 5"), refusing_port(), Duration::from_secs(5)).run(&stop);
        assert_eq!(reason(outcome), "stopped");
        assert!(started.elapsed() < Duration::from_secs(2));
        stopper.join().unwrap();
    }

    #[test]
    fn status_lines_are_parsed_strictly() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503"), Some(503));
        for bad in [
            &b"HTTP/2 200"[..],
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000",
            b"ICY 200 OK",
            b"",
        ] {
            assert_eq!(status_code(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
    /// Over TLS the virtualhost is also the server name (SNI) when it is
    /// a DNS name, and the digest is checked all the same, to the end of
    /// a connection closed without TLS's close_notify too.
    #[test]
    fn https_sends_the_virtualhost_as_sni_and_checks_the_digest() {
        let (server, names) = tls_server();
        let run = |virtualhost: Option<&str>, path: &str| {
            let check = HealthCheckConfig {
                virtualhost: virtualhost.map(str::to_owned),
                ..with_digest(check_https(path), PAGE_MD5)
            };
            Probe::new(&check, server.address).run(&Stop::default())
        };
        assert_eq!(run(Some("www.example.com"), "/page"), Ok(()));
        assert_eq!(names.recv().unwrap().as_deref(), Some("www.example.com"));
        let request = server.requests.recv().unwrap();
        assert!(
            request.contains("\r\nHost: www.example.com\r\n"),
            "{request}"
        );
        for virtualhost in [None, Some("198.18.1.11"), Some("www.example.com:8443")] {
            assert_eq!(run(virtualhost, "/chunked"), Ok(()), "{virtualhost:?}");
            assert_eq!(names.recv().unwrap(), None, "{virtualhost:?}");
        }
        assert_eq!(run(None, "/eof"), Ok(()));
        assert_eq!(
            reason(run(None, "/")),
            format!("MD5 digest 444bcb3a3fcf8389296c49467f27e1d6 is not the expected {PAGE_MD5}")
        );
    }
}
