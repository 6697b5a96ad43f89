// @generated from tests/vectors/apple-device-management/mdm/commands/*.yaml by tests/command_schema/table.rs: do not edit below; regenerate with UPDATE_COMMAND_SCHEMA=1 cargo test -p mdm-core --test command_schema
#[rustfmt::skip]
pub const SCHEMAS: &[Schema] = &[
    Schema { request_type: "AccountConfiguration", keys: &[
        k("SkipPrimarySetupAccountCreation", BOOLEAN, OPT, &[], &[]),
        k("SetPrimarySetupAccountAsRegularUser", BOOLEAN, OPT, &[], &[]),
        k("PrimaryAccountFullName", STRING, OPT, &[], &[]),
        k("PrimaryAccountUserName", STRING, OPT, &[], &[]),
        k("DontAutoPopulatePrimaryAccountInfo", BOOLEAN, OPT, &[], &[]),
        k("LockPrimaryAccountInfo", BOOLEAN, OPT, &[], &[]),
        k("AutoSetupAdminAccounts", ARRAY, OPT, &[], &[
            k("AutoSetupAdminAccountItem", DICT, OPT, &[], &[
                k("shortName", STRING, REQ, &[], &[]),
                k("fullName", STRING, OPT, &[], &[]),
                k("passwordHash", DATA, OPT, &[], &[]),
                k("hidden", BOOLEAN, OPT, &[], &[]),
            ]),
        ]),
        k("ManagedLocalUserShortName", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "ActiveNSExtensions", keys: &[
        k("FilterExtensionPoints", ARRAY, OPT, &[], &[
            k("FilterExtensionPointsItem", STRING, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "NSExtensionMappings", keys: &[] },
    Schema { request_type: "InstallEnterpriseApplication", keys: &[
        k("Manifest", DICT, OPT, &[], &[
            k("ANY", ANY, OPT, &[], &[]),
        ]),
        k("ManifestURL", STRING, OPT, &[], &[]),
        k("ManifestURLPinningCerts", ARRAY, OPT, &[], &[
            k("ManifestURLPinningCertsItem", DATA, REQ, &[], &[]),
        ]),
        k("PinningRevocationCheckRequired", BOOLEAN, OPT, &[], &[]),
        k("InstallAsManaged", BOOLEAN, OPT, &[], &[]),
        k("ManagementFlags", INTEGER, OPT, &[I(1)], &[]),
        k("Configuration", DICT, OPT, &[], &[
            k("ANY", ANY, OPT, &[], &[]),
        ]),
        k("ChangeManagementState", STRING, OPT, &[S("Managed")], &[]),
        k("iOSApp", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "InstallApplication", keys: &[
        k("iTunesStoreID", INTEGER, OPT, &[], &[]),
        k("Identifier", STRING, OPT, &[], &[]),
        k("Options", DICT, OPT, &[], &[
            k("PurchaseMethod", INTEGER, OPT, &[I(0), I(1)], &[]),
        ]),
        k("ManifestURL", STRING, OPT, &[], &[]),
        k("ManagementFlags", INTEGER, OPT, &[I(1), I(4), I(5)], &[]),
        k("Configuration", DICT, OPT, &[], &[
            k("ANY", ANY, OPT, &[], &[]),
        ]),
        k("Attributes", DICT, OPT, &[], &[
            k("VPNUUID", STRING, OPT, &[], &[]),
            k("ContentFilterUUID", STRING, OPT, &[], &[]),
            k("DNSProxyUUID", STRING, OPT, &[], &[]),
            k("RelayUUID", STRING, OPT, &[], &[]),
            k("AssociatedDomains", ARRAY, OPT, &[], &[
                k("AssociatedDomain", STRING, OPT, &[], &[]),
            ]),
            k("AssociatedDomainsEnableDirectDownloads", BOOLEAN, OPT, &[], &[]),
            k("Removable", BOOLEAN, OPT, &[], &[]),
            k("TapToPayScreenLock", BOOLEAN, OPT, &[], &[]),
            k("CellularSliceUUID", STRING, OPT, &[], &[]),
            k("Hideable", BOOLEAN, OPT, &[], &[]),
            k("Lockable", BOOLEAN, OPT, &[], &[]),
        ]),
        k("ChangeManagementState", STRING, OPT, &[S("Managed")], &[]),
        k("InstallAsManaged", BOOLEAN, OPT, &[], &[]),
        k("iOSApp", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "InstalledApplicationList", keys: &[
        k("Identifiers", ARRAY, OPT, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
        k("ManagedAppsOnly", BOOLEAN, OPT, &[], &[]),
        k("Items", ARRAY, OPT, &[], &[
            k("ItemsItem", STRING, OPT, &[S("AdHocCodeSigned"), S("AppStoreVendable"), S("BetaApp"), S("BundleSize"), S("DeviceBasedVPP"), S("DistributorIdentifier"), S("DynamicSize"), S("ExternalVersionIdentifier"), S("HasUpdateAvailable"), S("Identifier"), S("Installing"), S("IsAppClip"), S("IsValidated"), S("Name"), S("ShortVersion"), S("Version")], &[]),
        ]),
    ] },
    Schema { request_type: "InviteToProgram", keys: &[
        k("ProgramID", STRING, REQ, &[S("com.apple.cloudvpp")], &[]),
        k("InvitationURL", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "ManagedApplicationList", keys: &[
        k("Identifiers", ARRAY, OPT, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "ApplyRedemptionCode", keys: &[
        k("Identifier", STRING, REQ, &[], &[]),
        k("RedemptionCode", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "RemoveApplication", keys: &[
        k("Identifier", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "ValidateApplications", keys: &[
        k("Identifiers", ARRAY, OPT, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "CertificateList", keys: &[
        k("ManagedOnly", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "DeclarativeManagement", keys: &[
        k("Data", DATA, OPT, &[], &[]),
    ] },
    Schema { request_type: "ActivationLockBypassCode", keys: &[] },
    Schema { request_type: "ClearActivationLockBypassCode", keys: &[] },
    Schema { request_type: "DeviceConfigured", keys: &[] },
    Schema { request_type: "EraseDevice", keys: &[
        k("PreserveDataPlan", BOOLEAN, OPT, &[], &[]),
        k("DisallowProximitySetup", BOOLEAN, OPT, &[], &[]),
        k("PIN", STRING, OPT, &[], &[]),
        k("ObliterationBehavior", STRING, OPT, &[S("Default"), S("DoNotObliterate"), S("ObliterateWithWarning"), S("Always")], &[]),
        k("ReturnToService", DICT, OPT, &[], &[
            k("Enabled", BOOLEAN, REQ, &[], &[]),
            k("WiFiProfileData", DATA, OPT, &[], &[]),
            k("MDMProfileData", DATA, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "RefreshCellularPlans", keys: &[
        k("eSIMServerURL", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "DeviceLock", keys: &[
        k("Message", STRING, OPT, &[], &[]),
        k("PhoneNumber", STRING, OPT, &[], &[]),
        k("PIN", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "DisableLostMode", keys: &[] },
    Schema { request_type: "EnableLostMode", keys: &[
        k("Message", STRING, OPT, &[], &[]),
        k("PhoneNumber", STRING, OPT, &[], &[]),
        k("Footnote", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "DeviceLocation", keys: &[] },
    Schema { request_type: "PlayLostModeSound", keys: &[] },
    Schema { request_type: "RestartDevice", keys: &[
        k("RebuildKernelCache", BOOLEAN, OPT, &[], &[]),
        k("KextPaths", ARRAY, OPT, &[], &[
            k("KextPathsItem", STRING, OPT, &[], &[]),
        ]),
        k("NotifyUser", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "ClearRestrictionsPassword", keys: &[] },
    Schema { request_type: "Restrictions", keys: &[
        k("ProfileRestrictions", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "ShutDownDevice", keys: &[] },
    Schema { request_type: "ContentCachingInformation", keys: &[] },
    Schema { request_type: "DeviceInformation", keys: &[
        k("Queries", ARRAY, REQ, &[], &[
            k("QueriesItem", STRING, OPT, &[], &[
                k("UDID", STRING, OPT, &[], &[]),
                k("ProvisioningUDID", STRING, OPT, &[], &[]),
                k("OrganizationInfo", STRING, OPT, &[], &[]),
                k("MDMOptions", STRING, OPT, &[], &[]),
                k("LastCloudBackupDate", STRING, OPT, &[], &[]),
                k("AwaitingConfiguration", STRING, OPT, &[], &[]),
                k("iTunesStoreAccountIsActive", STRING, OPT, &[], &[]),
                k("iTunesStoreAccountHash", STRING, OPT, &[], &[]),
                k("DeviceName", STRING, OPT, &[], &[]),
                k("OSVersion", STRING, OPT, &[], &[]),
                k("SupplementalOSVersionExtra", STRING, OPT, &[], &[]),
                k("BuildVersion", STRING, OPT, &[], &[]),
                k("SupplementalBuildVersion", STRING, OPT, &[], &[]),
                k("ModelName", STRING, OPT, &[], &[]),
                k("Model", STRING, OPT, &[], &[]),
                k("ModelNumber", STRING, OPT, &[], &[]),
                k("IsAppleSilicon", STRING, OPT, &[], &[]),
                k("ProductName", STRING, OPT, &[], &[]),
                k("SerialNumber", STRING, OPT, &[], &[]),
                k("DeviceCapacity", STRING, OPT, &[], &[]),
                k("AvailableDeviceCapacity", STRING, OPT, &[], &[]),
                k("IMEI", STRING, OPT, &[], &[]),
                k("MEID", STRING, OPT, &[], &[]),
                k("ModemFirmwareVersion", STRING, OPT, &[], &[]),
                k("CellularTechnology", STRING, OPT, &[], &[]),
                k("BatteryLevel", STRING, OPT, &[], &[]),
                k("HasBattery", STRING, OPT, &[], &[]),
                k("IsSupervised", STRING, OPT, &[], &[]),
                k("IsMultiUser", STRING, OPT, &[], &[]),
                k("IsDeviceLocatorServiceEnabled", STRING, OPT, &[], &[]),
                k("IsActivationLockEnabled", STRING, OPT, &[], &[]),
                k("IsActivationLockSupported", STRING, OPT, &[], &[]),
                k("IsDoNotDisturbInEffect", STRING, OPT, &[], &[]),
                k("DeviceID", STRING, OPT, &[], &[]),
                k("EASDeviceIdentifier", STRING, OPT, &[], &[]),
                k("IsCloudBackupEnabled", STRING, OPT, &[], &[]),
                k("ActiveManagedUsers", STRING, OPT, &[], &[]),
                k("OSUpdateSettings", STRING, OPT, &[], &[]),
                k("LocalHostName", STRING, OPT, &[], &[]),
                k("HostName", STRING, OPT, &[], &[]),
                k("AutoSetupAdminAccounts", STRING, OPT, &[], &[]),
                k("SystemIntegrityProtectionEnabled", STRING, OPT, &[], &[]),
                k("SupportsLOMDevice", STRING, OPT, &[], &[]),
                k("IsMDMLostModeEnabled", STRING, OPT, &[], &[]),
                k("MaximumResidentUsers", STRING, OPT, &[], &[]),
                k("EstimatedResidentUsers", STRING, OPT, &[], &[]),
                k("QuotaSize", STRING, OPT, &[], &[]),
                k("ResidentUsers", STRING, OPT, &[], &[]),
                k("UserSessionTimeout", STRING, OPT, &[], &[]),
                k("TemporarySessionTimeout", STRING, OPT, &[], &[]),
                k("TemporarySessionOnly", STRING, OPT, &[], &[]),
                k("ManagedAppleIDDefaultDomains", STRING, OPT, &[], &[]),
                k("OnlineAuthenticationGracePeriod", STRING, OPT, &[], &[]),
                k("SkipLanguageAndLocaleSetupForNewUsers", STRING, OPT, &[], &[]),
                k("PushToken", STRING, OPT, &[], &[]),
                k("DiagnosticSubmissionEnabled", STRING, OPT, &[], &[]),
                k("AppAnalyticsEnabled", STRING, OPT, &[], &[]),
                k("TimeZone", STRING, OPT, &[], &[]),
                k("ICCID", STRING, OPT, &[], &[]),
                k("BluetoothMAC", STRING, OPT, &[], &[]),
                k("WiFiMAC", STRING, OPT, &[], &[]),
                k("EthernetMAC", STRING, OPT, &[], &[]),
                k("CurrentCarrierNetwork", STRING, OPT, &[], &[]),
                k("SIMCarrierNetwork", STRING, OPT, &[], &[]),
                k("SubscriberCarrierNetwork", STRING, OPT, &[], &[]),
                k("CarrierSettingsVersion", STRING, OPT, &[], &[]),
                k("PhoneNumber", STRING, OPT, &[], &[]),
                k("DataRoamingEnabled", STRING, OPT, &[], &[]),
                k("VoiceRoamingEnabled", STRING, OPT, &[], &[]),
                k("PersonalHotspotEnabled", STRING, OPT, &[], &[]),
                k("IsNetworkTethered", STRING, OPT, &[], &[]),
                k("IsRoaming", STRING, OPT, &[], &[]),
                k("SubscriberMCC", STRING, OPT, &[], &[]),
                k("SubscriberMNC", STRING, OPT, &[], &[]),
                k("CurrentMCC", STRING, OPT, &[], &[]),
                k("CurrentMNC", STRING, OPT, &[], &[]),
                k("ServiceSubscriptions", STRING, OPT, &[], &[]),
                k("PINRequiredForEraseDevice", STRING, OPT, &[], &[]),
                k("PINRequiredForDeviceLock", STRING, OPT, &[], &[]),
                k("SupportsiOSAppInstalls", STRING, OPT, &[], &[]),
                k("SoftwareUpdateDeviceID", STRING, OPT, &[], &[]),
                k("SoftwareUpdateSettings", STRING, OPT, &[], &[]),
                k("AccessibilitySettings", STRING, OPT, &[], &[]),
                k("DevicePropertiesAttestation", STRING, OPT, &[], &[]),
                k("EACSPreflight", STRING, OPT, &[], &[]),
            ]),
        ]),
        k("DeviceAttestationNonce", DATA, OPT, &[], &[]),
    ] },
    Schema { request_type: "SecurityInfo", keys: &[] },
    Schema { request_type: "LOMDeviceRequest", keys: &[
        k("RequestList", ARRAY, REQ, &[], &[
            k("RequestListItem", DICT, REQ, &[], &[
                k("DeviceRequestType", STRING, REQ, &[S("PowerON"), S("PowerOFF"), S("Reset")], &[]),
                k("DeviceRequestUUID", STRING, REQ, &[], &[]),
                k("DeviceDNSName", STRING, REQ, &[], &[]),
                k("PrimaryIPv6AddressList", ARRAY, REQ, &[], &[
                    k("PrimaryIPv6AddressListItem", STRING, REQ, &[], &[]),
                ]),
                k("SecondaryIPv6AddressList", ARRAY, REQ, &[], &[
                    k("SecondaryIPv6AddressListItem", STRING, REQ, &[], &[]),
                ]),
                k("LOMProtocolVersion", INTEGER, REQ, &[], &[]),
            ]),
        ]),
    ] },
    Schema { request_type: "LOMSetupRequest", keys: &[] },
    Schema { request_type: "ManagedApplicationAttributes", keys: &[
        k("Identifiers", ARRAY, REQ, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "ManagedApplicationConfiguration", keys: &[
        k("Identifiers", ARRAY, REQ, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
    ] },
    Schema { request_type: "ManagedApplicationFeedback", keys: &[
        k("Identifiers", ARRAY, REQ, &[], &[
            k("IdentifiersItem", STRING, OPT, &[], &[]),
        ]),
        k("DeleteFeedback", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "InstallMedia", keys: &[
        k("iTunesStoreID", INTEGER, OPT, &[], &[]),
        k("MediaURL", STRING, OPT, &[], &[]),
        k("MediaType", STRING, REQ, &[S("Book")], &[]),
        k("PersistentID", STRING, OPT, &[], &[]),
        k("Kind", STRING, OPT, &[S("pdf"), S("epub"), S("ibooks")], &[]),
        k("Version", STRING, OPT, &[], &[]),
        k("Author", STRING, OPT, &[], &[]),
        k("Title", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "ManagedMediaList", keys: &[] },
    Schema { request_type: "RemoveMedia", keys: &[
        k("MediaType", STRING, REQ, &[S("Book")], &[]),
        k("iTunesStoreID", STRING, OPT, &[], &[]),
        k("PersistentID", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "RequestMirroring", keys: &[
        k("DestinationName", STRING, OPT, &[], &[]),
        k("DestinationDeviceID", STRING, OPT, &[], &[]),
        k("ScanTime", INTEGER, OPT, &[], &[]),
        k("Password", STRING, OPT, &[], &[]),
    ] },
    Schema { request_type: "StopMirroring", keys: &[] },
    Schema { request_type: "ClearPasscode", keys: &[
        k("UnlockToken", DATA, REQ, &[], &[]),
    ] },
    Schema { request_type: "SetFirmwarePassword", keys: &[
        k("CurrentPassword", STRING, OPT, &[], &[]),
        k("NewPassword", STRING, REQ, &[], &[]),
        k("AllowOroms", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "VerifyFirmwarePassword", keys: &[
        k("Password", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "SetRecoveryLock", keys: &[
        k("CurrentPassword", STRING, OPT, &[], &[]),
        k("NewPassword", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "VerifyRecoveryLock", keys: &[
        k("Password", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "RequestUnlockToken", keys: &[] },
    Schema { request_type: "InstallProfile", keys: &[
        k("Payload", DATA, REQ, &[], &[]),
    ] },
    Schema { request_type: "ProfileList", keys: &[
        k("ManagedOnly", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "InstallProvisioningProfile", keys: &[
        k("ProvisioningProfile", DATA, REQ, &[], &[]),
    ] },
    Schema { request_type: "ProvisioningProfileList", keys: &[
        k("ManagedOnly", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "RemoveProvisioningProfile", keys: &[
        k("UUID", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "RemoveProfile", keys: &[
        k("Identifier", STRING, REQ, &[], &[]),
    ] },
    Schema { request_type: "DisableRemoteDesktop", keys: &[] },
    Schema { request_type: "EnableRemoteDesktop", keys: &[] },
    Schema { request_type: "RotateFileVaultKey", keys: &[
        k("KeyType", STRING, REQ, &[S("personal"), S("institutional")], &[]),
        k("FileVaultUnlock", DICT, REQ, &[], &[
            k("Password", STRING, OPT, &[], &[]),
            k("PrivateKeyExport", DATA, OPT, &[], &[]),
            k("PrivateKeyExportPassword", STRING, OPT, &[], &[]),
        ]),
        k("NewCertificate", DATA, OPT, &[], &[]),
        k("ReplyEncryptionCertificate", DATA, OPT, &[], &[]),
    ] },
    Schema { request_type: "SetAutoAdminPassword", keys: &[
        k("GUID", STRING, REQ, &[], &[]),
        k("passwordHash", DATA, REQ, &[], &[]),
    ] },
    Schema { request_type: "Settings", keys: &[
        k("Settings", ARRAY, REQ, &[], &[
            k("Wallpaper", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("Wallpaper")], &[]),
                k("Image", DATA, REQ, &[], &[]),
                k("Where", INTEGER, REQ, &[I(1), I(2), I(3)], &[]),
            ]),
            k("DataRoaming", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("DataRoaming")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("VoiceRoaming", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("VoiceRoaming")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("PersonalHotspot", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("PersonalHotspot")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("Bluetooth", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("Bluetooth")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("ApplicationConfiguration", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("ApplicationConfiguration")], &[]),
                k("Identifier", STRING, REQ, &[], &[]),
                k("Configuration", DICT, OPT, &[], &[
                    k("ANY", ANY, OPT, &[], &[]),
                ]),
            ]),
            k("ApplicationAttributes", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("ApplicationAttributes")], &[]),
                k("Identifier", STRING, REQ, &[], &[]),
                k("Attributes", DICT, OPT, &[], &[
                    k("VPNUUID", STRING, OPT, &[], &[]),
                    k("ContentFilterUUID", STRING, OPT, &[], &[]),
                    k("DNSProxyUUID", STRING, OPT, &[], &[]),
                    k("RelayUUID", STRING, OPT, &[], &[]),
                    k("AssociatedDomains", ARRAY, OPT, &[], &[
                        k("AssociatedDomain", STRING, OPT, &[], &[]),
                    ]),
                    k("AssociatedDomainsEnableDirectDownloads", BOOLEAN, OPT, &[], &[]),
                    k("Removable", BOOLEAN, OPT, &[], &[]),
                    k("TapToPayScreenLock", BOOLEAN, OPT, &[], &[]),
                    k("CellularSliceUUID", STRING, OPT, &[], &[]),
                    k("Hideable", BOOLEAN, OPT, &[], &[]),
                    k("Lockable", BOOLEAN, OPT, &[], &[]),
                ]),
            ]),
            k("DeviceName", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("DeviceName")], &[]),
                k("DeviceName", STRING, REQ, &[], &[]),
            ]),
            k("HostName", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("HostName")], &[]),
                k("HostName", STRING, REQ, &[], &[]),
            ]),
            k("OrganizationInfo", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("OrganizationInfo")], &[]),
                k("OrganizationInfo", DICT, OPT, &[], &[
                    k("OrganizationName", STRING, REQ, &[], &[]),
                    k("OrganizationShortName", STRING, OPT, &[], &[]),
                    k("OrganizationAddress", STRING, OPT, &[], &[]),
                    k("OrganizationPhone", STRING, OPT, &[], &[]),
                    k("OrganizationEmail", STRING, OPT, &[], &[]),
                    k("OrganizationMagic", STRING, OPT, &[], &[]),
                ]),
            ]),
            k("MDMOptions", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("MDMOptions")], &[]),
                k("MDMOptions", DICT, REQ, &[], &[
                    k("ActivationLockAllowedWhileSupervised", BOOLEAN, OPT, &[], &[]),
                    k("BootstrapTokenAllowed", BOOLEAN, OPT, &[], &[]),
                    k("PromptUserToAllowBootstrapTokenForAuthentication", BOOLEAN, OPT, &[], &[]),
                ]),
            ]),
            k("MaximumResidentUsers", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("MaximumResidentUsers")], &[]),
                k("MaximumResidentUsers", INTEGER, REQ, &[], &[]),
            ]),
            k("SharedDeviceConfiguration", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("SharedDeviceConfiguration")], &[]),
                k("QuotaSize", INTEGER, OPT, &[], &[]),
                k("ResidentUsers", INTEGER, OPT, &[], &[]),
                k("UserSessionTimeout", INTEGER, OPT, &[], &[]),
                k("TemporarySessionTimeout", INTEGER, OPT, &[], &[]),
                k("TemporarySessionOnly", BOOLEAN, OPT, &[], &[]),
                k("ManagedAppleIDDefaultDomains", ARRAY, OPT, &[], &[
                    k("AppleID domain", STRING, OPT, &[], &[]),
                ]),
                k("OnlineAuthenticationGracePeriod", INTEGER, OPT, &[], &[]),
                k("SkipLanguageAndLocaleSetupForNewUsers", BOOLEAN, OPT, &[], &[]),
                k("AwaitUserConfiguration", DICT, OPT, &[], &[
                    k("Enabled", BOOLEAN, REQ, &[], &[]),
                ]),
                k("PasscodePolicy", DICT, OPT, &[], &[
                    k("PasscodeLockGracePeriod", INTEGER, OPT, &[I(0), I(60), I(300), I(900), I(3600), I(14400)], &[]),
                    k("AutoLockTime", INTEGER, OPT, &[], &[]),
                ]),
            ]),
            k("DiagnosticSubmission", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("DiagnosticSubmission")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("AppAnalytics", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("AppAnalytics")], &[]),
                k("Enabled", BOOLEAN, REQ, &[], &[]),
            ]),
            k("PasscodeLockGracePeriod", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("PasscodeLockGracePeriod")], &[]),
                k("PasscodeLockGracePeriod", INTEGER, REQ, &[I(0), I(60), I(300), I(900), I(3600), I(14400)], &[]),
            ]),
            k("TimeZone", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("TimeZone")], &[]),
                k("TimeZone", STRING, REQ, &[], &[]),
            ]),
            k("SoftwareUpdateSettings", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("SoftwareUpdateSettings")], &[]),
                k("RecommendationCadence", INTEGER, REQ, &[I(0), I(1), I(2)], &[]),
            ]),
            k("AccessibilitySettings", DICT, OPT, &[], &[
                k("Item", STRING, REQ, &[S("AccessibilitySettings")], &[]),
                k("BoldTextEnabled", BOOLEAN, OPT, &[], &[]),
                k("IncreaseContrastEnabled", BOOLEAN, OPT, &[], &[]),
                k("ReduceMotionEnabled", BOOLEAN, OPT, &[], &[]),
                k("ReduceTransparencyEnabled", BOOLEAN, OPT, &[], &[]),
                k("TextSize", INTEGER, OPT, &[I(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11)], &[]),
                k("TouchAccommodationsEnabled", BOOLEAN, OPT, &[], &[]),
                k("VoiceOverEnabled", BOOLEAN, OPT, &[], &[]),
                k("ZoomEnabled", BOOLEAN, OPT, &[], &[]),
                k("GrayscaleEnabled", BOOLEAN, OPT, &[], &[]),
            ]),
        ]),
    ] },
    Schema { request_type: "AvailableOSUpdates", keys: &[] },
    Schema { request_type: "ScheduleOSUpdateScan", keys: &[
        k("Force", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "ScheduleOSUpdate", keys: &[
        k("Updates", ARRAY, REQ, &[], &[
            k("UpdatesItem", DICT, REQ, &[], &[
                k("ProductKey", STRING, OPT, &[], &[]),
                k("ProductVersion", STRING, OPT, &[], &[]),
                k("InstallAction", STRING, REQ, &[S("Default"), S("DownloadOnly"), S("InstallASAP"), S("NotifyOnly"), S("InstallLater"), S("InstallForceRestart")], &[]),
                k("MaxUserDeferrals", INTEGER, OPT, &[], &[]),
                k("Priority", STRING, OPT, &[S("Low"), S("High")], &[]),
            ]),
        ]),
    ] },
    Schema { request_type: "OSUpdateStatus", keys: &[] },
    Schema { request_type: "UserConfigured", keys: &[] },
    Schema { request_type: "DeleteUser", keys: &[
        k("UserName", STRING, OPT, &[], &[]),
        k("ForceDeletion", BOOLEAN, OPT, &[], &[]),
        k("DeleteAllUsers", BOOLEAN, OPT, &[], &[]),
    ] },
    Schema { request_type: "UserList", keys: &[] },
    Schema { request_type: "LogOutUser", keys: &[] },
    Schema { request_type: "UnlockUserAccount", keys: &[
        k("UserName", STRING, REQ, &[], &[]),
    ] },
];
