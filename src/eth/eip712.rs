//! EIP-712 typed data: the signing hash of a document given as JSON (what
//! `eth_signTypedData_v4` signs), signer recovery for the mock, and the
//! ETHGas login challenge. The encoding is alloy's dynamic ABI; what is here
//! is the tolerance for the shapes wallets and servers send, and the errors.

use alloy_dyn_abi::{Eip712Domain, Resolver, TypedData};
use alloy_primitives::{Keccak256, hex};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde::Deserialize;

use super::{Address, MAX_JSON_BYTES, address_of_key, clip};

/// Why typed data could not be hashed, signed, or its signer recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Eip712Error {
    /// The JSON text is larger than [`MAX_JSON_BYTES`].
    #[error("typed data: {len} bytes is more than the {max} accepted")]
    TooLarge {
        /// The size given.
        len: usize,
        /// [`MAX_JSON_BYTES`].
        max: usize,
    },
    /// Not JSON, or not the typed-data shape (e.g. "missing field `primaryType`").
    #[error("typed data: {0}")]
    Json(String),
    /// Well-formed JSON that EIP-712 cannot encode (unknown type, a value that
    /// does not fit its type, a cycle between types, …).
    #[error("typed data: cannot be encoded as EIP-712: {0}")]
    Encode(String),
    /// The signature string is malformed or does not recover to a key.
    #[error("signature: {0}")]
    Signature(&'static str),
}

/// The EIP-712 signing hash, `keccak256(0x19 0x01 ‖ domainSeparator ‖
/// hashStruct(message))`, of typed data given as JSON text — what
/// `eth_signTypedData_v4` signs.
///
/// Tolerated: `chainId` as a number, a decimal string or a `0x` hex string;
/// keys in any order and unknown top-level keys; the whole document encoded
/// once more as a JSON string. The domain separator follows the document's
/// own `types.EIP712Domain` (fields, order, extra fields such as
/// `httpOrigin`), as MetaMask and geth do; when that entry is missing it is
/// derived from the `domain` fields present, as ethers and alloy do.
pub fn typed_data_signing_hash(typed_data_json: &str) -> Result<[u8; 32], Eip712Error> {
    if typed_data_json.len() > MAX_JSON_BYTES {
        return Err(Eip712Error::TooLarge {
            len: typed_data_json.len(),
            max: MAX_JSON_BYTES,
        });
    }
    let mut value: serde_json::Value =
        serde_json::from_str(typed_data_json).map_err(|e| Eip712Error::Json(clip(&e)))?;
    if let serde_json::Value::String(inner) = &value {
        // The document as a JSON string (as `eip712Message` carries it).
        value = serde_json::from_str(inner).map_err(|e| Eip712Error::Json(clip(&e)))?;
    }
    let shape = TypedDataShape::deserialize(value).map_err(|e| Eip712Error::Json(clip(&e)))?;
    let domain_json = shape.domain.unwrap_or_else(|| serde_json::json!({}));
    let has_domain_type = shape.types.contains_type_name("EIP712Domain");
    let mut typed = TypedData {
        domain: Eip712Domain::default(),
        resolver: shape.types,
        primary_type: shape.primary_type,
        message: shape.message,
    };

    let encode = |e: alloy_dyn_abi::Error| Eip712Error::Encode(clip(&e));
    // alloy's own rule (after eth-sig-util): primaryType EIP712Domain signs
    // the domain separator alone.
    let message_hash = if typed.primary_type == "EIP712Domain" {
        None
    } else {
        Some(typed.hash_struct().map_err(encode)?)
    };
    let separator = if has_domain_type {
        // hashStruct(EIP712Domain, domain) with the declared domain type,
        // through the same resolver as the message.
        typed.primary_type = "EIP712Domain".to_owned();
        typed.message = domain_json;
        typed.hash_struct().map_err(encode)?
    } else {
        let domain = Eip712Domain::deserialize(&domain_json).map_err(|e| Eip712Error::Json(clip(&e)))?;
        domain.separator()
    };

    let mut hasher = Keccak256::new();
    hasher.update([0x19, 0x01]);
    hasher.update(separator);
    if let Some(message_hash) = message_hash {
        hasher.update(message_hash);
    }
    Ok(hasher.finalize().0)
}

/// The address whose key produced `signature` over the typed data: what the
/// server does with a login signature. `signature` is `0x` + 130 hex digits
/// (r ‖ s ‖ v), v = 27/28 or 0/1; the `0x` may be left out. Any valid
/// signature recovers to *some* address: compare it with the one expected.
pub fn recover_typed_data_signer(typed_data_json: &str, signature: &str) -> Result<Address, Eip712Error> {
    let digits = signature
        .strip_prefix("0x")
        .or_else(|| signature.strip_prefix("0X"))
        .unwrap_or(signature);
    let mut bytes = [0u8; 65];
    if digits.len() != 130 || hex::decode_to_slice(digits, &mut bytes).is_err() {
        return Err(Eip712Error::Signature(
            "not \"0x\" followed by 130 hex digits (r, s, v)",
        ));
    }
    let odd = match bytes[64] {
        0 | 27 => false,
        1 | 28 => true,
        _ => return Err(Eip712Error::Signature("v must be 27 or 28 (or 0 or 1)")),
    };
    let signature = Signature::from_slice(&bytes[..64])
        .map_err(|_| Eip712Error::Signature("r or s is zero or not below the curve order"))?;
    let hash = typed_data_signing_hash(typed_data_json)?;
    let key = VerifyingKey::recover_from_prehash(&hash, &signature, RecoveryId::new(odd, false))
        .map_err(|_| Eip712Error::Signature("does not recover to a public key"))?;
    Ok(address_of_key(&key))
}

/// The typed-data document as parsed here rather than through alloy's own
/// `Deserialize`, which tries two shapes and so reports every mistake as
/// "did not match any variant"; this one names the missing field.
#[derive(Deserialize)]
struct TypedDataShape {
    types: Resolver,
    #[serde(rename = "primaryType")]
    primary_type: String,
    #[serde(default)]
    domain: Option<serde_json::Value>,
    #[serde(default)]
    message: serde_json::Value,
}
