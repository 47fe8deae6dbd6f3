//! A server that answers the PAM module's calls at once and does nothing else: the
//! least any daemon behind the module can cost. bench_pam's "null server" stack is
//! pam_vigil pointed at it, so that the same run shows how much of pam_vigil's latency is
//! the module, libpam and two connections to a local server (the machine's floor), and
//! how much is vigild's own work.
//!
//! One thread, blocking: accept, read the client's side (the module shuts it down after
//! its one write), answer `OK` and a method return (a session id of 1 for OpenSession
//! and OpenSessionEx, nothing for the rest), close.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use zbus::message::Message;
use zbus::wire::Endian;
use zbus::wire::serialized::{Context, Data};

/// Most bytes read from one client (the module's calls are under 8 KiB).
const MAX_REQUEST_BYTES: usize = 64 * 1024;
const GUID: &str = "0123456789abcdef0123456789abcdef";

pub struct NullServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NullServer {
    pub fn start(path: &Path) -> std::io::Result<NullServer> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("null-server".into()).spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = stream {
                    answer(stream);
                }
            }
        })?;
        Ok(NullServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one client's whole side and answers its call.
fn answer(mut stream: UnixStream) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while request.len() < MAX_REQUEST_BYTES {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let Some(begin) = request.windows(7).position(|w| w == b"BEGIN\r\n") else { return };
    let bytes = request[begin + 7..].to_vec();
    // SAFETY: no descriptors travel on this socket.
    let Ok(call) = (unsafe { Message::from_bytes(Data::new(bytes, Context::new(Endian::Little, 0))) }) else { return };
    let header = call.header();
    let opens = header.member().is_some_and(|m| m.as_str().starts_with("OpenSession"));
    let reply = if opens { Message::method_return(&header).build(&(1u64,)) } else { Message::method_return(&header).build(&()) };
    let Ok(reply) = reply else { return };
    let mut out = format!("OK {GUID}\r\n").into_bytes();
    out.extend_from_slice(reply.data().bytes());
    let _ = stream.write_all(&out);
}
