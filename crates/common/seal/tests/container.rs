//! Round trips and tamper detection for the sealed container, through its public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use chiron_seal::{
    Dtype, Error, Header, MIN_CHUNK_SIZE, MasterKey, Schema, SealOptions, SealWriter,
    SealedDataset, Split, TAG_LEN,
};
use proptest::prelude::*;

const FEATURES: usize = 3 * 5 * 5;

fn schema(train: u64, test: u64) -> Schema {
    Schema {
        dtype: Dtype::U8,
        shape: vec![3, 5, 5],
        classes: 10,
        class_names: vec![],
        splits: vec![
            Split {
                name: "train".into(),
                records: train,
            },
            Split {
                name: "test".into(),
                records: test,
            },
        ],
    }
}

fn record(i: u64, salt: u8) -> (Vec<u8>, u32) {
    let features = (0..FEATURES)
        .map(|j| (i as usize * 31 + j * 7 + salt as usize) as u8)
        .collect();
    (features, (i % 10) as u32)
}

/// 300 records of 79 bytes in 4 KiB chunks: 6 chunks, the last partly padding.
fn sealed(key: &MasterKey, salt: u8) -> Vec<u8> {
    let mut w = SealWriter::new(
        Vec::new(),
        key,
        schema(200, 100),
        SealOptions::with_chunk_size(MIN_CHUNK_SIZE),
    )
    .unwrap();
    for i in 0..300 {
        let (f, l) = record(i, salt);
        w.push(&f, l).unwrap();
    }
    w.finish().unwrap()
}

fn header_len(file: &[u8]) -> usize {
    14 + u32::from_le_bytes(file[10..14].try_into().unwrap()) as usize
}

fn chunk_len() -> usize {
    MIN_CHUNK_SIZE as usize + TAG_LEN
}

fn open_and_verify(file: Vec<u8>, key: &MasterKey) -> chiron_seal::Result<()> {
    SealedDataset::open(file, key)?.verify(|_| {})?;
    Ok(())
}

#[test]
fn round_trip_records_batches_and_verify() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let ds = SealedDataset::open(file.clone(), &key).unwrap();
    assert_eq!(ds.chunk_count(), 6);
    assert_eq!(
        file.len(),
        header_len(&file) + 6 * chunk_len(),
        "size is a function of the header"
    );
    let report = ds.verify(|_| {}).unwrap();
    assert_eq!(report.records, 300);
    assert_eq!(report.chunks, 6);
    for (split, base, n) in [(0, 0, 200), (1, 200, 100)] {
        for i in 0..n {
            let r = ds.record(split, i).unwrap();
            let (f, l) = record(base + i, 0);
            assert_eq!(&r.features[..], &f[..]);
            assert_eq!(r.label, l);
        }
    }
    let batch = ds.batch(0, &[199, 0, 57, 57]).unwrap();
    let expect: Vec<u8> = [199, 0, 57, 57]
        .iter()
        .flat_map(|&i| record(i, 0).0)
        .collect();
    assert_eq!(&batch.features[..], &expect[..]);
    assert_eq!(&batch.labels[..], &[9, 0, 7, 7]);
    assert!(matches!(ds.record(1, 100), Err(Error::OutOfRange(_))));
    assert!(matches!(ds.record(2, 0), Err(Error::OutOfRange(_))));
}

#[test]
fn tiny_cache_still_serves_every_record_in_any_order() {
    let key = MasterKey::from_bytes([1; 32]);
    let ds = SealedDataset::open(sealed(&key, 0), &key)
        .unwrap()
        .with_cache_bytes(0);
    let mut order: Vec<u64> = (0..200).collect();
    order.reverse();
    order.rotate_left(77);
    for i in order {
        assert_eq!(ds.record(0, i).unwrap().features[..], record(i, 0).0[..]);
    }
    assert!(
        ds.preload().is_err(),
        "a 2-chunk cache cannot preload 6 chunks"
    );
    let full = SealedDataset::open(sealed(&key, 0), &key).unwrap();
    full.preload().unwrap();
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    for pos in 0..file.len() {
        let mut bad = file.clone();
        bad[pos] ^= 0x01 << (pos % 8);
        assert!(
            open_and_verify(bad, &key).is_err(),
            "flip at byte {pos} went unnoticed"
        );
    }
}

#[test]
fn flipped_chunk_byte_is_reported_with_its_chunk() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let hl = header_len(&file);
    for chunk in 0..6 {
        let mut bad = file.clone();
        bad[hl + chunk * chunk_len() + 100] ^= 0xff;
        let ds = SealedDataset::open(bad, &key).unwrap();
        let err = ds.verify(|_| {}).unwrap_err();
        assert!(
            matches!(err, Error::ChunkAuthentication { chunk: c, chunks: 6 } if c == chunk as u64),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("chunk {chunk} of 6")));
        // Random access to a record inside the bad chunk fails the same way.
        let first_record_in_chunk = (chunk * MIN_CHUNK_SIZE as usize).div_ceil(79) as u64;
        if first_record_in_chunk < 200 {
            assert!(matches!(
                ds.record(0, first_record_in_chunk),
                Err(Error::ChunkAuthentication { .. })
            ));
        }
    }
}

#[test]
fn truncation_at_every_chunk_boundary_and_inside_chunks_is_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let hl = header_len(&file);
    for kept in 0..6 {
        for extra in [0, 1, chunk_len() - 1] {
            let cut = hl + kept * chunk_len() + extra;
            let err = SealedDataset::open(file[..cut].to_vec(), &key)
                .err()
                .expect("truncated file must not open");
            assert!(
                matches!(err, Error::Truncated { first_missing, expected_chunks: 6, .. } if first_missing == kept as u64),
                "cut at {cut}: {err}"
            );
        }
    }
    for cut in [0, 5, 14, hl - 1] {
        assert!(matches!(
            SealedDataset::open(file[..cut].to_vec(), &key),
            Err(Error::InvalidHeader(_))
        ));
    }
    let mut longer = file.clone();
    longer.extend_from_slice(&file[hl..hl + chunk_len()]);
    assert!(matches!(
        SealedDataset::open(longer, &key),
        Err(Error::TrailingData { .. })
    ));
}

#[test]
fn dropping_the_last_chunk_and_fixing_the_header_is_still_detected() {
    // An attacker who shortens the file and edits the header to match changes the associated
    // data, so chunk 0 no longer authenticates; and the new last chunk lacks the final flag.
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let mut header = Header::decode(&file[..header_len(&file)]).unwrap();
    header.schema.splits[1].records = 100 - 52; // 248 records = 19592 bytes = 5 chunks
    let new_header = header.encode();
    assert_eq!(header.chunk_count(), 5);
    let mut bad = new_header.clone();
    bad.extend_from_slice(&file[header_len(&file)..header_len(&file) + 5 * chunk_len()]);
    let err = open_and_verify(bad, &key).unwrap_err();
    assert!(
        matches!(err, Error::ChunkAuthentication { chunk: 0, .. }),
        "{err}"
    );
}

#[test]
fn swapped_or_duplicated_chunks_are_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let hl = header_len(&file);
    let cl = chunk_len();
    for (a, b) in [(0, 1), (1, 4), (2, 5), (4, 5)] {
        let mut bad = file.clone();
        let (ca, cb) = (
            file[hl + a * cl..hl + (a + 1) * cl].to_vec(),
            file[hl + b * cl..hl + (b + 1) * cl].to_vec(),
        );
        bad[hl + a * cl..hl + (a + 1) * cl].copy_from_slice(&cb);
        bad[hl + b * cl..hl + (b + 1) * cl].copy_from_slice(&ca);
        let err = open_and_verify(bad, &key).unwrap_err();
        assert!(
            matches!(err, Error::ChunkAuthentication { chunk, .. } if chunk == a as u64),
            "swap {a}<->{b}: {err}"
        );
    }
    let mut dup = file.clone();
    dup.copy_within(hl..hl + cl, hl + 3 * cl);
    assert!(matches!(
        open_and_verify(dup, &key),
        Err(Error::ChunkAuthentication { chunk: 3, .. })
    ));
}

#[test]
fn header_edits_are_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let hl = header_len(&file);
    let original = Header::decode(&file[..hl]).unwrap();
    type Edit = Box<dyn Fn(&mut Header)>;
    let edits: Vec<Edit> = vec![
        Box::new(|h| h.schema.classes = 11),
        Box::new(|h| h.schema.splits[0].name = "trail".into()),
        Box::new(|h| h.schema.shape = vec![5, 3, 5]),
        Box::new(|h| h.schema.class_names = (0..10).map(|c| c.to_string()).collect()),
        Box::new(|h| {
            h.schema.splits[0].records = 100;
            h.schema.splits[1].records = 200;
        }),
    ];
    for edit in edits {
        let mut h = original.clone();
        edit(&mut h);
        let mut bad = h.encode();
        bad.extend_from_slice(&file[hl..]);
        let err = open_and_verify(bad, &key).unwrap_err();
        assert!(
            matches!(err, Error::ChunkAuthentication { chunk: 0, .. }),
            "{err}"
        );
    }
    // Changing the dataset id changes the derived key: also chunk 0.
    let mut h = original.clone();
    h.dataset_id[0] ^= 1;
    let mut bad = h.encode();
    bad.extend_from_slice(&file[hl..]);
    assert!(matches!(
        open_and_verify(bad, &key),
        Err(Error::ChunkAuthentication { chunk: 0, .. })
    ));
}

#[test]
fn splicing_between_datasets_under_one_key_is_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let a = sealed(&key, 0);
    let b = sealed(&key, 1);
    let hl = header_len(&a);
    assert_eq!(hl, header_len(&b));
    let cl = chunk_len();
    // One chunk of b inside a.
    let mut bad = a.clone();
    bad[hl + 2 * cl..hl + 3 * cl].copy_from_slice(&b[hl + 2 * cl..hl + 3 * cl]);
    assert!(matches!(
        open_and_verify(bad, &key),
        Err(Error::ChunkAuthentication { chunk: 2, .. })
    ));
    // a's header on b's chunks.
    let mut bad = a[..hl].to_vec();
    bad.extend_from_slice(&b[hl..]);
    assert!(matches!(
        open_and_verify(bad, &key),
        Err(Error::ChunkAuthentication { chunk: 0, .. })
    ));
}

#[test]
fn wrong_keys_are_rejected() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = sealed(&key, 0);
    let other = MasterKey::from_bytes([2; 32]);
    let err = SealedDataset::open(file.clone(), &other).err().unwrap();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains(&key.id().unwrap().to_string()));

    let header = Header::decode(&file[..header_len(&file)]).unwrap();
    let wrong_data_key = other.data_key(&header.dataset_id).unwrap();
    let ds = SealedDataset::open_with_data_key(file.clone(), &wrong_data_key).unwrap();
    assert!(matches!(
        ds.verify(|_| {}),
        Err(Error::ChunkAuthentication { chunk: 0, .. })
    ));
    let right = key.data_key(&header.dataset_id).unwrap();
    let ds = SealedDataset::open_with_data_key(file, &right).unwrap();
    assert_eq!(ds.verify(|_| {}).unwrap().records, 300);
}

#[test]
fn writer_refuses_bad_records_without_losing_state() {
    let key = MasterKey::from_bytes([1; 32]);
    let mut w = SealWriter::new(
        Vec::new(),
        &key,
        schema(2, 1),
        SealOptions::with_chunk_size(MIN_CHUNK_SIZE),
    )
    .unwrap();
    let (f, _) = record(0, 0);
    w.push(&f, 1).unwrap();
    assert!(w.push(&f[1..], 1).is_err(), "short record");
    assert!(w.push(&f, 10).is_err(), "label out of range");
    assert_eq!(w.records_written(), 1);
    w.push(&f, 2).unwrap();
    w.push(&f, 3).unwrap();
    assert!(w.push(&f, 3).is_err(), "more records than declared");
    let file = w.finish().unwrap();
    let ds = SealedDataset::open(file, &key).unwrap();
    assert_eq!(ds.verify(|_| {}).unwrap().records, 3);
    assert_eq!(ds.record(1, 0).unwrap().label, 3);

    let mut w = SealWriter::new(
        Vec::new(),
        &key,
        schema(2, 1),
        SealOptions::with_chunk_size(MIN_CHUNK_SIZE),
    )
    .unwrap();
    w.push(&f, 0).unwrap();
    assert!(
        matches!(w.finish(), Err(Error::BadRecord(_))),
        "too few records"
    );

    let mut f32_schema = schema(1, 1);
    f32_schema.dtype = Dtype::F32;
    f32_schema.shape = vec![2];
    let mut w = SealWriter::new(
        Vec::new(),
        &key,
        f32_schema,
        SealOptions::with_chunk_size(MIN_CHUNK_SIZE),
    )
    .unwrap();
    let nan: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let err = w.push(&nan, 0).unwrap_err().to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn two_seals_of_the_same_data_differ_but_have_equal_size() {
    let key = MasterKey::from_bytes([1; 32]);
    let a = sealed(&key, 0);
    let b = sealed(&key, 0);
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "fresh dataset id, fresh key, fresh ciphertext");
    let c = sealed(&key, 9);
    assert_eq!(a.len(), c.len(), "size depends on the header only");
}

fn arb_dataset() -> impl Strategy<Value = (Schema, Vec<(Vec<u8>, u32)>, u32)> {
    (
        prop::collection::vec(1u32..6, 1..=3),
        prop_oneof![Just(Dtype::U8), Just(Dtype::F32)],
        prop::collection::vec(1u64..40, 1..=3),
        2u32..5,
        MIN_CHUNK_SIZE..MIN_CHUNK_SIZE * 2,
        any::<u64>(),
    )
        .prop_map(|(shape, dtype, counts, classes, chunk, seed)| {
            let splits: Vec<Split> = counts
                .iter()
                .enumerate()
                .map(|(i, &records)| Split {
                    name: format!("s{i}"),
                    records,
                })
                .collect();
            let schema = Schema {
                dtype,
                shape,
                classes,
                class_names: vec![],
                splits,
            };
            let fb = schema.feature_bytes() as usize;
            let n = schema.total_records();
            let records = (0..n)
                .map(|i| {
                    let x = seed.wrapping_mul(i + 1);
                    let f = match dtype {
                        Dtype::U8 => (0..fb).map(|j| (x >> (j % 8)) as u8).collect(),
                        Dtype::F32 => (0..fb / 4)
                            .flat_map(|j| ((x % 1000) as f32 - j as f32 / 3.0).to_le_bytes())
                            .collect(),
                    };
                    (f, (x % u64::from(classes)) as u32)
                })
                .collect();
            (schema, records, chunk)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_dataset_round_trips_and_any_flip_is_caught((schema, records, chunk) in arb_dataset(), flip in any::<prop::sample::Index>()) {
        let key = MasterKey::from_bytes([5; 32]);
        let mut w = SealWriter::new(Vec::new(), &key, schema.clone(), SealOptions::with_chunk_size(chunk)).unwrap();
        for (f, l) in &records {
            w.push(f, *l).unwrap();
        }
        let file = w.finish().unwrap();
        let ds = SealedDataset::open(file.clone(), &key).unwrap();
        prop_assert_eq!(ds.verify(|_| {}).unwrap().records, records.len() as u64);
        let mut global = 0usize;
        for (s, split) in schema.splits.iter().enumerate() {
            for i in 0..split.records {
                let r = ds.record(s, i).unwrap();
                prop_assert_eq!(&r.features[..], &records[global].0[..]);
                prop_assert_eq!(r.label, records[global].1);
                global += 1;
            }
        }
        let mut bad = file;
        let i = flip.index(bad.len());
        bad[i] ^= 0x40;
        prop_assert!(open_and_verify(bad, &key).is_err());
    }
}

/// `schema(20, 10)` with class names, sealed with `options`.
fn named(key: &MasterKey, names: &[&str], options: SealOptions) -> Vec<u8> {
    let mut schema = schema(20, 10);
    schema.class_names = names.iter().map(|n| n.to_string()).collect();
    let mut w = SealWriter::new(Vec::new(), key, schema, options).unwrap();
    for i in 0..30 {
        let (f, l) = record(i, 0);
        w.push(&f, l).unwrap();
    }
    w.finish().unwrap()
}

const PETS: [&str; 10] = [
    "tabby", "beagle", "parrot", "goldfish", "hamster", "iguana", "ferret", "rabbit", "canary",
    "gecko",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn class_names_are_sealed_by_default_and_open_only_with_the_key() {
    let key = MasterKey::from_bytes([1; 32]);
    let file = named(&key, &PETS, SealOptions::default());
    for name in PETS {
        assert!(!contains(&file, name.as_bytes()), "{name} in the clear");
    }
    let (header, _) = SealedDataset::read_header(&file).unwrap();
    assert!(header.schema.class_names.is_empty());
    assert!(header.has_class_names());
    let opened = SealedDataset::open(file.clone(), &key).unwrap();
    assert_eq!(opened.class_names(), PETS);
    opened.check_key().unwrap();
    // The enclave's path: the data key opens them too.
    let data_key = key.data_key(&header.dataset_id).unwrap();
    let granted = SealedDataset::open_with_data_key(file.clone(), &data_key).unwrap();
    assert_eq!(granted.class_names(), PETS);

    // Another dataset's data key is refused at open, before any chunk is read.
    let other = MasterKey::from_bytes([2; 32])
        .data_key(&header.dataset_id)
        .unwrap();
    assert!(matches!(
        SealedDataset::open_with_data_key(file.clone(), &other),
        Err(Error::ClassNamesAuthentication)
    ));
    // Any byte of the sealed names flipped: refused at open.
    let hl = header_len(&file);
    let sealed_len = header.sealed_class_names.as_ref().unwrap().len();
    let splits_len = 1 + (1 + 5 + 8) + (1 + 4 + 8);
    let names_start = hl - splits_len - sealed_len;
    for offset in [0, sealed_len / 2, sealed_len - 1] {
        let mut bad = file.clone();
        bad[names_start + offset] ^= 0x40;
        assert!(matches!(
            SealedDataset::open(bad, &key),
            Err(Error::ClassNamesAuthentication)
        ));
    }
}

#[test]
fn sealed_names_of_one_length_bucket_give_files_of_one_size() {
    let key = MasterKey::from_bytes([1; 32]);
    let short: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    let a = named(&key, &PETS, SealOptions::default());
    let b = named(&key, &short, SealOptions::default());
    assert_eq!(a.len(), b.len());
    // Public names are in the clear and their length shows.
    let public = SealOptions {
        public_class_names: true,
        ..SealOptions::default()
    };
    let c = named(&key, &PETS, public);
    assert!(contains(&c, b"goldfish"));
    let (header, _) = SealedDataset::read_header(&c).unwrap();
    assert_eq!(header.schema.class_names, PETS);
    assert!(header.sealed_class_names.is_none());
    assert_eq!(SealedDataset::open(c, &key).unwrap().class_names(), PETS);
}

#[test]
fn check_key_authenticates_the_first_chunk() {
    let key = MasterKey::from_bytes([1; 32]);
    let mut file = sealed(&key, 0);
    let hl = header_len(&file);
    SealedDataset::open(file.clone(), &key)
        .unwrap()
        .check_key()
        .unwrap();
    file[hl + 5] ^= 1;
    // Open checks sizes and names only; the damaged chunk shows at check_key.
    let opened = SealedDataset::open(file, &key).unwrap();
    assert!(matches!(
        opened.check_key(),
        Err(Error::ChunkAuthentication { chunk: 0, .. })
    ));
}
