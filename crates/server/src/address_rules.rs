//! Allow and deny lists of source networks (CIDR), for the whole server and
//! per user. A denied network always loses; a non-empty allow list admits only
//! the networks it names (vsftpd's tcp_wrappers, ProFTPD's `<Limit LOGIN>`).

use std::net::IpAddr;

use ipnet::IpNet;

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form: a dual-stack
/// socket reports `::ffff:192.0.2.1` for a client that rules, bans and the
/// PORT check know as `192.0.2.1`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressRules {
    /// Empty: any source not denied.
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// Whether `ip` passes an allow list and a deny list (the rule above).
pub fn permits(allow: &[IpNet], deny: &[IpNet], ip: IpAddr) -> bool {
    let within = |nets: &[IpNet]| nets.iter().any(|net| net.contains(&ip));
    !within(deny) && (allow.is_empty() || within(allow))
}

impl AddressRules {
    pub fn permits(&self, ip: IpAddr) -> bool {
        permits(&self.allow, &self.deny, ip)
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn empty_rules_permit_everyone() {
        assert!(AddressRules::default().permits("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn allow_list_admits_only_its_networks_and_deny_wins_inside_them() {
        let rules = AddressRules {
            allow: nets(&["10.0.0.0/8", "2001:db8::/32"]),
            deny: nets(&["10.9.0.0/16"]),
        };
        for (ip, expected) in [
            ("10.1.2.3", true),
            ("2001:db8::1", true),
            ("10.9.0.1", false),
            ("192.168.1.1", false),
            ("2001:db9::1", false),
        ] {
            assert_eq!(rules.permits(ip.parse().unwrap()), expected, "{ip}");
        }
    }

    #[test]
    fn deny_list_alone_refuses_only_its_networks() {
        let rules = AddressRules {
            allow: Vec::new(),
            deny: nets(&["198.51.100.0/24"]),
        };
        assert!(!rules.permits("198.51.100.20".parse().unwrap()));
        assert!(rules.permits("198.51.101.20".parse().unwrap()));
    }
}
