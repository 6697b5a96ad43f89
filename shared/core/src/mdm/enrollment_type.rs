//! Which kind of enrollment a device gets: User Enrollment (BYOD, Managed Apple ID,
//! privacy-preserving) or Device Enrollment. Apple: "User Enrollment" (Apple Platform Deployment).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::command::table::OsFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentType {
    Device,
    User,
}

/// How the device came to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Automated Device Enrollment (Apple Business/School Manager).
    Ade,
    /// Apple Configurator.
    Configurator,
    /// Account-driven or profile-based enrollment initiated on the device.
    AccountDriven,
}

/// A user group's enrollment-type setting; lower `priority` wins when a user is in
/// several groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSetting {
    pub priority: u32,
    pub enrollment_type: EnrollmentType,
}

/// The setting that applies to a user: the highest-priority group's, else Device.
pub fn user_setting(groups: &[GroupSetting]) -> EnrollmentType {
    groups
        .iter()
        .min_by_key(|g| g.priority)
        .map_or(EnrollmentType::Device, |g| g.enrollment_type)
}

/// Compares dotted OS versions numerically (`"13.10" > "13.9"`); missing parts are 0.
/// Non-numeric parts compare as 0, so garbage never ranks above a real version.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> {
        v.trim()
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        match a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// Minimum OS for User Enrollment per platform (iOS 13, macOS 10.15, visionOS 1.1).
pub fn user_enrollment_minimum(os: OsFamily) -> Option<&'static str> {
    match os {
        OsFamily::Ios => Some("13.0"),
        OsFamily::Macos => Some("10.15"),
        OsFamily::Visionos => Some("1.1"),
        OsFamily::Tvos | OsFamily::Watchos => None,
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub path: Path,
    pub supervised: bool,
    pub os: OsFamily,
    pub os_version: &'a str,
    pub user_setting: EnrollmentType,
    pub has_managed_apple_id: bool,
    /// The type of this device's first enrollment, if it enrolled before.
    pub previous: Option<EnrollmentType>,
}

/// User Enrollment only when every criterion holds; ADE and Apple Configurator are
/// always device enrollments; a re-enrollment keeps the first enrollment's type.
pub fn decide(f: &Facts<'_>) -> EnrollmentType {
    if let Some(previous) = f.previous {
        return previous;
    }
    if matches!(f.path, Path::Ade | Path::Configurator) {
        return EnrollmentType::Device;
    }
    let os_ok = user_enrollment_minimum(f.os)
        .is_some_and(|min| compare_versions(f.os_version, min) != Ordering::Less);
    if !f.supervised && os_ok && f.user_setting == EnrollmentType::User && f.has_managed_apple_id {
        EnrollmentType::User
    } else {
        EnrollmentType::Device
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            path: Path::AccountDriven,
            supervised: false,
            os: OsFamily::Ios,
            os_version: "17.2",
            user_setting: EnrollmentType::User,
            has_managed_apple_id: true,
            previous: None,
        }
    }

    #[test]
    fn user_enrollment_needs_every_criterion() {
        assert_eq!(decide(&facts()), EnrollmentType::User);
        let each_fails: [Facts; 6] = [
            Facts {
                supervised: true,
                ..facts()
            },
            Facts {
                os_version: "12.5.7",
                ..facts()
            },
            Facts {
                user_setting: EnrollmentType::Device,
                ..facts()
            },
            Facts {
                has_managed_apple_id: false,
                ..facts()
            },
            Facts {
                os: OsFamily::Tvos,
                ..facts()
            },
            Facts {
                os: OsFamily::Macos,
                os_version: "10.14.6",
                ..facts()
            },
        ];
        for f in each_fails {
            assert_eq!(decide(&f), EnrollmentType::Device, "{f:?}");
        }
        assert_eq!(
            decide(&Facts {
                os: OsFamily::Macos,
                os_version: "10.15",
                ..facts()
            }),
            EnrollmentType::User
        );
    }

    #[test]
    fn ade_and_configurator_are_device_enrollments_and_reenrollment_keeps_type() {
        assert_eq!(
            decide(&Facts {
                path: Path::Ade,
                ..facts()
            }),
            EnrollmentType::Device
        );
        assert_eq!(
            decide(&Facts {
                path: Path::Configurator,
                ..facts()
            }),
            EnrollmentType::Device
        );
        // The setting changed since the first enrollment: the first type stays.
        let again = Facts {
            user_setting: EnrollmentType::Device,
            previous: Some(EnrollmentType::User),
            ..facts()
        };
        assert_eq!(decide(&again), EnrollmentType::User);
        let again = Facts {
            previous: Some(EnrollmentType::Device),
            ..facts()
        };
        assert_eq!(decide(&again), EnrollmentType::Device);
    }

    #[test]
    fn group_priority_and_default() {
        assert_eq!(user_setting(&[]), EnrollmentType::Device);
        let groups = [
            GroupSetting {
                priority: 5,
                enrollment_type: EnrollmentType::Device,
            },
            GroupSetting {
                priority: 1,
                enrollment_type: EnrollmentType::User,
            },
        ];
        assert_eq!(user_setting(&groups), EnrollmentType::User);
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("13.10", "13.9"), Ordering::Greater);
        assert_eq!(compare_versions("13", "13.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("10.14.6", "10.15"), Ordering::Less);
        assert_eq!(compare_versions("garbage", "1.0"), Ordering::Less);
    }
}
