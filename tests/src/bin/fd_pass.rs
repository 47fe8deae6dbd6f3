//! fd_pass: a local user's client that attaches descriptors (SCM_RIGHTS) to what it
//! sends vigild, for the e2e tests. Every descriptor sent is a memfd named
//! `vigil-fd-pass`, so that a test can look for it in vigild's `/proc/PID/fd`.
//!
//! `fd_pass (--socket PATH | --bus ADDRESS) --rounds N --fds K` (K may be 0: the same calls
//! without descriptors)
//!
//! - `--socket`: vigild's private socket, raw. Each round is one connection: the even
//!   rounds send the handshake and `MyStatus` (a call for zbus) in one `sendmsg` with K
//!   descriptors, read `OK` and the answer, then send `MyStatus` again with K more; the
//!   odd rounds send the handshake and a module call (`CheckReauth`, answered by the
//!   quick path) with K descriptors and read its answer.
//! - `--bus`: a zbus client of the bus (it negotiates descriptor passing with the bus)
//!   calls `org.vigil1.Manager.MyStatus` with K descriptors as its argument (`ah`), N
//!   times, and records the error name of each answer (the bus's, or vigild's).
//!
//! Prints `DONE <json>` (rounds, answers, the answers' kinds) and exits 0; 1 when a
//! round could not be made. Bounded: at most 1,000 rounds of at most 250 descriptors,
//! each read with a 10 s timeout.

use std::io::{IoSlice, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use vigil_e2e::dbus_wire::{self, MethodCall};

const MAX_ROUNDS: u32 = 1_000;
/// The kernel's SCM_MAX_FD is 253.
const MAX_FDS: usize = 250;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(name = "fd_pass", about = "Send vigild calls with descriptors attached")]
struct Cli {
    #[arg(long, conflicts_with = "bus", required_unless_present = "bus")]
    socket: Option<PathBuf>,
    /// A bus address (`unix:path=...`).
    #[arg(long)]
    bus: Option<String>,
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    #[arg(long, default_value_t = 64)]
    fds: usize,
}

#[derive(serde::Serialize, Default)]
struct Report {
    rounds: u32,
    /// Answers read (method returns and errors).
    answers: u32,
    /// The kinds of answers: `return`, `error`, or an error name on the bus.
    kinds: std::collections::BTreeMap<String, u32>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (rounds, fds) = (cli.rounds.min(MAX_ROUNDS), cli.fds.min(MAX_FDS));
    let memfds: Vec<OwnedFd> = (0..fds)
        .map(|_| nix::sys::memfd::memfd_create(c"vigil-fd-pass", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).expect("memfd_create"))
        .collect();
    let raw: Vec<RawFd> = memfds.iter().map(AsRawFd::as_raw_fd).collect();
    let outcome = match (&cli.socket, &cli.bus) {
        (Some(socket), _) => private(socket, rounds, &raw),
        (None, Some(bus)) => over_bus(bus, rounds, &memfds),
        (None, None) => Err("--socket or --bus".into()),
    };
    match outcome {
        Ok(report) => {
            println!("DONE {}", serde_json::to_string(&report).expect("report JSON"));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fd_pass: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> Result<(), String> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent =
        sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(bytes)], cmsgs, MsgFlags::empty(), None).map_err(|e| format!("sendmsg: {e}"))?;
    if sent != bytes.len() { Err(format!("sendmsg took {sent} of {} bytes", bytes.len())) } else { Ok(()) }
}

/// Reads until `buf` holds `want` bytes; false when the peer closed first.
fn read_to(stream: &mut UnixStream, buf: &mut Vec<u8>, want: usize) -> Result<bool, String> {
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(true)
}

/// Reads `OK <guid>\r\n` (when `ok`) and one whole message; returns its type.
fn read_answer(stream: &mut UnixStream, ok: bool) -> Result<u8, String> {
    let mut buf = Vec::new();
    if ok {
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let want = buf.len() + 1;
            if !read_to(stream, &mut buf, want)? {
                return Err(format!("closed before OK: {:?}", String::from_utf8_lossy(&buf)));
            }
        }
        let end = buf.windows(2).position(|w| w == b"\r\n").map_or(0, |at| at + 2);
        if !buf.starts_with(b"OK ") {
            return Err(format!("not OK: {:?}", String::from_utf8_lossy(&buf[..end])));
        }
        buf.drain(..end);
    }
    if !read_to(stream, &mut buf, 16)? {
        return Err("closed before an answer".into());
    }
    let (kind, _, total) = dbus_wire::frame_len(&buf).ok_or("not a message")?;
    if !read_to(stream, &mut buf, total)? {
        return Err("closed inside an answer".into());
    }
    Ok(kind)
}

fn call(serial: u32, member: &str, signature: Option<&str>, body: &[u8]) -> Vec<u8> {
    let call = MethodCall {
        serial,
        flags: 0,
        destination: None,
        path: vigil_protocol::MANAGER_PATH,
        interface: vigil_protocol::MANAGER_INTERFACE,
        member,
        signature,
        body_len: body.len() as u32,
    };
    let mut bytes = call.header();
    bytes.extend_from_slice(body);
    bytes
}

/// `CheckReauth("sudo", "root")`'s body: two strings.
fn two_strings(a: &str, b: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [a, b] {
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

fn private(socket: &PathBuf, rounds: u32, fds: &[RawFd]) -> Result<Report, String> {
    let uid = nix::unistd::getuid().as_raw();
    let mut report = Report::default();
    let note = |report: &mut Report, kind: u8| {
        report.answers += 1;
        *report.kinds.entry(if kind == 2 { "return" } else { "error" }.to_owned()).or_default() += 1;
    };
    for round in 0..rounds {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?;
        let mut opening = dbus_wire::auth_external(uid);
        opening.extend_from_slice(dbus_wire::BEGIN);
        if round % 2 == 0 {
            opening.extend_from_slice(&call(1, "MyStatus", None, &[]));
            send_with_fds(&stream, &opening, fds)?;
            note(&mut report, read_answer(&mut stream, true).map_err(|e| format!("round {round}: {e}"))?);
            send_with_fds(&stream, &call(2, "MyStatus", None, &[]), fds)?;
            note(&mut report, read_answer(&mut stream, false).map_err(|e| format!("round {round}, second call: {e}"))?);
        } else {
            opening.extend_from_slice(&call(1, "CheckReauth", Some("ss"), &two_strings("sudo", "root")));
            send_with_fds(&stream, &opening, fds)?;
            note(&mut report, read_answer(&mut stream, true).map_err(|e| format!("round {round}: {e}"))?);
        }
        report.rounds += 1;
    }
    Ok(report)
}

fn over_bus(address: &str, rounds: u32, fds: &[OwnedFd]) -> Result<Report, String> {
    zruntime::block_on(async {
        let connection = zbus::connection::Builder::address(address).build().await.map_err(|e| format!("connect to the bus: {e}"))?;
        let mut report = Report::default();
        for _ in 0..rounds {
            let (destination, path, interface) =
                (Some(vigil_protocol::BUS_NAME), vigil_protocol::MANAGER_PATH, Some(vigil_protocol::MANAGER_INTERFACE));
            let answer = if fds.is_empty() {
                connection.call_method(destination, path, interface, "MyStatus", &()).await
            } else {
                let body: Vec<zbus::Fd<'_>> = fds.iter().map(zbus::Fd::from).collect();
                connection.call_method(destination, path, interface, "MyStatus", &(body,)).await
            };
            let kind = match answer {
                Ok(_) => "return".to_owned(),
                Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
                Err(zbus::Error::FDO(e)) => zbus::DBusError::name(&*e).to_string(),
                Err(e) => return Err(format!("call: {e}")),
            };
            report.answers += 1;
            *report.kinds.entry(kind).or_default() += 1;
            report.rounds += 1;
        }
        Ok(report)
    })
}
