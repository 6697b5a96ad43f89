//! Deterministic devices: everything about device `index` follows from `(seed, index)`,
//! so 200,000 devices cost no memory until something changes one of them.
//!
//! Serial numbers are 12 uppercase alphanumerics: a 4-character prefix that depends on
//! the device family (for looks) and 8 base-36 digits of a keyed permutation of the
//! index, so a serial maps back to its index without a table.

use serde::{Deserialize, Serialize};

/// First `device_assigned_date` of generated devices (2023-01-01T00:00:00Z); each
/// further index is assigned about a minute later, so the fetch order (by index) is
/// also the order of assignment.
pub const FIRST_ASSIGNED: u64 = 1_672_531_200;

/// A device as Apple describes it. Optional fields are left out of the JSON when unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub serial_number: String,
    pub model: String,
    pub description: String,
    pub color: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_tag: Option<String>,
    /// `iPhone`, `iPad`, `Mac`, `AppleTV`, `Vision`, `iPod` (protocol 2+).
    pub device_family: String,
    /// `iOS`, `iPadOS` (protocol 7+, `iOS` before), `OSX`, `tvOS`, `visionOS` (protocol 2+).
    pub os: String,
    /// `empty`, `assigned`, `pushed` or `removed`.
    pub profile_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_assign_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_push_time: Option<String>,
    pub device_assigned_by: String,
    pub device_assigned_date: String,
}

/// SplitMix64: the mixing step of every derived value.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value derived from `(seed, index, salt)`.
pub fn derive(seed: u64, index: u64, salt: u64) -> u64 {
    mix(seed ^ mix(index ^ mix(salt.wrapping_mul(0xD6E8_FEB8_6659_FD93))))
}

const BITS: u32 = 41;
const MASK: u64 = (1 << BITS) - 1;
const MULT: u64 = 0x0005_DEEC_E66D; // odd
const SHIFT: u32 = 20;
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Indexes below this map to distinct serials (2^41).
pub const MAX_INDEX: u64 = MASK;

fn mult_inverse() -> u64 {
    let mut inv = MULT;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(MULT.wrapping_mul(inv)));
    }
    inv
}

fn keys(seed: u64) -> [u64; 3] {
    [
        mix(seed ^ 1) & MASK,
        mix(seed ^ 2) & MASK,
        mix(seed ^ 3) & MASK,
    ]
}

fn permute(seed: u64, mut x: u64) -> u64 {
    for k in keys(seed) {
        x ^= k;
        x = x.wrapping_mul(MULT) & MASK;
        x ^= x >> SHIFT;
    }
    x
}

fn unpermute(seed: u64, mut y: u64) -> u64 {
    let inv = mult_inverse();
    for k in keys(seed).into_iter().rev() {
        // inverse of y ^= y >> SHIFT on 41 bits
        y = y ^ (y >> SHIFT) ^ (y >> (2 * SHIFT));
        y = y.wrapping_mul(inv) & MASK;
        y ^= k;
    }
    y
}

#[derive(Debug, Clone, Copy)]
struct Model {
    model: &'static str,
    /// Description with `{color}` and `{gb}` placeholders, Apple style.
    description: &'static str,
    colors: &'static [&'static str],
    capacities: &'static [u32],
}

#[derive(Debug, Clone, Copy)]
struct Family {
    name: &'static str,
    prefix: &'static str,
    models: &'static [Model],
}

const IPHONE: Family = Family {
    name: "iPhone",
    prefix: "F",
    models: &[
        Model {
            model: "iPhone 16 Pro",
            description: "IPHONE 16 PRO {color} {gb}GB-USA",
            colors: &[
                "BLACK TITANIUM",
                "WHITE TITANIUM",
                "NATURAL TITANIUM",
                "DESERT TITANIUM",
            ],
            capacities: &[128, 256, 512],
        },
        Model {
            model: "iPhone 16",
            description: "IPHONE 16 {color} {gb}GB-USA",
            colors: &["BLACK", "WHITE", "PINK", "TEAL", "ULTRAMARINE"],
            capacities: &[128, 256],
        },
        Model {
            model: "iPhone 15",
            description: "IPHONE 15 {color} {gb}GB-USA",
            colors: &["BLACK", "BLUE", "GREEN", "YELLOW", "PINK"],
            capacities: &[128, 256],
        },
        Model {
            model: "iPhone 14",
            description: "IPHONE 14 {color} {gb}GB-USA",
            colors: &["MIDNIGHT", "STARLIGHT", "BLUE", "PURPLE", "RED"],
            capacities: &[128, 256],
        },
        Model {
            model: "iPhone SE (3rd generation)",
            description: "IPHONE SE {color} {gb}GB-USA",
            colors: &["MIDNIGHT", "STARLIGHT", "RED"],
            capacities: &[64, 128],
        },
    ],
};

const IPAD: Family = Family {
    name: "iPad",
    prefix: "DM",
    models: &[
        Model {
            model: "iPad Pro 11-inch (M4)",
            description: "IPAD PRO 11 WI-FI {gb}GB {color}-USA",
            colors: &["SPACE BLACK", "SILVER"],
            capacities: &[256, 512],
        },
        Model {
            model: "iPad Air 13-inch (M2)",
            description: "IPAD AIR 13 WI-FI {gb}GB {color}-USA",
            colors: &["SPACE GRAY", "BLUE", "PURPLE", "STARLIGHT"],
            capacities: &[128, 256],
        },
        Model {
            model: "iPad (10th generation)",
            description: "IPAD 10.9 WI-FI {gb}GB {color}-USA",
            colors: &["BLUE", "PINK", "SILVER", "YELLOW"],
            capacities: &[64, 256],
        },
        Model {
            model: "iPad mini (A17 Pro)",
            description: "IPAD MINI WI-FI {gb}GB {color}-USA",
            colors: &["SPACE GRAY", "BLUE", "PURPLE", "STARLIGHT"],
            capacities: &[128, 256],
        },
    ],
};

const MAC: Family = Family {
    name: "Mac",
    prefix: "C0",
    models: &[
        Model {
            model: "MacBook Pro",
            description: "MBP 14 {color}/M3 PRO/18GB/{gb}GB-USA",
            colors: &["SPACE BLACK", "SILVER"],
            capacities: &[512, 1024],
        },
        Model {
            model: "MacBook Air",
            description: "MBA 13 {color}/M3/16GB/{gb}GB-USA",
            colors: &["MIDNIGHT", "STARLIGHT", "SPACE GRAY", "SILVER"],
            capacities: &[256, 512],
        },
        Model {
            model: "iMac",
            description: "IMAC 24 {color}/M3/8GB/{gb}GB-USA",
            colors: &["BLUE", "GREEN", "PINK", "SILVER"],
            capacities: &[256, 512],
        },
        Model {
            model: "Mac mini",
            description: "MAC MINI {color}/M4/16GB/{gb}GB-USA",
            colors: &["SILVER"],
            capacities: &[256, 512],
        },
    ],
};

const APPLE_TV: Family = Family {
    name: "AppleTV",
    prefix: "G6",
    models: &[Model {
        model: "Apple TV 4K",
        description: "APPLE TV 4K WI-FI + ETHERNET {gb}GB {color}",
        colors: &["BLACK"],
        capacities: &[128],
    }],
};

const VISION: Family = Family {
    name: "Vision",
    prefix: "H4",
    models: &[Model {
        model: "Apple Vision Pro",
        description: "APPLE VISION PRO {gb}GB {color}",
        colors: &["SILVER"],
        capacities: &[256, 512],
    }],
};

const IPOD: Family = Family {
    name: "iPod",
    prefix: "CC",
    models: &[Model {
        model: "iPod touch (7th generation)",
        description: "IPOD TOUCH {gb}GB {color}",
        colors: &["SPACE GRAY", "SILVER", "BLUE"],
        capacities: &[32, 128],
    }],
};

fn family(seed: u64, index: u64) -> &'static Family {
    match derive(seed, index, 1) % 100 {
        0..45 => &IPHONE,
        45..70 => &IPAD,
        70..94 => &MAC,
        94..98 => &APPLE_TV,
        98 => &VISION,
        _ => &IPOD,
    }
}

/// The operating system Apple reports for a family.
pub fn os_of(device_family: &str) -> &'static str {
    match device_family {
        "iPad" => "iPadOS",
        "Mac" => "OSX",
        "AppleTV" => "tvOS",
        "Vision" => "visionOS",
        _ => "iOS",
    }
}

/// The generated serial of `index` (before any override).
pub fn serial(seed: u64, index: u64) -> String {
    let f = family(seed, index);
    let mut out = String::with_capacity(12);
    out.push_str(f.prefix);
    let mut h = derive(seed, index, 2);
    while out.len() < 4 {
        out.push(ALPHABET[(h % 36) as usize] as char);
        h /= 36;
    }
    let mut p = permute(seed, index);
    let mut digits = [b'0'; 8];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(p % 36) as usize];
        p /= 36;
    }
    out.push_str(std::str::from_utf8(&digits).expect("ASCII"));
    out
}

/// The index whose generated serial is `serial`, if it is one.
pub fn index_of(seed: u64, serial: &str) -> Option<u64> {
    if serial.len() != 12 {
        return None;
    }
    let mut v: u64 = 0;
    for b in serial[4..].bytes() {
        let d = ALPHABET.iter().position(|&a| a == b)? as u64;
        v = v * 36 + d;
    }
    if v > MASK {
        return None;
    }
    let index = unpermute(seed, v);
    (self::serial(seed, index) == serial).then_some(index)
}

/// Shares of generated devices that already carry a profile (assigned by some earlier
/// MDM), in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialProfiles {
    pub assigned_percent: u8,
    pub pushed_percent: u8,
}

/// Device `index` as generated from `seed`.
pub fn generate(
    seed: u64,
    index: u64,
    assigned_by: &str,
    preexisting_profile: &str,
    shares: InitialProfiles,
) -> Device {
    let f = family(seed, index);
    let m = &f.models[(derive(seed, index, 3) % f.models.len() as u64) as usize];
    let color = m.colors[(derive(seed, index, 4) % m.colors.len() as u64) as usize];
    let gb = m.capacities[(derive(seed, index, 5) % m.capacities.len() as u64) as usize];
    let description = m
        .description
        .replace("{color}", color)
        .replace("{gb}", &gb.to_string());
    let asset_tag = (derive(seed, index, 6) % 10 < 3).then(|| format!("A{:07}", index + 1));
    let assigned_at = FIRST_ASSIGNED + index * 60 + derive(seed, index, 7) % 60;
    let roll = (derive(seed, index, 8) % 100) as u8;
    let pushed = roll < shares.pushed_percent;
    let assigned = !pushed
        && roll
            < shares
                .pushed_percent
                .saturating_add(shares.assigned_percent);
    let (status, uuid, assign_time, push_time) = if pushed || assigned {
        let at = assigned_at + 86_400;
        (
            if pushed { "pushed" } else { "assigned" },
            Some(preexisting_profile.to_owned()),
            Some(iso(at)),
            pushed.then(|| iso(at + 86_400)),
        )
    } else {
        ("empty", None, None, None)
    };
    Device {
        serial_number: serial(seed, index),
        model: m.model.to_owned(),
        description,
        color: color.to_owned(),
        asset_tag,
        device_family: f.name.to_owned(),
        os: os_of(f.name).to_owned(),
        profile_status: status.to_owned(),
        profile_uuid: uuid,
        profile_assign_time: assign_time,
        profile_push_time: push_time,
        device_assigned_by: assigned_by.to_owned(),
        device_assigned_date: iso(assigned_at),
    }
}

/// RFC 3339 UTC, second precision (Apple's form).
pub fn iso(unix: u64) -> String {
    mdm_core::time::format_rfc3339(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// 32 uppercase hex digits derived from `(seed, n, salt)` (Apple's profile UUID form).
pub fn hex32(seed: u64, n: u64, salt: u64) -> String {
    format!(
        "{:016X}{:016X}",
        derive(seed, n, salt),
        derive(seed, n, salt ^ 0xFFFF)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_round_trips() {
        for seed in [0, 1, 42, u64::MAX] {
            for x in [0, 1, 2, 999, 123_456, MASK - 1, MASK] {
                assert_eq!(unpermute(seed, permute(seed, x)), x);
            }
        }
    }

    #[test]
    fn serials_are_unique_and_invertible() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let s = serial(7, i);
            assert_eq!(s.len(), 12);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
            assert_eq!(index_of(7, &s), Some(i), "{s}");
            assert!(seen.insert(s));
        }
        assert_eq!(index_of(7, "C02T0HL0GGC0"), None);
        assert_eq!(index_of(7, "short"), None);
        assert_ne!(serial(1, 5), serial(2, 5));
    }

    #[test]
    fn generation_is_deterministic() {
        let shares = InitialProfiles {
            assigned_percent: 15,
            pushed_percent: 5,
        };
        let a = generate(3, 17, "admin@example.com", "P", shares);
        let b = generate(3, 17, "admin@example.com", "P", shares);
        assert_eq!(a, b);
        assert!(!a.description.contains('{'));
    }
}
