//! Rust mirrors of `bpf/include/structs.h`.
//!
//! Each struct is `#[repr(C)]` with the same fields, in the same order, with
//! no implicit padding; the `const` assertions below fail the build if a size
//! drifts from the C side. Multi-byte address and port fields hold network
//! byte order, exactly as the kernel map stores them.

use std::net::IpAddr;

/// `XVS_AF_INET`
pub const AF_INET: u8 = 2;
/// `XVS_AF_INET6`
pub const AF_INET6: u8 = 10;

/// Name of the services hash map in the object (`maps.h`).
pub const SERVICES_MAP: &str = "xvs_services";
/// Name of the per-CPU counter array in the object (`maps.h`).
pub const COUNTERS_MAP: &str = "xvs_counters";

/// Transport protocol of a service, with its IP protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    /// `IPPROTO_TCP` (ipvsadm `-t`).
    Tcp = 6,
    /// `IPPROTO_UDP` (ipvsadm `-u`).
    Udp = 17,
}

/// `struct svc_key`: a virtual service (family, protocol, VIP, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SvcKey {
    /// VIP in network byte order; IPv4 uses `addr[0]` only.
    pub addr: [u32; 4],
    /// Port in network byte order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u8,
}

impl SvcKey {
    /// The key for `proto vip:port`.
    pub fn new(proto: Proto, vip: IpAddr, port: u16) -> Self {
        let (addr, family) = match vip {
            IpAddr::V4(a) => ([u32::from_ne_bytes(a.octets()), 0, 0, 0], AF_INET),
            IpAddr::V6(a) => {
                let o = a.octets();
                let mut addr = [0u32; 4];
                for (i, w) in addr.iter_mut().enumerate() {
                    *w = u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
                }
                (addr, AF_INET6)
            }
        };
        Self {
            addr,
            port: port.to_be(),
            proto: proto as u8,
            family,
        }
    }
}

/// `struct svc_dr`: where a DR service's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SvcDr {
    /// Destination MAC: the real server.
    pub rs_mac: [u8; 6],
    /// Source MAC: the director's egress interface.
    pub src_mac: [u8; 6],
    /// Egress interface index; 0 sends the frame back out of the interface it
    /// arrived on (`XDP_TX`, or a tc redirect to the ingress device).
    pub ifindex: u32,
    /// Reserved, 0.
    pub flags: u32,
}

/// Indexes of the per-CPU counter array (`enum xvs_counter`).
pub mod counter {
    /// Not for a service, handed on untouched.
    pub const PASSED: u32 = 0;
    /// For a service, rewritten and sent on.
    pub const FORWARDED: u32 = 1;
    /// Truncated or invalid headers, handed on untouched.
    pub const MALFORMED: u32 = 2;
    /// Number of slots (`XVS_CNT_MAX`).
    pub const MAX: u32 = 3;
}

const _: () = assert!(size_of::<SvcKey>() == 20);
const _: () = assert!(size_of::<SvcDr>() == 20);

// SAFETY: both are #[repr(C)], made only of integers and integer arrays, with
// no padding (checked by the size assertions above), so every bit pattern is
// valid and they can be copied to and from the kernel byte for byte.
unsafe impl aya::Pod for SvcKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SvcDr {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn key_bytes_are_network_order() {
        let k = SvcKey::new(Proto::Tcp, IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1)), 80);
        // SAFETY: SvcKey is Pod with no padding.
        let bytes: [u8; 20] = unsafe { std::mem::transmute(k) };
        assert_eq!(&bytes[..4], &[198, 18, 2, 1]);
        assert_eq!(&bytes[4..16], &[0; 12]);
        assert_eq!(&bytes[16..18], &[0, 80]);
        assert_eq!(bytes[18], 6);
        assert_eq!(bytes[19], AF_INET);
    }
}
