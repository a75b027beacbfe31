"""The USM protocols a config may name, by the names net-snmp's tools and
Cisco's `snmp-server user` use, mapped to pysnmp's protocol OIDs; one table
for the agent (mib_bridge) and the mediation device (mediation), so both
sides of interface d speak the same set.

Deployed mediation devices and Cisco IAPs speak RFC 3414's HMAC-MD5-96,
HMAC-SHA-96 (SHA-1) and CBC-DES, RFC 3826's AES-128, and the 3DES and
AES-192/256 drafts (Reeder, Blumenthal) as net-snmp and pysnmp have them.
MD5, DES and 3DES are weak (broken hash, 56-bit key, 64-bit block): a config
may name them only for a user who opts in with `allow_weak_protocols`.
"""

from __future__ import annotations

from pysnmp.entity import config as snmp_config

AUTH = {
    "MD5": snmp_config.USM_AUTH_HMAC96_MD5,  # HMAC-MD5-96, RFC 3414 6
    "SHA": snmp_config.USM_AUTH_HMAC96_SHA,  # HMAC-SHA-96 (SHA-1), RFC 3414 7
    "SHA-224": snmp_config.USM_AUTH_HMAC128_SHA224,  # RFC 7860
    "SHA-256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA-384": snmp_config.USM_AUTH_HMAC256_SHA384,
    "SHA-512": snmp_config.USM_AUTH_HMAC384_SHA512,
}
PRIV = {
    "DES": snmp_config.USM_PRIV_CBC56_DES,  # CBC-DES, RFC 3414 8
    "3DES": snmp_config.USM_PRIV_CBC168_3DES,  # draft-reeder-snmpv3-usm-3desede
    "AES": snmp_config.USM_PRIV_CFB128_AES,  # AES-128, RFC 3826
    "AES-192": snmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,  # net-snmp's AES-192/AES-256
    "AES-256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES-192-C": snmp_config.USM_PRIV_CFB192_AES,  # Cisco's key extension (Reeder)
    "AES-256-C": snmp_config.USM_PRIV_CFB256_AES,
}
WEAK = frozenset({"MD5", "DES", "3DES"})
OPT_IN = "allow_weak_protocols"


def weak(auth: str, priv: str | None) -> tuple[str, ...]:
    """The weak protocols among a user's, as "auth_protocol MD5" (auth first)."""
    return tuple(f"{key} {name}" for key, name in (("auth_protocol", auth), ("priv_protocol", priv)) if name in WEAK)


def check(auth: str, priv: str | None, allow_weak: bool, where: str) -> str | None:
    """Why these protocols may not be used (one line naming the rule), or None."""
    if auth not in AUTH:
        return f"{where}: auth_protocol must be one of {', '.join(AUTH)}"
    if priv is not None and priv not in PRIV:
        return f"{where}: priv_protocol must be one of {', '.join(PRIV)}"
    found = weak(auth, priv)
    if found and not allow_weak:
        return (f"{where}: {' and '.join(found)} {'is' if len(found) == 1 else 'are'} weak; "
                f"set {OPT_IN} = true for this user to use {'it' if len(found) == 1 else 'them'} anyway")
    return None
