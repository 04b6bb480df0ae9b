//! [`Relay`]: a TCP relay in front of a server that passes bytes on as they come, both
//! ways, and counts the bytes clients send through it.
//!
//! A [`ScriptedServer`](crate::ScriptedServer) proxy reads a whole request before its
//! handler runs, so the server behind it gets an upload only once the client has sent all of
//! it. Through a relay the server receives a request body while it is being sent, and the
//! count ([`SentBytes`]) tells a test that an upload is under way at the server, e.g. to
//! make another request fail at that very moment.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How many bytes of what clients sent a [`Relay`] has passed on to the server, to wait on
/// from any thread (the handler of a [`ScriptedServer`](crate::ScriptedServer), say).
#[derive(Debug, Clone, Default)]
pub struct SentBytes(Arc<(Mutex<u64>, Condvar)>);

impl SentBytes {
    /// The bytes passed on so far.
    pub fn get(&self) -> u64 {
        *self.0 .0.lock().expect("sent bytes lock")
    }

    /// Waits until at least `bytes` were passed on, for at most `at_most`; whether they
    /// were.
    pub fn wait_for(&self, bytes: u64, at_most: Duration) -> bool {
        let (count, changed) = &*self.0;
        let count = count.lock().expect("sent bytes lock");
        let (count, _) = changed
            .wait_timeout_while(count, at_most, |sent| *sent < bytes)
            .expect("sent bytes lock");
        *count >= bytes
    }

    fn add(&self, n: u64) {
        let (count, changed) = &*self.0;
        *count.lock().expect("sent bytes lock") += n;
        changed.notify_all();
    }
}

/// A relay on `127.0.0.1:<free port>` to an upstream server; stopped on drop, when the
/// connections still open are shut down.
///
/// The client's `Host` header goes through unchanged, so URLs a registry builds from it
/// (upload `Location`s) point back at the relay.
pub struct Relay {
    addr: SocketAddr,
    sent: SentBytes,
    shutdown: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("sent", &self.sent.get())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts a relay to `upstream` (`host:port`, e.g. [`crate::Registry::host`]).
    #[track_caller]
    pub fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let sent = SentBytes::default();
        let shutdown = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept = {
            let (upstream, sent) = (upstream.to_string(), sent.clone());
            let (shutdown, connections) = (Arc::clone(&shutdown), Arc::clone(&connections));
            std::thread::Builder::new()
                .name(format!("relay-{}", addr.port()))
                .spawn(move || {
                    for client in listener.incoming() {
                        if shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        let _ = relay_connection(client, &upstream, &sent, &connections);
                    }
                })
                .expect("spawn relay accept thread")
        };
        Relay {
            addr,
            sent,
            shutdown,
            connections,
            accept_thread: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`, to use as the registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The count of bytes clients sent, shared with the relay.
    pub fn sent(&self) -> SentBytes {
        self.sent.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        for stream in self.connections.lock().expect("connections lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Connects `client` to `upstream` and pumps each way on a thread of its own.
fn relay_connection(
    client: TcpStream,
    upstream: &str,
    sent: &SentBytes,
    connections: &Mutex<Vec<TcpStream>>,
) -> io::Result<()> {
    let server = match TcpStream::connect(upstream) {
        Ok(server) => server,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut open = connections.lock().expect("connections lock");
        open.push(client.try_clone()?);
        open.push(server.try_clone()?);
    }
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    let counted = sent.clone();
    std::thread::Builder::new()
        .name("relay-up".into())
        .spawn(move || pump(client_in, server_out, Some(&counted)))?;
    std::thread::Builder::new()
        .name("relay-down".into())
        .spawn(move || pump(server, client, None))?;
    Ok(())
}

/// Copies `from` to `to` until `from` ends or either fails, counting into `sent`; then
/// passes the end on (a half-close, or a shutdown after an error).
fn pump(mut from: TcpStream, mut to: TcpStream, sent: Option<&SentBytes>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(sent) = sent {
                    sent.add(n as u64);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = (from.shutdown(Shutdown::Both), to.shutdown(Shutdown::Both));
}
