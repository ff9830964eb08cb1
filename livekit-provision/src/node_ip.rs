//! `LIVEKIT_NODE_IP`, the address a node advertises (one address, or a dual-stack pair), and its
//! parser.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::secret::InvalidValue;

/// `LIVEKIT_NODE_IP`: one address, or an IPv4 and an IPv6 address for a dual-stack node
/// (`"<ipv4>,<ipv6>"`, accepted by livekit-server since v1.10.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIp {
    /// The address URLs use: the IPv4 one of a dual-stack pair (livekit-server's primary).
    pub primary: IpAddr,
    /// The IPv6 address of a dual-stack pair (then `primary` is IPv4).
    pub ipv6: Option<Ipv6Addr>,
}

impl NodeIp {
    /// One IPv4 or IPv6 address, or a dual-stack pair `<ipv4>,<ipv6>` (either order, spaces
    /// around each part ignored), as livekit-server's `rtcconfig.NodeIP` parses it. Whether the
    /// pinned release accepts a pair is `settings::production::require_version`'s call.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let refuse = |why: &str| InvalidValue::new(why.to_owned(), Some(value.to_owned()));
        let why = if value.contains(',') {
            "is not a dual-stack pair of IP addresses, `<ipv4>,<ipv6>`"
        } else {
            "is not an IP address"
        };
        let parse = |part: &str| part.trim().parse::<IpAddr>().map_err(|_| refuse(why));
        let mut parts = value.trim().split(',');
        let first = parse(parts.next().unwrap_or_default())?;
        let Some(second) = parts.next() else {
            return Ok(Self {
                primary: first,
                ipv6: None,
            });
        };
        if parts.next().is_some() {
            return Err(refuse(
                "has more than two addresses; a dual-stack node IP is `<ipv4>,<ipv6>`",
            ));
        }
        match (first, parse(second)?) {
            (IpAddr::V4(v4), IpAddr::V6(v6)) | (IpAddr::V6(v6), IpAddr::V4(v4))
                if v6.to_ipv4_mapped().is_none() =>
            {
                Ok(Self {
                    primary: IpAddr::V4(v4),
                    ipv6: Some(v6),
                })
            }
            _ => Err(refuse(
                "is not a dual-stack pair: give one IPv4 and one (not IPv4-mapped) IPv6 address, `<ipv4>,<ipv6>`",
            )),
        }
    }

    /// True for an IPv4 and IPv6 pair.
    pub fn is_dual_stack(&self) -> bool {
        self.ipv6.is_some()
    }

    /// Every address, the primary first.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(self.primary).chain(self.ipv6.map(IpAddr::V6))
    }
}

/// As `rtc.node_ip` spells it: `1.2.3.4` or `1.2.3.4,2001:db8::1`.
impl fmt::Display for NodeIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ipv6 {
            Some(v6) => write!(f, "{},{v6}", self.primary),
            None => write!(f, "{}", self.primary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_or_a_dual_stack_pair() {
        let shown = |text: &str| NodeIp::parse(text).unwrap().to_string();
        assert_eq!(shown(" 203.0.113.7 "), "203.0.113.7");
        assert_eq!(shown("::1"), "::1");
        assert_eq!(shown("203.0.113.7,2001:db8::7"), "203.0.113.7,2001:db8::7");
        assert_eq!(
            shown(" 2001:db8::7 , 203.0.113.7"),
            "203.0.113.7,2001:db8::7"
        );
        let pair = NodeIp::parse("2001:db8::7,203.0.113.7").unwrap();
        assert!(pair.is_dual_stack());
        assert_eq!(pair.primary, "203.0.113.7".parse::<IpAddr>().unwrap());
        for (bad, why) in [
            ("nope", "is not an IP address"),
            ("1.2.3.4,5.6.7.8", "one IPv4 and one"),
            ("::1,::2", "one IPv4 and one"),
            ("1.2.3.4,::ffff:5.6.7.8", "IPv4-mapped"),
            ("1.2.3.4,::1,::2", "more than two"),
            ("1.2.3.4,", "dual-stack pair"),
            ("1.2.3.4,nope", "dual-stack pair"),
        ] {
            let message = NodeIp::parse(bad).unwrap_err().to_string();
            assert!(
                message.contains(why) && message.contains(bad),
                "{bad}: {message}"
            );
        }
    }
}
