//! Host and service names, as ipvsadm shows and accepts them.
//!
//! ipvsadm asks the C library (`getservbyport`, `gethostbyaddr`, ...),
//! which may end in DNS queries that hang a listing. rvsadm reads
//! `/etc/services` and `/etc/hosts` only: a name comes from those files or
//! the number is shown.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::model::Protocol;

/// The system's service and host tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    services: Vec<ServiceEntry>,
    hosts: Vec<HostEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEntry {
    /// The official name first, then aliases.
    names: Vec<String>,
    port: u16,
    protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    address: IpAddr,
    /// The canonical name first, then aliases.
    names: Vec<String>,
}

impl Names {
    pub const SERVICES_FILE: &'static str = "/etc/services";
    pub const HOSTS_FILE: &'static str = "/etc/hosts";

    /// Reads `/etc/services` and `/etc/hosts`; a missing or unreadable file
    /// gives no names.
    pub fn system() -> Names {
        let read = |path: &str| std::fs::read_to_string(Path::new(path)).unwrap_or_default();
        Names::from_tables(&read(Names::SERVICES_FILE), &read(Names::HOSTS_FILE))
    }

    /// Parses the two tables' text (the formats of services(5) and hosts(5)).
    pub fn from_tables(services: &str, hosts: &str) -> Names {
        let services = table_lines(services)
            .filter_map(|fields| {
                let (name, port_protocol) = (fields.first()?, fields.get(1)?);
                let (port, protocol) = port_protocol.split_once('/')?;
                let mut names = vec![(*name).to_owned()];
                names.extend(fields[2..].iter().map(|alias| (*alias).to_owned()));
                Some(ServiceEntry {
                    names,
                    port: port.parse().ok()?,
                    protocol: protocol.to_owned(),
                })
            })
            .collect();
        let hosts = table_lines(hosts)
            .filter_map(|fields| {
                let address = fields.first()?.parse().ok()?;
                let names: Vec<String> =
                    fields[1..].iter().map(|name| (*name).to_owned()).collect();
                (!names.is_empty()).then_some(HostEntry { address, names })
            })
            .collect();
        Names { services, hosts }
    }

    /// The service name of `port`, as `getservbyport` (the first entry).
    pub fn port_name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        self.services
            .iter()
            .find(|entry| entry.port == port && entry.protocol == protocol.to_string())
            .map(|entry| entry.names[0].as_str())
    }

    /// The port of a service name or alias, as `getservbyname`.
    pub fn port_of(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.services
            .iter()
            .find(|entry| {
                entry.protocol == protocol.to_string() && entry.names.iter().any(|n| n == name)
            })
            .map(|entry| entry.port)
    }

    /// The canonical host name of `address`, as `gethostbyaddr` answers
    /// from the hosts file.
    pub fn host_name(&self, address: IpAddr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|entry| entry.address == address)
            .map(|entry| entry.names[0].as_str())
    }

    /// The IPv4 address of a host name or alias; like ipvsadm's
    /// `host_to_addr`, names give IPv4 addresses only.
    pub fn host_address(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|entry| match entry.address {
            IpAddr::V4(v4) if entry.names.iter().any(|n| n == name) => Some(v4),
            _ => None,
        })
    }
}

/// The fields of each line, without comments and blank lines.
fn table_lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter_map(|line| {
        let content = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = content.split_whitespace().collect();
        (!fields.is_empty()).then_some(fields)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
http-alt\t8080/tcp\twebcache
broken line
";
    const HOSTS: &str =
        "127.0.0.1 localhost\n::1 localhost ip6-localhost\n198.18.1.11 rs1 web1 # comment\n";

    #[test]
    fn services_resolve_both_ways_per_protocol() {
        let names = Names::from_tables(SERVICES, HOSTS);
        assert_eq!(names.port_name(80, Protocol::Tcp), Some("http"));
        assert_eq!(names.port_name(80, Protocol::Udp), None);
        assert_eq!(names.port_name(53, Protocol::Udp), Some("domain"));
        assert_eq!(names.port_of("www", Protocol::Tcp), Some(80));
        assert_eq!(names.port_of("webcache", Protocol::Tcp), Some(8080));
        assert_eq!(names.port_of("http", Protocol::Udp), None);
    }

    #[test]
    fn hosts_resolve_both_ways() {
        let names = Names::from_tables(SERVICES, HOSTS);
        assert_eq!(names.host_name("198.18.1.11".parse().unwrap()), Some("rs1"));
        assert_eq!(names.host_name("::1".parse().unwrap()), Some("localhost"));
        assert_eq!(names.host_name("198.18.1.12".parse().unwrap()), None);
        assert_eq!(
            names.host_address("web1"),
            Some(Ipv4Addr::new(198, 18, 1, 11))
        );
        assert_eq!(names.host_address("ip6-localhost"), None);
        assert_eq!(Names::default().host_address("localhost"), None);
    }
}
