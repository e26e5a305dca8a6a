//! `wasi:filesystem`: no preopened directory, so no descriptor ever exists and no path can be
//! opened. Every descriptor method is unreachable (wasmtime checks handles) and traps if not.

use wasmtime::component::Resource;

use super::never_created;
use super::resources::{Descriptor, DirectoryEntryStream, InputStream, IoError, OutputStream};
use super::wasi::filesystem::{preopens, types};
use crate::host::HostState;

use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};

/// Result type of a descriptor method.
type FsResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

const WHAT: &str = "file descriptor";

impl preopens::Host for HostState {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        Ok(Vec::new())
    }
}

impl types::Host for HostState {
    fn filesystem_error_code(
        &mut self,
        _err: Resource<IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl types::HostDirectoryEntryStream for HostState {
    fn read_directory_entry(
        &mut self,
        _stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        never_created("directory listing")
    }

    fn drop(&mut self, _stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        never_created("directory listing")
    }
}

impl types::HostDescriptor for HostState {
    fn read_via_stream(
        &mut self,
        _fd: Resource<Descriptor>,
        _offset: u64,
    ) -> FsResult<Resource<InputStream>> {
        never_created(WHAT)
    }

    fn write_via_stream(
        &mut self,
        _fd: Resource<Descriptor>,
        _offset: u64,
    ) -> FsResult<Resource<OutputStream>> {
        never_created(WHAT)
    }

    fn append_via_stream(&mut self, _fd: Resource<Descriptor>) -> FsResult<Resource<OutputStream>> {
        never_created(WHAT)
    }

    fn advise(
        &mut self,
        _fd: Resource<Descriptor>,
        _offset: u64,
        _length: u64,
        _advice: Advice,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn sync_data(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        never_created(WHAT)
    }

    fn get_flags(&mut self, _fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        never_created(WHAT)
    }

    fn get_type(&mut self, _fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        never_created(WHAT)
    }

    fn set_size(&mut self, _fd: Resource<Descriptor>, _size: u64) -> FsResult<()> {
        never_created(WHAT)
    }

    fn set_times(
        &mut self,
        _fd: Resource<Descriptor>,
        _atime: NewTimestamp,
        _mtime: NewTimestamp,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn read(
        &mut self,
        _fd: Resource<Descriptor>,
        _length: u64,
        _offset: u64,
    ) -> FsResult<(Vec<u8>, bool)> {
        never_created(WHAT)
    }

    fn write(
        &mut self,
        _fd: Resource<Descriptor>,
        _buffer: Vec<u8>,
        _offset: u64,
    ) -> FsResult<u64> {
        never_created(WHAT)
    }

    fn read_directory(
        &mut self,
        _fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        never_created(WHAT)
    }

    fn sync(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        never_created(WHAT)
    }

    fn create_directory_at(&mut self, _fd: Resource<Descriptor>, _path: String) -> FsResult<()> {
        never_created(WHAT)
    }

    fn stat(&mut self, _fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        never_created(WHAT)
    }

    fn stat_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
    ) -> FsResult<DescriptorStat> {
        never_created(WHAT)
    }

    fn set_times_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
        _atime: NewTimestamp,
        _mtime: NewTimestamp,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn link_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _old_path_flags: PathFlags,
        _old_path: String,
        _new_descriptor: Resource<Descriptor>,
        _new_path: String,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn open_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
        _open_flags: OpenFlags,
        _flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        never_created(WHAT)
    }

    fn readlink_at(&mut self, _fd: Resource<Descriptor>, _path: String) -> FsResult<String> {
        never_created(WHAT)
    }

    fn remove_directory_at(&mut self, _fd: Resource<Descriptor>, _path: String) -> FsResult<()> {
        never_created(WHAT)
    }

    fn rename_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _old_path: String,
        _new_descriptor: Resource<Descriptor>,
        _new_path: String,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn symlink_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _old_path: String,
        _new_path: String,
    ) -> FsResult<()> {
        never_created(WHAT)
    }

    fn unlink_file_at(&mut self, _fd: Resource<Descriptor>, _path: String) -> FsResult<()> {
        never_created(WHAT)
    }

    fn is_same_object(
        &mut self,
        _fd: Resource<Descriptor>,
        _other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        never_created(WHAT)
    }

    fn metadata_hash(&mut self, _fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        never_created(WHAT)
    }

    fn metadata_hash_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
    ) -> FsResult<MetadataHashValue> {
        never_created(WHAT)
    }

    fn drop(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        never_created(WHAT)
    }
}
