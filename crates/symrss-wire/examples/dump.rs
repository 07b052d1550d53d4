//! Prints the flow key of every packet of a capture (debugging aid).
//! `cargo run -p symrss-wire --example dump -- FILE [MAX]`

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: dump FILE [MAX]");
    let max: usize = args
        .next()
        .map_or(usize::MAX, |m| m.parse().expect("MAX is a number"));
    let mut r = symrss_pcap::CaptureReader::open(std::path::Path::new(&path)).expect("open");
    let mut n = 0;
    while let Ok(Some(p)) = r.next_packet() {
        if n >= max {
            break;
        }
        n += 1;
        let k = symrss_wire::dissect(p.linktype, p.data, &symrss_wire::Options::default());
        println!(
            "#{} lt={} len={} ip_count={} vlans={:?}/{} ethertype=0x{:04x} err={:?}",
            n,
            p.linktype,
            p.data.len(),
            k.ip_count,
            k.vlans(),
            k.vlan_count,
            k.ethertype,
            k.error
        );
        for (name, l) in [
            ("outer", k.outer()),
            ("inner", k.inner()),
            ("innermost", k.innermost()),
        ] {
            if let Some(l) = l {
                println!(
                    "   {name:9} {} proto={} frag={:?} off={} l4={} encap={} quoted={:?}",
                    l.tuple,
                    l.proto,
                    l.frag,
                    l.offset,
                    l.l4_offset,
                    l.encap.name(),
                    l.quoted.map(|q| (q.tuple.to_string(), q.proto))
                );
            }
        }
    }
}
