//! A TCP proxy a test can cut and restore, to make a network dependency (the S3 server)
//! unreachable without stopping it, so it keeps its data for when the link comes back.
//!
//! [`Proxy::cut`] severs every open connection (both directions shut down) and makes new ones
//! fail at once (accepted, then closed before a byte is read); [`Proxy::restore`] forwards again.
//! The far end never notices anything but closed connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct State {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both sockets of every connection forwarded since the last cut (clones, for shutting
    /// them down; closed ones stay listed until then, which is harmless for a test).
    open: Mutex<Vec<TcpStream>>,
}

/// A proxy on `127.0.0.1:0` forwarding to one target. Stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                {
                    let mut open = st.open.lock().unwrap_or_else(|e| e.into_inner());
                    for s in [&client, &server] {
                        if let Ok(s) = s.try_clone() {
                            open.push(s);
                        }
                    }
                }
                std::thread::spawn(move || pipe(client, s2));
                std::thread::spawn(move || pipe(server, c2));
            }
        });
        Proxy { addr, state }
    }

    /// Severs every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        let open = std::mem::take(&mut *self.state.open.lock().unwrap_or_else(|e| e.into_inner()));
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

/// Copies `from` to `to` until either side closes, then closes the write half of `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
