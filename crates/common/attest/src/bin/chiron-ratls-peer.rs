//! `chiron-ratls-peer`: a diagnostic RA-TLS endpoint with a sim identity.
//!
//! Runs one side of a (mutual) RA-TLS handshake over TCP and prints the peer's verified claims,
//! so an attestation setup — policies, measurements, platform keys — can be checked between two
//! processes without the rest of Chiron. Its sim measurement is that of this executable with an
//! empty configuration (`chiron attest measure $(which chiron-ratls-peer)`).

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chiron_attest::ratls::{self, RaTlsIdentity, RaTlsVerifier};
use chiron_attest::sim::{SimPlatform, SimSource};
use chiron_attest::{Endorsements, Policy};
use clap::{Parser, Subcommand};

/// One side of an RA-TLS handshake with a sim identity.
#[derive(Parser)]
struct Args {
    /// The sim platform key (created if absent).
    #[arg(long)]
    platform_key: PathBuf,
    /// Policy the peer must satisfy.
    #[arg(long)]
    policy: PathBuf,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Accept one connection; require the client's RA-TLS certificate (mutual).
    Serve {
        /// Address to listen on; port 0 picks a free one (printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Connect, presenting this process's RA-TLS certificate.
    Connect {
        /// The server's address.
        #[arg(long)]
        to: String,
    },
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chiron-ratls-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> AnyResult<()> {
    let platform = SimPlatform::load_or_create(&args.platform_key)?;
    let source = SimSource::for_executable(platform, &std::env::current_exe()?, b"")?;
    println!("measurement {}", chiron_attest::hex(source.measurement()));
    let identity = RaTlsIdentity::generate(&source)?;
    let verifier = Arc::new(RaTlsVerifier::new(
        Policy::load(&args.policy)?,
        Endorsements::default(),
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    match args.role {
        Role::Serve { listen } => {
            let listener = TcpListener::bind(&listen)?;
            println!("listening {}", listener.local_addr()?);
            std::io::stdout().flush()?;
            let (sock, _) = listener.accept()?;
            let config = identity.server_config(Some(Arc::clone(&verifier)))?;
            let mut tls =
                rustls::StreamOwned::new(rustls::ServerConnection::new(Arc::new(config))?, sock);
            let mut ping = [0u8; 4];
            tls.read_exact(&mut ping)
                .map_err(|e| format!("handshake failed: {e}"))?;
            tls.write_all(b"pong")?;
            tls.flush()?;
            let claims = ratls::peer_claims(&verifier, &tls.conn, now)?;
            println!("peer {}", serde_json::to_string(&claims)?);
        }
        Role::Connect { to } => {
            let sock = TcpStream::connect(&to)?;
            let config = identity.client_config(Arc::clone(&verifier))?;
            let conn = rustls::ClientConnection::new(Arc::new(config), ratls::server_name())?;
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(b"ping")
                .map_err(|e| format!("handshake failed: {e}"))?;
            let mut pong = [0u8; 4];
            tls.read_exact(&mut pong)
                .map_err(|e| format!("handshake failed: {e}"))?;
            let claims = ratls::peer_claims(&verifier, &tls.conn, now)?;
            println!("peer {}", serde_json::to_string(&claims)?);
        }
    }
    Ok(())
}
