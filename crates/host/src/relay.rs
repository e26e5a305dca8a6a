//! The parties' way in: each TCP connection is spliced to the enclave's listener. The bytes are
//! an RA-TLS session between the party and the enclave; the host sees only their sizes.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::supervisor::Supervisor;

/// How long a party's connection waits for an enclave that is restarting.
const RECONNECT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Relays connections from `listener` to the enclave until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    supervisor: Arc<Supervisor>,
    metrics: Arc<Metrics>,
) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        Metrics::inc(&metrics.relay_connections);
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            // While the enclave restarts, its old address refuses: wait for the new one.
            let deadline = tokio::time::Instant::now() + RECONNECT_WINDOW;
            let mut outbound = loop {
                let Some(target) = supervisor.target().await else {
                    return;
                };
                match tokio::net::TcpStream::connect(target).await {
                    Ok(s) => break s,
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(_) => return,
                }
            };
            // Forward as it comes: request/reply traffic would otherwise wait on Nagle's
            // algorithm and delayed ACKs.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}
