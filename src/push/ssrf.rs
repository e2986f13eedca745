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
    let [a, b, _, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()            // 127.0.0.0/8
        || ip.is_private()             // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()          // 169.254/16 (cloud metadata)
        || ip.is_multicast()           // 224/4
        || ip.is_broadcast()
        || a == 0                      // 0.0.0.0/8 "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15 benchmarking
        || a >= 240 // 240/4 reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96)
    // addresses reach IPv4 hosts: judge the embedded address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return is_internal_v4(Ipv4Addr::from(
            ((segments[6] as u32) << 16) | segments[7] as u32,
        ));
    }
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] {
        return is_internal_v4(Ipv4Addr::from(
            ((segments[6] as u32) << 16) | segments[7] as u32,
        ));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()                    // ff00::/8
        || (segments[0] & 0xfe00) == 0xfc00     // fc00::/7 unique local
        || (segments[0] & 0xffc0) == 0xfe80     // fe80::/10 link-local
        || (segments[0] & 0xffc0) == 0xfec0     // fec0::/10 site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[0] == 0x2002 // 6to4 can embed any IPv4 address
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
