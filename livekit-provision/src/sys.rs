//! Small reads of the machine the library needs: its interface addresses.

use std::net::IpAddr;

/// The IP addresses on this machine's interfaces (`getifaddrs`). Empty when they cannot be
/// listed, which callers treat as "unknown" (no NAT warning), never as an error.
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|addr| {
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        let addrs = local_addresses();
        assert!(addrs.iter().any(IpAddr::is_loopback), "{addrs:?}");
    }
}
