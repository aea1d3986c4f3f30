//! The checks themselves, keepalived's four kinds, with ordinary blocking
//! kernel sockets and a child process:
//!
//! * `tcp` (`TCP_CHECK`): a TCP connection to the real server opens within
//!   `connect_timeout`, and is closed at once.
//! * `http` (`HTTP_GET`): `GET path HTTP/1.1` with `Host` (the checked
//!   address) and `Connection: close`; the status line must come back,
//!   with `status` or else any 2xx, within `connect_timeout` of the start
//!   of the connection (connecting, sending and reading all count). An
//!   HTTP/1.0 answer is as good. The body is not read.
//! * `https` (`SSL_GET`): the same over TLS, verifying no certificate, as
//!   keepalived does without a CA: the check asks whether the server
//!   answers, not who it is. The handshake's signatures are still checked
//!   against the certificate the server shows.
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

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::config::{HealthCheckConfig, HealthCheckKind};

use super::Stop;
use super::machine::Failure;

/// The longest status line read: real ones are a few dozen bytes.
const MAX_STATUS_LINE: usize = 1024;
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
    Http {
        path: String,
        status: Option<u16>,
        tls: Option<Arc<ClientConfig>>,
    },
    Misc {
        command: String,
    },
}

impl Probe {
    /// `check` as it applies to `real_server`. The check was validated:
    /// `http`'s path and `misc`'s command are there.
    pub fn new(check: &HealthCheckConfig, real_server: SocketAddr) -> Probe {
        let port = check.port.unwrap_or(real_server.port());
        let http = |tls| Kind::Http {
            path: check.path.clone().unwrap_or_else(|| "/".to_owned()),
            status: check.status,
            tls,
        };
        let kind = match check.kind {
            HealthCheckKind::Tcp => Kind::Tcp,
            HealthCheckKind::Http => http(None),
            HealthCheckKind::Https => http(Some(tls_config())),
            HealthCheckKind::Misc => Kind::Misc {
                command: check.command.clone().unwrap_or_default(),
            },
        };
        Probe {
            kind,
            endpoint: SocketAddr::new(real_server.ip(), port),
            real_server,
            timeout: Duration::from_secs(u64::from(check.connect_timeout)),
        }
    }

    /// Runs the check once. `stop` cuts a running command short.
    pub fn run(&self, stop: &Stop) -> Result<(), Failure> {
        match &self.kind {
            Kind::Tcp => self.connect().map(drop),
            Kind::Http { path, status, tls } => {
                let deadline = Instant::now() + self.timeout;
                let mut stream = Bounded {
                    stream: self.connect()?,
                    deadline,
                };
                let Some(config) = tls else {
                    return self.get(&mut stream, path, *status);
                };
                let connection =
                    ClientConnection::new(Arc::clone(config), ServerName::from(self.endpoint.ip()))
                        .map_err(|error| Failure::new(format!("TLS: {error}")))?;
                let mut stream = StreamOwned::new(connection, stream);
                let outcome = self.get(&mut stream, path, *status);
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

    /// Sends the GET and reads the status line.
    fn get(
        &self,
        stream: &mut (impl Read + Write),
        path: &str,
        expected: Option<u16>,
    ) -> Result<(), Failure> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rvsd/{}\r\nConnection: close\r\n\r\n",
            self.host(),
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| self.failure(&e))?;
        let status = self.status(stream)?;
        let good = match expected {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        };
        if good {
            Ok(())
        } else {
            Err(Failure::new(format!("HTTP status {status}")))
        }
    }

    /// The `Host` header: the checked address, without the scheme's
    /// default port.
    fn host(&self) -> String {
        let default_port = match &self.kind {
            Kind::Http { tls: Some(_), .. } => 443,
            _ => 80,
        };
        let ip = match self.endpoint.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        match self.endpoint.port() {
            port if port == default_port => ip,
            port => format!("{ip}:{port}"),
        }
    }

    /// The code of the response's status line (`HTTP/1.1 200 OK`).
    fn status(&self, stream: &mut impl Read) -> Result<u16, Failure> {
        let malformed = || Failure::new("malformed HTTP response: no status line");
        let mut line = Vec::new();
        let mut chunk = [0u8; 256];
        loop {
            if let Some(end) = line.iter().position(|&byte| byte == b'\n') {
                return status_code(&line[..end]).ok_or_else(malformed);
            }
            if line.len() >= MAX_STATUS_LINE {
                return Err(malformed());
            }
            match stream.read(&mut chunk) {
                Ok(0) if line.is_empty() => {
                    return Err(Failure::new("connection closed without an HTTP response"));
                }
                Ok(0) => return Err(malformed()),
                Ok(read) => line.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(self.failure(&error)),
            }
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

    /// A web server that answers `/` with 200, `/fail` with 500, `/old`
    /// in HTTP/1.0, `/garbage` with something else than HTTP, and other
    /// paths with 404; it sends every request it reads on `requests`.
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
                    let response: &[u8] = match path.as_str() {
                        "/" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        "/fail" => {
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
                        }
                        "/old" => b"HTTP/1.0 204 No Content\r\n\r\n",
                        "/garbage" => b"SSH-2.0-OpenSSH_9.2\r\n",
                        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                    };
                    let _ = stream.write_all(response);
                    let _ = stream.flush();
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
        assert_eq!(on_80.host(), "[fd00::11]");
        let https = Probe::new(&check_https("/"), "198.18.1.11:443".parse().unwrap());
        assert_eq!(https.host(), "198.18.1.11");
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
    /// `testdata/`.
    fn tls_server() -> WebServer {
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
        WebServer::start_with(move |stream| {
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            Box::new(StreamOwned::new(connection, stream))
        })
    }

    #[test]
    fn https_is_http_over_tls_without_certificate_verification() {
        let server = tls_server();
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
}
