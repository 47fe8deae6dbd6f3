//! pipeline: a local user's flood of calls, for the e2e tests and `BENCHMARKS.md`
//! "Under attack". Many connections, each sending small calls back to back without
//! waiting for answers, and reading the answers or never reading them.
//!
//! `pipeline (--socket PATH | --bus PATH) --conns N --calls C --member M [--read] [--max-secs S]`
//!
//! - `--socket`: vigild's private socket (peer to peer, calls to `/org/vigil1`);
//!   `--bus`: a bus daemon's socket (`Hello` first, calls to `org.vigil1`).
//! - `M`: `Introspect` (`org.freedesktop.DBus.Introspectable`, a ~16 KiB answer),
//!   `MyStatus` (`org.vigil1.Manager`, an allowed call for any user) or `Ping`.
//! - `--read`: read every answer as it comes; without it, nothing is ever read.
//!
//! Every connection is written to while its socket takes bytes, round-robin, until C
//! calls went on each, the server closed them all, or `--max-secs` (60) passed. Prints
//! `DONE <json>` (written calls, answers read, connections the server closed) and exits
//! 0; exit 2 for bad arguments. Raw sockets and hand-written framing (`dbus_wire`): the
//! point is to behave as no well-mannered client does.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use vigil_e2e::dbus_wire::{self, MethodCall};
use vigil_e2e::pipeline::PipelineReport as Report;

const MAX_CONNECTIONS: u32 = 256;
const MAX_CALLS: u64 = 10_000_000;
/// Bytes of answers kept per connection while counting whole messages.
const MAX_INBOX: usize = 1 << 20;

#[derive(Parser, Debug)]
#[command(name = "pipeline", about = "Flood vigild with calls that do not wait for their answers")]
struct Cli {
    /// vigild's private socket.
    #[arg(long, conflicts_with = "bus", required_unless_present = "bus")]
    socket: Option<PathBuf>,
    /// A bus daemon's socket; calls go to `org.vigil1`.
    #[arg(long)]
    bus: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    conns: u32,
    /// Calls sent on each connection.
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    #[arg(long, default_value = "Introspect")]
    member: String,
    /// Read the answers (else never).
    #[arg(long)]
    read: bool,
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
}

struct Conn {
    stream: UnixStream,
    /// The current call's bytes not yet written.
    pending: Vec<u8>,
    sent: u64,
    serial: u32,
    inbox: Vec<u8>,
    open: bool,
}

fn main() {
    let cli = Cli::parse();
    if cli.conns == 0 || cli.conns > MAX_CONNECTIONS || cli.calls > MAX_CALLS || cli.max_secs > 3600 {
        eprintln!("pipeline: --conns 1..={MAX_CONNECTIONS}, --calls at most {MAX_CALLS}, --max-secs at most 3600");
        std::process::exit(2);
    }
    let Some(call) = call_of(&cli.member, cli.bus.is_some()) else {
        eprintln!("pipeline: --member is Introspect, MyStatus or Ping");
        std::process::exit(2);
    };
    let start = Instant::now();
    let mut report = Report::default();
    let mut conns = Vec::new();
    for _ in 0..cli.conns {
        match connect(&cli) {
            Ok(stream) => conns.push(Conn { stream, pending: Vec::new(), sent: 0, serial: 1, inbox: Vec::new(), open: true }),
            Err(e) => eprintln!("pipeline: connect: {e}"),
        }
    }
    report.connected = conns.len() as u32;
    let deadline = start + Duration::from_secs(cli.max_secs);
    // Bounded: every round either makes progress or waits up to 100 ms, until the deadline.
    while Instant::now() < deadline && conns.iter().any(|c| c.open && (c.sent < cli.calls || !c.pending.is_empty() || cli.read)) {
        if cli.read
            && conns.iter().all(|c| !c.open || (c.sent >= cli.calls && c.pending.is_empty() && report.answers_read >= report.calls_written))
        {
            break;
        }
        let mut fds: Vec<PollFd> = conns
            .iter()
            .filter(|c| c.open)
            .map(|c| {
                let mut flags = PollFlags::empty();
                if c.sent < cli.calls || !c.pending.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                if cli.read {
                    flags |= PollFlags::POLLIN;
                }
                PollFd::new(c.stream.as_fd(), flags)
            })
            .collect();
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        drop(fds);
        for conn in conns.iter_mut().filter(|c| c.open) {
            write_some(conn, &call, cli.calls, &mut report);
            if cli.read && conn.open {
                read_some(conn, &mut report);
            }
        }
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    println!("DONE {}", serde_json::to_string(&report).expect("the report serializes"));
}

/// The call template: its serial is set per message.
fn call_of(member: &str, bus: bool) -> Option<MethodCall<'static>> {
    let destination = bus.then_some("org.vigil1");
    let (interface, member) = match member {
        "Introspect" => ("org.freedesktop.DBus.Introspectable", "Introspect"),
        "MyStatus" => (vigil_protocol::MANAGER_INTERFACE, "MyStatus"),
        "Ping" => ("org.freedesktop.DBus.Peer", "Ping"),
        _ => return None,
    };
    Some(MethodCall {
        serial: 1,
        flags: 0,
        destination,
        path: vigil_protocol::MANAGER_PATH,
        interface,
        member,
        signature: None,
        body_len: 0,
    })
}

fn connect(cli: &Cli) -> std::io::Result<UnixStream> {
    let path = cli.socket.as_ref().or(cli.bus.as_ref()).ok_or_else(|| std::io::Error::other("no socket"))?;
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&dbus_wire::auth_external(nix::unistd::getuid().as_raw()))?;
    let mut line = [0u8; 512];
    let n = stream.read(&mut line)?;
    if !line[..n].starts_with(b"OK ") {
        return Err(std::io::Error::other(format!("auth: {}", String::from_utf8_lossy(&line[..n]).trim_end())));
    }
    stream.write_all(dbus_wire::BEGIN)?;
    if cli.bus.is_some() {
        stream.write_all(&MethodCall::hello(u32::MAX).header())?;
        // The bus answers Hello and announces the name: read until both are in.
        let mut inbox = Vec::new();
        let mut got = 0;
        for _ in 0..16 {
            if got >= 2 {
                break;
            }
            let n = stream.read(&mut line)?;
            if n == 0 {
                return Err(std::io::Error::from(ErrorKind::UnexpectedEof));
            }
            inbox.extend_from_slice(&line[..n]);
            got += dbus_wire::take_messages(&mut inbox);
        }
    }
    stream.set_nonblocking(true)?;
    Ok(stream)
}

fn write_some(conn: &mut Conn, call: &MethodCall<'_>, calls: u64, report: &mut Report) {
    // Bounded by the socket: it stops taking bytes long before this many calls.
    for _ in 0..4096 {
        if conn.pending.is_empty() {
            if conn.sent >= calls {
                return;
            }
            conn.serial = conn.serial.wrapping_add(1).max(1);
            conn.pending = MethodCall { serial: conn.serial, ..call.clone() }.header();
        }
        match conn.stream.write(&conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
                if conn.pending.is_empty() {
                    conn.sent += 1;
                    report.calls_written += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return closed_by_server(conn, report),
        }
    }
}

fn closed_by_server(conn: &mut Conn, report: &mut Report) {
    conn.open = false;
    report.closed_by_server += 1;
}

fn read_some(conn: &mut Conn, report: &mut Report) {
    let mut buf = [0u8; 64 * 1024];
    for _ in 0..64 {
        match conn.stream.read(&mut buf) {
            Ok(0) => return closed_by_server(conn, report),
            Ok(n) => {
                conn.inbox.extend_from_slice(&buf[..n]);
                report.answers_read += dbus_wire::take_messages(&mut conn.inbox);
                if conn.inbox.len() > MAX_INBOX {
                    conn.open = false;
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return closed_by_server(conn, report),
        }
    }
}
