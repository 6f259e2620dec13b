//! The live flavour's signature check, as the service does it: an address
//! as a wallet writes it, and the address whose key signed the login
//! challenge (EIP-712 hash by alloy's dynamic ABI, recovery by k256).

use alloy_dyn_abi::TypedData;
use alloy_primitives::{Address, hex};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

/// `0x` + 40 hex digits in one case, or mixed case with a correct EIP-55
/// checksum.
pub(crate) fn parse_address(text: &str) -> Option<Address> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if digits.len() != 40 {
        return None;
    }
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase()) && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(format!("0x{digits}"), None).ok()
    } else {
        digits.parse().ok()
    }
}

/// The address whose key produced `signature` (`0x` r ‖ s ‖ v, v = 27/28 or
/// 0/1) over the typed data; `None` for a signature that is not one. Any
/// valid signature recovers to *some* address: compare it with the one
/// expected.
pub(crate) fn recover_signer(typed_data_json: &str, signature: &str) -> Option<Address> {
    let digits = signature
        .strip_prefix("0x")
        .or_else(|| signature.strip_prefix("0X"))
        .unwrap_or(signature);
    let mut bytes = [0u8; 65];
    if digits.len() != 130 {
        return None;
    }
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    let odd = match bytes[64] {
        0 | 27 => false,
        1 | 28 => true,
        _ => return None,
    };
    let signature = Signature::from_slice(&bytes[..64]).ok()?;
    let typed: TypedData = serde_json::from_str(typed_data_json).ok()?;
    let hash = typed.eip712_signing_hash().ok()?;
    let key = VerifyingKey::recover_from_prehash(hash.as_slice(), &signature, RecoveryId::new(odd, false)).ok()?;
    let point = key.to_sec1_point(false);
    Some(Address::from_raw_public_key(&point.as_bytes()[1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keccak256("cow"), the signing key of EIP-712's example, and its address.
    const COW_KEY: &str = "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4";
    const COW_ADDRESS: &str = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";

    #[test]
    fn addresses_parse_as_wallets_write_them() {
        let cow = parse_address(COW_ADDRESS).unwrap();
        assert_eq!(parse_address(&COW_ADDRESS.to_lowercase()), Some(cow));
        assert_eq!(
            parse_address(&format!("0x{}", COW_ADDRESS[2..].to_uppercase())),
            Some(cow)
        );
        // A mixed-case spelling with a wrong checksum, no prefix, wrong length.
        assert_eq!(parse_address(&COW_ADDRESS.replace("CD2a", "Cd2a")), None);
        assert_eq!(parse_address(&COW_ADDRESS[2..]), None);
        assert_eq!(parse_address("0x1234"), None);
        assert_eq!(parse_address("0xzz2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"), None);
    }

    #[test]
    fn the_login_signature_recovers_to_its_key_and_only_for_its_challenge() {
        let key = k256::ecdsa::SigningKey::from_slice(&hex::decode(COW_KEY).unwrap()).unwrap();
        let challenge = ethgas_api::login_typed_data("52a90c73", 32382);
        let typed: TypedData = serde_json::from_str(&challenge).unwrap();
        let hash = typed.eip712_signing_hash().unwrap();
        let (sig, id) = key.sign_prehash_recoverable(hash.as_slice());
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(27 + u8::from(id.is_y_odd()));
        let signature = hex::encode_prefixed(&bytes);
        assert_eq!(recover_signer(&challenge, &signature), parse_address(COW_ADDRESS));
        let other = ethgas_api::login_typed_data("52a90c74", 32382);
        assert_ne!(recover_signer(&other, &signature), parse_address(COW_ADDRESS));
        assert_eq!(recover_signer(&challenge, "0x12"), None);
        assert_eq!(recover_signer("not json", &signature), None);
    }
}
