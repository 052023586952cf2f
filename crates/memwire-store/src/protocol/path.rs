//! Paths on the wire: `TENANT/SERVICE/VARIABLE` for one variable, and `TENANT`,
//! `TENANT/SERVICE` or `TENANT/SERVICE/VARIABLE` for what a watch covers. Each part is a
//! [`Name`] (1..=200 bytes of `[A-Za-z0-9._-]`, not `.` or `..`), so `/` only ever separates.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use memwire_shm::Name;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::value::Value;

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path has the wrong number of `/`-separated parts.
    #[error("invalid path {path:?}: expected {expected}")]
    Shape {
        /// The path as given.
        path: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// One part breaks the naming rules.
    #[error("invalid path {path:?}: {source}")]
    Name {
        /// The path as given.
        path: String,
        /// The rule the part breaks.
        #[source]
        source: memwire_shm::Error,
    },
}

/// Splits `path` at `/` into 1..=3 validated names.
fn split(path: &str, expected: &'static str) -> Result<Vec<Name>, PathError> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 3 {
        return Err(PathError::Shape {
            path: path.to_owned(),
            expected,
        });
    }
    parts
        .into_iter()
        .map(|part| {
            Name::new(part).map_err(|source| PathError::Name {
                path: path.to_owned(),
                source,
            })
        })
        .collect()
}

/// One variable: `TENANT/SERVICE/VARIABLE`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarPath {
    /// The tenant.
    pub tenant: Name,
    /// The service, inside the tenant.
    pub service: Name,
    /// The variable, inside the service.
    pub variable: Name,
}

impl VarPath {
    const SHAPE: &'static str = "TENANT/SERVICE/VARIABLE";

    /// The path of `variable` in `service` of `tenant`.
    #[must_use]
    pub fn new(tenant: Name, service: Name, variable: Name) -> Self {
        Self {
            tenant,
            service,
            variable,
        }
    }
}

impl FromStr for VarPath {
    type Err = PathError;

    /// Parses `TENANT/SERVICE/VARIABLE`.
    ///
    /// ```
    /// # use memwire_store::protocol::VarPath;
    /// let path: VarPath = "acme/billing/rate".parse()?;
    /// assert_eq!(path.variable.as_str(), "rate");
    /// assert!("acme/billing".parse::<VarPath>().is_err());
    /// # Ok::<(), memwire_store::protocol::PathError>(())
    /// ```
    fn from_str(path: &str) -> Result<Self, PathError> {
        let parts = split(path, Self::SHAPE)?;
        match <[Name; 3]>::try_from(parts) {
            Ok([tenant, service, variable]) => Ok(Self::new(tenant, service, variable)),
            Err(_) => Err(PathError::Shape {
                path: path.to_owned(),
                expected: Self::SHAPE,
            }),
        }
    }
}

impl fmt::Display for VarPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.service, self.variable)
    }
}

/// What a watch covers: a whole tenant, one service, or one variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `TENANT`: every variable of every service of the tenant.
    Tenant(Name),
    /// `TENANT/SERVICE`: every variable of the service.
    Service(Name, Name),
    /// `TENANT/SERVICE/VARIABLE`: one variable.
    Variable(VarPath),
}

impl Scope {
    const SHAPE: &'static str = "TENANT, TENANT/SERVICE or TENANT/SERVICE/VARIABLE";

    /// The tenant the scope lies in.
    #[must_use]
    pub fn tenant(&self) -> &Name {
        match self {
            Self::Tenant(t) | Self::Service(t, _) => t,
            Self::Variable(p) => &p.tenant,
        }
    }

    /// Whether the variable at `path` lies in the scope.
    #[must_use]
    pub fn contains(&self, path: &VarPath) -> bool {
        match self {
            Self::Tenant(t) => *t == path.tenant,
            Self::Service(t, s) => *t == path.tenant && *s == path.service,
            Self::Variable(p) => p == path,
        }
    }
}

impl FromStr for Scope {
    type Err = PathError;

    /// Parses `TENANT`, `TENANT/SERVICE` or `TENANT/SERVICE/VARIABLE`.
    fn from_str(path: &str) -> Result<Self, PathError> {
        let mut parts = split(path, Self::SHAPE)?.into_iter();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), None, None) => Ok(Self::Tenant(t)),
            (Some(t), Some(s), None) => Ok(Self::Service(t, s)),
            (Some(t), Some(s), Some(v)) => Ok(Self::Variable(VarPath::new(t, s, v))),
            // `split` yields at least one part: `"".split('/')` is `[""]`, refused as a name.
            _ => Err(PathError::Shape {
                path: path.to_owned(),
                expected: Self::SHAPE,
            }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(t) => write!(f, "{t}"),
            Self::Service(t, s) => write!(f, "{t}/{s}"),
            Self::Variable(p) => write!(f, "{p}"),
        }
    }
}

/// Serialises as the string form; deserialises through [`FromStr`].
macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

serde_as_string!(VarPath);
serde_as_string!(Scope);

/// `#[serde(with)]` helpers for [`Name`] fields, which memwire-shm keeps free of serde.
pub(crate) mod name {
    use super::{Deserialize, Deserializer, Name, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(name: &Name, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&*s).map_err(de::Error::custom)
    }

    /// For `Option<Name>` fields (with `#[serde(default)]`).
    pub(crate) mod option {
        use super::{Deserialize, Deserializer, Name, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            name: &Option<Name>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match name {
                Some(name) => s.serialize_some(name.as_str()),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Name>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Name);
            Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(n)| n))
        }
    }
}

/// `#[serde(with)]` helpers for a map of variable names to values: a duplicate key is refused
/// rather than silently keeping the last one.
pub(crate) mod values {
    use super::{
        BTreeMap, Deserializer, MapAccess, Name, SerializeMap, Serializer, Value, Visitor, de, fmt,
    };

    pub(crate) fn serialize<S: Serializer>(
        values: &BTreeMap<Name, Value>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(values.len()))?;
        for (name, value) in values {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Name, Value>, D::Error> {
        struct Values;

        impl<'de> Visitor<'de> for Values {
            type Value = BTreeMap<Name, Value>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of variable names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut values = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let name = Name::new(&*key).map_err(de::Error::custom)?;
                    let value = map.next_value::<Value>()?;
                    if values.insert(name, value).is_some() {
                        return Err(de::Error::custom(format_args!(
                            "variable {key:?} appears twice"
                        )));
                    }
                }
                Ok(values)
            }
        }

        d.deserialize_map(Values)
    }
}
