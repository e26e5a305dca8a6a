//! `chiron dataset seal | inspect | verify`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chiron_data::{Dataset, cifar, csv, idx, images, npy};
use chiron_seal::{
    DEFAULT_CHUNK_SIZE, FORMAT_VERSION, Header, MasterKey, SealOptions, SealedDataset,
};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::CliResult;
use crate::ui;
use crate::ui::outln;

/// Dataset subcommands.
#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Import data in a common format and seal it under the owner's key.
    Seal(Box<SealArgs>),
    /// Print a sealed dataset's public header (no key needed; with `--key`, also the sealed
    /// class names).
    Inspect {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The owner's key file: opens the class names sealed in the header.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The sealed dataset.
        file: PathBuf,
    },
    /// Decrypt and authenticate every chunk and check every record; exit 0 only if all is well.
    Verify {
        /// The owner's key file.
        #[arg(long)]
        key: PathBuf,
        /// The sealed dataset.
        file: PathBuf,
    },
}

/// Source formats `dataset seal` imports.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// MNIST / Fashion-MNIST IDX files (plain or .gz), or the folder holding them.
    Idx,
    /// CIFAR-10 or CIFAR-100 binary batches, or the folder holding them.
    Cifar,
    /// CSV with a header (or --no-header), optionally gzip-compressed.
    Csv,
    /// NumPy .npy pairs: FEATURES LABELS [TEST_FEATURES TEST_LABELS].
    Npy,
    /// Folders of images (PNG, JPEG, BMP, GIF, WebP, TIFF, ...), one sub-folder per class.
    Images,
}

#[derive(Clone, Copy, ValueEnum)]
enum CifarVariantArg {
    #[value(name = "10")]
    Ten,
    #[value(name = "100")]
    Hundred,
}

/// `--missing`: what an empty CSV cell becomes (`dataset seal` and `predict`).
#[derive(Clone, Copy, ValueEnum)]
enum MissingArg {
    /// A missing cell is an error.
    Error,
    /// A missing cell becomes 0.
    Zero,
    /// A missing cell becomes its column's mean.
    Mean,
}

/// Arguments of `chiron dataset seal`.
#[derive(Args)]
pub struct SealArgs {
    /// Source format.
    #[arg(long, value_enum)]
    format: Format,
    /// The owner's key file (from `chiron keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Output file; never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Input files or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Move this fraction of a single-split source into a `test` split.
    #[arg(long, requires = "seed")]
    test_fraction: Option<f64>,
    /// Seed of the deterministic train/test split.
    #[arg(long)]
    seed: Option<u64>,
    /// Reshape every record, e.g. `1,8,8` (same number of elements).
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<u32>>,
    /// Declare the number of classes (default: largest label + 1, or the source's class names).
    #[arg(long)]
    classes: Option<u32>,
    /// Name the classes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    class_names: Option<Vec<String>>,
    /// Leave class names out entirely (predictions then show class numbers).
    #[arg(long, conflicts_with = "public_class_names")]
    drop_class_names: bool,
    /// Write class names into the header in the clear, where the operator and its host can read
    /// them. By default they are sealed: only the owner's key opens them.
    #[arg(long)]
    public_class_names: bool,
    /// Plaintext bytes per chunk.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,

    /// CSV: name of the label column (with --no-header, its 0-based index).
    #[arg(long, required_if_eq("format", "csv"))]
    label_column: Option<String>,
    #[command(flatten)]
    csv: CsvArgs,

    /// CIFAR: 10 or 100 (default: from file names or sizes).
    #[arg(long, value_enum)]
    cifar_variant: Option<CifarVariantArg>,
    /// CIFAR-100: use the coarse (20-class) label instead of the fine one.
    #[arg(long)]
    cifar_coarse: bool,

    /// Images: declared shape C,H,W (default: the first image's).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    image_shape: Option<Vec<u32>>,
    /// Images: skip files in class folders that are not images of a readable format (and say
    /// how many) instead of refusing them.
    #[arg(long)]
    skip_unknown: bool,
}

/// The CSV reading flags `dataset seal` and `predict` share, so a file reads the same way in
/// both.
#[derive(Args)]
pub(crate) struct CsvArgs {
    /// CSV: the first line is data, columns are named 0, 1, 2, ...
    #[arg(long)]
    no_header: bool,
    /// CSV: field delimiter.
    #[arg(long, default_value_t = ',')]
    delimiter: char,
    /// CSV: what to do with empty cells.
    #[arg(long, value_enum, default_value_t = MissingArg::Error)]
    missing: MissingArg,
    /// CSV: map a non-numeric cell text to a number, e.g. `yes=1` (repeatable; predictions use
    /// the mapping the dataset was sealed with).
    #[arg(long, value_parser = parse_mapping)]
    map_value: Vec<(String, f32)>,
}

impl CsvArgs {
    /// The importer's options, with `label_column` (a header name, or with `--no-header` a
    /// 0-based index) read as the label or left out.
    pub(crate) fn options(&self, label_column: Option<&str>) -> CliResult<csv::CsvOptions> {
        Ok(csv::CsvOptions {
            label_column: label_column.unwrap_or_default().to_string(),
            has_header: !self.no_header,
            delimiter: u8::try_from(self.delimiter)
                .map_err(|_| "--delimiter must be a single ASCII character")?,
            missing: self.missing.policy(),
            value_map: self.map_value.clone(),
        })
    }
}

impl MissingArg {
    /// The importer's policy for this flag value.
    fn policy(self) -> csv::MissingPolicy {
        match self {
            MissingArg::Error => csv::MissingPolicy::Error,
            MissingArg::Zero => csv::MissingPolicy::Zero,
            MissingArg::Mean => csv::MissingPolicy::Mean,
        }
    }
}

/// Parses a `--map-value TEXT=NUMBER` argument.
fn parse_mapping(s: &str) -> Result<(String, f32), String> {
    let (text, value) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected TEXT=NUMBER, got {s:?}"))?;
    let value: f32 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if !value.is_finite() {
        return Err("the mapped number must be finite".into());
    }
    Ok((text.to_string(), value))
}

/// Runs a dataset subcommand.
pub fn run(command: DatasetCommand) -> CliResult {
    match command {
        DatasetCommand::Seal(args) => seal(&args),
        DatasetCommand::Inspect { json, key, file } => inspect(&file, key.as_deref(), json),
        DatasetCommand::Verify { key, file } => verify(&key, &file),
    }
}

fn seal(args: &SealArgs) -> CliResult {
    // Read the key first: a bad key path should fail before minutes of importing.
    let key = super::keygen::read_key(&args.key)?;
    // Installed before any output file exists, so Ctrl-C or SIGTERM never leaves the hidden
    // temporary file of `seal_to_path` behind (`dataset seal` has no other use for them).
    ui::remove_partial_files_on_signal()
        .map_err(|e| format!("cannot watch for interrupt signals: {e}"))?;
    if args.out.exists() {
        return Err(format!(
            "{} already exists; refusing to overwrite it",
            args.out.display()
        )
        .into());
    }
    let spinner = ui::spinner("importing");
    let imported = import(args);
    spinner.finish_and_clear();
    let (mut dataset, skipped) = imported?;
    if skipped > 0 {
        eprintln!(
            "chiron: skipped {skipped} entr{} of class folders that are not images \
             (--skip-unknown)",
            if skipped == 1 { "y" } else { "ies" }
        );
    }
    if let Some(shape) = &args.shape {
        dataset.reshape(shape.clone())?;
    }
    if let Some(classes) = args.classes {
        dataset.set_classes(classes)?;
    }
    if let Some(names) = &args.class_names {
        dataset.set_class_names(names.clone())?;
    }
    if args.drop_class_names {
        dataset.class_names.clear();
    }
    if let Some(fraction) = args.test_fraction {
        dataset = dataset.split_by_fraction(fraction, args.seed.unwrap_or_default())?;
    }
    let options = SealOptions {
        chunk_size: args.chunk_size,
        public_class_names: args.public_class_names,
    };
    let header = seal_to_path(&dataset, &key, options, &args.out)?;
    outln!(
        "sealed {} records ({}) into {} under key id {}; {}",
        header.schema.total_records(),
        split_summary(&header),
        args.out.display(),
        header.key_id,
        names_summary(&header)
    );
    Ok(())
}

/// The imported dataset and how many entries `--skip-unknown` skipped.
fn import(args: &SealArgs) -> CliResult<(Dataset, usize)> {
    let inputs = &args.inputs;
    let dataset = match args.format {
        Format::Idx => idx::import_with(
            inputs,
            &idx::IdxOptions {
                classes: args.classes,
            },
        )?,
        Format::Cifar => {
            let variant = args.cifar_variant.map(|v| match v {
                CifarVariantArg::Ten => cifar::Variant::Cifar10,
                CifarVariantArg::Hundred => cifar::Variant::Cifar100,
            });
            let label = if args.cifar_coarse {
                cifar::Cifar100Label::Coarse
            } else {
                cifar::Cifar100Label::Fine
            };
            cifar::import(inputs, variant, label)?
        }
        Format::Csv => csv::import(inputs, &args.csv.options(args.label_column.as_deref())?)?,
        Format::Npy => npy::import(inputs)?,
        Format::Images => {
            let shape = match args.image_shape.as_deref() {
                None => None,
                Some(&[c, h, w]) => Some([c, h, w]),
                Some(_) => return Err("--image-shape takes three numbers: C,H,W".into()),
            };
            let opts = images::ImageOptions {
                shape,
                skip_unknown: args.skip_unknown,
            };
            return Ok(images::import_counting(inputs, &opts)?);
        }
    };
    Ok((dataset, 0))
}

/// Seals `dataset` into a temporary file beside `out` and renames it into place only when
/// complete, so a failure never leaves a partial dataset behind or replaces an existing file.
pub fn seal_to_path(
    dataset: &Dataset,
    key: &MasterKey,
    options: SealOptions,
    out: &Path,
) -> CliResult<Header> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".chiron-seal-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    // Deleted on SIGINT/SIGTERM where the command watches for them; unregistered on return.
    let _partial = ui::remove_on_signal(tmp.path());
    let total: u64 = dataset.splits.iter().map(|s| s.labels.len() as u64).sum();
    let bar = ui::bar(total, "sealing", "records");
    let (writer, header) = dataset.seal(
        BufWriter::with_capacity(1 << 20, tmp.as_file()),
        key,
        options,
        |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    writer
        .into_inner()
        .map_err(|e| format!("writing {}: {}", out.display(), e.error()))?
        .sync_all()?;
    tmp.persist_noclobber(out)
        .map_err(|e| format!("cannot create {}: {}", out.display(), e.error))?;
    Ok(header)
}

/// How the header holds class names, for the owner: `class names sealed (only the owner's key
/// opens them)`, `class names public`, or `no class names`.
fn names_summary(header: &Header) -> &'static str {
    if header.sealed_class_names.is_some() {
        "class names sealed (only the owner's key opens them)"
    } else if header.schema.class_names.is_empty() {
        "no class names"
    } else {
        "class names public (readable by anyone holding the file)"
    }
}

/// The class names of the sealed dataset at `file` for the holder of `key`: public ones as they
/// are, sealed ones opened (a wrong key or an edited header is refused, naming which).
pub fn open_class_names(file: &Path, key: &MasterKey) -> CliResult<Vec<String>> {
    let dataset = SealedDataset::open_path(file, key)
        .map_err(|e| format!("cannot open the class names of {}: {e}", file.display()))?;
    Ok(dataset.class_names().to_vec())
}

fn inspect(file: &Path, key: Option<&Path>, json: bool) -> CliResult {
    let source = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let (header, encoded) = SealedDataset::read_header(&source)?;
    let file_bytes = source.metadata()?.len();
    let opened_names = match key {
        Some(key) => Some(open_class_names(file, &super::keygen::read_key(key)?)?),
        None => None,
    };
    if json {
        let mut value = header_json(&header, encoded.len() as u64, file_bytes);
        if let Some(names) = opened_names {
            value["class_names"] = json!(names);
        }
        outln!("{value}");
        return Ok(());
    }
    let s = &header.schema;
    outln!("Chiron sealed dataset, format version {FORMAT_VERSION}");
    outln!("  dataset id  {}", chiron_codec::hex(&header.dataset_id));
    outln!("  key id      {}", header.key_id);
    outln!(
        "  records     {} of dtype {}, shape {:?}",
        s.total_records(),
        s.dtype.name(),
        s.shape
    );
    outln!("  classes     {}", s.classes);
    match (&opened_names, &header.sealed_class_names) {
        (Some(names), _) if !names.is_empty() => outln!("  class names {}", names.join(", ")),
        (_, Some(sealed)) => outln!(
            "  class names sealed ({} bytes; --key with the owner's key opens them)",
            sealed.len()
        ),
        _ if !s.class_names.is_empty() => {
            outln!("  class names {} (public)", s.class_names.join(", "));
        }
        _ => outln!("  class names none (classes are numbered)"),
    }
    outln!("  splits      {}", split_summary(&header));
    outln!(
        "  chunks      {} of {} plaintext bytes (+16-byte tag); file {} bytes",
        header.chunk_count(),
        header.chunk_size,
        file_bytes
    );
    Ok(())
}

/// The public header as JSON: what `inspect --json` prints and what the operator may know.
pub fn header_json(header: &Header, header_bytes: u64, file_bytes: u64) -> serde_json::Value {
    let s = &header.schema;
    let splits: serde_json::Map<String, serde_json::Value> = s
        .splits
        .iter()
        .map(|sp| (sp.name.clone(), json!({ "records": sp.records })))
        .collect();
    json!({
        "format_version": FORMAT_VERSION,
        "dataset_id": chiron_codec::hex(&header.dataset_id),
        "key_id": header.key_id.to_string(),
        "dtype": s.dtype.name(),
        "shape": s.shape,
        "classes": s.classes,
        "class_names": s.class_names,
        "sealed_class_names_bytes": header.sealed_class_names.as_ref().map(|n| n.len()),
        "splits": splits,
        "records": s.total_records(),
        "chunk_size": header.chunk_size,
        "chunks": header.chunk_count(),
        "header_bytes": header_bytes,
        "file_bytes": file_bytes,
    })
}

fn verify(key: &Path, file: &Path) -> CliResult {
    let key = super::keygen::read_key(key)?;
    let dataset =
        SealedDataset::open_path(file, &key).map_err(|e| format!("verification failed: {e}"))?;
    let bar = ui::bar(dataset.chunk_count(), "verifying", "chunks");
    let report = dataset.verify(|n| bar.set_position(n));
    bar.finish_and_clear();
    let report = report.map_err(|e| format!("verification failed: {e}"))?;
    outln!(
        "ok: {} chunks authenticated, {} records well formed ({})",
        report.chunks,
        report.records,
        split_summary(dataset.header())
    );
    Ok(())
}

/// `train 60000, test 10000`.
pub fn split_summary(header: &Header) -> String {
    header
        .schema
        .splits
        .iter()
        .map(|s| format!("{} {}", s.name, s.records))
        .collect::<Vec<_>>()
        .join(", ")
}
