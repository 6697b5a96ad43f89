//! What a Redis/Valkey store needs besides the platform call itself: the compare-and-set
//! script and the connection address made from the app's variables. The backend is in
//! `shared/spin-adapter` (spin:redis); these parts are plain data, tested natively.

use crate::KvError;

/// Sets `KEYS[1]` to `ARGV[3]` only if it still holds what the ticket saw: `ARGV[2]`
/// when `ARGV[1]` is "1", nothing (absent) when it is "0". Returns 1 if it wrote.
///
/// The stored value itself is compared, not a digest of it: equality is then exact
/// whatever the values are (no collision argument needed, and the only digest Redis's Lua
/// offers is SHA-1), neither side hashes, and Lua strings compare byte for byte. The
/// price is sending the old value once more, small next to the round trip for records
/// of a few KiB. The script runs atomically, so no writer can come between the
/// comparison and the write, whichever connection or process it writes from.
pub const CAS_SCRIPT: &str = "\
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1";

/// The address `open` takes: `url` (`redis://host:port`, `rediss://host:port`, which
/// is also the `allowed_outbound_hosts` entry and so holds no secret and no path) with
/// the credentials and database index of their own variables put in.
pub fn address(
    url: &str,
    username: &str,
    password: &str,
    database: &str,
) -> Result<String, KvError> {
    let bad = |why: &str| KvError::Backend(format!("redis_url {url:?}: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !matches!(scheme, "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(bad("the scheme is not redis, rediss, valkey or valkeys"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['@', '/', '?', '#']) {
        return Err(bad(
            "only scheme://host:port; user, password and database have variables of their own",
        ));
    }
    let database = database.trim();
    if !database.is_empty() && database.parse::<u32>().is_err() {
        return Err(KvError::Backend(format!(
            "redis_database {database:?} is not a database number"
        )));
    }
    let mut out = format!("{scheme}://");
    if !password.is_empty() {
        // A key segment keeps exactly RFC 3986's unreserved characters and
        // percent-encodes the rest: what a URL's user and password need.
        out.push_str(&format!(
            "{}:{}@",
            crate::key::segment(username),
            crate::key::segment(password)
        ));
    }
    out.push_str(authority);
    if !database.is_empty() && database != "0" {
        out.push('/');
        out.push_str(database);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_puts_the_credentials_and_database_in() {
        assert_eq!(
            address("redis://127.0.0.1:6379", "", "", "0").unwrap(),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            address(
                "rediss://cache.example.com:6380/",
                "mdm",
                "p@ss:w/rd %",
                "2"
            )
            .unwrap(),
            "rediss://mdm:p%40ss%3Aw%2Frd%20%25@cache.example.com:6380/2"
        );
        // A password without a user: AUTH with the password alone.
        assert_eq!(
            address("redis://h:1", "", "pw", "").unwrap(),
            "redis://:pw@h:1"
        );
        // A user without a password sends no AUTH.
        assert_eq!(address("redis://h:1", "u", "", "").unwrap(), "redis://h:1");
        for url in [
            "h:6379",
            "http://h:6379",
            "redis://",
            "redis://:pw@h:6379",
            "redis://h:6379/0",
            "redis://h:6379?x=1",
        ] {
            assert!(address(url, "", "", "0").is_err(), "{url}");
        }
        assert!(address("redis://h:1", "", "", "two").is_err());
    }
}
