//! `[[shop.variant]]`: the demo shop's own variants, the matrix's second axis when a scenario
//! needs more than a session store (a rate limit, how a shared cart is written). Without
//! variants the axis is `[matrix] sessions`, one plain variant per store.

use serde::Deserialize;

use super::duration::Dur;
use crate::cart_write::CartWrite;
use crate::limiter::RateStore;
use crate::sessions::SessionStore;

/// `[shop]`: options of the demo shop's backends.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ShopSpec {
    /// The variants to run, in place of `[matrix] sessions`.
    #[serde(default, rename = "variant")]
    pub variants: Vec<ShopVariant>,
}

/// One way to run the demo shop: its session store and the options that change its behaviour.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ShopVariant {
    /// Shown as the cell's second coordinate.
    pub name: String,
    /// Where the sessions live.
    #[serde(default = "default_sessions")]
    pub sessions: SessionStore,
    /// Requests a session may make in any sliding second (0: no limit).
    #[serde(default)]
    pub rate_limit: u32,
    /// Where the limit counts.
    #[serde(default)]
    pub rate_store: RateStore,
    /// How a `shared` cart is updated.
    #[serde(default)]
    pub cart_write: CartWrite,
    /// Read-modify-write: the pause between reading the cart and writing it back.
    pub rmw_delay: Option<Dur>,
}

fn default_sessions() -> SessionStore {
    SessionStore::Local
}

impl ShopVariant {
    /// The plain variant of a session store, named after it.
    pub fn of_store(s: SessionStore) -> ShopVariant {
        ShopVariant {
            name: s.name().to_string(),
            sessions: s,
            rate_limit: 0,
            rate_store: RateStore::Memory,
            cart_write: CartWrite::Rmw,
            rmw_delay: None,
        }
    }

    /// Whether its backends need the lab's redis-server.
    pub fn uses_redis(&self) -> bool {
        self.sessions.uses_redis() || (self.rate_limit > 0 && self.rate_store == RateStore::Redis)
    }

    /// Arguments of `tether-bench backend` beyond id, address, store and token lifetime.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.rate_limit > 0 {
            a.extend([
                "--rate-limit".to_string(),
                self.rate_limit.to_string(),
                "--rate-store".into(),
                self.rate_store.name().into(),
            ]);
        }
        if self.cart_write != CartWrite::Rmw {
            a.extend(["--cart-write".to_string(), self.cart_write.name().into()]);
        }
        if let Some(d) = self.rmw_delay {
            a.extend(["--rmw-delay-ms".to_string(), d.0.as_millis().to_string()]);
        }
        a
    }
}

impl ShopSpec {
    /// Refuses duplicate or unusable names, and options that do nothing in their variant.
    pub fn check(&self) -> anyhow::Result<()> {
        for (i, v) in self.variants.iter().enumerate() {
            anyhow::ensure!(
                !v.name.is_empty() && !v.name.contains(['/', ',']),
                "shop.variant[{i}].name: names must be non-empty, without / or ,"
            );
            anyhow::ensure!(
                self.variants[..i].iter().all(|w| w.name != v.name),
                "shop.variant[{i}].name: {:?} is used twice",
                v.name
            );
            anyhow::ensure!(
                v.sessions == SessionStore::Shared
                    || (v.cart_write == CartWrite::Rmw && v.rmw_delay.is_none()),
                "shop.variant[{i}]: cart_write and rmw_delay apply to sessions = \"shared\" only"
            );
        }
        Ok(())
    }
}
