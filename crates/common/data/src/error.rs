//! Import errors. Each names the file and, where it makes sense, the line, column or record;
//! none contains a cell value or any other piece of the data.

use std::path::{Path, PathBuf};

/// Everything that can go wrong importing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid in its format; the message says where and why.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The inputs or options do not make a valid dataset.
    #[error("{0}")]
    Invalid(String),
    /// The sealed container refused the dataset.
    #[error(transparent)]
    Seal(#[from] chiron_seal::Error),
}

impl Error {
    /// A format error in `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
