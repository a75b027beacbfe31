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
#: Other spellings of each name: net-snmp's (`-a SHA-512`, `-x AES192C`,
#: snmpd.conf's createUser), Cisco IOS's (`auth sha`, `priv aes 128`) and the
#: MIB's own object names (SNMP-USER-BASED-SM-MIB, SNMP-USM-AES-MIB, RFC 7860).
#: Matched ignoring case, "-", "_" and blanks; a config keeps the name above.
ALIASES = {
    "MD5": ("HMAC-MD5", "HMAC-MD5-96", "usmHMACMD5AuthProtocol"),
    "SHA": ("SHA1", "SHA-1", "HMAC-SHA", "HMAC-SHA1", "HMAC-SHA-96", "HMAC-SHA1-96", "usmHMACSHAAuthProtocol"),
    "SHA-224": ("HMAC-SHA-224", "HMAC128-SHA-224", "usmHMAC128SHA224AuthProtocol"),
    "SHA-256": ("HMAC-SHA-256", "HMAC192-SHA-256", "usmHMAC192SHA256AuthProtocol"),
    "SHA-384": ("HMAC-SHA-384", "HMAC256-SHA-384", "usmHMAC256SHA384AuthProtocol"),
    "SHA-512": ("HMAC-SHA-512", "HMAC384-SHA-512", "usmHMAC384SHA512AuthProtocol"),
    "DES": ("CBC-DES", "DES-CBC", "DES-56", "usmDESPrivProtocol"),
    "3DES": ("3DES-EDE", "DES-EDE3", "3DES-EDE-CBC", "TripleDES", "usm3DESEDEPrivProtocol"),
    "AES": ("AES-128", "AES-CFB-128", "CFB128-AES-128", "usmAesCfb128Protocol"),
    "AES-192": ("AES-CFB-192", "usmAesCfb192Protocol"),
    "AES-256": ("AES-CFB-256", "usmAesCfb256Protocol"),
    "AES-192-C": ("AES-192-Cisco",),
    "AES-256-C": ("AES-256-Cisco",),
}
WEAK = frozenset({"MD5", "DES", "3DES"})
OPT_IN = "allow_weak_protocols"


def _folded(name: str) -> str:
    return "".join(c for c in name.upper() if c not in "-_ \t")


_SPELLINGS = {_folded(spelling): name for name in (*AUTH, *PRIV) for spelling in (name, *ALIASES.get(name, ()))}


def canonical(name: str | None, table: dict[str, object]) -> str | None:
    """The table's name for any accepted spelling of it ("sha-1" -> "SHA"), or None."""
    if name is None:
        return None
    found = _SPELLINGS.get(_folded(name))
    return found if found in table else None


def names(auth: str, priv: str | None) -> tuple[str, str | None]:
    """The table names for a checked pair of spellings (what a config keeps)."""
    return canonical(auth, AUTH) or auth, canonical(priv, PRIV) if priv is not None else None


def weak(auth: str, priv: str | None) -> tuple[str, ...]:
    """The weak protocols among a user's, as "auth_protocol MD5" (auth first)."""
    return tuple(f"{key} {name}" for key, name in (("auth_protocol", auth), ("priv_protocol", priv)) if name in WEAK)


def check(auth: str, priv: str | None, allow_weak: bool, where: str) -> str | None:
    """Why these protocols may not be used (one line naming the rule), or None."""
    if canonical(auth, AUTH) is None:
        return f"{where}: auth_protocol must be one of {', '.join(AUTH)} (or net-snmp's and Cisco's spellings: SHA1, SHA-1, SHA256...)"
    if priv is not None and canonical(priv, PRIV) is None:
        return f"{where}: priv_protocol must be one of {', '.join(PRIV)} (or net-snmp's and Cisco's spellings: AES128, AES-128, AES256C, 3DES-EDE...)"
    found = weak(*names(auth, priv))
    if found and not allow_weak:
        return (f"{where}: {' and '.join(found)} {'is' if len(found) == 1 else 'are'} weak; "
                f"set {OPT_IN} = true for this user to use {'it' if len(found) == 1 else 'them'} anyway")
    return None
