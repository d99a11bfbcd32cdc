//! The client address behind trusted reverse proxies.
//!
//! Rate limits and the `ip` claim apply to the client, not to the load
//! balancer in front of the nodes. A request from a trusted proxy names the
//! client in `X-Forwarded-For`; the address used is the rightmost entry that
//! is not itself a trusted proxy (entries further left were written by the
//! client and prove nothing). A request from any other peer is taken at its
//! socket address and its `X-Forwarded-For` ignored.

use std::net::IpAddr;

/// An address block, e.g. `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why an address block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address or address/prefix")]
    Address(String),
    /// The prefix length is not a number within the address size.
    #[error("{0:?} has an invalid prefix length")]
    Prefix(String),
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix(s.to_owned()))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` lies in this block (IPv4-mapped IPv6 counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses address blocks.
    ///
    /// # Errors
    /// [`CidrError`] naming the first invalid entry.
    pub fn parse<S: AsRef<str>>(blocks: &[S]) -> Result<Self, CidrError> {
        blocks
            .iter()
            .map(|b| b.as_ref().trim().parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request from `peer` carrying the given
    /// `X-Forwarded-For` header values (in order of appearance).
    #[must_use]
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in forwarded.rev() {
            for entry in value.rsplit(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        let ip = canonical(ip);
                        client = ip;
                        if !self.trusts(ip) {
                            return ip;
                        }
                    }
                    // Garbage in the chain: stop at the last address known good.
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert!(c.contains(ip("fd12::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert_eq!("127.0.0.1".parse::<Cidr>().unwrap().prefix, 32);
    }

    #[test]
    fn client_is_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        // Untrusted peer: its header is ignored.
        assert_eq!(
            t.client(ip("8.8.8.8"), ["1.1.1.1"].into_iter()),
            ip("8.8.8.8")
        );
        // Trusted peer: the rightmost entry that is not a proxy.
        assert_eq!(
            t.client(ip("127.0.0.1"), ["6.6.6.6, 2.2.2.2, 10.0.0.7"].into_iter()),
            ip("2.2.2.2")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), ["6.6.6.6", "2.2.2.2"].into_iter()),
            ip("2.2.2.2")
        );
        // No header: the proxy itself.
        assert_eq!(
            t.client(ip("127.0.0.1"), std::iter::empty()),
            ip("127.0.0.1")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            t.client(ip("127.0.0.1"), ["2.2.2.2, junk"].into_iter()),
            ip("127.0.0.1")
        );
        // Nothing trusted by default.
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), ["2.2.2.2"].into_iter()),
            ip("127.0.0.1")
        );
    }
}
