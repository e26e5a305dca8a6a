//! The files the enclave process maps — its executable, the shared libraries — made resident
//! at start-up, so the code a trainer's calls run does not show in the process's memory.
//!
//! A page of a mapped file enters a process's resident set (`RssFile` in `/proc/<pid>/status`,
//! which any process of the host's user reads) the first time the process touches it. Engine
//! operations live in different pages of the executable, so a trainer could otherwise announce
//! a secret bit by calling an operation nothing else has called (a convolution iff the bit is
//! 1): the host would see that operation's code pages arrive. [`make_resident`] reads one byte
//! of every page of every readable file mapping through `/proc/self/mem`, which maps each page
//! into the process (as a fault on it would) before any trainer runs — with no unsafe code.
//!
//! What stays resident is up to the kernel: it may reclaim clean file pages under memory
//! pressure, which the host controls and a trainer cannot cause (its memory is bounded).

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::resources::ResourceError;

/// Stride of the one-byte reads: reading any byte of a page maps the whole page in (4 KiB, the
/// smallest page size of the machines the enclave runs on).
const PAGE: u64 = 4096;

/// What [`make_resident`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedFiles {
    /// Readable file-backed mappings found.
    pub mappings: usize,
    /// Pages of them now mapped in.
    pub pages: u64,
}

/// One readable file-backed mapping of `/proc/self/maps`: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
}

/// Maps in every page of every readable file mapping of this process (see the module docs).
///
/// Pages a read cannot reach (past the end of a file that shrank) are skipped: the process
/// could not touch them either. Fails only when `/proc/self/maps` or `/proc/self/mem` cannot
/// be read, and then the enclave must not start: its code pages would follow its trainers.
pub fn make_resident() -> Result<MappedFiles, ResourceError> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| ResourceError::new(format!("reading /proc/self/maps: {e}")))?;
    let mem = File::open("/proc/self/mem")
        .map_err(|e| ResourceError::new(format!("opening /proc/self/mem: {e}")))?;
    let mappings: Vec<Mapping> = maps.lines().filter_map(file_mapping).collect();
    let mut byte = [0u8; 1];
    let mut pages = 0;
    for m in &mappings {
        let mut at = m.start;
        while at < m.end {
            if matches!(mem.read_at(&mut byte, at), Ok(1)) {
                pages += 1;
            }
            at += PAGE;
        }
    }
    Ok(MappedFiles {
        mappings: mappings.len(),
        pages,
    })
}

/// The mapping a line of `/proc/self/maps` describes, if it is readable and backed by a file
/// that is still there (not anonymous memory, a `[special]` region, a device, or a memfd).
///
/// A line reads `start-end perms offset dev inode path`, the path padded with spaces.
fn file_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (range, perms) = (fields.next()?, fields.next()?);
    let inode = fields.nth(2)?;
    let path = fields.next()?.trim_start();
    let from_a_file = inode != "0"
        && path.starts_with('/')
        && !path.starts_with("/dev/")
        && !path.starts_with("/memfd:")
        && !path.ends_with(" (deleted)");
    if !perms.starts_with('r') || !from_a_file {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    (start < end).then_some(Mapping { start, end })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_only_readable_mappings_of_files() {
        let exe = "55d0c0a00000-55d0c0b2c000 r-xp 00200000 fd:01 1835123                    \
                   /work/target/debug/chiron-enclave";
        assert_eq!(
            file_mapping(exe),
            Some(Mapping {
                start: 0x55d0_c0a0_0000,
                end: 0x55d0_c0b2_c000
            })
        );
        let with_space = "7f00a0000000-7f00a0001000 r--p 00000000 fd:01 42 /opt/my lib/x.so";
        assert!(file_mapping(with_space).is_some());
        for line in [
            "7f00a0000000-7f00a0021000 rw-p 00000000 00:00 0 ",
            "7ffd1c3d2000-7ffd1c3f3000 rw-p 00000000 00:00 0                          [stack]",
            "7ffd1c3f7000-7ffd1c3f9000 r-xp 00000000 00:00 0                          [vdso]",
            "7f00a0000000-7f00a0001000 ---p 00000000 fd:01 42 /usr/lib/libc.so.6",
            "7f00a0000000-7f00a0001000 r--s 00000000 00:01 7 /memfd:wasm-image (deleted)",
            "7f00a0000000-7f00a0001000 r--p 00000000 fd:01 42 /tmp/gone (deleted)",
            "7f00a0000000-7f00a0001000 rw-s 00000000 00:05 9 /dev/zero",
            "not a line",
        ] {
            assert_eq!(file_mapping(line), None, "{line}");
        }
    }

    /// For a mapping's header line of `/proc/self/smaps`, whether the mapping is readable.
    fn header(line: &str) -> Option<bool> {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        u64::from_str_radix(start, 16).ok()?;
        u64::from_str_radix(end, 16).ok()?;
        Some(fields.next()?.starts_with('r'))
    }

    /// Resident pages (KiB) and size (KiB) of each mapping of `path`, from `/proc/self/smaps`.
    fn resident_of(path: &str) -> Vec<(u64, u64)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut out = Vec::new();
        let mut current: Option<(u64, u64)> = None;
        let mut mine = false;
        let kib = |l: &str, field: &str| -> Option<u64> {
            l.strip_prefix(field)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        for line in smaps.lines() {
            if let Some(size) = kib(line, "Size:") {
                current = Some((0, size));
            } else if let Some(rss) = kib(line, "Rss:") {
                if let (Some(c), true) = (current.as_mut(), mine) {
                    c.0 = rss;
                    out.push(*c);
                }
            } else if let Some(m) = header(line) {
                mine = m && line.ends_with(path);
            }
        }
        out
    }

    #[test]
    fn every_page_of_the_executable_is_resident_afterwards() {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        let done = make_resident().unwrap();
        assert!(done.mappings >= 3, "{done:?}"); // the executable's segments, libc's
        let mappings = resident_of(exe);
        assert!(!mappings.is_empty(), "no readable mapping of {exe}");
        let total: u64 = mappings.iter().map(|m| m.1).sum();
        assert!(done.pages * 4 >= total, "{done:?} < {total} KiB of {exe}");
        for (rss, size) in mappings {
            assert_eq!(
                rss, size,
                "a mapping of {exe}: {rss} of {size} KiB resident"
            );
        }
    }
}
