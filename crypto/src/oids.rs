//! The object identifiers vdx reads and writes, with the RFC that defines each group.

use const_oid::ObjectIdentifier as Oid;

// RFC 5652 content types and attributes.
pub(crate) const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// RFC 5083.
pub(crate) const AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");
pub(crate) const ATTR_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub(crate) const ATTR_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
pub(crate) const ATTR_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");

// Digests (RFC 5754).
pub(crate) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub(crate) const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// RSA (RFC 8017, RFC 4055).
pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
pub(crate) const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
pub(crate) const P_SPECIFIED: Oid = Oid::new_unwrap("1.2.840.113549.1.1.9");
pub(crate) const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const SHA224_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.14");

// EC (RFC 5480, RFC 5753, SEC 1).
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const ECDSA_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
pub(crate) const ECDSA_SHA224: Oid = Oid::new_unwrap("1.2.840.10045.4.3.1");
pub(crate) const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub(crate) const DH_STD_SHA1KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
pub(crate) const DH_COFACTOR_SHA1KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.3");
pub(crate) const DH_STD_SHA224KDF: Oid = Oid::new_unwrap("1.3.132.1.11.0");
pub(crate) const DH_STD_SHA256KDF: Oid = Oid::new_unwrap("1.3.132.1.11.1");
pub(crate) const DH_STD_SHA384KDF: Oid = Oid::new_unwrap("1.3.132.1.11.2");
pub(crate) const DH_STD_SHA512KDF: Oid = Oid::new_unwrap("1.3.132.1.11.3");
pub(crate) const DH_COFACTOR_SHA224KDF: Oid = Oid::new_unwrap("1.3.132.1.14.0");
pub(crate) const DH_COFACTOR_SHA256KDF: Oid = Oid::new_unwrap("1.3.132.1.14.1");
pub(crate) const DH_COFACTOR_SHA384KDF: Oid = Oid::new_unwrap("1.3.132.1.14.2");
pub(crate) const DH_COFACTOR_SHA512KDF: Oid = Oid::new_unwrap("1.3.132.1.14.3");

// AES (RFC 3565, RFC 5084).
pub(crate) const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
pub(crate) const AES192_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.25");
pub(crate) const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
pub(crate) const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
pub(crate) const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
pub(crate) const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
pub(crate) const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
pub(crate) const AES192_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.26");
pub(crate) const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
/// Triple-DES CBC, still written by some older tools (RFC 3370).
pub(crate) const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");

/// The OpenSSL digest for a digest OID, if we support it.
pub(crate) fn digest(oid: &Oid) -> Option<openssl::hash::MessageDigest> {
    use openssl::hash::MessageDigest as M;
    Some(match *oid {
        SHA1 => M::sha1(),
        SHA224 => M::sha224(),
        SHA256 => M::sha256(),
        SHA384 => M::sha384(),
        SHA512 => M::sha512(),
        _ => return None,
    })
}
