//! The `-h` text of xvsadm: the same commands and options as ipvsadm 1.31,
//! laid out the same way, in xvs's own words.

/// The full `-h` text (ends with a newline), naming the program `program`.
pub fn help_text(program: &str) -> String {
    let p = program;
    let mut s = String::new();
    s.push_str(&super::format::version_line(p));
    s.push_str("Usage:\n");
    for line in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        s.push_str(&format!("  {p} {line}\n"));
    }
    s.push('\n');

    s.push_str("Commands (long and short forms are equivalent):\n");
    for (opt, what) in [
        ("--add-service     -A", "create a virtual service"),
        ("--edit-service    -E", "change a virtual service"),
        (
            "--delete-service  -D",
            "remove a virtual service and its servers",
        ),
        ("--clear           -C", "remove every virtual service"),
        ("--restore         -R", "read commands from standard input"),
        (
            "--save            -S",
            "write the rules as commands to standard output",
        ),
        (
            "--add-server      -a",
            "add a real server to a virtual service",
        ),
        ("--edit-server     -e", "change a real server"),
        ("--delete-server   -d", "remove a real server"),
        ("--list            -L|-l", "show the table"),
        (
            "--zero            -Z",
            "reset the counters of one or all services",
        ),
        (
            "--set tcp tcpfin udp",
            "set the connection timeouts (seconds)",
        ),
        (
            "--start-daemon",
            "start the connection synchronisation daemon",
        ),
        (
            "--stop-daemon",
            "stop the connection synchronisation daemon",
        ),
        ("--help            -h", "print this text"),
    ] {
        s.push_str(&format!("  {opt:<27} {what}\n"));
    }
    s.push('\n');

    s.push_str("virtual-service:\n");
    for (opt, what) in [
        (
            "--tcp-service|-t  service-address",
            "service-address is host[:port]",
        ),
        (
            "--udp-service|-u  service-address",
            "service-address is host[:port]",
        ),
        (
            "--sctp-service    service-address",
            "service-address is host[:port]",
        ),
        ("--fwmark-service|-f fwmark", "fwmark is a positive integer"),
    ] {
        s.push_str(&format!("  {opt:<35} {what}\n"));
    }
    s.push('\n');

    s.push_str("Options:\n");
    for (opt, what) in [
        ("--ipv6         -6", "the fwmark service is IPv6"),
        (
            "--scheduler    -s scheduler",
            "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos (default wlc)",
        ),
        (
            "--pe            engine",
            "persistence engine, e.g. sip (none by default)",
        ),
        (
            "--persistent   -p [timeout]",
            "make the service persistent (default 360 s)",
        ),
        (
            "--netmask      -M netmask",
            "client grouping for persistence",
        ),
        (
            "--real-server  -r server-address",
            "server-address is host[:port]",
        ),
        ("--gatewaying   -g", "direct routing (the default)"),
        ("--ipip         -i", "IP-in-IP tunnelling"),
        ("--masquerading -m", "NAT"),
        ("--tun-type      type", "ipip|gue|gre (default ipip)"),
        ("--tun-port      port", "destination port of the tunnel"),
        ("--tun-nocsum", "tunnel packets carry no checksum"),
        ("--tun-csum", "tunnel packets carry a checksum"),
        (
            "--tun-remcsum",
            "tunnel packets use remote checksum offload",
        ),
        (
            "--weight       -w weight",
            "relative capacity of the server (0-65535)",
        ),
        (
            "--u-threshold  -x uthreshold",
            "stop sending new connections above this",
        ),
        (
            "--l-threshold  -y lthreshold",
            "resume sending new connections below this",
        ),
        ("--connection   -c", "list the connections"),
        ("--timeout", "list the timeouts (tcp tcpfin udp)"),
        ("--daemon", "list the sync daemon state"),
        ("--stats", "list with traffic counters"),
        ("--rate", "list with traffic rates"),
        ("--exact", "print numbers in full"),
        ("--thresholds", "list with connection thresholds"),
        (
            "--persistent-conn",
            "list with persistent connection counts",
        ),
        ("--tun-info", "list with tunnel settings"),
        ("--nosort", "keep the kernel's order when listing"),
        ("--sort", "accepted and ignored (sorting is the default)"),
        (
            "--ops          -o",
            "one-packet scheduling (UDP and fwmark only)",
        ),
        ("--numeric      -n", "print addresses and ports as numbers"),
        ("--sched-flags  -b flags", "comma-separated scheduler flags"),
    ] {
        s.push_str(&format!("  {opt:<35} {what}\n"));
    }

    s.push_str("Daemon Options:\n");
    for (opt, what) in [
        ("--syncid sid", "sync id to send and accept (0-255)"),
        (
            "--sync-maxlen length",
            "largest sync message (default 1472)",
        ),
        (
            "--mcast-interface interface",
            "interface for the sync traffic",
        ),
        (
            "--mcast-group address",
            "IPv4/IPv6 group (default 224.0.0.81)",
        ),
        ("--mcast-port port", "UDP port (default 8848)"),
        ("--mcast-ttl ttl", "multicast TTL (default 1)"),
    ] {
        s.push_str(&format!("  {opt:<35} {what}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_program_and_every_long_option() {
        let h = help_text("xvsadm");
        assert!(h.starts_with("xvsadm v1.31 2019/12/24 (compiled with xvs-core "));
        assert!(h.contains("  xvsadm -Z [virtual-service]\n"));
        for opt in [
            "--add-service",
            "--edit-service",
            "--delete-service",
            "--clear",
            "--restore",
            "--save",
            "--add-server",
            "--edit-server",
            "--delete-server",
            "--list",
            "--zero",
            "--set",
            "--start-daemon",
            "--stop-daemon",
            "--help",
            "--tcp-service",
            "--udp-service",
            "--sctp-service",
            "--fwmark-service",
            "--ipv6",
            "--scheduler",
            "--pe",
            "--persistent",
            "--netmask",
            "--real-server",
            "--gatewaying",
            "--ipip",
            "--masquerading",
            "--tun-type",
            "--tun-port",
            "--tun-nocsum",
            "--tun-csum",
            "--tun-remcsum",
            "--weight",
            "--u-threshold",
            "--l-threshold",
            "--connection",
            "--timeout",
            "--daemon",
            "--stats",
            "--rate",
            "--exact",
            "--thresholds",
            "--persistent-conn",
            "--tun-info",
            "--nosort",
            "--sort",
            "--ops",
            "--numeric",
            "--sched-flags",
            "--syncid",
            "--sync-maxlen",
            "--mcast-interface",
            "--mcast-group",
            "--mcast-port",
            "--mcast-ttl",
        ] {
            assert!(h.contains(opt), "help lacks {opt}");
        }
    }
}
