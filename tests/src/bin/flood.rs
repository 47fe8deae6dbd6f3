//! flood: a hostile local user's attack on vigild's private socket, for the e2e tests
//! and `bench_flood`. Raw Unix sockets and hand-written D-Bus framing (no zbus): the
//! point is to send what a well-behaved client never would.
//!
//! `flood --socket PATH [--ping-every SECS] [--max-hold SECS] [--timeout-ms MS] MODE`
//!
//! - `conns N`: N connections, each `AUTH EXTERNAL <uid>` then `BEGIN` once the server
//!   says `OK`; all held open. With `--ping-every S` every held connection sends a
//!   `Peer.Ping` every S seconds (from the first accepted one on, also while the rest
//!   are still being opened), so that an idle timeout cannot be what frees them.
//! - `bigheader N [--body BYTES] [--send BYTES]`: N connections as above; then on each
//!   in turn a method-call header claiming a body of BYTES (120,000,000) and the first
//!   SEND bytes (1 MiB) of it; then all held, stalled mid-message.
//! - `malformed N`: N connections as above; then on each 16 bytes that are no D-Bus
//!   header (byte-order mark `X`); then held.
//! - `longauth N [--send BYTES]`: N connections that never finish the SASL exchange:
//!   `\0AUTH EXTERNAL ` and then BYTES (1 MiB) of hex digits with no line end; held.
//!
//! With `--repeat`, whatever the server closes or refuses is opened and attacked again,
//! round after round, while the connections are held (up to N open): a sustained attack.
//!
//! Prints `READY <json>` (a `vigil_e2e::flood::FloodReport`) when every connection was
//! tried and written, then holds them until stdin reaches end of file, SIGTERM/SIGINT,
//! or `--max-hold` (600 s); then prints `DONE <json>` and exits 0. Every connect, read
//! and write has a deadline (`--timeout-ms`, 5000), the opening phase too
//! (`--open-deadline`, 120 s); N is at most 20,000. Exit 2 for bad arguments.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket, sockopt};
use nix::sys::time::TimeVal;
use vigil_e2e::dbus_wire::{self, MethodCall};
use vigil_e2e::flood::FloodReport;
use vigil_e2e::interrupt::{catch_interrupts, interrupted};

const MAX_CONNECTIONS: u32 = 20_000;
/// The server's `OK <guid>` line is about 37 bytes; anything longer is not a server.
const MAX_AUTH_REPLY: usize = 512;
/// Bytes kept per connection while framing what the server sends (ping replies are ~50).
const MAX_INBOX: usize = 64 * 1024;
const CHUNK: usize = 64 * 1024;
const POLL_MS: u16 = 200;
const OBJECT: &str = vigil_protocol::MANAGER_PATH;

#[derive(Parser, Debug)]
#[command(name = "flood", about = "Attack vigild's private socket: many connections, or oversized headers")]
struct Cli {
    /// The private socket.
    #[arg(long)]
    socket: PathBuf,
    /// Seconds between Peer.Ping calls on every held connection (0: never).
    #[arg(long, default_value_t = 0.0)]
    ping_every: f64,
    /// Hold the connections at most this many seconds.
    #[arg(long, default_value_t = 600)]
    max_hold: u64,
    /// Deadline of each connect, read and write (ms).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Stop opening connections after this many seconds (the rest count as failed).
    #[arg(long, default_value_t = 120)]
    open_deadline: u64,
    /// While holding, open and attack again whatever the server closed or refused, up to
    /// N, without pause (a sustained attack, for the benchmark).
    #[arg(long)]
    repeat: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// N authenticated connections, held.
    Conns { n: u32 },
    /// N authenticated connections, each then sending a header that claims BODY bytes
    /// and SEND bytes of that body.
    Bigheader {
        n: u32,
        #[arg(long, default_value_t = 120_000_000)]
        body: u32,
        #[arg(long, default_value_t = 1 << 20)]
        send: u64,
    },
    /// N authenticated connections, each then sending 16 bytes that are no header.
    Malformed { n: u32 },
    /// N connections sending an endless SASL line (BYTES of it).
    Longauth {
        n: u32,
        #[arg(long, default_value_t = 1 << 20)]
        send: u64,
    },
}

impl Mode {
    fn n(&self) -> u32 {
        match *self {
            Mode::Conns { n } | Mode::Bigheader { n, .. } | Mode::Malformed { n } | Mode::Longauth { n, .. } => n,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Conns { .. } => "conns",
            Mode::Bigheader { .. } => "bigheader",
            Mode::Malformed { .. } => "malformed",
            Mode::Longauth { .. } => "longauth",
        }
    }
}

/// One accepted connection.
struct Conn {
    stream: UnixStream,
    serial: u32,
    inbox: Vec<u8>,
    open: bool,
}

/// Why a connection did not complete its handshake.
enum Failure {
    /// The server closed it (end of file, reset, broken pipe) before `OK`.
    ClosedByPeer,
    Other(String),
}

fn main() {
    let cli = Cli::parse();
    let n = cli.mode.n();
    if n == 0 || n > MAX_CONNECTIONS || !(cli.ping_every >= 0.0 && cli.ping_every <= 3600.0) {
        eprintln!("flood: N must be 1..={MAX_CONNECTIONS} and --ping-every 0..=3600");
        std::process::exit(2);
    }
    catch_interrupts();
    raise_nofile();
    let mut flood = Flooder::new(&cli, n);
    flood.attack(n);
    println!("READY {}", flood.report_json());
    flood.hold(Duration::from_secs(cli.max_hold));
    println!("DONE {}", flood.report_json());
}

/// What each new connection does once connected.
struct Payload {
    /// Complete the SASL handshake first.
    auth: bool,
    /// Written whole after the handshake (empty: nothing, the connection is only held).
    first: Vec<u8>,
    /// Then this many bytes of `filler`.
    filler: u8,
    send: u64,
}

impl Payload {
    fn of(mode: &Mode) -> Payload {
        match *mode {
            Mode::Conns { .. } => Payload { auth: true, first: Vec::new(), filler: 0, send: 0 },
            Mode::Bigheader { body, send, .. } => {
                let call = MethodCall {
                    serial: 1,
                    flags: 0,
                    destination: None,
                    path: OBJECT,
                    interface: vigil_protocol::MANAGER_INTERFACE,
                    member: "ListSessions",
                    signature: Some("ay"),
                    body_len: body,
                };
                Payload { auth: true, first: call.header(), filler: 0, send }
            }
            // A fixed header whose byte-order mark is neither `l` nor `B`.
            Mode::Malformed { .. } => {
                Payload { auth: true, first: b"X\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00".to_vec(), filler: 0, send: 0 }
            }
            Mode::Longauth { send, .. } => Payload { auth: false, first: b"\0AUTH EXTERNAL ".to_vec(), filler: b'3', send },
        }
    }
}

/// Soft RLIMIT_NOFILE to the hard limit: the flood holds thousands of descriptors.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("flood: cannot raise the descriptor limit to {hard}: {e}");
    }
}

struct Flooder<'a> {
    cli: &'a Cli,
    n: u32,
    timeout: Duration,
    ping_every: Option<Duration>,
    last_ping: Instant,
    conns: Vec<Conn>,
    payload: Payload,
    report: FloodReport,
    held_since: Option<Instant>,
}

impl<'a> Flooder<'a> {
    fn new(cli: &'a Cli, n: u32) -> Flooder<'a> {
        let payload = Payload::of(&cli.mode);
        let mut report = FloodReport::default();
        if let Mode::Bigheader { body, .. } = cli.mode {
            // The header is the payload's first part; the claimed body follows it.
            report.claimed_total_bytes = payload.first.len() as u64 + u64::from(body);
        }
        Flooder {
            cli,
            n,
            timeout: Duration::from_millis(cli.timeout_ms.max(1)),
            ping_every: (cli.ping_every > 0.0).then(|| Duration::from_secs_f64(cli.ping_every)),
            last_ping: Instant::now(),
            conns: Vec::new(),
            payload,
            report: FloodReport { mode: cli.mode.name().to_string(), uid: nix::unistd::getuid().as_raw(), requested: n, ..report },
            held_since: None,
        }
    }

    /// Opens `count` more connections and sends the payload on each new one.
    fn attack(&mut self, count: u32) {
        let start = Instant::now();
        let fresh = self.conns.len();
        self.open(count);
        if !self.payload.first.is_empty() {
            self.send_payload(fresh);
        }
        if self.report.open_ms == 0 {
            self.report.open_ms = start.elapsed().as_millis() as u64;
        }
    }

    /// Tries `count` connections; each completes the handshake if the payload says so
    /// (else it is only connected).
    fn open(&mut self, count: u32) {
        let start = Instant::now();
        let deadline = Duration::from_secs(self.cli.open_deadline);
        let auth = self.payload.auth;
        for i in 0..count {
            if interrupted() {
                break;
            }
            if start.elapsed() >= deadline {
                let left = count - i;
                *self.report.failed.entry("not tried: --open-deadline passed".to_string()).or_insert(0) += left;
                break;
            }
            match open(&self.cli.socket, auth.then_some(self.report.uid), self.timeout) {
                Ok(stream) => {
                    self.report.accepted += 1;
                    self.conns.push(Conn { stream, serial: 1, inbox: Vec::new(), open: true });
                }
                Err(Failure::ClosedByPeer) => self.report.refused += 1,
                Err(Failure::Other(what)) => *self.report.failed.entry(what).or_insert(0) += 1,
            }
            self.ping_if_due();
            self.drain();
        }
    }

    /// On each open connection from index `from` on, in turn: the payload's first part,
    /// then its filler.
    fn send_payload(&mut self, from: usize) {
        let Payload { ref first, filler, send, .. } = self.payload;
        let header = first.as_slice();
        let zeros = vec![filler; CHUNK];
        let from = from.min(self.conns.len());
        for conn in self.conns[from..].iter_mut().filter(|c| c.open) {
            if interrupted() {
                break;
            }
            let result = conn.stream.set_nonblocking(false).and_then(|()| conn.stream.write_all(header));
            let result = result.and_then(|()| {
                self.report.headers_sent += 1;
                let mut sent = 0u64;
                while sent < send {
                    let n = (send - sent).min(CHUNK as u64) as usize;
                    conn.stream.write_all(&zeros[..n])?;
                    sent += n as u64;
                    self.report.body_bytes_sent += n as u64;
                }
                Ok(())
            });
            match result {
                Ok(()) => {}
                Err(e) if closed_by_peer(&e) => {
                    conn.open = false;
                    self.report.closed_while_sending += 1;
                }
                Err(e) if timed_out(&e) => self.report.stalled_while_sending += 1,
                Err(e) => {
                    conn.open = false;
                    *self.report.failed.entry(format!("write: {}", e.kind())).or_insert(0) += 1;
                }
            }
            if conn.open
                && let Err(e) = conn.stream.set_nonblocking(true)
            {
                eprintln!("flood: set_nonblocking: {e}");
            }
        }
        // A closed connection's descriptor goes now, not at exit.
        self.conns.retain(|c| c.open);
    }

    /// Holds the connections until stdin ends, a signal, or `max_hold`.
    fn hold(&mut self, max_hold: Duration) {
        let start = Instant::now();
        self.held_since = Some(start);
        let stdin = io::stdin();
        // With --repeat the attack goes on without pause (a 1 ms poll between rounds).
        let wait_ms = if self.cli.repeat { 1 } else { POLL_MS };
        let polls = max_hold.as_millis() / u128::from(wait_ms) + 2;
        for _ in 0..polls {
            if interrupted() || start.elapsed() >= max_hold {
                break;
            }
            let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            fds.extend(self.conns.iter().map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("flood: poll: {e}");
                    break;
                }
            }
            let stdin_done = fds[0].revents().is_some_and(|r| !r.is_empty()) && stdin_at_end();
            drop(fds);
            self.drain();
            self.ping_if_due();
            let missing = self.n.saturating_sub(self.conns.len() as u32);
            if self.cli.repeat && missing > 0 && !stdin_done {
                self.report.repeat_rounds += 1;
                self.attack(missing);
            }
            if stdin_done {
                break;
            }
        }
    }

    fn ping_if_due(&mut self) {
        let Some(every) = self.ping_every else { return };
        if self.last_ping.elapsed() < every {
            return;
        }
        self.last_ping = Instant::now();
        for conn in self.conns.iter_mut().filter(|c| c.open) {
            conn.serial = conn.serial.wrapping_add(1).max(1);
            // Replies are counted as they come; no call waits for one.
            match conn.stream.write(&MethodCall::ping(conn.serial, OBJECT).header()) {
                Ok(_) => self.report.pings_sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => conn.open = false,
            }
        }
    }

    /// Reads what the server sent on every connection (without waiting), counting whole
    /// messages; a connection at end of file or in error is closed (`closed_while_held`:
    /// the server let go of a connection it had accepted).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        for conn in self.conns.iter_mut().filter(|c| c.open) {
            // Bounded: a server that sends without end is read 64 KiB per round.
            for _ in 0..16 {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        conn.open = false;
                        break;
                    }
                    Ok(n) => {
                        conn.inbox.extend_from_slice(&buf[..n]);
                        self.report.messages_received += dbus_wire::take_messages(&mut conn.inbox);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        conn.open = false;
                        break;
                    }
                }
            }
            if conn.open && conn.inbox.len() > MAX_INBOX {
                conn.open = false; // not D-Bus framing we can follow
            }
        }
        let before = self.conns.len();
        self.conns.retain(|c| c.open);
        self.report.closed_while_held += (before - self.conns.len()) as u32;
    }

    fn report_json(&mut self) -> String {
        self.drain();
        self.report.open_now = self.conns.len() as u32;
        self.report.held_ms = self.held_since.map_or(0, |t| t.elapsed().as_millis() as u64);
        serde_json::to_string(&self.report).expect("the report serializes")
    }
}

/// True when stdin has reached end of file (the test closed it) or cannot be read.
fn stdin_at_end() -> bool {
    let mut byte = [0u8; 64];
    !matches!(io::stdin().lock().read(&mut byte), Ok(n) if n > 0)
}

/// Connects (bounded by `timeout`: a full listen backlog blocks connect(2) on a Unix
/// socket for at most the send timeout) and, with `auth_uid`, authenticates; returns
/// the stream, non-blocking, after `BEGIN`.
fn open(path: &Path, auth_uid: Option<u32>, timeout: Duration) -> Result<UnixStream, Failure> {
    let fd: OwnedFd =
        socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| Failure::Other(format!("socket: {e}")))?;
    let tv = TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(|e| Failure::Other(format!("SO_SNDTIMEO: {e}")))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| Failure::Other(format!("SO_RCVTIMEO: {e}")))?;
    let addr = UnixAddr::new(path).map_err(|e| Failure::Other(format!("address: {e}")))?;
    connect(fd.as_raw_fd(), &addr).map_err(|e| match e {
        nix::errno::Errno::EAGAIN => Failure::Other("connect: timeout".to_string()),
        other => Failure::Other(format!("connect: {}", other.desc())),
    })?;
    let mut stream = UnixStream::from(fd);
    let Some(uid) = auth_uid else {
        stream.set_nonblocking(true).map_err(|e| Failure::Other(format!("set_nonblocking: {e}")))?;
        return Ok(stream);
    };
    let classify = |e: io::Error| {
        if closed_by_peer(&e) {
            Failure::ClosedByPeer
        } else if timed_out(&e) {
            Failure::Other("handshake: timeout".to_string())
        } else {
            Failure::Other(format!("handshake: {}", e.kind()))
        }
    };
    stream.write_all(&dbus_wire::auth_external(uid)).map_err(classify)?;
    let reply = read_line(&mut stream).map_err(classify)?;
    if !reply.starts_with(b"OK ") {
        return Err(Failure::Other(format!("auth reply: {}", String::from_utf8_lossy(&reply).trim_end())));
    }
    stream.write_all(dbus_wire::BEGIN).map_err(classify)?;
    stream.set_nonblocking(true).map_err(|e| Failure::Other(format!("set_nonblocking: {e}")))?;
    Ok(stream)
}

/// Reads up to and including `\r\n` (at most [`MAX_AUTH_REPLY`] bytes).
fn read_line(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() >= MAX_AUTH_REPLY {
            return Err(io::Error::new(ErrorKind::InvalidData, "overlong auth reply"));
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err(io::Error::from(ErrorKind::UnexpectedEof)),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(line)
}

fn closed_by_peer(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
