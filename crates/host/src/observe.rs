//! The host's view of the links between enclaves: a TCP relay that forwards a peer link and
//! records what anyone on the network path can see of it — bytes, TLS records, and when the
//! message-sized ones passed. Used by `chiron cluster up --observe`, the distributed benchmark
//! and the traffic-equality tests; it never sees inside the RA-TLS sessions.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A record with at least this much content carries message data (not a control frame).
pub const MESSAGE_RECORD: usize = 512;

/// Content bytes of a record holding exactly one HTTP/2 GOAWAY or PING frame (9 + 8).
pub const MANAGEMENT_RECORD: usize = 17;

/// AEAD tag and inner content type of a TLS 1.3 record.
const RECORD_OVERHEAD: usize = 17;

/// One direction of one connection, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Bytes on the wire.
    pub bytes: u64,
    /// TLS records.
    pub records: u64,
    /// Content bytes of the records (length less AEAD overhead), without lone GOAWAY/PING
    /// records.
    pub content: u64,
    /// Records of at least [`MESSAGE_RECORD`] content bytes.
    pub message_records: u64,
    /// When the first and the last message record passed.
    pub first_message: Option<Instant>,
    /// See `first_message`.
    pub last_message: Option<Instant>,
    /// Wire bytes of each completed segment — a run of bytes in this direction between two
    /// runs in the other, i.e. one request or one reply of a unary call — and how many times
    /// each size occurred.
    pub segments: std::collections::BTreeMap<u64, u64>,
    /// Wire bytes of the segment in progress.
    open_segment: u64,
    /// Every record: when its header passed, and its content bytes (as in `content`: how
    /// the endpoints' writes fall into records follows scheduling, what they carry does not).
    pub log: Vec<(Instant, u64)>,
}

impl Direction {
    /// The most frequent segment size (ties: the larger), if any segment completed.
    pub fn common_segment(&self) -> Option<(u64, u64)> {
        self.segments
            .iter()
            .max_by_key(|(size, count)| (**count, **size))
            .map(|(s, c)| (*s, *c))
    }

    fn close_segment(&mut self) {
        if self.open_segment > 0 {
            *self.segments.entry(self.open_segment).or_insert(0) += 1;
            self.open_segment = 0;
        }
    }
}

/// One connection: `up` from the dialling side, `down` back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// From the side that connected.
    pub up: Direction,
    /// Towards it.
    pub down: Direction,
}

impl Connection {
    /// What could depend on the data, and must not: per direction, content bytes and message
    /// records. Left out as they follow thread scheduling: how HTTP/2's control frames at a
    /// connection's start fall into TLS records (coalesced or not), and a lone GOAWAY or PING
    /// record that a peer answering a close sends or not, depending on what it noticed first.
    pub fn shape(&self) -> (u64, u64, u64, u64) {
        (
            self.up.content,
            self.up.message_records,
            self.down.content,
            self.down.message_records,
        )
    }
}

/// Splits one direction of a TLS stream into records (5-byte headers, then the body).
#[derive(Default)]
struct RecordCounter {
    header: Vec<u8>,
    skip: usize,
}

impl RecordCounter {
    /// Feeds bytes; calls `record(content_type, length)` for each record header completed.
    fn feed(&mut self, mut data: &[u8], mut record: impl FnMut(u8, usize)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == 5 {
                let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                record(self.header[0], len);
                self.skip = len;
                self.header.clear();
            }
        }
    }
}

fn observe(d: &mut Direction, content_type: u8, len: usize, now: Instant) {
    d.records += 1;
    // Type 23: encrypted (application data, and in TLS 1.3 the handshake after the hellos).
    let content = if content_type == 23 {
        len.saturating_sub(RECORD_OVERHEAD)
    } else {
        len
    };
    d.log.push((now, content as u64));
    if content_type != 23 || content != MANAGEMENT_RECORD {
        d.content += content as u64;
    }
    if content >= MESSAGE_RECORD {
        d.message_records += 1;
        d.first_message.get_or_insert(now);
        d.last_message = Some(now);
    }
}

/// A relay from a local port to `upstream`, recording every connection.
pub struct ObservingRelay {
    /// The address to dial instead of the upstream.
    pub addr: String,
    connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>>,
}

impl ObservingRelay {
    /// Listens on `listen` (port 0: any) and forwards each connection to `upstream`.
    pub async fn start(listen: &str, upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?.to_string();
        let connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>> = Arc::default();
        let conns = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                // Forward as it comes: the relay must not batch what the endpoints send.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let observed = Arc::new(Mutex::new(Connection::default()));
                if let Ok(mut c) = conns.lock() {
                    c.push(observed.clone());
                }
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, observed.clone(), true));
                tokio::spawn(pump(sr, cw, observed, false));
            }
        });
        Ok(Self { addr, connections })
    }

    /// Every connection so far, in the order they were opened.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections.lock().map_or_else(
            |_| Vec::new(),
            |c| {
                c.iter()
                    .filter_map(|o| o.lock().ok().map(|o| o.clone()))
                    .collect()
            },
        )
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    observed: Arc<Mutex<Connection>>,
    up: bool,
) {
    let mut counter = RecordCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        if let Ok(mut o) = observed.lock() {
            let o = &mut *o;
            let (d, other) = if up {
                (&mut o.up, &mut o.down)
            } else {
                (&mut o.down, &mut o.up)
            };
            other.close_segment();
            d.open_segment += n as u64;
            d.bytes += n as u64;
            counter.feed(&buf[..n], |t, len| observe(d, t, len, now));
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_are_counted_across_read_boundaries() {
        // A plaintext handshake record (type 22, 3 bytes), an encrypted 1000-byte record and a
        // lone GOAWAY record (17 + 17), fed in awkward pieces.
        let mut wire = vec![22, 3, 3, 0, 3, 1, 2, 3];
        wire.extend([23, 3, 3, 0x03, 0xe8]);
        wire.extend(vec![0; 1000]);
        wire.extend([23, 3, 3, 0, 34]);
        wire.extend(vec![0; 34]);
        let mut d = Direction::default();
        let mut counter = RecordCounter::default();
        let now = Instant::now();
        for piece in wire.chunks(7) {
            counter.feed(piece, |t, len| observe(&mut d, t, len, now));
        }
        assert_eq!(d.records, 3);
        let logged: Vec<u64> = d.log.iter().map(|r| r.1).collect();
        assert_eq!(logged, [3, 1000 - 17, 34 - 17]);
        assert_eq!(d.content, 3 + 1000 - 17);
        assert_eq!(d.message_records, 1);
        assert!(d.first_message.is_some());
    }
}
