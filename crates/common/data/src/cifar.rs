//! Importer being written.
