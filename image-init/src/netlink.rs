//! rtnetlink requests, as bytes: bring a link up, add an IPv4 address, add a default
//! route; and the kernel's acknowledgement. Pure encoding (the socket is in `system.rs`).
//!
//! Layouts from `linux/netlink.h` and `linux/rtnetlink.h`: a 16-byte `nlmsghdr`, then the
//! family header (`ifinfomsg`, `ifaddrmsg` or `rtmsg`), then 4-byte aligned attributes.

use std::net::Ipv4Addr;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const NLMSG_HDRLEN: usize = 16;

fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDRLEN + body.len()).unwrap_or(u32::MAX);
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

fn attribute(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index`.
pub fn link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut b = vec![AF_UNSPEC, 0];
    b.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    b.extend_from_slice(&index.to_ne_bytes()); // ifi_index (int)
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    message(RTM_NEWLINK, 0, seq, &b)
}

/// `RTM_NEWADDR`: `address/prefix` on interface `index`.
pub fn add_address(seq: u32, index: u32, address: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut b = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
    b.extend_from_slice(&index.to_ne_bytes());
    attribute(&mut b, IFA_LOCAL, &address.octets());
    attribute(&mut b, IFA_ADDRESS, &address.octets());
    message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, &b)
}

/// `RTM_NEWROUTE`: the default route via `gateway` out of interface `index`.
pub fn add_default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![
        AF_INET,
        0, // dst_len: default route
        0, // src_len
        0, // tos
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    b.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    attribute(&mut b, RTA_GATEWAY, &gateway.octets());
    attribute(&mut b, RTA_OIF, &index.to_ne_bytes());
    message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq, &b)
}

/// The kernel's answer to request `seq`: `Some(0)` when acknowledged, `Some(errno)`
/// (positive) when refused, `None` when `answer` is no acknowledgement of `seq`.
pub fn ack(answer: &[u8], seq: u32) -> Option<i32> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(answer.get(i..i + 4)?.try_into().ok()?))
    };
    let kind = u16::from_ne_bytes(answer.get(4..6)?.try_into().ok()?);
    let len = usize::try_from(u32_at(0)?).ok()?;
    if kind != NLMSG_ERROR || len < NLMSG_HDRLEN + 4 + NLMSG_HDRLEN || len > answer.len() {
        return None;
    }
    // nlmsgerr: int error, then the request's header (whose seq is ours).
    let error = i32::from_ne_bytes(
        answer
            .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)?
            .try_into()
            .ok()?,
    );
    if u32_at(8)? != seq || u32_at(NLMSG_HDRLEN + 4 + 8)? != seq {
        return None;
    }
    Some(-error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_kernel_layouts() {
        // `ip link set dev lo up`, as iproute2 sends it (index 1), on a little-endian host.
        let m = link_up(7, 1);
        assert_eq!(m.len(), 32);
        assert_eq!(&m[..8], &[32, 0, 0, 0, 16, 0, 5, 0]);
        assert_eq!(&m[8..12], &7u32.to_ne_bytes());
        assert_eq!(
            &m[16..32],
            &[0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        );

        let a = add_address(8, 2, Ipv4Addr::new(10, 0, 2, 15), 24);
        assert_eq!(a.len(), 16 + 8 + 8 + 8);
        assert_eq!(&a[4..8], &[20, 0, 0x05, 0x06]);
        assert_eq!(&a[16..24], &[2, 24, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&a[24..32], &[8, 0, 2, 0, 10, 0, 2, 15]);
        assert_eq!(&a[32..40], &[8, 0, 1, 0, 10, 0, 2, 15]);

        let r = add_default_route(9, 2, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(r.len(), 16 + 12 + 8 + 8);
        assert_eq!(&r[16..28], &[2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&r[28..36], &[8, 0, 5, 0, 10, 0, 2, 2]);
        assert_eq!(&r[36..44], &[8, 0, 4, 0, 2, 0, 0, 0]);
    }

    fn answer(seq: u32, error: i32) -> Vec<u8> {
        let mut b = error.to_ne_bytes().to_vec();
        b.extend_from_slice(&link_up(seq, 1)[..16]);
        let mut m = message(NLMSG_ERROR, 0, seq, &b);
        m[6..8].copy_from_slice(&0u16.to_ne_bytes());
        m
    }

    #[test]
    fn acknowledgements_and_refusals() {
        assert_eq!(ack(&answer(3, 0), 3), Some(0));
        assert_eq!(ack(&answer(3, -17), 3), Some(17), "EEXIST");
        assert_eq!(ack(&answer(3, 0), 4), None, "another request's answer");
        assert_eq!(ack(&answer(3, 0)[..20], 3), None, "truncated");
        assert_eq!(ack(&link_up(3, 1), 3), None, "not an NLMSG_ERROR");
    }
}
