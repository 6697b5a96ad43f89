//! Reading a payload value by type from either form an admin sends it in (JSON or plist),
//! including JSON's spellings of `<data>` (base64) and `<date>` (RFC 3339).

use plist::{Dictionary, Integer, Value as Plist};
use serde_json::Value as Json;

use crate::command::schema::KeyType;

/// A value being checked: admin JSON or an uploaded plist.
pub(super) trait Source: Sized {
    fn kind(&self) -> &'static str;
    /// How the type is written in this source, when not obvious.
    fn hint(ty: KeyType) -> &'static str;
    fn boolean(&self) -> Option<bool>;
    fn integer(&self) -> Option<Integer>;
    fn real(&self) -> Option<f64>;
    fn string(&self) -> Option<&str>;
    /// `None` when the value cannot be data at all.
    fn data(&self) -> Option<Result<Vec<u8>, String>>;
    fn date(&self) -> Option<Result<plist::Date, String>>;
    fn array(&self) -> Option<&[Self]>;
    fn dict(&self) -> Option<Vec<(&str, &Self)>>;
    /// The natural plist form; on failure the path below this value and the problem.
    fn any(&self) -> Result<Plist, (String, String)>;
}

impl Source for Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(n) if n.is_f64() => "number",
            Json::Number(_) => "integer",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
    fn hint(ty: KeyType) -> &'static str {
        match ty {
            KeyType::Data => " (a base64 string)",
            KeyType::Date => " (an RFC 3339 string)",
            KeyType::Dictionary => " (an object)",
            _ => "",
        }
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn integer(&self) -> Option<Integer> {
        let n = self.as_number()?;
        n.as_i64()
            .map(Integer::from)
            .or_else(|| n.as_u64().map(Integer::from))
    }
    fn real(&self) -> Option<f64> {
        self.as_number()?.as_f64()
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn data(&self) -> Option<Result<Vec<u8>, String>> {
        use base64::Engine;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        const B64: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let s = self.as_str()?;
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Some(
            B64.decode(compact)
                .map_err(|e| format!("not valid base64 ({e})")),
        )
    }
    fn date(&self) -> Option<Result<plist::Date, String>> {
        let s = self.as_str()?;
        Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| plist::Date::from(std::time::SystemTime::from(t)))
                .map_err(|e| format!("not an RFC 3339 date-time ({e})")),
        )
    }
    fn array(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn dict(&self) -> Option<Vec<(&str, &Self)>> {
        self.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
    }
    fn any(&self) -> Result<Plist, (String, String)> {
        Ok(match self {
            Json::Null => return Err((String::new(), "null has no plist form".into())),
            Json::Bool(b) => Plist::Boolean(*b),
            Json::Number(_) => match self.integer() {
                Some(i) => Plist::Integer(i),
                None => Plist::Real(self.real().unwrap_or_default()),
            },
            Json::String(s) => Plist::String(s.clone()),
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(item.any().map_err(|(p, e)| (format!("[{i}]{p}"), e))?);
                }
                Plist::Array(out)
            }
            Json::Object(m) => {
                let mut out = Dictionary::new();
                for (k, v) in m {
                    out.insert(
                        k.clone(),
                        v.any().map_err(|(p, e)| (format!(".{k}{p}"), e))?,
                    );
                }
                Plist::Dictionary(out)
            }
        })
    }
}

impl Source for Plist {
    fn kind(&self) -> &'static str {
        plist_kind(self)
    }
    fn hint(_: KeyType) -> &'static str {
        ""
    }
    fn boolean(&self) -> Option<bool> {
        self.as_boolean()
    }
    fn integer(&self) -> Option<Integer> {
        match self {
            Plist::Integer(i) => Some(*i),
            _ => None,
        }
    }
    fn real(&self) -> Option<f64> {
        match self {
            Plist::Real(r) => Some(*r),
            // A whole number written as <integer> where <real> is expected reads the same.
            Plist::Integer(i) => i
                .as_signed()
                .map(|i| i as f64)
                .or(i.as_unsigned().map(|u| u as f64)),
            _ => None,
        }
    }
    fn string(&self) -> Option<&str> {
        self.as_string()
    }
    fn data(&self) -> Option<Result<Vec<u8>, String>> {
        self.as_data().map(|d| Ok(d.to_vec()))
    }
    fn date(&self) -> Option<Result<plist::Date, String>> {
        self.as_date().map(Ok)
    }
    fn array(&self) -> Option<&[Self]> {
        self.as_array().map(Vec::as_slice)
    }
    fn dict(&self) -> Option<Vec<(&str, &Self)>> {
        self.as_dictionary()
            .map(|d| d.iter().map(|(k, v)| (k.as_str(), v)).collect())
    }
    fn any(&self) -> Result<Plist, (String, String)> {
        Ok(self.clone())
    }
}

pub(super) fn plist_kind(v: &Plist) -> &'static str {
    match v {
        Plist::Array(_) => "array",
        Plist::Dictionary(_) => "dictionary",
        Plist::Boolean(_) => "boolean",
        Plist::Data(_) => "data",
        Plist::Date(_) => "date",
        Plist::Real(_) => "real",
        Plist::Integer(_) => "integer",
        Plist::String(_) => "string",
        Plist::Uid(_) => "uid",
        _ => "unknown value",
    }
}
