//! Chiron's wire types: the enclave's API (`chiron.v1`: the owner's and the operator's
//! services, served over RA-TLS) and the untrusted host's API (`chiron.host.v1`: blobs and
//! status records). Generated from `proto/` at build time.
//!
//! Fields whose values depend on data, weights or the trainer are fixed-width in the protos, so
//! message sizes depend only on counts the parties already know.

#![forbid(unsafe_code)]

/// The enclave's API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod enclave {
    tonic::include_proto!("chiron.v1");
}

/// The job policy (TOML) an owner sends with a job.
pub mod job;

/// Job phases, failure codes and metric names, shared by every side.
pub mod vocab;

/// Owner replies of one size per policy.
pub mod padding;

/// Listeners with a connection limit and backoff on accept errors (host and enclave alike).
pub mod listen;

/// The host's API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod host {
    tonic::include_proto!("chiron.host.v1");
}

/// glibc malloc settings of every enclave process (`GLIBC_TUNABLES`; chiron-host sets them,
/// the enclave refuses to start without exactly these): one arena, no `mmap`ed chunks, never
/// trim. Freed memory then stays in the process and is reused, so the resident memory the host
/// can read stays where the enclave's start-up touch put it, whatever a trainer allocates and
/// frees. (It also spares training the page faults of re-`mmap`ing activation buffers every
/// step, about 20 % of a CNN step with glibc's defaults.)
pub const ENCLAVE_MALLOC_TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:\
     glibc.malloc.trim_threshold=18446744073709551615";

/// gRPC metadata key with which the enclave presents its launch lease on every host-API write.
///
/// The host launches each enclave process with a fresh lease (a generation tag, not a secret:
/// the host is trusted with nothing) written as the first line of the enclave's standard input,
/// and refuses writes that carry any other lease. An enclave left over from an earlier launch —
/// an orphan of a killed host, or a process that outlived a restart — can then never write
/// to the store next to its successor.
pub const HOST_LEASE_HEADER: &str = "x-chiron-lease";

/// Bytes per chunk of a streamed blob (fixed, so the number of messages follows from a blob's
/// size alone).
pub const BLOB_CHUNK_BYTES: usize = 1 << 20;

/// `data` as the chunks of one blob named `name`: the first chunk carries the name; an empty
/// blob is one empty chunk.
pub fn blob_chunks(name: &str, data: &[u8]) -> Vec<host::BlobChunk> {
    if data.is_empty() {
        return vec![host::BlobChunk {
            name: name.to_string(),
            data: Vec::new(),
        }];
    }
    data.chunks(BLOB_CHUNK_BYTES)
        .enumerate()
        .map(|(i, c)| host::BlobChunk {
            name: if i == 0 {
                name.to_string()
            } else {
                String::new()
            },
            data: c.to_vec(),
        })
        .collect()
}

/// A gRPC channel to `addr` over TLS with `config` (RA-TLS: the config's verifier checks the
/// peer's evidence; with a client certificate for enclave-to-enclave links). The server name is
/// the fixed RA-TLS one: identity comes from the evidence.
pub async fn tls_channel(
    addr: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tls_channel_on(
        tonic::transport::Endpoint::from_static("http://chiron-enclave"),
        addr,
        config,
        server_name,
    )
    .await
}

/// HTTP/2 flow-control window of links between enclaves (the largest HTTP/2 allows). A
/// receiver announces more window only once it has consumed half of it, so on these links no
/// `WINDOW_UPDATE` frame — whose timing and placement would depend on scheduling — is sent
/// before a gigabyte has passed: what the host sees of a link is the messages alone.
pub const PEER_WINDOW: u32 = (1 << 31) - 1;

/// How long a new link between enclaves waits before its first request: long enough for the
/// HTTP/2 SETTINGS exchange to complete, even on a loaded machine. A request sent earlier
/// races it, and the peer then sends window updates for the streams open when its settings
/// took effect — frames that appear or not by scheduling. Paid once per connection.
pub const PEER_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// [`tls_channel`] for a link between enclaves: flow-control windows of [`PEER_WINDOW`], and
/// ready only after [`PEER_SETTLE`].
pub async fn peer_channel(
    addr: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_static("http://chiron-enclave")
        .initial_stream_window_size(PEER_WINDOW)
        .initial_connection_window_size(PEER_WINDOW);
    let channel = tls_channel_on(endpoint, addr, config, server_name).await?;
    tokio::time::sleep(PEER_SETTLE).await;
    Ok(channel)
}

async fn tls_channel_on(
    endpoint: tonic::transport::Endpoint,
    addr: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let addr = addr.to_string();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let config = config.clone();
        let addr = addr.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            // Request/reply traffic: Nagle's algorithm and delayed ACKs would add ~40 ms to
            // every exchange.
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint.connect_with_connector(connector).await
}
