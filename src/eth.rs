//! The Ethereum building blocks of the wallet login: the account key, its
//! address, EIP-712 typed-data signing and signer recovery.
//!
//! The live ETHGas API logs an account in by an EIP-712 signature of the
//! account's secp256k1 key (`ethgas-api.md`, section "Live API"). This module owns
//! everything cryptographic about that, so the login and the login
//! interception share one implementation:
//!
//! - [`WalletKey`] — the key, from `0x…` hex or a Web3 Secret Storage (V3)
//!   keystore (scrypt or PBKDF2-HMAC-SHA256, AES-128-CTR). It is zeroed on
//!   drop and prints only its address; no error ever carries key material or
//!   the keystore password.
//! - [`WalletKey::sign_typed_data`] — `eth_signTypedData_v4`: the typed data as
//!   the server sent it (JSON), hashed per EIP-712 and signed (`0x` r‖s‖v).
//! - [`recover_typed_data_signer`] — the inverse, what a server does.
//!
//! Nothing here is hand-rolled cryptography: the EIP-712 encoding of arbitrary
//! typed data is alloy's dynamic ABI (`alloy-dyn-abi`), Keccak and EIP-55 are
//! `alloy-primitives`, ECDSA with RFC 6979 nonces and recovery is `k256`, and
//! the keystore KDFs and cipher are RustCrypto's `scrypt`, `pbkdf2`, `aes` and
//! `ctr`. What is written here is the glue: the keystore's JSON layout, the
//! limits that keep hostile input cheap, and the error messages.
//!
//! Work is bounded on hostile input: typed data and keystores over
//! [`MAX_JSON_BYTES`] are refused before parsing, and a keystore's KDF
//! parameters are checked against [`MAX_SCRYPT_LOG_N`], [`MAX_SCRYPT_MEMORY`],
//! [`MAX_SCRYPT_WORK`] and [`MAX_PBKDF2_ROUNDS`] before any derivation runs.
//! A keystore unlock at geth's standard parameters still takes about a second
//! of CPU: call [`WalletKey::from_keystore`] off the async workers
//! (`tokio::task::spawn_blocking`).

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Keccak256, hex};
use ctr::cipher::{KeyIvInit, StreamCipher};
use k256::ecdsa::{SigningKey, VerifyingKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

mod eip712;
mod keystore;

pub use eip712::{Eip712Error, recover_typed_data_signer, typed_data_signing_hash};

#[cfg(test)]
use keystore::KeystoreFile;
use keystore::{Aes128Ctr, Kdf, decode_field};

#[cfg(test)]
mod tests;

/// The largest typed-data or keystore JSON accepted. The ETHGas challenge is
/// about 600 bytes and a keystore about 500; anything near this is not one.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Largest scrypt `n` accepted, as log₂: 2^20. geth's standard is 2^18,
/// its "light" setting 2^12, ethers' 2^17.
pub const MAX_SCRYPT_LOG_N: u32 = 20;

/// Largest scrypt working memory accepted (128·r·(n + p) bytes): 512 MiB,
/// twice geth's standard (n = 2^18, r = 8, p = 1 → 256 MiB).
pub const MAX_SCRYPT_MEMORY: u64 = 512 * 1024 * 1024;

/// Largest scrypt work accepted (n·r·p block mixes): 2^24, eight times geth's
/// standard and eth_account's default (both 2^21, about a second on one core).
pub const MAX_SCRYPT_WORK: u64 = 1 << 24;

/// Most PBKDF2 rounds accepted: 2^23, 32 times the 262 144 that geth and the
/// Web3 Secret Storage test vector use.
pub const MAX_PBKDF2_ROUNDS: u64 = 1 << 23;

/// Error details quoted from the typed data are clipped to this many
/// characters, so a hostile document cannot flood a log line.
const MAX_DETAIL_CHARS: usize = 200;

// The key type must wipe its scalar when dropped; fail the build if a k256
// upgrade ever stops promising that.
const _: fn() = || {
    fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroize_on_drop::<SigningKey>();
};

// ---------------------------------------------------------------------------
// Address
// ---------------------------------------------------------------------------

/// A 20-byte Ethereum address: alloy's, which displays as the EIP-55
/// checksummed `0x…` form (`{:#x}` gives the all-lowercase one). Parse one
/// with [`parse_address`], which checks a mixed-case checksum.
pub use alloy_primitives::Address;

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` followed by exactly 40 hex digits.
    #[error("an Ethereum address is \"0x\" followed by 40 hex digits")]
    Format,
    /// Mixed case whose EIP-55 checksum does not match: most likely a typo.
    #[error("the address's mixed-case EIP-55 checksum is wrong (a typo?); check it, or write it all in lowercase")]
    Checksum,
}

/// Parses `0x` + 40 hex digits in any case; a mixed-case string must carry a
/// correct EIP-55 checksum, as wallets write it (alloy's `FromStr` checks
/// none, and takes the digits without `0x` too).
pub fn parse_address(text: &str) -> Result<Address, AddressError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .filter(|d| d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(AddressError::Format)?;
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase()) && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(format!("0x{digits}"), None).map_err(|_| AddressError::Checksum)
    } else {
        Address::from_str(digits).map_err(|_| AddressError::Format)
    }
}

/// The address of a public key: the last 20 bytes of keccak256(x ‖ y).
fn address_of_key(key: &VerifyingKey) -> Address {
    // The uncompressed SEC1 point is 0x04 ‖ x ‖ y.
    let point = key.to_sec1_point(false);
    Address::from_raw_public_key(&point.as_bytes()[1..])
}

// ---------------------------------------------------------------------------
// The key
// ---------------------------------------------------------------------------

/// The account's secp256k1 key.
///
/// The scalar lives in a `k256` [`SigningKey`], which wipes it when dropped
/// (checked at compile time above). There is deliberately no `Clone`: share it
/// behind an `Arc`. `Debug` and `Display` print `WalletKey(0x<address>)`.
pub struct WalletKey {
    signing: SigningKey,
    address: Address,
}

/// Why a key or keystore could not be loaded. No variant carries key
/// material or the password; quoted keystore values are clipped names only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The hex key has the wrong number of digits.
    #[error("the key is not 64 hex digits (found {found} characters after the optional 0x){hint}")]
    Length {
        /// How many characters there were (the length only, never the text).
        found: usize,
        /// A hint when the text looks like something else (a keystore).
        hint: &'static str,
    },
    /// The hex key has a character outside 0-9, a-f, A-F.
    #[error("the key is not 64 hex digits: it contains a character that is not a hex digit")]
    NotHex,
    /// Zero or not below the curve order: not a secp256k1 private key.
    #[error("the key is not a valid secp256k1 private key (zero, or not below the curve order)")]
    OutOfRange,
    /// The keystore is larger than [`MAX_JSON_BYTES`].
    #[error("keystore: {len} bytes is more than the {max} accepted; is this a keystore file?")]
    KeystoreTooLarge {
        /// The size given.
        len: usize,
        /// [`MAX_JSON_BYTES`].
        max: usize,
    },
    /// Not JSON of the Web3 Secret Storage shape.
    #[error("keystore: not a Web3 Secret Storage (V3) file: {0}")]
    KeystoreFormat(String),
    /// A `version` other than 3.
    #[error("keystore: version {0} is not supported; only version 3 (Web3 Secret Storage)")]
    UnsupportedVersion(u64),
    /// A KDF other than scrypt or pbkdf2.
    #[error("keystore: unsupported kdf {0:?}; use scrypt or pbkdf2")]
    UnsupportedKdf(String),
    /// A PBKDF2 PRF other than hmac-sha256.
    #[error("keystore: unsupported pbkdf2 prf {0:?}; only hmac-sha256")]
    UnsupportedPrf(String),
    /// A cipher other than aes-128-ctr.
    #[error("keystore: unsupported cipher {0:?}; only aes-128-ctr")]
    UnsupportedCipher(String),
    /// KDF parameters outside the accepted bounds (absurd or hostile).
    #[error("keystore: {0}")]
    KdfParams(String),
    /// A hex field with the wrong content or length.
    #[error("keystore: `{field}` {problem}")]
    Field {
        /// The JSON path of the field, e.g. `crypto.cipherparams.iv`.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The MAC does not match: wrong password, or a damaged file.
    #[error("keystore: wrong password or corrupt keystore (MAC mismatch)")]
    WrongPassword,
}

impl WalletKey {
    /// The key from hex: `0x…` or bare, 64 digits, any case; surrounding
    /// whitespace (a file's trailing newline) is ignored. Errors never echo
    /// the text.
    pub fn from_hex(text: &str) -> Result<WalletKey, KeyError> {
        let text = text.trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if digits.len() != 64 {
            let hint = if text.starts_with('{') {
                "; this looks like a JSON keystore, which is loaded as a keystore with its password"
            } else {
                ""
            };
            return Err(KeyError::Length {
                found: digits.chars().count(),
                hint,
            });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(digits, bytes.as_mut_slice()).map_err(|_| KeyError::NotHex)?;
        WalletKey::from_bytes(&bytes)
    }

    /// The key from a Web3 Secret Storage (V3) keystore, as geth, eth_account,
    /// ethers and foundry write it: KDF scrypt or pbkdf2 (hmac-sha256), cipher
    /// aes-128-ctr, MAC checked. The password is used exactly as given (strip a
    /// password file's trailing newline before calling, as geth does).
    ///
    /// KDF parameters beyond [`MAX_SCRYPT_LOG_N`], [`MAX_SCRYPT_MEMORY`],
    /// [`MAX_SCRYPT_WORK`] or [`MAX_PBKDF2_ROUNDS`] are refused before any
    /// work. Within them this is CPU-bound for up to a few seconds: run it on
    /// a blocking thread.
    pub fn from_keystore(json: &[u8], password: &[u8]) -> Result<WalletKey, KeyError> {
        if json.len() > MAX_JSON_BYTES {
            return Err(KeyError::KeystoreTooLarge {
                len: json.len(),
                max: MAX_JSON_BYTES,
            });
        }
        let file = keystore::parse(json)?;
        if file.version != 3 {
            return Err(KeyError::UnsupportedVersion(file.version));
        }
        let crypto = file.crypto;
        if crypto.cipher != "aes-128-ctr" {
            return Err(KeyError::UnsupportedCipher(clip(&crypto.cipher)));
        }
        let kdf = Kdf::from_json(&crypto.kdf, crypto.kdfparams)?;

        let mut iv = [0u8; 16];
        decode_field(&crypto.cipherparams.iv, &mut iv, "crypto.cipherparams.iv")?;
        let mut mac = [0u8; 32];
        decode_field(&crypto.mac, &mut mac, "crypto.mac")?;
        let ciphertext = hex::decode(&crypto.ciphertext).map_err(|_| KeyError::Field {
            field: "crypto.ciphertext",
            problem: "is not hex",
        })?;
        // Some old writers dropped a key's leading zero bytes (geth reads those
        // files, see its `31_byte_key` test vector); more than 32 is not a key.
        if ciphertext.is_empty() || ciphertext.len() > 32 {
            return Err(KeyError::Field {
                field: "crypto.ciphertext",
                problem: "is not an encrypted 32-byte key",
            });
        }

        let derived = kdf.derive(password)?;
        // MAC = keccak256(DK[16..32] ‖ ciphertext), compared in constant time.
        let mut hasher = Keccak256::new();
        hasher.update(&derived[16..32]);
        hasher.update(&ciphertext);
        let expected = hasher.finalize();
        if !bool::from(expected.as_slice().ct_eq(&mac)) {
            return Err(KeyError::WrongPassword);
        }

        let mut secret = Zeroizing::new([0u8; 32]);
        let start = 32 - ciphertext.len();
        secret[start..].copy_from_slice(&ciphertext);
        let mut cipher = Aes128Ctr::new_from_slices(&derived[..16], &iv).map_err(|_| KeyError::Field {
            field: "crypto.cipherparams.iv",
            problem: "is not 16 bytes of hex",
        })?;
        cipher.apply_keystream(&mut secret[start..]);
        WalletKey::from_bytes(&secret)
    }

    /// A fresh random key (for the demo: a throwaway account).
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn random() -> WalletKey {
        use k256::elliptic_curve::Generate;
        WalletKey::from_signing(SigningKey::generate())
    }

    /// The account's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// `eth_signTypedData_v4`: the EIP-712 signing hash of `typed_data_json`
    /// (see [`typed_data_signing_hash`]) signed with this key (RFC 6979,
    /// low s). Returns `0x` + 130 hex digits: r ‖ s ‖ v with v = 27 or 28.
    pub fn sign_typed_data(&self, typed_data_json: &str) -> Result<String, Eip712Error> {
        let hash = typed_data_signing_hash(typed_data_json)?;
        let (signature, recovery) = self.signing.sign_prehash_recoverable(&hash);
        if recovery.is_x_reduced() {
            // Probability about 2^-127; Ethereum's v cannot express it.
            return Err(Eip712Error::Signature(
                "the signature's R is not representable in Ethereum's v",
            ));
        }
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + u8::from(recovery.is_y_odd());
        Ok(hex::encode_prefixed(out))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Result<WalletKey, KeyError> {
        let signing = SigningKey::from_slice(bytes).map_err(|_| KeyError::OutOfRange)?;
        Ok(WalletKey::from_signing(signing))
    }

    fn from_signing(signing: SigningKey) -> WalletKey {
        let address = address_of_key(signing.verifying_key());
        WalletKey { signing, address }
    }
}

impl fmt::Debug for WalletKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletKey({})", self.address)
    }
}

impl fmt::Display for WalletKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A displayable value, clipped to [`MAX_DETAIL_CHARS`] characters.
fn clip(value: &dyn fmt::Display) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}
