//! Fuzzes the reader on whole files: the input is a complete sealed dataset, opened with the fixed
//! fuzzing key. Opening, verifying and reading records must never panic, whatever the bytes. The
//! seed corpus (`cargo run --bin make_corpus`) holds valid files under that key, so mutations
//! reach the length checks, the chunk authentication and, for intact files, the record paths.

#![no_main]

use chiron_fuzz::fuzz_key;
use chiron_seal::SealedDataset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = fuzz_key();
    // The header alone, as the untrusted host reads it.
    let _ = SealedDataset::read_header(&data.to_vec());
    let Ok(ds) = SealedDataset::open(data.to_vec(), &key) else {
        return;
    };
    let verified = ds.verify(|_| {});
    let schema = ds.header().schema.clone();
    for (s, split) in schema.splits.iter().enumerate() {
        let last = split.records - 1;
        for i in [0, 1, last / 2, last, split.records, u64::MAX] {
            let r = ds.record(s, i);
            if verified.is_ok() && i <= last {
                assert!(
                    r.is_ok(),
                    "record {i} of split {s} unreadable in a verified file"
                );
            }
        }
        let _ = ds.batch(s, &[last, 0, last]);
    }
    let _ = ds.record(schema.splits.len(), 0);
    // A tiny cache makes every read re-decrypt, exercising eviction.
    let ds = ds.with_cache_bytes(0);
    let _ = ds.batch(0, &[0, schema.splits[0].records - 1]);
    let _ = ds.preload();
});
