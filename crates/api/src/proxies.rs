//! Which address a request comes from, when reverse proxies may stand in
//! between (`TRUSTED_PROXIES`).
//!
//! The TCP peer is the client unless the peer is one of the configured
//! proxies. Only then is `X-Forwarded-For` read, from the right: each
//! proxy appends the address it received the request from, so the
//! right-most entries were written by our own proxies and everything to
//! the left of the first address that is not a proxy came from the client,
//! who can write anything there. That first untrusted address, walking
//! from the right, is the client.
//!
//! `Forwarded` (RFC 7239) is not read: a proxy that appends to one header
//! usually passes the other through untouched, so reading both would let a
//! client supply the one our proxy does not write.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::http::header::{self, HeaderMap};
use ipnet::IpNet;

/// The networks whose hosts are our own reverse proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `TRUSTED_PROXIES` that is neither an address nor a CIDR
/// block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block")]
pub struct NotANetwork;

impl TrustedProxies {
    /// No proxy: every request's client is its TCP peer.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a comma-separated list of CIDR blocks (`10.0.0.0/8`,
    /// `2001:db8::/32`) and single addresses (`192.0.2.7`, `::1`). Blank
    /// entries are skipped; host bits in a block are ignored.
    ///
    /// # Errors
    /// [`NotANetwork`] for the first entry that is neither.
    pub fn parse(list: &str) -> Result<Self, NotANetwork> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| NotANetwork)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no proxy is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the right-most `X-Forwarded-For` entry that is not a trusted
    /// proxy itself. If every entry is trusted, the left-most one. An entry
    /// that is not an address (`unknown`, garbage) ends the walk at the
    /// trusted hop to its right, so it can never name a client of its own.
    #[must_use]
    pub fn client_address(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        // Without a peer (never the case over TCP) every such request
        // shares one address rather than escaping a limit.
        let Some(peer) = peer.map(|peer| peer.ip().to_canonical()) else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        if !self.trusts(peer) {
            return peer;
        }
        // Several header lines are one list, in order.
        let lines: Vec<&str> = headers
            .get_all(header::X_FORWARDED_FOR)
            .filter_map(|value| value.to_str().ok())
            .collect();
        let mut nearest = peer;
        for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some(address) = parse_address(entry) else {
                return nearest;
            };
            if !self.trusts(address) {
                return address;
            }
            nearest = address;
        }
        nearest
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, as the
/// canonical address (an IPv4-mapped IPv6 address becomes IPv4).
fn parse_address(raw: &str) -> Option<IpAddr> {
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            raw.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40_000))
    }

    fn forwarded_for(lines: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(header::X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        map
    }

    fn ip(address: &str) -> IpAddr {
        address.parse().unwrap()
    }

    #[test]
    fn a_list_of_blocks_and_single_addresses_is_read() {
        let list = proxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1,, ");
        assert!(list.trusts(ip("10.200.3.4")));
        assert!(list.trusts(ip("192.0.2.7")));
        assert!(!list.trusts(ip("192.0.2.8")));
        assert!(list.trusts(ip("2001:db8:ffff::1")));
        assert!(!list.trusts(ip("2001:db9::1")));
        assert!(list.trusts(ip("::1")));
        assert!(!list.trusts(ip("::2")));
    }

    #[test]
    fn an_empty_list_trusts_nobody() {
        for list in ["", " ", ",,"] {
            assert!(proxies(list).is_empty(), "{list:?}");
        }
    }

    #[test]
    fn host_bits_of_a_block_are_ignored() {
        assert_eq!(proxies("10.1.2.3/8"), proxies("10.0.0.0/8"));
    }

    #[test]
    fn anything_else_is_refused() {
        for list in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0",
            "localhost",
            "10.0.0.0/8;",
            "10.0.0.0/8 10.1.0.0/16",
            "*",
            "10.0.0.1-10.0.0.9",
            "10.0.0.0/8, nope",
        ] {
            assert_eq!(TrustedProxies::parse(list), Err(NotANetwork), "{list:?}");
        }
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let list = proxies("10.0.0.0/8");
        let spoofed = forwarded_for(&["203.0.113.9"]);
        assert_eq!(
            list.client_address(peer("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::none().client_address(peer("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_a_trusted_peer_the_right_most_untrusted_entry_is_the_client() {
        let list = proxies("10.0.0.0/8");
        let headers = forwarded_for(&["6.6.6.6, 203.0.113.9"]);
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right_over_every_header_line() {
        let list = proxies("10.0.0.0/8, 2001:db8::/32");
        let headers = forwarded_for(&["6.6.6.6, 203.0.113.9", "10.0.0.7", "[2001:db8::5]:443"]);
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn when_every_entry_is_trusted_the_left_most_is_the_client() {
        let list = proxies("10.0.0.0/8");
        let headers = forwarded_for(&["10.9.9.9, 10.0.0.7"]);
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn without_a_header_a_trusted_peer_is_the_client() {
        let list = proxies("10.0.0.0/8");
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_entry_that_is_not_an_address_stops_at_the_trusted_hop_to_its_right() {
        let list = proxies("10.0.0.0/8");
        let headers = forwarded_for(&["203.0.113.9, unknown, 10.0.0.7"]);
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("10.0.0.7")
        );
        let headers = forwarded_for(&["garbage"]);
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_and_entries_are_matched_as_ipv4() {
        let list = proxies("10.0.0.0/8");
        let headers = forwarded_for(&["::ffff:203.0.113.9"]);
        assert_eq!(
            list.client_address(peer("::ffff:10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_forwarded_header_is_not_read() {
        let list = proxies("10.0.0.0/8");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=203.0.113.9"),
        );
        assert_eq!(
            list.client_address(peer("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );
    }
}
