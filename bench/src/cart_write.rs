//! How the demo shop adds an item to a cart in Redis (`shared` sessions): read-modify-write
//! (GET the cart, optionally pause, SET it back: two concurrent adds can both read the old cart
//! and one overwrites the other) or atomic (APPEND to the stored value: Redis applies each
//! add in turn, none is lost).

use std::io;
use std::time::Duration;

use crate::resp::Redis;

/// The update a `shared` cart gets on `POST /cart/add`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CartWrite {
    /// GET, then SET the whole cart: concurrent adds race.
    #[default]
    Rmw,
    /// APPEND the item: atomic in Redis.
    Atomic,
}

impl CartWrite {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            CartWrite::Rmw => "rmw",
            CartWrite::Atomic => "atomic",
        }
    }
}

/// Adds `item` to the cart stored (comma-separated) at `key`, whose current items are
/// `items` (just read); returns the item count when the update knows it. `pause` is the
/// read-modify-write's gap between the read and the write.
pub async fn add(
    redis: &Redis,
    how: CartWrite,
    pause: Duration,
    key: &str,
    mut items: Vec<String>,
    item: &str,
    ttl_secs: u64,
) -> io::Result<Option<usize>> {
    match how {
        CartWrite::Rmw => {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            items.push(item.to_string());
            redis
                .set_ex(key, items.join(",").as_bytes(), ttl_secs)
                .await?;
            Ok(Some(items.len()))
        }
        CartWrite::Atomic => {
            redis
                .command(&[b"APPEND", key.as_bytes(), format!(",{item}").as_bytes()])
                .await?;
            Ok(None)
        }
    }
}
