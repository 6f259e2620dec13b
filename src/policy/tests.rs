use http::Method;

use super::{Class, classify};

/// Every endpoint of the live API's reference (ethgas-api.md), with the
/// method the reference gives it, and the class it must get.
const REFERENCE: &[(&str, &str, Class)] = &[
    // Public market data.
    ("GET", "/api/v1/p/inclusion-preconf/markets", Class::Public),
    ("GET", "/api/v1/p/inclusion-preconf/market", Class::Public),
    ("GET", "/api/v1/p/inclusion-preconf/trades", Class::Public),
    ("GET", "/api/v1/p/inclusion-preconf/top-sales", Class::Public),
    ("GET", "/api/v1/p/wholeblock/markets", Class::Public),
    ("GET", "/api/v1/p/wholeblock/orders", Class::Public),
    ("GET", "/api/v1/p/wholeblock/positions", Class::Public),
    ("GET", "/api/v1/p/wholeblock/trades", Class::Public),
    ("GET", "/api/v1/p/validators", Class::Public),
    ("GET", "/api/v1/p/builders", Class::Public),
    ("GET", "/api/v1/p/builder/123456", Class::Public),
    ("GET", "/api/v1/p/bundles", Class::Public),
    ("GET", "/api/v1/p/tokens", Class::Public),
    ("GET", "/api/v1/p/network", Class::Public),
    ("GET", "/api/v1/p/user/fees", Class::Public),
    ("GET", "/api/v1/p/funding/contractAddress", Class::Public),
    ("GET", "/api/v1/p/funding/withdraw/dailyWithdrawLimits", Class::Public),
    // Account reads.
    ("GET", "/api/v1/user/info", Class::Read),
    ("GET", "/api/v1/user/accounts", Class::Read),
    ("GET", "/api/v1/user/account/2171", Class::Read),
    ("GET", "/api/v1/user/account/2171/txs", Class::Read),
    ("GET", "/api/v1/user/account/txs", Class::Read),
    ("GET", "/api/v1/user/inclusion-preconf/orders", Class::Read),
    ("GET", "/api/v1/user/inclusion-preconf/all-orders", Class::Read),
    ("GET", "/api/v1/user/inclusion-preconf/positions", Class::Read),
    ("GET", "/api/v1/user/inclusion-preconf/txs", Class::Read),
    ("GET", "/api/v1/user/wholeblock/orders", Class::Read),
    ("GET", "/api/v1/user/wholeblock/all-orders", Class::Read),
    ("GET", "/api/v1/user/wholeblock/positions", Class::Read),
    ("GET", "/api/v1/user/wholeblock/txs", Class::Read),
    ("GET", "/api/v1/user/funding/deposits", Class::Read),
    ("GET", "/api/v1/user/funding/withdraws", Class::Read),
    ("GET", "/api/v1/user/funding/withdraw/status", Class::Read),
    ("GET", "/api/v1/user/validators", Class::Read),
    ("GET", "/api/v1/user/pricer", Class::Read),
    ("GET", "/api/v1/user/builder", Class::Read),
    ("GET", "/api/v1/user/delegate/builder", Class::Read),
    ("GET", "/api/v1/pricer/markets/active", Class::Read),
    ("GET", "/api/v1/pricer/account-tokens", Class::Read),
    ("GET", "/api/v1/pricer/inclusion-preconf/orders", Class::Read),
    ("GET", "/api/v1/pricer/inclusion-preconf/positions", Class::Read),
    ("GET", "/api/v1/pricer/wholeblock/orders", Class::Read),
    ("GET", "/api/v1/pricer/wholeblock/positions", Class::Read),
    ("GET", "/api/v1/builder/delegation", Class::Read),
    ("GET", "/api/v1/builder/signingMessage", Class::Read),
    ("GET", "/api/v1/slot/bundles", Class::Read),
    ("GET", "/api/v1/slot/forceEmptyBlockSpace", Class::Read),
    ("GET", "/api/v1/account/slot/bundles", Class::Read),
    ("GET", "/api/v1/validator/fees", Class::Read),
    ("GET", "/api/v1/validator/onchain/payout", Class::Read),
    // Trading.
    ("POST", "/api/v1/inclusion-preconf/order", Class::Trade),
    ("POST", "/api/v1/inclusion-preconf/cancel-order", Class::Trade),
    ("POST", "/api/v1/inclusion-preconf/cancel-all-orders", Class::Trade),
    ("POST", "/api/v1/inclusion-preconf/cancel-batch-orders", Class::Trade),
    ("POST", "/api/v1/inclusion-preconf/cancel-batch-oders", Class::Trade),
    ("POST", "/api/v1/wholeblock/order", Class::Trade),
    ("POST", "/api/v1/wholeblock/cancel-order", Class::Trade),
    ("POST", "/api/v1/wholeblock/cancel-all-orders", Class::Trade),
    ("POST", "/api/v1/wholeblock/cancel-batch-orders", Class::Trade),
    ("POST", "/api/v1/user/bundle/send", Class::Trade),
    ("POST", "/api/v1/user/inclusion-preconf/market/update", Class::Trade),
    // Account settings.
    ("POST", "/api/v1/user/update", Class::Settings),
    ("POST", "/api/v1/user/collateralPerSlot", Class::Settings),
    ("POST", "/api/v1/validator/settings", Class::Settings),
    // Money and identity.
    ("POST", "/api/v1/user/funding/withdraw", Class::Funds),
    ("POST", "/api/v1/user/account/transfer/token", Class::Funds),
    ("POST", "/api/v1/user/payoutAddress", Class::Funds),
    ("POST", "/api/v1/user/delegate/builder", Class::Funds),
    ("POST", "/api/v1/user/delegate/pricer", Class::Funds),
    ("POST", "/api/v1/builder/register", Class::Funds),
    ("POST", "/api/v1/builder/deregister", Class::Funds),
    ("POST", "/api/v1/validator/register", Class::Funds),
    ("POST", "/api/v1/validator/deregister", Class::Funds),
    ("POST", "/api/v1/validator/verify", Class::Funds),
    // The documented flavour's own calls (beyond the account calls, which
    // interception answers before any policy).
    ("GET", "/api/v1/user/info", Class::Read),
    // Unknown calls.
    ("POST", "/api/v1/user/something-new", Class::Unclassified),
    ("DELETE", "/api/v1/user/info", Class::Unclassified),
    ("GET", "/api/v1/anything/new", Class::Read),
    ("GET", "/", Class::Read),
    ("POST", "/", Class::Unclassified),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

#[test]
fn every_reference_endpoint_gets_its_class() {
    for (m, path, class) in REFERENCE {
        assert_eq!(classify(&method(m), path), *class, "{m} {path}");
    }
}

/// A look-alike of a money call is a money call, whatever the method and
/// however the path is spelled: the upstream may route it to the same
/// handler.
#[test]
fn look_alikes_of_money_calls_are_money_calls() {
    let withdraw = [
        "/api/v1/user/funding/withdraw/",
        "//api/v1/user/funding/withdraw",
        "/api/v1//user/funding/withdraw",
        "/API/V1/USER/FUNDING/WITHDRAW",
        "/api/v1/user/funding/%77ithdraw",
        "/api/v1/user/funding/%2577ithdraw",
        "/api/v1/p/../user/funding/withdraw",
        "/api/v1/p/%2e%2e/user/funding/withdraw",
        "/api/v1/p/..;/user/funding/withdraw",
        "/api/v1/user/funding/withdraw;jsessionid=1",
        "/api/v1/user/funding/./withdraw",
        "/api/v1/user\\funding\\withdraw",
        "/api/v1/user/funding/withdraw.json",
        "/api/v1/user/funding/withdraw/anything",
        "/api/v1/user/payoutaddress",
        "/api/v1/user/delegate/builder/",
        "/api/v1/user/funding/withdraw/a/b/c/d/e/f/g/h",
    ];
    for path in withdraw {
        for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert_eq!(classify(&method(m), path), Class::Funds, "{m} {path}");
        }
    }
    // A GET is a read only for the exact paths the reference lists as reads.
    assert_eq!(classify(&Method::GET, "/api/v1/user/funding/withdraw"), Class::Funds);
    assert_eq!(classify(&Method::GET, "/api/v1/user/delegate/builder/x"), Class::Funds);
    assert_eq!(
        classify(&Method::POST, "/api/v1/user/funding/withdraw/status"),
        Class::Funds
    );
}

#[test]
fn public_needs_a_path_below_p_and_trade_look_alikes_stay_trade() {
    assert_eq!(classify(&Method::GET, "/api/v1/p"), Class::Read);
    assert_eq!(classify(&Method::POST, "/api/v1/p/x"), Class::Public);
    assert_eq!(
        classify(&Method::POST, "/api/v1/p/../inclusion-preconf/order"),
        Class::Trade
    );
    assert_eq!(
        classify(&Method::POST, "/api/v1/Inclusion-Preconf/Order/"),
        Class::Trade
    );
    assert_eq!(
        classify(&Method::POST, "/api/v1/user/collateralPerSlot/1"),
        Class::Settings
    );
}

#[test]
fn the_default_allows_everything_but_funds() {
    let allowed = Class::default_allowed();
    assert!(!allowed.contains(&Class::Funds));
    assert_eq!(allowed.len(), Class::ALL.len() - 1);
}
