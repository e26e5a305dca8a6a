//! `chiron predict`: the owner's black-box queries. Inputs are images (PNG, JPEG, ...: one
//! record each, channels first), CSV files (one record per row) or NumPy `.npy` arrays
//! (`[N, ...]`: N records). CSV follows `dataset seal`'s conventions and flags: a header row
//! unless `--no-header`, `--delimiter`, `--missing`, `--map-value`, and `--label-column` names a
//! column to leave out (a file exported with its labels). The enclave checks the records
//! against the job's record shape; the answer is shaped by the job's output policy.

use std::path::{Path, PathBuf};

use chiron_connect::Settings;
use chiron_seal::Dtype;
use clap::Args;

use super::CliResult;
use super::dataset::CsvArgs;
use super::service::{block_on, predict, print_predictions, token};

/// Arguments of `chiron predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// Connection settings (TOML; see docs/config/client.toml).
    #[arg(long)]
    connect: PathBuf,
    /// The job id.
    #[arg(long)]
    job: String,
    /// The owner's token file.
    #[arg(long)]
    token_file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Inputs per request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Input files: images, .csv or .npy.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The sealed dataset the job trained on: predictions show its class names (the JSON output
    /// carries names and numbers). Sealed names need `--key`.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// The owner's key file, to open the class names sealed in `--dataset`.
    #[arg(long, requires = "dataset")]
    key: Option<PathBuf>,

    /// CSV: a column to leave out, e.g. the label (its header name; with --no-header, its
    /// 0-based index).
    #[arg(long)]
    label_column: Option<String>,
    #[command(flatten)]
    csv: CsvArgs,
}

impl PredictArgs {
    /// How CSV inputs are read.
    fn csv_options(&self) -> CliResult<chiron_data::csv::CsvOptions> {
        self.csv.options(self.label_column.as_deref())
    }
}

/// Runs `chiron predict`.
pub fn run(args: &PredictArgs) -> CliResult {
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut per_record: Option<usize> = None;
    let csv_options = args.csv_options()?;
    for path in &args.inputs {
        let (records, v) = read_input(path, &csv_options)?;
        let per = v.len() / records.max(1);
        match per_record {
            None => per_record = Some(per),
            Some(p) if p != per => {
                return Err(format!(
                    "{}: records of {per} values, but earlier inputs have {p}",
                    path.display()
                )
                .into());
            }
            Some(_) => {}
        }
        if records == 1 {
            names.push(path.display().to_string());
        } else {
            names.extend((0..records).map(|i| format!("{}[{i}]", path.display())));
        }
        values.extend(v);
    }
    // Before any query: a wrong key or dataset fails without spending the query budget.
    let class_names = class_names(args.dataset.as_deref(), args.key.as_deref())?;
    let settings = Settings::load(&args.connect)?;
    let token = token(&args.token_file)?;
    let predictions = block_on(predict(
        &settings,
        &args.job,
        &token,
        &values,
        names.len(),
        args.batch,
    ))??;
    print_predictions(&names, &predictions, &class_names, args.json);
    Ok(())
}

/// The class names of `dataset`: public ones need no key, sealed ones the owner's `key`.
fn class_names(dataset: Option<&Path>, key: Option<&Path>) -> CliResult<Vec<String>> {
    let Some(dataset) = dataset else {
        return Ok(Vec::new());
    };
    if let Some(key) = key {
        return super::dataset::open_class_names(dataset, &super::keygen::read_key(key)?);
    }
    let source = std::fs::File::open(dataset)
        .map_err(|e| format!("cannot open {}: {e}", dataset.display()))?;
    let (header, _) = chiron_seal::SealedDataset::read_header(&source)?;
    if header.sealed_class_names.is_some() {
        return Err(format!(
            "{}: the class names are sealed; add --key with the owner's key file",
            dataset.display()
        )
        .into());
    }
    Ok(header.schema.class_names)
}

/// Records and their values (as f32) from one input file.
fn read_input(
    path: &Path,
    csv_options: &chiron_data::csv::CsvOptions,
) -> CliResult<(usize, Vec<f32>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => {
            let (dtype, dims, bytes) = chiron_data::npy::read_features(path)?;
            let n = dims.first().copied().unwrap_or(0) as usize;
            Ok((n, to_f32(dtype, &bytes)))
        }
        // `.csv.gz` too: the importer reads gzip by content, as `dataset seal` does.
        "csv" | "gz" if is_csv(path) => Ok(chiron_data::csv::read_features(path, csv_options)?),
        _ => {
            let bytes = chiron_data::images::load(path, &mut None)?;
            Ok((1, bytes.iter().map(|&b| f32::from(b)).collect()))
        }
    }
}

/// Whether `path` names a CSV file, plain (`.csv`) or gzip-compressed (`.csv.gz`).
fn is_csv(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PredictArgs,
    }

    /// `chiron predict` arguments (connection flags filled in) followed by `extra`.
    fn args(extra: &[&str]) -> PredictArgs {
        let base = [
            "predict",
            "--connect",
            "c.toml",
            "--job",
            "j",
            "--token-file",
            "t",
        ];
        Cli::try_parse_from(base.iter().chain(extra)).unwrap().args
    }

    fn read(args: &PredictArgs, path: &Path) -> CliResult<(usize, Vec<f32>)> {
        read_input(path, &args.csv_options()?)
    }

    #[test]
    fn csv_with_a_header_and_a_label_column_reads_like_seal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "a,label,b\n1,7,2\n3,8,4.5\n").unwrap();
        let p = path.to_str().unwrap();

        // The header is not a record; the label column is left out.
        let a = args(&["--label-column", "label", p]);
        assert_eq!(read(&a, &path).unwrap(), (2, vec![1.0, 2.0, 3.0, 4.5]));
        // Without --label-column every column is a feature.
        assert_eq!(
            read(&args(&[p]), &path).unwrap(),
            (2, vec![1.0, 7.0, 2.0, 3.0, 8.0, 4.5])
        );
        // A label column that is not in the header is named, with the columns there are.
        let e = read(&args(&["--label-column", "class", p]), &path).unwrap_err();
        assert!(e.to_string().contains("no label column \"class\""), "{e}");
    }

    #[test]
    fn csv_without_a_header_needs_no_header_and_takes_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "1,2,0\n3,4,1\n").unwrap();
        let p = path.to_str().unwrap();

        // A first line of numbers is a record: refused, never silently taken as a header.
        let e = read(&args(&[p]), &path).unwrap_err().to_string();
        assert!(e.contains("rows.csv") && e.contains("--no-header"), "{e}");
        assert_eq!(
            read(&args(&["--no-header", p]), &path).unwrap(),
            (2, vec![1.0, 2.0, 0.0, 3.0, 4.0, 1.0])
        );
        assert_eq!(
            read(&args(&["--no-header", "--label-column", "2", p]), &path).unwrap(),
            (2, vec![1.0, 2.0, 3.0, 4.0])
        );
    }

    #[test]
    fn csv_cells_follow_the_seal_flags_and_errors_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "smoker,age\nyes,\nno,40\n").unwrap();
        let p = path.to_str().unwrap();

        let e = read(&args(&[p]), &path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("--map-value"), "{e}");
        assert!(!e.contains("yes"), "cell value leaked: {e}");
        let a = args(&[
            "--map-value",
            "yes=1",
            "--map-value",
            "no=0",
            "--missing",
            "zero",
            p,
        ]);
        assert_eq!(read(&a, &path).unwrap(), (2, vec![1.0, 0.0, 0.0, 40.0]));
    }
}
