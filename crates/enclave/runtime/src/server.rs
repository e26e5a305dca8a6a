//! The RA-TLS endpoint: TLS 1.3 with the enclave's attested certificate, gRPC inside.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chiron_proto::listen::{Admitted, DEFAULT_CONNECTION_LIMIT, Gate};

use chiron_proto::enclave::operator_server::OperatorServer;
use chiron_proto::enclave::owner_server::OwnerServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::service::Services;

/// Largest request the services accept (a trainer module, a batch of inputs).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// How long a new connection has to complete its TLS handshake. A connection that sends
/// nothing (or too little) is closed then, so stalled sockets cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a party's connection may carry no bytes either way before it is closed (its
/// client reconnects on its next call). Longer than the longest fixed reply time a policy may
/// declare (10 minutes), so no request in flight is cut.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(900);

/// One accepted RA-TLS connection, as hyper wants it: it holds its place at the listener's
/// gate while it lives, and fails with `TimedOut` once idle for longer than its limit.
pub struct TlsConnection {
    tls: TlsStream<TcpStream>,
    _place: OwnedSemaphorePermit,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl TlsConnection {
    fn new(tls: TlsStream<TcpStream>, place: OwnedSemaphorePermit, idle: Option<Duration>) -> Self {
        Self {
            tls,
            _place: place,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        }
    }

    /// Bytes moved: the idle clock starts again.
    fn active(&mut self) {
        if let Some((limit, timer)) = &mut self.idle {
            timer.as_mut().reset(tokio::time::Instant::now() + *limit);
        }
    }

    /// Nothing to move: an error once the idle clock has run out (and a wake-up when it does).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.idle
            .as_mut()
            .is_some_and(|(_, timer)| timer.as_mut().poll(cx).is_ready())
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle")
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tls).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.active();
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.tls).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.active();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

/// Accepted TLS connections on `listener`, as a stream for [`serve_http2`]: at most
/// [`DEFAULT_CONNECTION_LIMIT`] open at once, each handshake within [`HANDSHAKE_TIMEOUT`]
/// (run concurrently; a failed or late one drops only its connection), and, with `idle`,
/// closed after that long without traffic.
pub fn tls_incoming(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    idle: Option<Duration>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConnection, std::io::Error>> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let gate = Gate::new(listener, DEFAULT_CONNECTION_LIMIT);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<TlsConnection, std::io::Error>>(64);
    tokio::spawn(async move {
        loop {
            let Admitted { stream, place, .. } = gate.accept().await;
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                if let Ok(Ok(tls)) = handshake.await {
                    let _ = tx.send(Ok(TlsConnection::new(tls, place, idle))).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves the owner's and the operator's services on `listener` with `tls` until the process
/// ends.
///
/// Without a `date` header: hyper would stamp every response with the current second, which
/// HPACK sends in full when the second changes and as a one-byte index when it does not, so
/// the size of an owner's reply would follow the clock (23 bytes, now and then).
pub async fn serve(services: Services, listener: TcpListener, tls: rustls::ServerConfig) {
    let routes = tonic::service::Routes::new(
        OperatorServer::new(services.clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES),
    )
    .add_service(
        OwnerServer::new(services)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES),
    );
    serve_http2(
        routes,
        tls_incoming(listener, tls, Some(IDLE_TIMEOUT)),
        |_| {},
    )
    .await;
}

/// Serves `routes` over HTTP/2 on every connection of `incoming`, without `date` headers,
/// with `configure` applied to each connection's settings.
async fn serve_http2(
    routes: tonic::service::Routes,
    mut incoming: impl tokio_stream::Stream<Item = std::io::Result<TlsConnection>> + Unpin,
    configure: impl Fn(&mut hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>)
    + Send
    + Sync
    + 'static,
) {
    use tokio_stream::StreamExt;
    let service = hyper_util::service::TowerToHyperService::new(routes.prepare());
    let configure = Arc::new(configure);
    while let Some(connection) = incoming.next().await {
        let Ok(connection) = connection else {
            continue;
        };
        let service = service.clone();
        let configure = configure.clone();
        tokio::spawn(async move {
            let mut http =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            http.auto_date_header(false);
            configure(&mut http);
            // A connection that fails ends alone; its peer reconnects.
            let _ = http
                .serve_connection(hyper_util::rt::TokioIo::new(connection), service)
                .await;
        });
    }
}

/// Serves the enclave-to-enclave services — the parameter server of this enclave's
/// distributed jobs and, if `worker`, the worker role — on `listener` with `tls`. Build `tls`
/// with a client verifier that accepts only this enclave's measurement (mutual RA-TLS).
///
/// HTTP/2 is configured so a link carries the messages and nothing that varies with time:
/// no `date` header (its compressed length changes with the clock) and flow-control windows of
/// [`chiron_proto::PEER_WINDOW`] (no `WINDOW_UPDATE` frames mid-job).
pub async fn serve_peers(
    runtime: std::sync::Arc<crate::state::Runtime>,
    worker: bool,
    listener: TcpListener,
    tls: rustls::ServerConfig,
) {
    use chiron_proto::enclave::parameter_server_server::ParameterServerServer;
    use chiron_proto::enclave::worker_server::WorkerServer;
    let mut routes = tonic::service::Routes::new(
        ParameterServerServer::new(crate::distributed::server::ParameterServerService::new(
            runtime.clone(),
        ))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES),
    );
    if worker {
        routes = routes.add_service(
            WorkerServer::new(crate::distributed::worker::WorkerService::new(runtime))
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(MAX_REQUEST_BYTES),
        );
    }
    // Links between enclaves idle between jobs, and a link's connection is part of what the
    // host sees: they are not cut for idling.
    serve_http2(routes, tls_incoming(listener, tls, None), |http| {
        http.initial_stream_window_size(chiron_proto::PEER_WINDOW)
            .initial_connection_window_size(chiron_proto::PEER_WINDOW);
    })
    .await;
}
