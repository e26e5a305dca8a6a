//! Accepting TCP connections without letting the accept loop be turned against the server:
//! a cap on connections open at once, and a pause after an accept error.
//!
//! At the descriptor limit `accept` fails at once, every time, for as long as the limit holds;
//! an accept loop that simply retries then spins a core and serves nobody. A [`Gate`] waits a
//! moment after each error (and doubles the wait while errors continue), and never has more
//! than its limit of connections open, so the limit is reached by its own count first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections a listener keeps open at once unless told otherwise.
pub const DEFAULT_CONNECTION_LIMIT: usize = 4096;

/// First pause after a failed `accept`; it doubles up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failed `accept`s.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A listener with a connection limit and backoff on errors.
pub struct Gate {
    listener: TcpListener,
    open: Arc<Semaphore>,
}

/// One accepted connection; holding it holds one of the gate's places until it is dropped.
pub struct Admitted {
    /// The connection, with `TCP_NODELAY` set (request/reply traffic would otherwise wait on
    /// Nagle's algorithm and delayed ACKs, ~40 ms a reply).
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The gate's place for this connection.
    pub place: OwnedSemaphorePermit,
}

impl Gate {
    /// A gate on `listener` that keeps at most `limit` connections open.
    pub fn new(listener: TcpListener, limit: usize) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// The next connection, once fewer than the limit are open. Errors of `accept` (descriptor
    /// limit, a connection reset before it was taken) are waited out, never returned.
    pub async fn accept(&self) -> Admitted {
        let mut backoff = FIRST_ACCEPT_BACKOFF;
        loop {
            // The semaphore is never closed, so acquiring fails only if it were.
            let Ok(place) = self.open.clone().acquire_owned().await else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Admitted {
                        stream,
                        peer,
                        place,
                    };
                }
                Err(_) => {
                    drop(place);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }

    /// How many more connections the gate would admit now.
    pub fn places_left(&self) -> usize {
        self.open.available_permits()
    }

    /// The listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_limit_holds_until_a_connection_is_dropped() {
        let gate = Gate::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), 2);
        let addr = gate.local_addr().unwrap();
        let _clients: Vec<_> = futures_connect(addr, 3).await;
        let a = gate.accept().await;
        let _b = gate.accept().await;
        assert_eq!(gate.places_left(), 0);
        let third = tokio::time::timeout(Duration::from_millis(200), gate.accept()).await;
        assert!(
            third.is_err(),
            "a third connection was admitted past the limit"
        );
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), gate.accept()).await;
        assert!(
            third.is_ok(),
            "a place freed, yet no connection was admitted"
        );
    }

    async fn futures_connect(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(TcpStream::connect(addr).await.unwrap());
        }
        out
    }
}
