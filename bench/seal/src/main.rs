//! `seal-throughput`: how fast the sealed dataset container seals and verifies, in MB/s
//! (1 MB = 10^6 bytes of record plaintext).
//!
//! Builds an in-memory dataset of about 256 MiB of plaintext (MNIST-shaped `u8` records of shape
//! `[1, 28, 28]`), then, after one warm-up round, times the best of `--reps` rounds of:
//!
//! - **seal**: [`SealWriter`] from records in memory into a preallocated `Vec<u8>`;
//! - **verify**: [`SealedDataset::open`] on the sealed bytes followed by
//!   [`SealedDataset::verify`], which decrypts and authenticates every chunk and checks every
//!   record;
//! - **decrypt**: decrypt-and-authenticate of every chunk through the random-access path (one
//!   record read per chunk, a two-chunk cache), i.e. chunk decryption without verify's
//!   per-record checks. Its byte count is the decrypted chunk bytes (plaintext plus padding);
//! - **ring open / ring seal**: bare `ring` AES-256-GCM over the same number of chunk-sized
//!   buffers, in place, with no container around it: the ceiling the container can approach.
//!
//! `bench/seal.sh` runs this next to `openssl speed` and reports the ratios.
//!
//! Usage: `seal-throughput [--json] [--reps N] [--mib N] [--chunk-size BYTES]`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_seal::{
    DEFAULT_CHUNK_SIZE, Dtype, MasterKey, Schema, SealOptions, SealWriter, SealedDataset, Split,
};

/// Record shape: one 28×28 grey-scale image, as in MNIST.
const SHAPE: [u32; 3] = [1, 28, 28];
/// Number of classes; labels cycle through them.
const CLASSES: u32 = 10;

/// Command-line options.
struct Options {
    /// Print one JSON object instead of a human-readable report.
    json: bool,
    /// Timed repetitions per measurement (the best is reported).
    reps: usize,
    /// Approximate plaintext size in MiB.
    mib: u64,
    /// Plaintext bytes per chunk.
    chunk_size: u32,
}

/// Best and median time of one measurement.
struct Timing {
    best: Duration,
    median: Duration,
}

impl Timing {
    /// Throughput in MB/s (10^6 bytes per second) of `bytes` at the best time.
    fn best_mb_s(&self, bytes: u64) -> f64 {
        mb_s(bytes, self.best)
    }

    /// Throughput in MB/s of `bytes` at the median time.
    fn median_mb_s(&self, bytes: u64) -> f64 {
        mb_s(bytes, self.median)
    }
}

fn mb_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("seal-throughput: {msg}");
            eprintln!("usage: seal-throughput [--json] [--reps N] [--mib N] [--chunk-size BYTES]");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seal-throughput: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        json: false,
        reps: 5,
        mib: 256,
        chunk_size: DEFAULT_CHUNK_SIZE,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => opts.json = true,
            "--reps" => {
                opts.reps = parse_num(&value("--reps")?, "--reps")?;
                if opts.reps == 0 {
                    return Err("--reps must be at least 1".into());
                }
            }
            "--mib" => {
                opts.mib = parse_num(&value("--mib")?, "--mib")?;
                if opts.mib == 0 || opts.mib > 8192 {
                    return Err("--mib must be 1 to 8192".into());
                }
            }
            "--chunk-size" => opts.chunk_size = parse_num(&value("--chunk-size")?, "--chunk-size")?,
            "-h" | "--help" => {
                return Err("measures seal and verified-decrypt throughput".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn parse_num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{name}: {s:?} is not a valid number"))
}

fn run(opts: &Options) -> chiron_seal::Result<()> {
    let key = MasterKey::from_bytes([0x42; 32]);
    let feature_bytes = SHAPE.iter().map(|&d| d as usize).product::<usize>();
    let record_bytes = feature_bytes as u64 + 4;
    let records = (opts.mib << 20).div_ceil(record_bytes);
    let test = (records / 7).max(1);
    let schema = Schema {
        dtype: Dtype::U8,
        shape: SHAPE.to_vec(),
        classes: CLASSES,
        class_names: vec![],
        splits: if records > test {
            vec![
                Split {
                    name: "train".into(),
                    records: records - test,
                },
                Split {
                    name: "test".into(),
                    records: test,
                },
            ]
        } else {
            vec![Split {
                name: "train".into(),
                records,
            }]
        },
    };

    // All features up front, so the timed loop reads records from memory as a real import would
    // after decoding; a cheap deterministic pattern that is not constant.
    let features: Vec<u8> = (0..records as usize * feature_bytes)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect();

    let seal_once = |out: &mut Vec<u8>| -> chiron_seal::Result<u64> {
        out.clear();
        let mut w = SealWriter::new(
            &mut *out,
            &key,
            schema.clone(),
            SealOptions::with_chunk_size(opts.chunk_size),
        )?;
        for (i, f) in features.chunks_exact(feature_bytes).enumerate() {
            w.push(f, i as u32 % CLASSES)?;
        }
        let plaintext = w.header().plaintext_bytes();
        w.finish()?;
        Ok(plaintext)
    };

    // Preallocated output buffer, reused (and so already faulted in) across rounds.
    let mut sealed = Vec::new();
    let plaintext = seal_once(&mut sealed)?; // warm-up; also sizes the buffer
    let seal = time_best(opts.reps, || seal_once(&mut sealed).map(|_| ()))?;

    let sealed = Arc::new(sealed);
    let sealed_len = sealed.len() as u64;
    let verify_once = || -> chiron_seal::Result<()> {
        let ds = SealedDataset::open(Arc::clone(&sealed), &key)?;
        let report = ds.verify(|_| {})?;
        assert_eq!(
            report.plaintext_bytes, plaintext,
            "verify covered every byte"
        );
        Ok(())
    };
    verify_once()?; // warm-up
    let verify = time_best(opts.reps, verify_once)?;

    // Decrypt-only: one record read per chunk through a two-chunk cache decrypts every chunk
    // exactly once (a record spanning a boundary loads the next chunk, which the next read hits).
    let cs = u64::from(opts.chunk_size);
    let split_sizes: Vec<u64> = schema.splits.iter().map(|s| s.records).collect();
    let (chunk_count, decrypted) = {
        let ds = SealedDataset::open(Arc::clone(&sealed), &key)?;
        (ds.chunk_count(), ds.chunk_count() * cs)
    };
    let decrypt_once = || -> chiron_seal::Result<()> {
        let ds = SealedDataset::open(Arc::clone(&sealed), &key)?.with_cache_bytes(0);
        let mut last_record = u64::MAX;
        for c in 0..chunk_count {
            // First record starting in chunk c, or the last record when none does.
            let r = (c * cs).div_ceil(record_bytes).min(records - 1);
            if r == last_record {
                continue;
            }
            last_record = r;
            let (split, index) = locate(&split_sizes, r);
            ds.record(split, index)?;
        }
        Ok(())
    };
    decrypt_once()?; // warm-up
    let decrypt = time_best(opts.reps, decrypt_once)?;
    drop(sealed);

    let (ring_seal, ring_open) = ring_baseline(opts.reps, chunk_count, opts.chunk_size as usize);

    let seal_mb_s = seal.best_mb_s(plaintext);
    let verify_mb_s = verify.best_mb_s(plaintext);
    let decrypt_mb_s = decrypt.best_mb_s(decrypted);
    if opts.json {
        let out = serde_json::json!({
            "seal_mb_s": round1(seal_mb_s),
            "verify_mb_s": round1(verify_mb_s),
            "decrypt_mb_s": round1(decrypt_mb_s),
            "ring_seal_mb_s": round1(ring_seal.best_mb_s(decrypted)),
            "ring_open_mb_s": round1(ring_open.best_mb_s(decrypted)),
            "seal_median_mb_s": round1(seal.median_mb_s(plaintext)),
            "verify_median_mb_s": round1(verify.median_mb_s(plaintext)),
            "chunk_size": opts.chunk_size,
            "bytes": plaintext,
            "sealed_bytes": sealed_len,
            "records": records,
            "reps": opts.reps,
        });
        println!("{out}");
    } else {
        println!(
            "dataset: {records} u8 records of shape {SHAPE:?}, {plaintext} plaintext bytes, \
             {sealed_len} sealed bytes, chunk size {}, best of {} after a warm-up",
            opts.chunk_size, opts.reps
        );
        println!(
            "seal:    {seal_mb_s:9.1} MB/s (median {:.1})",
            seal.median_mb_s(plaintext)
        );
        println!(
            "verify:  {verify_mb_s:9.1} MB/s (median {:.1})",
            verify.median_mb_s(plaintext)
        );
        println!(
            "decrypt: {decrypt_mb_s:9.1} MB/s (median {:.1}; chunk decryption only, no record checks)",
            decrypt.median_mb_s(decrypted)
        );
        println!(
            "ring seal: {:7.1} MB/s, ring open: {:7.1} MB/s (bare AES-256-GCM on the same chunks)",
            ring_seal.best_mb_s(decrypted),
            ring_open.best_mb_s(decrypted)
        );
    }
    Ok(())
}

/// Bare `ring` AES-256-GCM over `chunks` buffers of `chunk_size` bytes (one 64 KiB-ish buffer
/// per chunk, sealed then opened in place): best seal and open timings.
fn ring_baseline(reps: usize, chunks: u64, chunk_size: usize) -> (Timing, Timing) {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = match UnboundKey::new(&AES_256_GCM, &[0x24; 32]) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable!("AES-256-GCM accepts a 32-byte key"),
    };
    let nonce = |i: u64| {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&i.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    let aad = [0u8; 32];
    let n = usize::try_from(chunks).unwrap_or(usize::MAX);
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; chunk_size + 16]).collect();
    // Benchmark data under a throwaway key: re-sealing under the same nonces is harmless here.
    let seal_all = |bufs: &mut [Vec<u8>]| {
        for (i, b) in bufs.iter_mut().enumerate() {
            let (data, tag_out) = b.split_at_mut(chunk_size);
            match key.seal_in_place_separate_tag(nonce(i as u64), Aad::from(&aad), data) {
                Ok(tag) => tag_out.copy_from_slice(tag.as_ref()),
                Err(_) => unreachable!("GCM input limit exceeded by a chunk"),
            }
        }
    };
    // Warm-up, then time sealing; every timed round re-seals the buffers' current contents.
    seal_all(&mut bufs);
    let mut seal_times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        seal_all(&mut bufs);
        seal_times.push(start.elapsed());
    }
    // Opening is destructive, so keep a sealed copy and restore it between (untimed) rounds.
    let sealed = bufs.clone();
    let mut open_times = Vec::with_capacity(reps + 1);
    for round in 0..=reps {
        for (b, s) in bufs.iter_mut().zip(&sealed) {
            b.copy_from_slice(s);
        }
        let start = Instant::now();
        for (i, b) in bufs.iter_mut().enumerate() {
            let ok = key
                .open_in_place(nonce(i as u64), Aad::from(&aad), b)
                .is_ok();
            assert!(ok, "bare ring round trip failed");
        }
        if round > 0 {
            open_times.push(start.elapsed());
        }
    }
    (timing(seal_times), timing(open_times))
}

fn timing(mut times: Vec<Duration>) -> Timing {
    times.sort();
    Timing {
        best: times[0],
        median: times[times.len() / 2],
    }
}

/// Split index and index within it of record `r` of the whole stream.
fn locate(split_sizes: &[u64], mut r: u64) -> (usize, u64) {
    for (i, &n) in split_sizes.iter().enumerate() {
        if r < n {
            return (i, r);
        }
        r -= n;
    }
    // Callers pass r < total records.
    (split_sizes.len() - 1, r)
}

/// Runs `f` `reps` times and returns the best and median wall time.
fn time_best(
    reps: usize,
    mut f: impl FnMut() -> chiron_seal::Result<()>,
) -> chiron_seal::Result<Timing> {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(timing(times))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
