//! The control protocol spoken on rvsd's Unix socket.
//!
//! # Framing
//!
//! Every message is a 12-byte header followed by a JSON payload of `len`
//! bytes. All header fields are little-endian `u32`.
//!
//! ```text
//! request:  | id | type    | len | payload (JSON) |
//! response: | for_id | status | len | payload (JSON) |
//! ```
//!
//! * `id` is chosen by the client; the response carries it in `for_id`.
//! * `type` is a [`MessageType`]: the high 16 bits name a namespace
//!   (core, service, real server, ...), the low 16 bits the message within
//!   it. Numbers are stable: new messages get new numbers, old ones are never
//!   reused.
//! * `status` is a [`Status`]: 0 for success, otherwise an error whose
//!   payload is `{"message": "..."}`.
//! * `len` is at most [`MAX_MESSAGE_LEN`]; the server checks it before
//!   reading the payload and answers [`Status::TooLarge`] (then closes the
//!   connection, as the stream cannot be resynchronised cheaply).
//!
//! # Session
//!
//! The first request of a connection must be [`Request::Hello`] carrying
//! [`PROTOCOL_VERSION`]; the server answers with its own version and refuses
//! anything else with [`Status::VersionMismatch`]. Requests are then answered
//! in order, one response each. A malformed request gets an error response
//! and the connection stays usable.
//!
//! # Paged listings
//!
//! The connection listing ([`MessageType::CONN_LIST`], `rvsadm -Lnc`) can
//! hold millions of entries, more than one message: each reply is a
//! [`ConnPage`] whose `next` cursor the client sends back for the
//! following page, until `next` is `null`. `docs/control-protocol.md`
//! lists every message type and payload.
//!
//! # Permissions
//!
//! The socket is created with mode 0660. The server reads the peer's
//! credentials (`SO_PEERCRED`): requests that change state need uid 0 or the
//! daemon's own uid; listings are open to whoever may connect.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Protocol, RealServerSpec, ServiceKey, ServiceSpec, ServiceStatus, Timeouts};

/// Version of this protocol; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest payload accepted in either direction.
pub const MAX_MESSAGE_LEN: u32 = 1 << 20;

/// Default path of rvsd's control socket.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// Environment variable that overrides [`DEFAULT_SOCKET`] for clients.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

pub const HEADER_LEN: usize = 12;

/// Message type numbers: namespace in the high half, message in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u32);

impl MessageType {
    const fn new(namespace: u16, message: u16) -> Self {
        MessageType(((namespace as u32) << 16) | message as u32)
    }

    // Namespace 0: session.
    pub const HELLO: MessageType = MessageType::new(0x0000, 0x0001);
    // Namespace 1: virtual services.
    pub const SERVICE_ADD: MessageType = MessageType::new(0x0001, 0x0001);
    pub const SERVICE_EDIT: MessageType = MessageType::new(0x0001, 0x0002);
    pub const SERVICE_DEL: MessageType = MessageType::new(0x0001, 0x0003);
    pub const SERVICE_FLUSH: MessageType = MessageType::new(0x0001, 0x0004);
    pub const SERVICE_LIST: MessageType = MessageType::new(0x0001, 0x0005);
    /// One page of the connections and persistence templates.
    pub const CONN_LIST: MessageType = MessageType::new(0x0001, 0x0006);
    // Namespace 2: real servers.
    pub const REAL_ADD: MessageType = MessageType::new(0x0002, 0x0001);
    pub const REAL_EDIT: MessageType = MessageType::new(0x0002, 0x0002);
    pub const REAL_DEL: MessageType = MessageType::new(0x0002, 0x0003);
    // Namespace 3: daemon information and counters.
    pub const INFO: MessageType = MessageType::new(0x0003, 0x0001);
    pub const ZERO_COUNTERS: MessageType = MessageType::new(0x0003, 0x0002);
    pub const WORKERS: MessageType = MessageType::new(0x0003, 0x0003);
    /// Reread the configuration file and apply what changed.
    pub const RELOAD: MessageType = MessageType::new(0x0003, 0x0004);
    // Namespace 4: connection timeouts.
    pub const TIMEOUT_GET: MessageType = MessageType::new(0x0004, 0x0001);
    pub const TIMEOUT_SET: MessageType = MessageType::new(0x0004, 0x0002);

    pub fn namespace(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Outcome of a request. Numbers are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    /// The payload is not valid for the message type, or the type is unknown.
    Malformed = 1,
    /// The payload is longer than [`MAX_MESSAGE_LEN`].
    TooLarge = 2,
    /// The peer may not make this change.
    PermissionDenied = 3,
    /// The named service or real server does not exist.
    NotFound = 4,
    /// The service or real server exists already.
    Exists = 5,
    /// A value is out of range or inconsistent.
    Invalid = 6,
    /// No `Hello`, or a protocol version this side does not speak.
    VersionMismatch = 7,
    /// The request is valid but the daemon does not implement it yet.
    Unsupported = 8,
    /// The daemon failed to carry out a valid request.
    Internal = 9,
}

impl Status {
    pub fn from_code(code: u32) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::Malformed,
            2 => Status::TooLarge,
            3 => Status::PermissionDenied,
            4 => Status::NotFound,
            5 => Status::Exists,
            6 => Status::Invalid,
            7 => Status::VersionMismatch,
            8 => Status::Unsupported,
            9 => Status::Internal,
            _ => return None,
        })
    }
}

/// Payload of [`MessageType::HELLO`], in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub version: u32,
    /// Free text naming the program, for logs.
    pub agent: String,
}

/// Names a real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerRef {
    pub service: ServiceKey,
    pub address: std::net::SocketAddr,
}

/// Adds or edits a real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerChange {
    pub service: ServiceKey,
    pub real_server: RealServerSpec,
}

/// Which services a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFilter {
    /// One service, or all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceKey>,
}

/// What the daemon says about itself (first line of `ipvsadm -L`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// rvsd's version.
    pub version: String,
    /// Connection table capacity, all workers together.
    pub connection_table_size: u64,
    pub workers: u32,
}

/// One worker's counters (`rvsadm --workers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub index: u32,
    /// The EAL lcore the worker runs on.
    pub lcore: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Connections in the worker's table now.
    pub connections: u64,
    /// TSC cycles spent in polling rounds that received packets.
    pub busy_cycles: u64,
    /// TSC frequency, to turn cycles into time.
    pub tsc_hz: u64,
    /// Generation of the configuration the worker runs.
    pub snapshot_generation: u64,
    /// Dropped packets by reason (every reason, zeros included).
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Other events by name (every event, zeros included).
    pub events: std::collections::BTreeMap<String, u64>,
}

/// Records a page of the connection listing holds at most: a full page
/// of the longest entries stays under half of [`MAX_MESSAGE_LEN`].
pub const CONN_PAGE_MAX: u32 = 1024;

/// Payload of [`MessageType::CONN_LIST`]: one page of the connection
/// listing (`rvsadm -Lnc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnListRequest {
    /// Where to go on: the previous page's `next`; absent for the first
    /// page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<ConnCursor>,
    /// Records wanted, 1 to [`CONN_PAGE_MAX`] (other values are clamped).
    #[serde(default = "conn_page_max")]
    pub limit: u32,
}

fn conn_page_max() -> u32 {
    CONN_PAGE_MAX
}

/// Where a connection listing goes on. Clients treat it as opaque text
/// and pass back the `next` of the page they got.
///
/// A listing walks each worker's IPv4 table, then its IPv6 table, worker
/// after worker, then the persistence templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConnCursor {
    /// Entry `entry` of worker `worker`'s IPv4 table (`w0.ipv4.4096`).
    Ipv4 { worker: u32, entry: u32 },
    /// Entry `entry` of worker `worker`'s IPv6 table (`w0.ipv6.0`).
    Ipv6 { worker: u32, entry: u32 },
    /// Entry `entry` of the persistence templates (`templates.512`).
    Templates { entry: u64 },
}

impl ConnCursor {
    /// Where a listing starts.
    pub const START: ConnCursor = ConnCursor::Ipv4 {
        worker: 0,
        entry: 0,
    };
}

impl fmt::Display for ConnCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnCursor::Ipv4 { worker, entry } => write!(f, "w{worker}.ipv4.{entry}"),
            ConnCursor::Ipv6 { worker, entry } => write!(f, "w{worker}.ipv6.{entry}"),
            ConnCursor::Templates { entry } => write!(f, "templates.{entry}"),
        }
    }
}

impl FromStr for ConnCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid connection listing cursor {text:?}");
        let parts: Vec<&str> = text.split('.').collect();
        match parts[..] {
            ["templates", entry] => Ok(ConnCursor::Templates {
                entry: entry.parse().map_err(|_| invalid())?,
            }),
            [worker, table, entry] => {
                let worker = worker
                    .strip_prefix('w')
                    .and_then(|worker| worker.parse().ok())
                    .ok_or_else(invalid)?;
                let entry = entry.parse().map_err(|_| invalid())?;
                match table {
                    "ipv4" => Ok(ConnCursor::Ipv4 { worker, entry }),
                    "ipv6" => Ok(ConnCursor::Ipv6 { worker, entry }),
                    _ => Err(invalid()),
                }
            }
            _ => Err(invalid()),
        }
    }
}

impl TryFrom<String> for ConnCursor {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ConnCursor> for String {
    fn from(cursor: ConnCursor) -> String {
        cursor.to_string()
    }
}

/// A connection or a persistence template, as `rvsadm -Lnc` lists it
/// (ipvsadm's columns: pro, expire, state, source, virtual, destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnEntry {
    pub protocol: Protocol,
    /// IPVS's name of the state: `ESTABLISHED`, `SYN_RECV`, `TIME_WAIT`,
    /// ... for TCP, `UDP` for UDP, `NONE` for a template.
    pub state: String,
    /// Seconds before the entry expires unless traffic comes.
    pub expires: u32,
    /// CIP:cport; a template's client network, port 0.
    pub client: SocketAddr,
    /// VIP:vport.
    #[serde(rename = "virtual")]
    pub virtual_address: SocketAddr,
    /// RIP:rport.
    pub real_server: SocketAddr,
    /// FULLNAT's LIP:lport, the source the real server sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// A persistence template rather than a connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

/// Reply to [`MessageType::CONN_LIST`]. A page may hold fewer records
/// than asked for, even none, before the end: a sparse table is walked a
/// bounded stretch per page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnPage {
    pub connections: Vec<ConnEntry>,
    /// The cursor of the next page; `null` after the last.
    pub next: Option<ConnCursor>,
}

/// A request and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello(Hello),
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceKey),
    Flush,
    ListServices(ServiceFilter),
    ListConnections(ConnListRequest),
    AddRealServer(RealServerChange),
    EditRealServer(RealServerChange),
    DeleteRealServer(RealServerRef),
    Info,
    Workers,
    ZeroCounters(ServiceFilter),
    GetTimeouts,
    SetTimeouts(Timeouts),
    /// Reread rvsd's configuration file and apply the difference.
    Reload,
}

/// A successful response's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Hello(Hello),
    Services(Vec<ServiceStatus>),
    Connections(ConnPage),
    Info(DaemonInfo),
    Workers(Vec<WorkerStatus>),
    Timeouts(Timeouts),
    Done {},
}

/// The payload of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("cannot reach rvsd at {path}: {source}")]
    Connect { path: String, source: io::Error },
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(u32),
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("unknown message type {0:#010x}")]
    UnknownType(u32),
    #[error("response to request {got}, expected {expected}")]
    OutOfOrder { expected: u32, got: u32 },
    /// The daemon refused the request.
    #[error("{message}")]
    Refused { status: Status, message: String },
}

impl Request {
    pub fn message_type(&self) -> MessageType {
        match self {
            Request::Hello(_) => MessageType::HELLO,
            Request::AddService(_) => MessageType::SERVICE_ADD,
            Request::EditService(_) => MessageType::SERVICE_EDIT,
            Request::DeleteService(_) => MessageType::SERVICE_DEL,
            Request::Flush => MessageType::SERVICE_FLUSH,
            Request::ListServices(_) => MessageType::SERVICE_LIST,
            Request::ListConnections(_) => MessageType::CONN_LIST,
            Request::AddRealServer(_) => MessageType::REAL_ADD,
            Request::EditRealServer(_) => MessageType::REAL_EDIT,
            Request::DeleteRealServer(_) => MessageType::REAL_DEL,
            Request::Info => MessageType::INFO,
            Request::Workers => MessageType::WORKERS,
            Request::ZeroCounters(_) => MessageType::ZERO_COUNTERS,
            Request::GetTimeouts => MessageType::TIMEOUT_GET,
            Request::SetTimeouts(_) => MessageType::TIMEOUT_SET,
            Request::Reload => MessageType::RELOAD,
        }
    }

    /// Whether the request changes the daemon's state (and so needs a
    /// privileged peer).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Request::Hello(_)
                | Request::ListServices(_)
                | Request::ListConnections(_)
                | Request::Info
                | Request::Workers
                | Request::GetTimeouts
        )
    }

    /// Serialises the payload.
    pub fn encode_payload(&self) -> Vec<u8> {
        let encoded = match self {
            Request::Hello(hello) => serde_json::to_vec(hello),
            Request::AddService(spec) | Request::EditService(spec) => serde_json::to_vec(spec),
            Request::DeleteService(key) => serde_json::to_vec(key),
            Request::ListServices(filter) | Request::ZeroCounters(filter) => {
                serde_json::to_vec(filter)
            }
            Request::ListConnections(page) => serde_json::to_vec(page),
            Request::AddRealServer(change) | Request::EditRealServer(change) => {
                serde_json::to_vec(change)
            }
            Request::DeleteRealServer(real) => serde_json::to_vec(real),
            Request::SetTimeouts(timeouts) => serde_json::to_vec(timeouts),
            Request::Flush
            | Request::Info
            | Request::Workers
            | Request::GetTimeouts
            | Request::Reload => Ok(b"{}".to_vec()),
        };
        // Serialising these plain structs into memory cannot fail.
        encoded.unwrap_or_default()
    }

    /// Parses a request from its type and payload.
    pub fn decode(message_type: MessageType, payload: &[u8]) -> Result<Request, ProtocolError> {
        fn json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, ProtocolError> {
            serde_json::from_slice(payload).map_err(|error| ProtocolError::Malformed {
                what: "request payload",
                detail: error.to_string(),
            })
        }
        fn empty(payload: &[u8]) -> Result<(), ProtocolError> {
            json::<EmptyBody>(payload).map(|_| ())
        }
        Ok(match message_type {
            MessageType::HELLO => Request::Hello(json(payload)?),
            MessageType::SERVICE_ADD => Request::AddService(json(payload)?),
            MessageType::SERVICE_EDIT => Request::EditService(json(payload)?),
            MessageType::SERVICE_DEL => Request::DeleteService(json(payload)?),
            MessageType::SERVICE_FLUSH => empty(payload).map(|_| Request::Flush)?,
            MessageType::SERVICE_LIST => Request::ListServices(json(payload)?),
            MessageType::CONN_LIST => Request::ListConnections(json(payload)?),
            MessageType::REAL_ADD => Request::AddRealServer(json(payload)?),
            MessageType::REAL_EDIT => Request::EditRealServer(json(payload)?),
            MessageType::REAL_DEL => Request::DeleteRealServer(json(payload)?),
            MessageType::INFO => empty(payload).map(|_| Request::Info)?,
            MessageType::WORKERS => empty(payload).map(|_| Request::Workers)?,
            MessageType::ZERO_COUNTERS => Request::ZeroCounters(json(payload)?),
            MessageType::TIMEOUT_GET => empty(payload).map(|_| Request::GetTimeouts)?,
            MessageType::TIMEOUT_SET => Request::SetTimeouts(json(payload)?),
            MessageType::RELOAD => empty(payload).map(|_| Request::Reload)?,
            MessageType(other) => return Err(ProtocolError::UnknownType(other)),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

/// A decoded message header (request or response: the fields are laid out
/// the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `id` of a request, `for_id` of a response.
    pub id: u32,
    /// `type` of a request, `status` of a response.
    pub kind: u32,
    pub len: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.id.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.kind.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.len.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let field = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Header {
            id: field(0),
            kind: field(4),
            len: field(8),
        }
    }
}

/// Writes one framed message.
pub fn write_message(stream: &mut impl Write, header: Header, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&header.encode());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)?;
    stream.flush()
}

/// Reads one message header; `Ok(None)` on a clean end of stream.
pub fn read_header(stream: &mut impl Read) -> Result<Option<Header>, ProtocolError> {
    let mut bytes = [0; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match stream.read(&mut bytes[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(ProtocolError::Malformed {
                    what: "header",
                    detail: format!("stream ended after {filled} of {HEADER_LEN} bytes"),
                });
            }
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Some(Header::decode(&bytes)))
}

/// Reads the payload announced by `header`, refusing oversized ones before
/// reading anything.
pub fn read_payload(stream: &mut impl Read, header: &Header) -> Result<Vec<u8>, ProtocolError> {
    if header.len > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLarge(header.len));
    }
    let mut payload = vec![0; header.len as usize];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

/// A blocking client session, as used by `rvsadm` and the tests.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    next_id: u32,
    server: Hello,
}

impl Client {
    /// Connects and performs the version handshake.
    pub fn connect(path: &Path, agent: &str) -> Result<Client, ProtocolError> {
        let stream = UnixStream::connect(path).map_err(|source| ProtocolError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut client = Client {
            stream,
            next_id: 1,
            server: Hello {
                version: 0,
                agent: String::new(),
            },
        };
        let hello = Request::Hello(Hello {
            version: PROTOCOL_VERSION,
            agent: agent.to_owned(),
        });
        match client.call(&hello)? {
            Reply::Hello(server) => client.server = server,
            other => {
                return Err(ProtocolError::Malformed {
                    what: "hello reply",
                    detail: format!("{other:?}"),
                });
            }
        }
        Ok(client)
    }

    /// The daemon's side of the handshake.
    pub fn server(&self) -> &Hello {
        &self.server
    }

    /// Sends a request and waits for its response.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ProtocolError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let payload = request.encode_payload();
        let header = Header {
            id,
            kind: request.message_type().0,
            len: u32::try_from(payload.len()).map_err(|_| ProtocolError::TooLarge(u32::MAX))?,
        };
        write_message(&mut self.stream, header, &payload)?;
        let response = read_header(&mut self.stream)?.ok_or_else(|| ProtocolError::Malformed {
            what: "response",
            detail: "the daemon closed the connection".to_owned(),
        })?;
        let body = read_payload(&mut self.stream, &response)?;
        if response.id != id {
            return Err(ProtocolError::OutOfOrder {
                expected: id,
                got: response.id,
            });
        }
        decode_reply(request, response.kind, &body)
    }
}

/// Interprets a response for `request`.
pub fn decode_reply(request: &Request, status: u32, body: &[u8]) -> Result<Reply, ProtocolError> {
    let malformed = |error: serde_json::Error| ProtocolError::Malformed {
        what: "response payload",
        detail: error.to_string(),
    };
    match Status::from_code(status) {
        Some(Status::Ok) => {}
        Some(status) => {
            let message = serde_json::from_slice::<ErrorBody>(body)
                .map(|error| error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
            return Err(ProtocolError::Refused { status, message });
        }
        None => {
            return Err(ProtocolError::Malformed {
                what: "response status",
                detail: format!("unknown status {status}"),
            });
        }
    }
    Ok(match request {
        Request::Hello(_) => Reply::Hello(serde_json::from_slice(body).map_err(malformed)?),
        Request::ListServices(_) => {
            Reply::Services(serde_json::from_slice(body).map_err(malformed)?)
        }
        Request::ListConnections(_) => {
            Reply::Connections(serde_json::from_slice(body).map_err(malformed)?)
        }
        Request::Info => Reply::Info(serde_json::from_slice(body).map_err(malformed)?),
        Request::Workers => Reply::Workers(serde_json::from_slice(body).map_err(malformed)?),
        Request::GetTimeouts => Reply::Timeouts(serde_json::from_slice(body).map_err(malformed)?),
        _ => Reply::Done {},
    })
}

/// Serialises a successful reply's payload.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    // Serialising these plain structs into memory cannot fail.
    serde_json::to_vec(reply).unwrap_or_default()
}

/// Serialises an error payload.
pub fn encode_error(message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        message: message.to_owned(),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ForwardMethod, Protocol, SchedulerName};

    fn service_key() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            address: "198.18.0.10:80".parse().unwrap(),
        }
    }

    #[test]
    fn message_types_are_namespaced() {
        assert_eq!(MessageType::HELLO.0, 0x0000_0001);
        assert_eq!(MessageType::SERVICE_ADD.namespace(), 1);
        assert_eq!(MessageType::REAL_DEL.0, 0x0002_0003);
    }

    #[test]
    fn requests_round_trip_through_their_encoding() {
        let requests = [
            Request::Hello(Hello {
                version: PROTOCOL_VERSION,
                agent: "test".into(),
            }),
            Request::AddService(ServiceSpec {
                protocol: Protocol::Tcp,
                address: "198.18.0.10:80".parse().unwrap(),
                scheduler: SchedulerName::Wrr,
                scheduler_flags: vec![],
                persistence: None,
                local_addresses: Vec::new(),
            }),
            Request::DeleteService(service_key()),
            Request::Flush,
            Request::ListServices(ServiceFilter::default()),
            Request::AddRealServer(RealServerChange {
                service: service_key(),
                real_server: RealServerSpec {
                    address: "198.18.1.11:8080".parse().unwrap(),
                    weight: 3,
                    forward: ForwardMethod::Masq,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
            }),
            Request::DeleteRealServer(RealServerRef {
                service: service_key(),
                address: "198.18.1.11:8080".parse().unwrap(),
            }),
            Request::Info,
            Request::Workers,
            Request::SetTimeouts(Timeouts::default()),
            Request::Reload,
        ];
        for request in requests {
            let decoded =
                Request::decode(request.message_type(), &request.encode_payload()).unwrap();
            assert_eq!(decoded, request);
        }
    }

    #[test]
    fn connection_pages_round_trip_and_cursors_are_text() {
        for request in [
            ConnListRequest {
                cursor: None,
                limit: 100,
            },
            ConnListRequest {
                cursor: Some(ConnCursor::Ipv6 {
                    worker: 3,
                    entry: 4096,
                }),
                limit: CONN_PAGE_MAX,
            },
        ] {
            let request = Request::ListConnections(request);
            assert_eq!(request.message_type().0, 0x0001_0006);
            assert!(!request.is_mutation(), "open to unprivileged peers");
            let decoded =
                Request::decode(request.message_type(), &request.encode_payload()).unwrap();
            assert_eq!(decoded, request);
        }
        assert_eq!(
            Request::decode(MessageType::CONN_LIST, b"{}").unwrap(),
            Request::ListConnections(ConnListRequest {
                cursor: None,
                limit: CONN_PAGE_MAX,
            })
        );
        for (cursor, text) in [
            (ConnCursor::START, "w0.ipv4.0"),
            (
                ConnCursor::Ipv6 {
                    worker: 12,
                    entry: 7,
                },
                "w12.ipv6.7",
            ),
            (ConnCursor::Templates { entry: 512 }, "templates.512"),
        ] {
            assert_eq!(cursor.to_string(), text);
            assert_eq!(text.parse(), Ok(cursor));
        }
        for bad in [
            "",
            "w0.ipv5.1",
            "0.ipv4.1",
            "w0.ipv4",
            "templates.-1",
            "w0.ipv4.1.2",
        ] {
            assert!(bad.parse::<ConnCursor>().is_err(), "{bad}");
        }
        assert!(matches!(
            Request::decode(MessageType::CONN_LIST, br#"{"cursor": "nowhere"}"#),
            Err(ProtocolError::Malformed { .. })
        ));

        let page = ConnPage {
            connections: vec![ConnEntry {
                protocol: Protocol::Tcp,
                state: "NONE".into(),
                expires: 59,
                client: "198.18.0.0:0".parse().unwrap(),
                virtual_address: "198.18.0.10:80".parse().unwrap(),
                real_server: "198.18.1.11:80".parse().unwrap(),
                local: None,
                template: true,
            }],
            next: None,
        };
        let body = encode_reply(&Reply::Connections(page.clone()));
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(r#""virtual":"198.18.0.10:80""#), "{text}");
        assert!(text.ends_with(r#""next":null}"#), "{text}");
        let request = Request::ListConnections(ConnListRequest {
            cursor: None,
            limit: 1,
        });
        assert_eq!(
            decode_reply(&request, Status::Ok as u32, &body).unwrap(),
            Reply::Connections(page)
        );
    }

    /// The longest entries (IPv6 FULLNAT, every address at full length)
    /// keep a full page well under the message limit.
    #[test]
    fn a_full_connection_page_is_well_under_the_message_limit() {
        let longest: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
            .parse()
            .unwrap();
        let entry = ConnEntry {
            protocol: Protocol::Tcp,
            state: "ESTABLISHED".into(),
            expires: u32::MAX,
            client: longest,
            virtual_address: longest,
            real_server: longest,
            local: Some(longest),
            template: false,
        };
        let page = ConnPage {
            connections: vec![entry; CONN_PAGE_MAX as usize],
            next: Some(ConnCursor::Ipv6 {
                worker: u32::MAX,
                entry: u32::MAX,
            }),
        };
        let len = encode_reply(&Reply::Connections(page)).len();
        assert!(len < MAX_MESSAGE_LEN as usize / 2, "{len} bytes");
    }

    #[test]
    fn malformed_payloads_and_unknown_types_are_errors() {
        assert!(matches!(
            Request::decode(MessageType::SERVICE_ADD, b"{\"protocol\":\"tcp\"}"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Request::decode(MessageType::SERVICE_FLUSH, b"not json"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Request::decode(MessageType(0x7777_0001), b"{}"),
            Err(ProtocolError::UnknownType(0x7777_0001))
        ));
    }

    #[test]
    fn oversized_payloads_are_refused_before_reading() {
        let header = Header {
            id: 1,
            kind: MessageType::INFO.0,
            len: MAX_MESSAGE_LEN + 1,
        };
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_payload(&mut empty, &header),
            Err(ProtocolError::TooLarge(_))
        ));
    }

    #[test]
    fn error_replies_carry_their_message() {
        let body = encode_error("No such service");
        match decode_reply(&Request::Flush, Status::NotFound as u32, &body) {
            Err(ProtocolError::Refused { status, message }) => {
                assert_eq!(status, Status::NotFound);
                assert_eq!(message, "No such service");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
