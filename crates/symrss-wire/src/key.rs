//! The dissection result.

use core::fmt;

use symrss_hash::Tuple;

/// How an IP layer was reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encap {
    /// The outermost IP layer of the frame.
    #[default]
    None,
    /// IP directly in IP (protocol 4 or 41).
    IpInIp,
    /// GRE (protocol 47), including PPTP's enhanced GRE.
    Gre,
    /// ERSPAN type I, II or III inside GRE.
    Erspan,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// Geneve (UDP 6081).
    Geneve,
    /// GTP-U (UDP 2152).
    GtpU,
    /// Teredo (UDP 3544).
    Teredo,
}

impl Encap {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::IpInIp => "ip-in-ip",
            Self::Gre => "gre",
            Self::Erspan => "erspan",
            Self::Vxlan => "vxlan",
            Self::Geneve => "geneve",
            Self::GtpU => "gtp-u",
            Self::Teredo => "teredo",
        }
    }
}

/// IPv4 or IPv6 fragment fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset of this fragment's data in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

impl Fragment {
    /// The first fragment carries the transport header.
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// The flow an ICMP/ICMPv6 error message quotes (the offending packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quoted {
    /// Addresses and, when the quote is long enough, ports.
    pub tuple: Tuple,
    /// Transport protocol of the quoted packet.
    pub proto: u8,
}

/// One IP layer of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpLayer {
    /// Addresses; ports when the transport header was parsed (TCP, UDP,
    /// SCTP) and this is not a non-first fragment.
    pub tuple: Tuple,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Present when the packet is a fragment (including an IPv6 atomic
    /// fragment: offset 0, no more fragments).
    pub frag: Option<Fragment>,
    /// Byte offset of the IP header in the frame.
    pub offset: u32,
    /// Byte offset of the transport header, 0 when not reached.
    pub l4_offset: u32,
    /// How this layer was reached.
    pub encap: Encap,
    /// For ICMP/ICMPv6 errors: the quoted flow.
    pub quoted: Option<Quoted>,
    /// IPv6 Home Address destination option (NDIS `IPV6_EX` source).
    pub home_src: Option<[u8; 16]>,
    /// IPv6 type 2 routing header address (NDIS `IPV6_EX` destination).
    pub home_dst: Option<[u8; 16]>,
}

/// Protocol layer, for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link-layer header of the capture's link type.
    Link,
    /// Ethernet.
    Ethernet,
    /// 802.1Q / 802.1ad tag.
    Vlan,
    /// MPLS label stack or pseudowire.
    Mpls,
    /// PPPoE session header.
    Pppoe,
    /// PPP header.
    Ppp,
    /// VN-Tag.
    VnTag,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header or extension header.
    Ipv6,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// SCTP header.
    Sctp,
    /// ICMP / ICMPv6 header.
    Icmp,
    /// GRE header.
    Gre,
    /// ERSPAN header.
    Erspan,
    /// VXLAN header.
    Vxlan,
    /// Geneve header.
    Geneve,
    /// GTP-U header.
    GtpU,
}

impl Layer {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Ethernet => "ethernet",
            Self::Vlan => "vlan",
            Self::Mpls => "mpls",
            Self::Pppoe => "pppoe",
            Self::Ppp => "ppp",
            Self::VnTag => "vn-tag",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::Gre => "gre",
            Self::Erspan => "erspan",
            Self::Vxlan => "vxlan",
            Self::Geneve => "geneve",
            Self::GtpU => "gtp-u",
        }
    }
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The frame (or the snaplen) ends inside this header.
    Truncated,
    /// A field has an impossible value.
    Malformed(&'static str),
    /// The link type is not one symrss dissects.
    UnsupportedLinkType(u32),
    /// More nested tunnels than the depth limit.
    TooDeep,
}

/// A dissection problem at a layer and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DissectError {
    /// Layer being parsed.
    pub layer: Layer,
    /// Byte offset of that layer's header in the frame.
    pub offset: u32,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for DissectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = self.layer.name();
        let at = self.offset;
        match self.kind {
            ErrorKind::Truncated => write!(f, "{layer} header truncated at offset {at}"),
            ErrorKind::Malformed(what) => {
                write!(f, "{layer} header malformed at offset {at}: {what}")
            }
            ErrorKind::UnsupportedLinkType(lt) => write!(f, "unsupported link type {lt}"),
            ErrorKind::TooDeep => write!(
                f,
                "{layer} at offset {at}: tunnel nesting exceeds the depth limit"
            ),
        }
    }
}

/// Everything symrss needs from a frame to steer it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    layers: [IpLayer; 3],
    /// Number of IP headers seen (may exceed 3; only outer, first inner and
    /// innermost are kept).
    pub ip_count: u8,
    /// Outermost VLAN IDs, outer tag first (see [`FlowKey::vlans`]).
    pub(crate) vlans: [u16; 4],
    /// Number of VLAN tags in the outermost stack (may exceed 4).
    pub vlan_count: u8,
    /// MPLS labels in the outermost stack.
    pub mpls_labels: u8,
    /// Last EtherType seen (non-IP frames: what they carry).
    pub ethertype: u16,
    /// Set when dissection stopped early; the layers before it are valid.
    pub error: Option<DissectError>,
}

impl FlowKey {
    /// The outermost IP layer, if any.
    #[inline]
    pub fn outer(&self) -> Option<&IpLayer> {
        (self.ip_count >= 1).then_some(&self.layers[0])
    }

    /// The first IP layer inside a tunnel, else the outermost.
    #[inline]
    pub fn inner(&self) -> Option<&IpLayer> {
        match self.ip_count {
            0 => None,
            1 => Some(&self.layers[0]),
            _ => Some(&self.layers[1]),
        }
    }

    /// The innermost IP layer, if any.
    #[inline]
    pub fn innermost(&self) -> Option<&IpLayer> {
        match self.ip_count {
            0 => None,
            n => Some(&self.layers[usize::from(n.min(3)) - 1]),
        }
    }

    /// VLAN IDs of the outermost tag stack, outer first (at most 4 kept;
    /// `vlan_count` tells how many there were).
    #[inline]
    pub fn vlans(&self) -> &[u16] {
        &self.vlans[..usize::from(self.vlan_count.min(4))]
    }

    /// Whether the frame carries IP at all.
    #[inline]
    pub fn is_ip(&self) -> bool {
        self.ip_count > 0
    }

    /// Empties the key for the next frame. Layer slots are overwritten when
    /// a layer begins, so only the counters and scalars are cleared.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.ip_count = 0;
        self.vlan_count = 0;
        self.mpls_labels = 0;
        self.ethertype = 0;
        self.error = None;
    }

    /// Starts the next IP layer in place (layers beyond the third replace
    /// the innermost slot) and returns it, reset.
    #[inline]
    pub(crate) fn begin_layer(&mut self) -> &mut IpLayer {
        self.ip_count = self.ip_count.saturating_add(1);
        let slot = usize::from(self.ip_count.min(3)) - 1;
        self.layers[slot] = IpLayer::default();
        &mut self.layers[slot]
    }

    /// Makes `layer` the frame's only IP layer (the fast path's one write).
    #[inline]
    pub(crate) fn set_only_layer(&mut self, layer: IpLayer) {
        self.ip_count = 1;
        self.layers[0] = layer;
    }

    /// The layer being parsed (the last begun).
    #[inline]
    pub(crate) fn current(&mut self) -> &mut IpLayer {
        let slot = usize::from(self.ip_count.clamp(1, 3)) - 1;
        &mut self.layers[slot]
    }
}
