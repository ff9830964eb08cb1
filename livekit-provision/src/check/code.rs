//! The stable codes and severities of `check`'s findings: a leaf that `ensure`'s warnings name
//! too, without reaching into the diagnosis itself.

use serde::{Deserialize, Serialize};

/// How bad a finding is. Any `Error` makes the report unhealthy (`check` exits 1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is broken.
    Warning,
    /// Something is broken or will break.
    Error,
}

/// The stable code of a finding (serialized in kebab-case; scripts match on it).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// The state directory does not exist or holds none of the three files.
    NotProvisioned,
    /// Some of the three files are missing.
    PartialTriple,
    /// A file could not be read or parsed.
    Unparsable,
    /// The files name different keys or secrets (browsers get 401).
    KeysDisagree,
    /// The files hold other credentials than the secret store.
    StoreDisagrees,
    /// A file differs from what the current inputs render.
    Drift,
    /// What the inputs render is a set livekit-server crash-looped on, held back: the node
    /// serves the files it served on before (`run/held.json`).
    HeldBack,
    /// A secret-bearing file is readable by group or others.
    Permissions,
    /// A fixed path is a symlink to somewhere outside the state directory.
    SymlinkOutside,
    /// A fixed path is a plain file of an older layout (ensure imports it).
    LegacyLayout,
    /// More than one key in `keys:`, one of which no rotation declares.
    MultipleKeys,
    /// A key is staged (`LIVEKIT_API_KEY_NEXT`) but the `livekit.yaml` on disk does not list
    /// it: livekit-server cannot load it, and it cannot be promoted.
    NextKeyNotListed,
    /// The grace of the previous key is over but the `livekit.yaml` on disk still lists it.
    RetiredKeyListed,
    /// `key_file` is set: livekit-server ignores `keys:`.
    KeyFile,
    /// A secret shorter than 32 characters.
    ShortSecret,
    /// `rtc.use_external_ip: true` overrides the node IP.
    ExternalIp,
    /// `webhook.urls` is set but `webhook.api_key` is not a key of `keys:`: livekit-server
    /// refuses to start (`api_key is required to use webhooks`).
    WebhookKey,
    /// The node IP is not on a local interface.
    NodeIpNotLocal,
    /// The node IP is the 127.0.0.1 default.
    NodeIpDefault,
    /// Temp files of a killed writer are left over.
    Debris,
    /// The secret store could not be read.
    StoreUnreadable,
    /// `provision.yaml` or `extra.yaml` is invalid.
    ConfigInvalid,
    /// `extra.yaml` sets a key the pinned livekit-server release does not know (it would
    /// refuse its config and exit).
    ExtraNotInRelease,
    /// The pinned binary is not installed.
    BinaryMissing,
    /// Another version than the pinned one is installed.
    BinaryVersion,
    /// The installed binary differs from its install manifest (tampered or truncated).
    BinaryTampered,
    /// The livekit-server binary on this node refuses the `livekit.yaml` the current settings,
    /// overlay and secrets render (a key it does not know, at any level): `ensure` will refuse to
    /// publish it, and a server started on it would exit at once.
    ConfigRefused,
    /// The livekit-server binary on this node gave no verdict on that `livekit.yaml` (it did not
    /// answer `ports` as livekit-server does, or did not finish).
    ConfigUnchecked,
    /// The Redis LiveKit routes through (`redis:` in `livekit.yaml`) does not answer or refuses
    /// us; livekit-server refuses to start then.
    RedisUnreachable,
    /// `turn.cert_file` or `turn.key_file` is missing or unreadable by this user.
    TurnTlsUnreadable,
    /// `turn.cert_file` or `turn.key_file` holds no usable PEM certificate chain or key.
    TurnTlsInvalid,
    /// The TURN private key is open to every user.
    TurnKeyPermissions,
    /// The TURN private key belongs to another user than this one and root.
    TurnKeyOwner,
    /// The TURN private key is not the key of the certificate.
    TurnKeyMismatch,
    /// The TURN certificate does not cover `turn.domain`.
    TurnCertDomain,
    /// The TURN certificate has expired.
    TurnCertExpired,
    /// The TURN certificate is not valid yet.
    TurnCertNotYetValid,
    /// The TURN certificate expires within 30 days.
    TurnCertExpiring,
    /// A Redis TLS file of `provision.yaml` (`redis_tls_ca_cert_file`, `…_client_cert_file`,
    /// `…_client_key_file`) cannot be read as a regular file: livekit-server cannot connect.
    RedisTlsUnreadable,
    /// `tls:` is set but there is no certificate yet (ACME has not obtained one).
    TlsMissing,
    /// The TLS certificate cannot be read, or its key is not its key.
    TlsInvalid,
    /// The TLS certificate does not cover `tls.domain` or `tls.turn_domain`.
    TlsNames,
    /// The TLS certificate has expired: browsers refuse `wss://`.
    TlsExpired,
    /// The TLS certificate is past its renewal time (ACME) or expires within 30 days (files).
    TlsExpiring,
    /// The TLS chain's certificates do not follow each other (a missing intermediate).
    TlsChain,
    /// The last ACME attempt failed; the certificate in place (if any) serves on.
    TlsRenewalFailing,
    /// The TLS private key is open to group or others.
    TlsKeyPermissions,
}
