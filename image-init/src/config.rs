//! What the init reads: the kernel command line's `ip=` parameter, and the image's own
//! settings files. Pure parsing; the files are read in `main.rs`.

use std::net::Ipv4Addr;

use crate::InitError;

/// A static IPv4 configuration for one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The guest's address.
    pub address: Ipv4Addr,
    /// The prefix length of its subnet.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface (`eth0`); the first one that is not `lo` when absent.
    pub device: Option<String>,
}

/// Parses the kernel command line. Returns the static configuration of its `ip=` parameter,
/// or `None` when there is none (or it is `ip=off`/`ip=none`): then only `lo` comes up.
///
/// The syntax is the kernel's own (`Documentation/admin-guide/nfs/nfsroot.rst`):
/// `ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>`, where
/// autoconf must be `off`, `none` or empty: the image has no DHCP client. QEMU's user
/// network expects `ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off`. The last `ip=` wins,
/// as in the kernel.
pub fn net_config(cmdline: &str) -> Result<Option<NetConfig>, InitError> {
    let Some(value) = cmdline
        .split_ascii_whitespace()
        .filter_map(|p| p.strip_prefix("ip="))
        .next_back()
    else {
        return Ok(None);
    };
    if value == "off" || value == "none" {
        return Ok(None);
    }
    let bad = |why| InitError::BadIpParameter {
        value: value.to_owned(),
        why,
    };
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > 7 {
        return Err(bad("more than 7 fields"));
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let address: Ipv4Addr = field(0)
        .parse()
        .map_err(|_| bad("the client address (field 1) is not an IPv4 address"))?;
    let gateway = match field(2) {
        "" => None,
        g => Some(
            g.parse()
                .map_err(|_| bad("the gateway (field 3) is not an IPv4 address"))?,
        ),
    };
    let prefix = match field(3) {
        "" => 24,
        m => {
            let mask: Ipv4Addr = m
                .parse()
                .map_err(|_| bad("the netmask (field 4) is not an IPv4 address"))?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(bad("the netmask (field 4) is not contiguous"));
            }
            u8::try_from(bits.leading_ones()).map_err(|_| bad("netmask"))?
        }
    };
    let device = match field(5) {
        "" => None,
        d if d.len() < 16 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            Some(d.to_owned())
        }
        _ => return Err(bad("the device (field 6) is not an interface name")),
    };
    match field(6) {
        "" | "off" | "none" => {}
        _ => {
            return Err(bad(
                "autoconfiguration (field 7) must be off: the image has no DHCP",
            ));
        }
    }
    Ok(Some(NetConfig {
        address,
        prefix,
        gateway,
        device,
    }))
}

/// The lines of a settings file that are not blank, in order (one server argument or one
/// module path per line; a line is taken whole, spaces included).
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_user_network_parameter() {
        let c = net_config("console=ttyS0 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off panic=-1")
            .expect("valid")
            .expect("present");
        assert_eq!(
            c,
            NetConfig {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
                device: Some("eth0".into()),
            }
        );
    }

    #[test]
    fn short_forms_and_absence() {
        let c = net_config("ip=192.168.1.9")
            .expect("valid")
            .expect("present");
        assert_eq!((c.prefix, c.gateway, c.device), (24, None, None));
        let c = net_config("ip=10.1.0.5:::255.255.0.0")
            .expect("valid")
            .expect("present");
        assert_eq!(c.prefix, 16);
        assert_eq!(net_config("console=ttyS0").expect("valid"), None);
        assert_eq!(net_config("ip=off").expect("valid"), None);
    }

    #[test]
    fn rejects_dhcp_bad_addresses_and_masks() {
        for bad in [
            "ip=dhcp",
            "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:dhcp",
            "ip=10.0.2.300",
            "ip=10.0.2.15::gw",
            "ip=10.0.2.15:::255.0.255.0",
            "ip=10.0.2.15:::::eth0/x:off",
            "ip=1.2.3.4:::::::x",
        ] {
            assert!(
                matches!(net_config(bad), Err(InitError::BadIpParameter { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_lines_keep_order_and_skip_blanks() {
        assert_eq!(
            lines("serve\n\n--listen\n0.0.0.0:8080\n"),
            ["serve", "--listen", "0.0.0.0:8080"]
        );
    }
}
