//! Keeps push (and webhook) requests away from the inside of our network.
//!
//! An endpoint is a URL a user gives us and we later POST to: without a guard, anyone with an
//! account could make the server reach its own admin ports, a cloud metadata service or the
//! database. By default only `https://` to public addresses is allowed. Names are checked when
//! the endpoint is registered and again on every connection (a resolver that drops internal
//! addresses), so a name that later re-resolves to an internal address (DNS rebinding) is
//! still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("is not a valid URL")]
    Malformed,
    #[error("must use https")]
    NotHttps,
    #[error("must not contain credentials")]
    Credentials,
    #[error("must not point to a loopback, private, link-local or otherwise internal address")]
    Internal,
    #[error("host name does not resolve")]
    Unresolvable,
}

/// Whether an address is one a user-supplied URL must never reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()            // 127.0.0.0/8
        || ip.is_private()             // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()          // 169.254/16 (cloud metadata)
        || ip.is_multicast()           // 224/4
        || ip.is_broadcast()
        || a == 0                      // 0.0.0.0/8 "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // 192.0.2.0/24 documentation (TEST-NET-1)
        || (a == 192 && b == 31 && c == 196) // 192.31.196.0/24 AS112-v4
        || (a == 192 && b == 52 && c == 193) // 192.52.193.0/24 AMT
        || (a == 192 && b == 88 && c == 99) // 192.88.99.0/24 6to4 relay anycast
        || (a == 192 && b == 175 && c == 48) // 192.175.48.0/24 AS112 direct delegation
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // 198.51.100.0/24 documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // 203.0.113.0/24 documentation (TEST-NET-3)
        || a >= 240 // 240/4 reserved
}

/// The IPv4 address in the last 32 bits of an IPv6 address.
fn embedded_v4(segments: [u16; 8]) -> Ipv4Addr {
    Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32)
}

/// IPv6 addresses a user-supplied URL must never reach: the IANA IPv6 special-purpose
/// registry, and every form that embeds an IPv4 address, judged by that address.
fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4-mapped ::ffff:a.b.c.d (::ffff:0:0/96).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    // IPv4-translated ::ffff:0:a.b.c.d (::ffff:0:0:0/96, RFC 2765).
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return is_internal_v4(embedded_v4(s));
    }
    // IPv4-compatible ::a.b.c.d (deprecated).
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return is_internal_v4(embedded_v4(s));
    }
    // Well-known NAT64 prefix 64:ff9b::/96: the embedded address decides.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_internal_v4(embedded_v4(s));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()                    // ff00::/8
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local-use NAT64
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // 100::/64 discard-only
        || (s[0] == 0x2001 && s[1] < 0x0200)    // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
        || (s[0] == 0x2001 && s[1] == 0x0db8)   // 2001:db8::/32 documentation
        || s[0] == 0x2002                       // 6to4 can embed any IPv4 address
        || (s[0] == 0x3fff && s[1] < 0x1000)    // 3fff::/20 documentation
        || s[0] == 0x5f00                       // 5f00::/16 SRv6 SIDs
        || (s[0] & 0xfe00) == 0xfc00            // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80            // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
}

/// Parses and checks an endpoint's form: scheme, no credentials, and an IP literal host
/// must be public. Names are checked by [`check_resolved`].
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, EndpointError> {
    let url = Url::parse(raw).map_err(|_| EndpointError::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(EndpointError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::Credentials);
    }
    match url.host() {
        None => Err(EndpointError::Malformed),
        Some(Host::Ipv4(ip)) if !allow_private && is_internal_v4(ip) => {
            Err(EndpointError::Internal)
        }
        Some(Host::Ipv6(ip)) if !allow_private && is_internal_v6(ip) => {
            Err(EndpointError::Internal)
        }
        Some(Host::Domain(d)) if !allow_private && is_internal_name(d) => {
            Err(EndpointError::Internal)
        }
        Some(_) => Ok(url),
    }
}

/// Names that always mean this machine or the local network, whatever DNS says.
fn is_internal_name(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost"
        || d.ends_with(".localhost")
        || d.ends_with(".local")
        || d.ends_with(".internal")
        || !d.contains('.')
}

/// Resolves the endpoint's host and refuses it if any address is internal.
pub async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), EndpointError> {
    if allow_private {
        return Ok(());
    }
    let Some(Host::Domain(domain)) = url.host() else {
        return Ok(()); // IP literals were judged by check_url
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((domain, port))
        .await
        .map_err(|_| EndpointError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    if addrs.iter().any(|a| is_internal(a.ip())) {
        return Err(EndpointError::Internal);
    }
    Ok(())
}

/// The HTTP client's resolver: only public addresses come back, so every connection the push
/// client makes is checked at connect time, after any DNS change.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_internal_name(&host) {
                return Err(
                    Box::new(std::io::Error::other("internal host name refused"))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(std::io::Error::other(
                    "host resolves only to internal addresses",
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_internal_family_is_refused() {
        for url in [
            "https://127.0.0.1/x",
            "https://127.8.9.10/x",
            "https://10.0.0.1/x",
            "https://172.16.0.1/x",
            "https://172.31.255.255/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/x",
            "https://100.64.0.1/x",
            "https://224.0.0.1/x",
            "https://255.255.255.255/x",
            "https://[::1]/x",
            "https://[::]/x",
            "https://[fe80::1]/x",
            "https://[fc00::1]/x",
            "https://[fd12:3456::1]/x",
            "https://[ff02::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:10.1.2.3]/x",
            "https://[::ffff:169.254.169.254]/x",
            "https://[64:ff9b::a00:1]/x",
            // The forms found open before: IPv4-translated loopback, local-use NAT64.
            "https://[::ffff:0:7f00:1]/x",
            "https://[::ffff:0:a00:1]/x",
            "https://[64:ff9b:1::a00:1]/x",
            "https://[64:ff9b:1::808:808]/x",
            "https://[100::1]/x",
            "https://[2001::1]/x",
            "https://[2001:20::1]/x",
            "https://[2001:db8::1]/x",
            "https://[3fff::1]/x",
            "https://[5f00::1]/x",
            "https://0.1.2.3/x",
            "https://192.0.2.1/x",
            "https://198.51.100.7/x",
            "https://203.0.113.9/x",
            "https://192.88.99.1/x",
            "https://localhost/x",
            "https://push.localhost/x",
            "https://printer.local/x",
            "https://metadata.google.internal/x",
            "https://intranet/x",
            "https://2130706433/x", // 127.0.0.1 as a decimal integer: the URL parser normalises it
            "https://0x7f.1/x",
        ] {
            assert_eq!(
                check_url(url, false).err(),
                Some(EndpointError::Internal),
                "{url}"
            );
        }
    }

    #[test]
    fn public_addresses_stay_allowed() {
        for url in [
            "https://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
            "https://[64:ff9b::808:808]/x", // NAT64 of a public address
            "https://[::ffff:8.8.8.8]/x",
            "https://fcm.googleapis.com/fcm/send/abc",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn schemes_and_credentials() {
        for url in [
            "http://push.example.com/x",
            "ftp://push.example.com/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                check_url(url, false).err(),
                Some(EndpointError::NotHttps),
                "{url}"
            );
        }
        assert_eq!(
            check_url("https://u:p@push.example.com/x", false).err(),
            Some(EndpointError::Credentials)
        );
        assert_eq!(
            check_url("not a url", false).err(),
            Some(EndpointError::Malformed)
        );
        assert!(check_url("https://fcm.googleapis.com/fcm/send/abc", false).is_ok());
        assert!(check_url("https://8.8.8.8/x", false).is_ok());
        assert!(check_url("https://[2606:4700::1111]/x", false).is_ok());
    }

    #[test]
    fn allow_private_opens_everything_but_nonsense() {
        assert!(check_url("http://127.0.0.1:8080/push/a", true).is_ok());
        assert!(check_url("https://[::1]/x", true).is_ok());
        assert_eq!(
            check_url("ftp://127.0.0.1/x", true).err(),
            Some(EndpointError::NotHttps)
        );
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused() {
        let url = Url::parse("https://localhost.:8443/x").unwrap();
        assert!(check_url(url.as_str(), false).is_err());
        // A name that resolves to loopback through the system resolver.
        let url = Url::parse("https://ip6-localhost/x").unwrap();
        assert!(check_url(url.as_str(), false).is_err());
    }
}
