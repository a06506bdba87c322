//! IP addresses and CIDR ranges: Cerbos's `inIPAddrRange`, and cel-go's
//! network extension (`ip()`, `cidr()`, `isIP()`, `isCIDR()`,
//! `ip.isCanonical()` and the methods of their values), with the parsing
//! rules of Go's `net/netip`.
//!
//! ```text
//! "10.1.2.3".inIPAddrRange("10.0.0.0/8")
//! cidr("192.168.0.0/24").containsIP(ip("192.168.0.1"))
//! ip("::1").isLoopback()
//! ```

use super::util::{arg, fn_error, take_args, FnResult};
use cel::common::types::{CelBool, CelInt, CelString, Type, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use ipnet::IpNet;
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The type of IP addresses, named as cel-go names it.
pub(crate) static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
/// The type of CIDR ranges, named as cel-go names it.
pub(crate) static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

/// An IP address value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ip(IpAddr);

/// A CIDR range value: an address and a prefix length. The address keeps
/// its host bits (`cidr("10.1.2.3/8")` is not `cidr("10.0.0.0/8")`), as
/// Go's `netip.Prefix` does; `masked()` clears them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    fn net(&self) -> Option<IpNet> {
        IpNet::new(self.addr, self.bits).ok()
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        // Like netip, an IPv4 address is never in an IPv6 range, nor the reverse.
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        self.net().is_some_and(|net| net.contains(ip))
    }

    fn contains_cidr(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() || self.bits > other.bits {
            return false;
        }
        self.contains(&other.addr)
    }

    fn masked(&self) -> Cidr {
        Cidr {
            addr: self.net().map_or(self.addr, |net| net.network()),
            bits: self.bits,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

macro_rules! opaque_val {
    ($ty:ty, $cel:expr) => {
        impl Val for $ty {
            fn get_type(&self) -> &Type {
                &$cel
            }

            fn cel_type() -> &'static Type {
                &$cel
            }

            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$ty>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
            where
                Self: 'v,
            {
                Box::new(self.clone())
            }

            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }

        impl StaticVal for $ty {}
    };
}

opaque_val!(Ip, IP_TYPE);
opaque_val!(Cidr, CIDR_TYPE);

/// Parses an IP address as `netip.ParseAddr` does, rejecting zones and
/// IPv4-mapped IPv6 addresses as cel-go does.
fn parse_addr(raw: &str) -> Result<IpAddr, String> {
    if raw.contains('%') {
        return Err(format!("IP address {raw:?} with zone value is not allowed"));
    }
    let addr: IpAddr = raw.parse().map_err(|e| {
        format!("IP Address {raw:?} parse error during conversion from string: {e}")
    })?;
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
        }
    }
    Ok(addr)
}

/// Parses a CIDR range as `netip.ParsePrefix` does.
fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    let bad = |why: &str| format!("CIDR {raw:?} parse error during conversion from string: {why}");
    let Some((addr, bits)) = raw.split_once('/') else {
        return Err(bad("no '/'"));
    };
    let addr = parse_addr(addr).map_err(|e| bad(&e))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let valid_digits = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    let bits: u8 = match bits.parse() {
        Ok(b) if valid_digits && b <= max => b,
        _ => return Err(bad(&format!("bad bits after slash: {bits:?}"))),
    };
    Ok(Cidr { addr, bits })
}

/// An address as Go's `net.ParseIP` reads it, for `inIPAddrRange`.
fn parse_legacy_ip(raw: &str) -> Option<IpAddr> {
    raw.parse().ok()
}

/// Whether `ip` is in `net`, as Go's `net.IPNet.Contains` decides: an IPv4
/// address matches in its IPv4-mapped IPv6 form too, and a network written
/// as an IPv4-mapped IPv6 range is an IPv4 network.
fn legacy_contains(net: &IpNet, ip: IpAddr) -> bool {
    let as_v4 = |ip: IpAddr| -> Option<Ipv4Addr> {
        match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        }
    };
    match net {
        IpNet::V4(n) => as_v4(ip).is_some_and(|v4| n.contains(&v4)),
        IpNet::V6(n) => match n.network().to_ipv4_mapped() {
            Some(_) if n.prefix_len() >= 96 => {
                // A mapped network is compared on its IPv4 part.
                let v4_net = ipnet::Ipv4Net::new(
                    n.network()
                        .to_ipv4_mapped()
                        .unwrap_or(Ipv4Addr::UNSPECIFIED),
                    n.prefix_len() - 96,
                );
                match (v4_net, as_v4(ip)) {
                    (Ok(v4_net), Some(v4)) => v4_net.contains(&v4),
                    _ => false,
                }
            }
            // IPv4 addresses, mapped or not, never match an IPv6 network.
            _ => match ip {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => n.contains(&v6),
                _ => false,
            },
        },
    }
}

/// Go's `Addr.IsGlobalUnicast`: not unspecified, loopback, multicast,
/// link-local unicast, or the IPv4 broadcast address. Private ranges are
/// global unicast.
fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || is_v6_link_local_unicast(v6))
        }
    }
}

fn is_v6_link_local_unicast(v6: &Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => is_v6_link_local_unicast(v6),
    }
}

fn is_link_local_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 224 && o[1] == 0 && o[2] == 0
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            o[0] == 0xff && o[1] & 0x0f == 0x02
        }
    }
}

/// Registers `inIPAddrRange` and the network extension.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let ip = || IP_TYPE.to_owned();
    let cidr = || CIDR_TYPE.to_owned();
    env.add_type(ip())?;
    env.add_type(cidr())?;
    env.add_member_overload(
        "inIPAddrRange",
        "inIPAddrRange_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        in_ip_addr_range,
    )?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("ip", "ip", vec![STRING_TYPE], ip_of)?;
    env.add_member_overload("ip", "cidr_ip", cidr(), vec![], cidr_ip)?;
    env.add_overload("cidr", "cidr", vec![STRING_TYPE], cidr_of)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    env.add_member_overload("family", "ip_family", ip(), vec![], family)?;
    env.add_member_overload("isLoopback", "ip_is_loopback", ip(), vec![], is_loopback)?;
    env.add_member_overload(
        "isGlobalUnicast",
        "ip_is_global_unicast",
        ip(),
        vec![],
        global_unicast,
    )?;
    env.add_member_overload(
        "isUnspecified",
        "ip_is_unspecified",
        ip(),
        vec![],
        is_unspecified,
    )?;
    env.add_member_overload(
        "isLinkLocalMulticast",
        "ip_is_link_local_multicast",
        ip(),
        vec![],
        link_local_multicast,
    )?;
    env.add_member_overload(
        "isLinkLocalUnicast",
        "ip_is_link_local_unicast",
        ip(),
        vec![],
        link_local_unicast,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip",
        cidr(),
        vec![ip()],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        cidr(),
        vec![STRING_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        cidr(),
        vec![cidr()],
        contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        cidr(),
        vec![STRING_TYPE],
        contains_cidr,
    )?;
    env.add_member_overload("masked", "cidr_masked", cidr(), vec![], masked)?;
    env.add_member_overload("isMask", "cidr_is_mask", cidr(), vec![], is_mask)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        cidr(),
        vec![],
        prefix_length,
    )?;
    env.add_overload("string", "ip_to_string", vec![ip()], to_string)?;
    env.add_overload("string", "cidr_to_string", vec![cidr()], to_string)?;
    Ok(())
}

fn boolean<'b, 'v>(b: bool) -> FnResult<'b, 'v> {
    Ok(CowVal::Borrowed(if b {
        &CelBool::TRUE
    } else {
        &CelBool::FALSE
    }))
}

fn in_ip_addr_range<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let addr = arg::<CelString>("inIPAddrRange", &args, 0)?;
    let range = arg::<CelString>("inIPAddrRange", &args, 1)?;
    let Some(ip) = parse_legacy_ip(addr.inner()) else {
        return Err(fn_error(
            "inIPAddrRange",
            format!("invalid IP address: {}", addr.inner()),
        ));
    };
    let net: IpNet = range.inner().parse().map_err(|_| {
        fn_error(
            "inIPAddrRange",
            format!("invalid CIDR address: {}", range.inner()),
        )
    })?;
    boolean(legacy_contains(&net, ip))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("isIP", &args, 0)?;
    boolean(parse_addr(s.inner()).is_ok())
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("isCIDR", &args, 0)?;
    boolean(parse_cidr(s.inner()).is_ok())
}

fn ip_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("ip", &args, 0)?;
    let addr = parse_addr(s.inner()).map_err(|e| fn_error("ip", e))?;
    Ok(CowVal::owned(Ip(addr)))
}

fn cidr_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("cidr", &args, 0)?;
    Ok(CowVal::owned(
        parse_cidr(s.inner()).map_err(|e| fn_error("cidr", e))?,
    ))
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let c = arg::<Cidr>("ip", &args, 0)?;
    Ok(CowVal::owned(Ip(c.addr)))
}

fn is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let s = arg::<CelString>("ip.isCanonical", &args, 0)?;
    let addr = parse_addr(s.inner()).map_err(|e| fn_error("ip.isCanonical", e))?;
    boolean(addr.to_string() == s.inner())
}

fn family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let ip = arg::<Ip>("family", &args, 0)?;
    Ok(CowVal::owned(CelInt::from(if ip.0.is_ipv4() {
        4
    } else {
        6
    })))
}

fn is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    boolean(arg::<Ip>("isLoopback", &args, 0)?.0.is_loopback())
}

fn global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    boolean(is_global_unicast(
        &arg::<Ip>("isGlobalUnicast", &args, 0)?.0,
    ))
}

fn is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    boolean(arg::<Ip>("isUnspecified", &args, 0)?.0.is_unspecified())
}

fn link_local_multicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    boolean(is_link_local_multicast(
        &arg::<Ip>("isLinkLocalMulticast", &args, 0)?.0,
    ))
}

fn link_local_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    boolean(is_link_local_unicast(
        &arg::<Ip>("isLinkLocalUnicast", &args, 0)?.0,
    ))
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let c = arg::<Cidr>("containsIP", &args, 0)?;
    let addr = match args.get(1) {
        Some(v) => match (v.downcast_ref::<Ip>(), v.downcast_ref::<CelString>()) {
            (Some(ip), _) => ip.0,
            (None, Some(s)) => parse_addr(s.inner()).map_err(|e| fn_error("containsIP", e))?,
            _ => return Err(fn_error("containsIP", "expected an IP address")),
        },
        None => return Err(ExecutionError::invalid_argument_count(2, args.len())),
    };
    boolean(c.contains(&addr))
}

fn contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let c = arg::<Cidr>("containsCIDR", &args, 0)?;
    let other = match args.get(1) {
        Some(v) => match (v.downcast_ref::<Cidr>(), v.downcast_ref::<CelString>()) {
            (Some(other), _) => other.clone(),
            (None, Some(s)) => parse_cidr(s.inner()).map_err(|e| fn_error("containsCIDR", e))?,
            _ => return Err(fn_error("containsCIDR", "expected a CIDR range")),
        },
        None => return Err(ExecutionError::invalid_argument_count(2, args.len())),
    };
    boolean(c.contains_cidr(&other))
}

fn masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    Ok(CowVal::owned(arg::<Cidr>("masked", &args, 0)?.masked()))
}

/// Whether the range's address has no bits set past its prefix length, that
/// is `c.masked() == c`. (Listed among Cerbos 0.55's functions; its source
/// was not available, this is the reading its name and `masked()` suggest.)
fn is_mask<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let c = arg::<Cidr>("isMask", &args, 0)?;
    boolean(c.masked() == *c)
}

fn prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let c = arg::<Cidr>("prefixLength", &args, 0)?;
    Ok(CowVal::owned(CelInt::from(i64::from(c.bits))))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [v] = take_args(args)?;
    let s = if let Some(ip) = v.downcast_ref::<Ip>() {
        ip.0.to_string()
    } else if let Some(c) = v.downcast_ref::<Cidr>() {
        c.to_string()
    } else {
        return Err(ExecutionError::no_such_overload(
            "string",
            vec![v.get_type().name().to_owned()],
        ));
    };
    Ok(CowVal::owned(CelString::from(s)))
}
