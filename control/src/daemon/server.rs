//! The control socket: a Unix stream socket speaking [`crate::protocol`].
//!
//! Each client connection is served by its own thread (at most
//! [`MAX_CLIENTS`] at once), so a slow or silent client cannot hold up
//! others; an idle connection is closed after [`IDLE_TIMEOUT`]. Requests
//! are answered in order. A malformed request is answered with an error
//! and the connection stays usable; only an oversized one closes it, since
//! the stream cannot be resynchronised without reading the whole payload.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::Uid;

use crate::protocol::{
    Header, Hello, MessageType, PROTOCOL_VERSION, ProtocolError, Reply, Request, Status,
    encode_error, encode_reply, read_header, read_payload, write_message,
};

use super::state::Refusal;

/// Clients served at once.
pub(super) const MAX_CLIENTS: usize = 64;
/// A connection with no request for this long is closed.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon does with a request that passed the session checks.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Result<Reply, Refusal>;
}

/// A bound control socket; the file is removed on drop.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` with mode 0660, creating its directory (mode 0755) if
    /// needed. A stale socket file is replaced; a live one (another rvsd
    /// answers on it) is an error.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("another rvsd is listening on {}", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts clients on a thread of its own, forever.
    pub fn serve(&self, handler: Arc<dyn Handler>) -> io::Result<std::thread::JoinHandle<()>> {
        let listener = self.listener.try_clone()?;
        std::thread::Builder::new()
            .name("rvs-control".into())
            .spawn(move || accept_loop(&listener, handler))
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, handler: Arc<dyn Handler>) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "control socket: accept failed");
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            let _ = reply_error(
                &mut stream,
                0,
                Status::Internal,
                "too many control clients; try again",
            );
            continue;
        }
        let handler = Arc::clone(&handler);
        let clients_done = Arc::clone(&clients);
        let spawned = std::thread::Builder::new()
            .name("rvs-client".into())
            .spawn(move || {
                if let Err(error) = serve_client(stream, handler.as_ref()) {
                    tracing::debug!(%error, "control client ended");
                }
                clients_done.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(error) = spawned {
            clients.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%error, "control socket: cannot start a client thread");
        }
    }
}

/// Whether the peer may change the configuration: root, or the daemon's
/// own user.
fn privileged(stream: &UnixStream) -> bool {
    match getsockopt(stream, PeerCredentials) {
        Ok(credentials) => {
            let uid = credentials.uid();
            uid == 0 || uid == Uid::effective().as_raw()
        }
        Err(_) => false,
    }
}

fn serve_client(mut stream: UnixStream, handler: &dyn Handler) -> Result<(), ProtocolError> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let privileged = privileged(&stream);
    let mut greeted = false;
    while let Some(header) = read_header(&mut stream)? {
        let payload = match read_payload(&mut stream, &header) {
            Ok(payload) => payload,
            Err(ProtocolError::TooLarge(len)) => {
                let message = format!(
                    "request of {len} bytes exceeds the limit of {}",
                    crate::protocol::MAX_MESSAGE_LEN
                );
                reply_error(&mut stream, header.id, Status::TooLarge, &message)?;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let outcome = match Request::decode(MessageType(header.kind), &payload) {
            Err(error) => Err(Refusal {
                status: Status::Malformed,
                message: error.to_string(),
            }),
            Ok(Request::Hello(hello)) if hello.version == PROTOCOL_VERSION => {
                greeted = true;
                tracing::debug!(agent = %hello.agent, "control client");
                Ok(Reply::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    agent: format!("rvsd {}", env!("CARGO_PKG_VERSION")),
                }))
            }
            Ok(Request::Hello(hello)) => Err(Refusal {
                status: Status::VersionMismatch,
                message: format!(
                    "protocol version {} is not supported; rvsd speaks version {PROTOCOL_VERSION}",
                    hello.version
                ),
            }),
            Ok(_) if !greeted => Err(Refusal {
                status: Status::VersionMismatch,
                message: "the first request must be a hello".to_owned(),
            }),
            Ok(request) if request.is_mutation() && !privileged => Err(Refusal {
                status: Status::PermissionDenied,
                message: "Permission denied (you must be root)".to_owned(),
            }),
            Ok(request) => handler.handle(request),
        };
        match outcome {
            Ok(reply) => {
                let body = encode_reply(&reply);
                let header = Header {
                    id: header.id,
                    kind: Status::Ok as u32,
                    len: body.len() as u32,
                };
                write_message(&mut stream, header, &body)?;
            }
            Err(refusal) => reply_error(&mut stream, header.id, refusal.status, &refusal.message)?,
        }
    }
    Ok(())
}

fn reply_error(
    stream: &mut UnixStream,
    for_id: u32,
    status: Status,
    message: &str,
) -> io::Result<()> {
    let body = encode_error(message);
    let header = Header {
        id: for_id,
        kind: status as u32,
        len: body.len() as u32,
    };
    write_message(stream, header, &body)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::protocol::{Client, HEADER_LEN, ServiceFilter};

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: Request) -> Result<Reply, Refusal> {
            match request {
                Request::ListServices(_) => Ok(Reply::Services(Vec::new())),
                _ => Err(Refusal {
                    status: Status::NotFound,
                    message: "No such service".into(),
                }),
            }
        }
    }

    fn serve() -> (tempfile::TempDir, ControlSocket) {
        let dir = tempfile::tempdir().unwrap();
        let socket = ControlSocket::bind(&dir.path().join("run/rvsd.sock")).unwrap();
        socket.serve(Arc::new(Echo)).unwrap();
        (dir, socket)
    }

    #[test]
    fn the_socket_is_group_writable_only() {
        let (_dir, socket) = serve();
        let mode = fs::metadata(socket.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        assert!(
            ControlSocket::bind(socket.path()).is_err(),
            "a live socket is not replaced"
        );
    }

    #[test]
    fn requests_are_answered_and_refusals_carry_messages() {
        let (_dir, socket) = serve();
        let mut client = Client::connect(socket.path(), "test").unwrap();
        assert_eq!(client.server().version, PROTOCOL_VERSION);
        assert_eq!(
            client
                .call(&Request::ListServices(ServiceFilter::default()))
                .unwrap(),
            Reply::Services(Vec::new())
        );
        match client.call(&Request::Flush) {
            Err(ProtocolError::Refused { status, message }) => {
                assert_eq!(status, Status::NotFound);
                assert_eq!(message, "No such service");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn raw_exchange(stream: &mut UnixStream, kind: u32, payload: &[u8]) -> (Header, String) {
        let header = Header {
            id: 9,
            kind,
            len: payload.len() as u32,
        };
        write_message(stream, header, payload).unwrap();
        let response = read_header(stream).unwrap().unwrap();
        let body = read_payload(stream, &response).unwrap();
        (response, String::from_utf8(body).unwrap())
    }

    #[test]
    fn malformed_requests_get_errors_and_the_session_goes_on() {
        let (_dir, socket) = serve();
        let mut stream = UnixStream::connect(socket.path()).unwrap();
        let (response, body) = raw_exchange(&mut stream, MessageType::SERVICE_LIST.0, b"{}");
        assert_eq!(
            response.kind,
            Status::VersionMismatch as u32,
            "hello first: {body}"
        );
        let hello = format!(r#"{{"version":{PROTOCOL_VERSION},"agent":"raw"}}"#);
        let (response, _) = raw_exchange(&mut stream, MessageType::HELLO.0, hello.as_bytes());
        assert_eq!((response.id, response.kind), (9, Status::Ok as u32));
        let (response, body) = raw_exchange(&mut stream, MessageType::SERVICE_ADD.0, b"{not json");
        assert_eq!(response.kind, Status::Malformed as u32);
        assert!(body.contains("malformed"), "{body}");
        let (response, _) = raw_exchange(&mut stream, 0x7777_0001, b"{}");
        assert_eq!(response.kind, Status::Malformed as u32);
        let (response, _) = raw_exchange(&mut stream, MessageType::SERVICE_LIST.0, b"{}");
        assert_eq!(response.kind, Status::Ok as u32, "still serving");
    }

    #[test]
    fn oversized_requests_are_refused_before_reading() {
        let (_dir, socket) = serve();
        let mut stream = UnixStream::connect(socket.path()).unwrap();
        let header = Header {
            id: 1,
            kind: MessageType::HELLO.0,
            len: u32::MAX,
        };
        stream.write_all(&header.encode()).unwrap();
        let response = read_header(&mut stream).unwrap().unwrap();
        assert_eq!(response.kind, Status::TooLarge as u32);
        let mut rest = [0u8; HEADER_LEN];
        let _ = read_payload(&mut stream, &response);
        assert!(
            matches!(std::io::Read::read(&mut stream, &mut rest), Ok(0)),
            "then closed"
        );
        // The daemon still serves others.
        assert!(Client::connect(socket.path(), "after").is_ok());
    }
}
