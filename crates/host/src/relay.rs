//! The parties' way in: each TCP connection is spliced to the enclave's listener. The bytes are
//! an RA-TLS session between the party and the enclave; the host sees only their sizes.

use std::sync::Arc;

use chiron_proto::listen::{Admitted, Gate};

use crate::metrics::Metrics;
use crate::supervisor::Supervisor;

/// How long a party's connection waits for an enclave that is restarting.
const RECONNECT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a connection to the enclave may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long one direction of a relayed connection may stay open after the other ended.
const HALF_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Copies both ways until one way ends, then gives the other [`HALF_CLOSE_GRACE`] to end too.
/// (Waiting for both, as `copy_bidirectional` does, would keep a connection — and its place
/// at the gate — for as long as a client that never closes holds it, after the enclave has
/// closed its side.)
async fn splice(mut inbound: tokio::net::TcpStream, mut outbound: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let (mut in_read, mut in_write) = inbound.split();
    let (mut out_read, mut out_write) = outbound.split();
    let up = async {
        let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
        let _ = out_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        let _ = in_write.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(HALF_CLOSE_GRACE, &mut down).await; }
        () = &mut down => { let _ = tokio::time::timeout(HALF_CLOSE_GRACE, &mut up).await; }
    }
}

/// Relays connections from `gate` to the enclave until the task is aborted. A connection holds
/// its place at the gate until both directions are done; the enclave closes connections that
/// do not complete their handshake or fall idle, which frees the places here too.
pub async fn serve(gate: Gate, supervisor: Arc<Supervisor>, metrics: Arc<Metrics>) {
    loop {
        let Admitted {
            stream: inbound,
            place,
            ..
        } = gate.accept().await;
        Metrics::inc(&metrics.relay_connections);
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            // While the enclave restarts, its old address refuses: wait for the new one.
            let deadline = tokio::time::Instant::now() + RECONNECT_WINDOW;
            let outbound = loop {
                let Some(target) = supervisor.target().await else {
                    return;
                };
                let connect =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target));
                match connect.await {
                    Ok(Ok(s)) => break s,
                    _ if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    _ => return,
                }
            };
            // Forward as it comes: request/reply traffic would otherwise wait on Nagle's
            // algorithm and delayed ACKs.
            let _ = outbound.set_nodelay(true);
            splice(inbound, outbound).await;
            drop(place);
        });
    }
}
