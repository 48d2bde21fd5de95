//! `Dur`: a duration as scenario files spell it ("500ms", "2s").

use std::time::Duration;

use serde::Deserialize;

use crate::util::parse_duration;

/// A duration written as a human string ("500ms", "2s").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}
