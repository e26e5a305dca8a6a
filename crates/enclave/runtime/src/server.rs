//! The RA-TLS endpoint: TLS 1.3 with the enclave's attested certificate, gRPC inside.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chiron_proto::enclave::operator_server::OperatorServer;
use chiron_proto::enclave::owner_server::OwnerServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::service::Services;

/// Largest request the services accept (a trainer module, a batch of inputs).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// One accepted RA-TLS connection, as tonic wants it.
pub struct TlsConnection(TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepted TLS connections on `listener`, as a stream for tonic's `serve_with_incoming`.
/// Handshakes run concurrently; a failed handshake drops only its connection.
pub fn tls_incoming(
    listener: TcpListener,
    tls: rustls::ServerConfig,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConnection, std::io::Error>> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<TlsConnection, std::io::Error>>(64);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // Request/reply traffic: without it Nagle and delayed ACKs add ~40 ms per reply.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(TlsConnection(tls))).await;
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
    serve_http2(routes, tls_incoming(listener, tls), |_| {}).await;
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
    serve_http2(routes, tls_incoming(listener, tls), |http| {
        http.initial_stream_window_size(chiron_proto::PEER_WINDOW)
            .initial_connection_window_size(chiron_proto::PEER_WINDOW);
    })
    .await;
}
