//! `wasi:sockets`: one network handle with which nothing can be done. Creating a socket and
//! resolving a name fail with `access-denied`, so no socket ever exists; socket methods are
//! unreachable (wasmtime checks handles) and trap if not.

use wasmtime::component::Resource;

use super::never_created;
use super::resources::{
    IncomingDatagramStream, InputStream, IoError, Network, OutgoingDatagramStream, OutputStream,
    Pollable, ResolveAddressStream, TcpSocket, UdpSocket,
};
use super::wasi::sockets::{
    instance_network, ip_name_lookup, network, tcp, tcp_create_socket, udp, udp_create_socket,
};
use crate::host::HostState;

use network::{ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress};

/// Result type of a socket call.
type NetResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

const TCP: &str = "TCP socket";
const UDP: &str = "UDP socket";

impl network::Host for HostState {
    fn network_error_code(
        &mut self,
        _err: Resource<IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl network::HostNetwork for HostState {
    fn drop(&mut self, _network: Resource<Network>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl instance_network::Host for HostState {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        Ok(Resource::new_own(0))
    }
}

impl ip_name_lookup::Host for HostState {
    fn resolve_addresses(
        &mut self,
        _network: Resource<Network>,
        _name: String,
    ) -> NetResult<Resource<ResolveAddressStream>> {
        Ok(Err(ErrorCode::AccessDenied))
    }
}

impl ip_name_lookup::HostResolveAddressStream for HostState {
    fn resolve_next_address(
        &mut self,
        _stream: Resource<ResolveAddressStream>,
    ) -> NetResult<Option<IpAddress>> {
        never_created("name lookup")
    }

    fn subscribe(
        &mut self,
        _stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        never_created("name lookup")
    }

    fn drop(&mut self, _stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        never_created("name lookup")
    }
}

impl tcp_create_socket::Host for HostState {
    fn create_tcp_socket(&mut self, _family: IpAddressFamily) -> NetResult<Resource<TcpSocket>> {
        Ok(Err(ErrorCode::AccessDenied))
    }
}

impl udp_create_socket::Host for HostState {
    fn create_udp_socket(&mut self, _family: IpAddressFamily) -> NetResult<Resource<UdpSocket>> {
        Ok(Err(ErrorCode::AccessDenied))
    }
}

impl tcp::Host for HostState {}

impl tcp::HostTcpSocket for HostState {
    fn start_bind(
        &mut self,
        _socket: Resource<TcpSocket>,
        _network: Resource<Network>,
        _local: IpSocketAddress,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn finish_bind(&mut self, _socket: Resource<TcpSocket>) -> NetResult<()> {
        never_created(TCP)
    }

    fn start_connect(
        &mut self,
        _socket: Resource<TcpSocket>,
        _network: Resource<Network>,
        _remote: IpSocketAddress,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn finish_connect(
        &mut self,
        _socket: Resource<TcpSocket>,
    ) -> NetResult<(Resource<InputStream>, Resource<OutputStream>)> {
        never_created(TCP)
    }

    fn start_listen(&mut self, _socket: Resource<TcpSocket>) -> NetResult<()> {
        never_created(TCP)
    }

    fn finish_listen(&mut self, _socket: Resource<TcpSocket>) -> NetResult<()> {
        never_created(TCP)
    }

    fn accept(
        &mut self,
        _socket: Resource<TcpSocket>,
    ) -> NetResult<(
        Resource<TcpSocket>,
        Resource<InputStream>,
        Resource<OutputStream>,
    )> {
        never_created(TCP)
    }

    fn local_address(&mut self, _socket: Resource<TcpSocket>) -> NetResult<IpSocketAddress> {
        never_created(TCP)
    }

    fn remote_address(&mut self, _socket: Resource<TcpSocket>) -> NetResult<IpSocketAddress> {
        never_created(TCP)
    }

    fn is_listening(&mut self, _socket: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        never_created(TCP)
    }

    fn address_family(
        &mut self,
        _socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        never_created(TCP)
    }

    fn set_listen_backlog_size(
        &mut self,
        _socket: Resource<TcpSocket>,
        _value: u64,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn keep_alive_enabled(&mut self, _socket: Resource<TcpSocket>) -> NetResult<bool> {
        never_created(TCP)
    }

    fn set_keep_alive_enabled(
        &mut self,
        _socket: Resource<TcpSocket>,
        _value: bool,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn keep_alive_idle_time(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u64> {
        never_created(TCP)
    }

    fn set_keep_alive_idle_time(
        &mut self,
        _socket: Resource<TcpSocket>,
        _value: u64,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn keep_alive_interval(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u64> {
        never_created(TCP)
    }

    fn set_keep_alive_interval(
        &mut self,
        _socket: Resource<TcpSocket>,
        _value: u64,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn keep_alive_count(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u32> {
        never_created(TCP)
    }

    fn set_keep_alive_count(&mut self, _socket: Resource<TcpSocket>, _value: u32) -> NetResult<()> {
        never_created(TCP)
    }

    fn hop_limit(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u8> {
        never_created(TCP)
    }

    fn set_hop_limit(&mut self, _socket: Resource<TcpSocket>, _value: u8) -> NetResult<()> {
        never_created(TCP)
    }

    fn receive_buffer_size(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u64> {
        never_created(TCP)
    }

    fn set_receive_buffer_size(
        &mut self,
        _socket: Resource<TcpSocket>,
        _value: u64,
    ) -> NetResult<()> {
        never_created(TCP)
    }

    fn send_buffer_size(&mut self, _socket: Resource<TcpSocket>) -> NetResult<u64> {
        never_created(TCP)
    }

    fn set_send_buffer_size(&mut self, _socket: Resource<TcpSocket>, _value: u64) -> NetResult<()> {
        never_created(TCP)
    }

    fn subscribe(&mut self, _socket: Resource<TcpSocket>) -> wasmtime::Result<Resource<Pollable>> {
        never_created(TCP)
    }

    fn shutdown(&mut self, _socket: Resource<TcpSocket>, _how: tcp::ShutdownType) -> NetResult<()> {
        never_created(TCP)
    }

    fn drop(&mut self, _socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        never_created(TCP)
    }
}

impl udp::Host for HostState {}

impl udp::HostUdpSocket for HostState {
    fn start_bind(
        &mut self,
        _socket: Resource<UdpSocket>,
        _network: Resource<Network>,
        _local: IpSocketAddress,
    ) -> NetResult<()> {
        never_created(UDP)
    }

    fn finish_bind(&mut self, _socket: Resource<UdpSocket>) -> NetResult<()> {
        never_created(UDP)
    }

    fn stream(
        &mut self,
        _socket: Resource<UdpSocket>,
        _remote: Option<IpSocketAddress>,
    ) -> NetResult<(
        Resource<IncomingDatagramStream>,
        Resource<OutgoingDatagramStream>,
    )> {
        never_created(UDP)
    }

    fn local_address(&mut self, _socket: Resource<UdpSocket>) -> NetResult<IpSocketAddress> {
        never_created(UDP)
    }

    fn remote_address(&mut self, _socket: Resource<UdpSocket>) -> NetResult<IpSocketAddress> {
        never_created(UDP)
    }

    fn address_family(
        &mut self,
        _socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        never_created(UDP)
    }

    fn unicast_hop_limit(&mut self, _socket: Resource<UdpSocket>) -> NetResult<u8> {
        never_created(UDP)
    }

    fn set_unicast_hop_limit(&mut self, _socket: Resource<UdpSocket>, _value: u8) -> NetResult<()> {
        never_created(UDP)
    }

    fn receive_buffer_size(&mut self, _socket: Resource<UdpSocket>) -> NetResult<u64> {
        never_created(UDP)
    }

    fn set_receive_buffer_size(
        &mut self,
        _socket: Resource<UdpSocket>,
        _value: u64,
    ) -> NetResult<()> {
        never_created(UDP)
    }

    fn send_buffer_size(&mut self, _socket: Resource<UdpSocket>) -> NetResult<u64> {
        never_created(UDP)
    }

    fn set_send_buffer_size(&mut self, _socket: Resource<UdpSocket>, _value: u64) -> NetResult<()> {
        never_created(UDP)
    }

    fn subscribe(&mut self, _socket: Resource<UdpSocket>) -> wasmtime::Result<Resource<Pollable>> {
        never_created(UDP)
    }

    fn drop(&mut self, _socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        never_created(UDP)
    }
}

impl udp::HostIncomingDatagramStream for HostState {
    fn receive(
        &mut self,
        _stream: Resource<IncomingDatagramStream>,
        _max_results: u64,
    ) -> NetResult<Vec<udp::IncomingDatagram>> {
        never_created(UDP)
    }

    fn subscribe(
        &mut self,
        _stream: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        never_created(UDP)
    }

    fn drop(&mut self, _stream: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        never_created(UDP)
    }
}

impl udp::HostOutgoingDatagramStream for HostState {
    fn check_send(&mut self, _stream: Resource<OutgoingDatagramStream>) -> NetResult<u64> {
        never_created(UDP)
    }

    fn send(
        &mut self,
        _stream: Resource<OutgoingDatagramStream>,
        _datagrams: Vec<udp::OutgoingDatagram>,
    ) -> NetResult<u64> {
        never_created(UDP)
    }

    fn subscribe(
        &mut self,
        _stream: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        never_created(UDP)
    }

    fn drop(&mut self, _stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        never_created(UDP)
    }
}
